package plan

import (
	"slices"
	"testing"
)

// sumMatrix is the 0/1 matrix of a 2x2 pooling of stride 2 on c channels
// of h x w (natural order), window rows listed in the given order.
func sumMatrix(c, h, w int) *Sparse {
	b := NewSparseBuilder(c*(h/2)*(w/2), c*h*w)
	for ch := 0; ch < c; ch++ {
		for y := 0; y < h/2; y++ {
			for x := 0; x < w/2; x++ {
				for _, d := range [][2]int{{0, 0}, {0, 1}, {1, 0}, {1, 1}} {
					b.Add((ch*h+2*y+d[0])*w+2*x+d[1], 1)
				}
				b.EndRow()
			}
		}
	}
	return b.Build()
}

// A Sum step's outputs sit at their windows' first cells and its rotations
// are the windows' cells relative to it, in the natural order and in a
// layout with gaps and channels apart; a layout whose windows differ has
// no sum layout. The rotations' sum at the output positions is M x.
func TestSumLayout(t *testing.T) {
	const c, h, w = 2, 4, 4
	gapped := make([]int, c*h*w) // rows 16 apart, columns 2, channel 1 at 1
	for ch := 0; ch < c; ch++ {
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				gapped[(ch*h+y)*w+x] = ch + 16*y + 2*x
			}
		}
	}
	broken := slices.Clone(gapped)
	broken[len(broken)-1] = 200
	for _, tc := range []struct {
		name    string
		inPos   []int
		offsets []int // nil: no layout
	}{
		{"natural", nil, []int{0, 1, 4, 5}},
		{"gapped", gapped, []int{0, 2, 16, 18}},
		{"windows differ", broken, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Step{Kind: StepSum, M: sumMatrix(c, h, w)}
			out, off, ok := s.SumLayout(tc.inPos)
			if ok != (tc.offsets != nil) || !slices.Equal(off, tc.offsets) {
				t.Fatalf("offsets %v (ok %v), want %v", off, ok, tc.offsets)
			}
			if !ok {
				return
			}
			x := make([]float64, c*h*w)
			for i := range x {
				x[i] = float64(i*i%13) - 6
			}
			slots := make([]float64, 64)
			for i, v := range x {
				slots[Pos(tc.inPos, i)] = v
			}
			want := s.M.MulVec(x)
			for r, p := range out {
				var got float64
				for _, k := range off {
					got += slots[(p+k)%len(slots)]
				}
				if got != want[r] {
					t.Fatalf("output %d at slot %d: %g, want %g", r, p, got, want[r])
				}
			}
		})
	}
}
