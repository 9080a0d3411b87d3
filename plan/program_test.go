package plan

import (
	"reflect"
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
		name   string
		inPos  []int
		stages [][]int // nil: no layout
	}{
		{"natural", nil, [][]int{{0, 1}, {0, 4}}},
		{"gapped", gapped, [][]int{{0, 2}, {0, 16}}},
		{"windows differ", broken, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Step{Kind: StepSum, M: sumMatrix(c, h, w)}
			out, stages, ok := s.SumLayout(tc.inPos)
			if ok != (tc.stages != nil) || !slices.EqualFunc(stages, tc.stages, slices.Equal) {
				t.Fatalf("stages %v (ok %v), want %v", stages, ok, tc.stages)
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
			for _, stage := range stages {
				next := make([]float64, len(slots))
				for i := range next {
					for _, k := range stage {
						next[i] += slots[(i+k)%len(slots)]
					}
				}
				slots = next
			}
			for r, p := range out {
				if got := slots[p]; got != want[r] {
					t.Fatalf("output %d at slot %d: %g, want %g", r, p, got, want[r])
				}
			}
		})
	}
}

// Window offsets factor into stages of few rotations whose sums of one
// offset per stage are exactly the window's cells.
func TestSumStages(t *testing.T) {
	window := func(kh, kw, dy, dx int) []int {
		var o []int
		for y := 0; y < kh; y++ {
			for x := 0; x < kw; x++ {
				o = append(o, y*dy+x*dx)
			}
		}
		return o
	}
	for _, tc := range []struct {
		name      string
		offsets   []int
		rotations int
	}{
		{"2x2", window(2, 2, 32, 1), 2},
		{"3x3", window(3, 3, 32, 1), 4},
		{"4x4", window(4, 4, 64, 2), 4},
		{"1x4", window(1, 4, 32, 1), 2},
		{"irregular", []int{0, 1, 5}, 2},
		{"one cell", []int{0}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stages := sumStages(tc.offsets)
			if n := stageRotations(stages); n != tc.rotations {
				t.Errorf("%v: %d rotations, want %d", stages, n, tc.rotations)
			}
			cells := []int{0}
			for _, st := range stages {
				var next []int
				for _, c := range cells {
					for _, o := range st {
						next = append(next, c+o)
					}
				}
				cells = next
			}
			slices.Sort(cells)
			want := slices.Sorted(slices.Values(tc.offsets))
			if !slices.Equal(cells, want) {
				t.Errorf("%v sums to cells %v, want %v", stages, cells, want)
			}
		})
	}
}

// Folding in stages of any width sums, in every slot i, the input's slots
// i + m Pout for m < Pin/Pout (cyclically), as the folds one rotation at
// a time do, and each stage holds at most FoldWidth-1 rotations.
func TestFoldStages(t *testing.T) {
	const slots = 256
	x := make([]int, slots)
	for i := range x {
		x[i] = i*i%97 + 3*i
	}
	apply := func(s *Step) []int {
		y := slices.Clone(x)
		for _, stage := range s.FoldStages() {
			next := slices.Clone(y)
			for _, r := range stage {
				for i := range next {
					next[i] += y[(i+r)%slots]
				}
			}
			y = next
		}
		return y
	}
	for _, c := range []struct{ pin, pout int }{{64, 64}, {128, 64}, {256, 4}, {256, 1}, {64, 2}} {
		want := make([]int, slots)
		for i := range want {
			for m := 0; m < c.pin/c.pout; m++ {
				want[i] += x[(i+m*c.pout)%slots]
			}
		}
		for _, w := range []int{0, 2, 4, 8, 16, 256} {
			s := &Step{Pin: c.pin, Pout: c.pout, FoldWidth: w}
			if got := apply(s); !slices.Equal(got, want) {
				t.Errorf("Pin %d, Pout %d, width %d: folded sums differ", c.pin, c.pout, w)
			}
			for _, stage := range s.FoldStages() {
				if len(stage) >= max(w, 2) {
					t.Errorf("Pin %d, Pout %d, width %d: a stage of %d rotations", c.pin, c.pout, w, len(stage))
				}
			}
		}
	}
}

// A fold width that is not 0 or a power of two up to the blocks (a sealed
// program comes from its owner) is refused, and folds one rotation a
// stage, as FoldWidth 0 does.
func TestFoldWidthChecked(t *testing.T) {
	for _, w := range []int{-4, 1, 3, 12, 64, 1 << 62} {
		s := Step{Name: "fc", Pin: 64, Pout: 4, FoldWidth: w}
		if s.CheckFoldWidth() == nil {
			t.Errorf("width %d accepted", w)
		}
		plain := Step{Pin: 64, Pout: 4}
		if got, want := s.FoldStages(), plain.FoldStages(); !reflect.DeepEqual(got, want) {
			t.Errorf("width %d: stages %v, want %v", w, got, want)
		}
	}
	for _, w := range []int{0, 2, 4, 16, 32} {
		if err := (&Step{Pin: 64, Pout: 4, FoldWidth: w}).CheckFoldWidth(); err != nil {
			t.Errorf("width %d: %v", w, err)
		}
	}
}
