package compiler

import (
	"fmt"
	"testing"

	"github.com/fheserve/fheserve/nn"
	"github.com/fheserve/fheserve/plan"
)

// A chain of convolutions and poolings, fused into one matrix the way
// fuse does and placed by its composed grid, puts every entry
// ((o,y,x), (c,y',x')) on a slot offset that depends on the channels and
// the tap (y'-y*SH, x'-x*SW) only, never on the output's place, and gives
// each output its own slot; the input is laid out as the previous placed
// layer left it (gaps and channels interleaved) or in natural order.
func TestGridPositionsAreShiftInvariant(t *testing.T) {
	type layer struct {
		conv *nn.Conv
		pool *nn.AvgPool
	}
	conv := func(inC, outC, k, s, p int) layer {
		w := make([]float64, outC*inC*k*k)
		for i := range w {
			w[i] = float64(i%7) + 1
		}
		return layer{conv: &nn.Conv{InC: inC, OutC: outC, KH: k, KW: k, StrideH: s, StrideW: s, PadT: p, PadL: p, PadB: p, PadR: p, W: w}}
	}
	pool := func(k, s int) layer {
		return layer{pool: &nn.AvgPool{KH: k, KW: k, StrideH: s, StrideW: s}}
	}
	for _, tc := range []struct {
		name   string
		in     nn.Shape
		first  []layer // placed first: the layout the second chain reads
		second []layer
	}{
		{"conv", nn.Shape{3, 12, 12}, nil, []layer{conv(3, 4, 3, 1, 1)}},
		{"strided conv", nn.Shape{2, 11, 11}, nil, []layer{conv(2, 5, 3, 2, 0)}},
		{"pool then conv", nn.Shape{3, 16, 16}, nil, []layer{pool(2, 2), conv(3, 8, 3, 1, 1)}},
		{"conv pool conv", nn.Shape{2, 16, 16}, nil, []layer{conv(2, 4, 3, 1, 1), pool(2, 2), conv(4, 4, 3, 1, 1)}},
		{"strided conv on gaps", nn.Shape{2, 16, 16}, []layer{pool(2, 2), conv(2, 6, 3, 1, 1)}, []layer{conv(6, 5, 3, 2, 1)}},
		{"pool and conv on gaps", nn.Shape{3, 16, 16}, []layer{pool(2, 2), conv(3, 8, 3, 1, 1)}, []layer{pool(2, 2), conv(8, 16, 3, 1, 1)}},
		{"pool on gaps", nn.Shape{3, 16, 16}, []layer{conv(3, 4, 3, 2, 1)}, []layer{pool(2, 2)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chain := func(in nn.Shape, layers []layer) (*plan.Sparse, *plan.Grid, nn.Shape) {
				var m *plan.Sparse
				var g *plan.Grid
				for _, l := range layers {
					c, h, w := chw(in)
					var lm *plan.Sparse
					var out nn.Shape
					var lg *plan.Grid
					if l.conv != nil {
						op := l.conv
						out = nn.Shape{op.OutC, (h+2*op.PadT-op.KH)/op.StrideH + 1, (w+2*op.PadL-op.KW)/op.StrideW + 1}
						lm, _ = convMatrix(op, in, out)
						lg = grid(in, out, op.StrideH, op.StrideW, op.PadT, op.PadL, false)
					} else {
						op := l.pool
						out = nn.Shape{c, (h-op.KH)/op.StrideH + 1, (w-op.KW)/op.StrideW + 1}
						lm = poolMatrix(op, in, out)
						lg = grid(in, out, op.StrideH, op.StrideW, 0, 0, true)
					}
					if m == nil {
						m, g = lm, lg
					} else {
						m, g = plan.MulSparse(lm, m), lg.After(g)
					}
					in = out
				}
				return m, g, in
			}
			var inPos []int
			in := tc.in
			if tc.first != nil {
				_, g, out := chain(in, tc.first)
				inPos, in = g.Positions(nil), out
				if inPos == nil {
					t.Fatal("first chain not placed")
				}
			}
			m, g, out := chain(in, tc.second)
			pos := g.Positions(inPos)
			checkDistinct(t, pos, out.Size())
			c, h, w := chw(in)
			_, oh, ow := chw(out)
			offset := map[string]int{}
			for r := 0; r < m.Rows; r++ {
				o, y, x := r/(oh*ow), r/ow%oh, r%ow
				cols, _ := m.Row(r)
				for _, col := range cols {
					ci, iy, ix := col/(h*w), col/w%h, col%w
					key := fmt.Sprint(o, ci, iy-y*g.SH, ix-x*g.SW)
					d := plan.Pos(inPos, col) - pos[r]
					if prev, ok := offset[key]; ok && prev != d {
						t.Fatalf("output (%d,%d,%d) reads channel %d tap %s at offset %d, other outputs at %d", o, y, x, ci, key, d, prev)
					}
					offset[key] = d
				}
			}
			if c != g.InC || len(offset) == 0 {
				t.Fatalf("grid %+v for input of %d channels, %d offsets", g, c, len(offset))
			}
		})
	}
}

// Multiplexed places output channel o on copy o mod copies of the input
// period: every output has its own slot, and entry ((o,y,x), (c,y',x'))
// lies on a diagonal (input slot minus output slot, modulo the input
// period) that depends on the group o / copies, c and the tap only, so
// the map has no more diagonals than the narrower map of one group.
func TestMultiplexedPositions(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		in                   nn.Shape
		outC, k, stride, pad int
		copies               int
	}{
		{"one channel", nn.Shape{1, 12, 12}, 5, 3, 1, 1, 8},
		{"strided", nn.Shape{2, 11, 11}, 6, 3, 2, 0, 2},
		{"strided, 4 copies", nn.Shape{3, 8, 8}, 7, 3, 2, 1, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := make([]float64, tc.outC*tc.in[0]*tc.k*tc.k)
			for i := range w {
				w[i] = float64(i%5) + 1
			}
			op := &nn.Conv{InC: tc.in[0], OutC: tc.outC, KH: tc.k, KW: tc.k, StrideH: tc.stride, StrideW: tc.stride, PadT: tc.pad, PadL: tc.pad, PadB: tc.pad, PadR: tc.pad, W: w}
			c, h, wd := chw(tc.in)
			out := nn.Shape{tc.outC, (h+2*tc.pad-tc.k)/tc.stride + 1, (wd+2*tc.pad-tc.k)/tc.stride + 1}
			m, _ := convMatrix(op, tc.in, out)
			g := grid(tc.in, out, tc.stride, tc.stride, tc.pad, tc.pad, false)
			pin := plan.NextPow2(c * h * wd)
			pos := g.Multiplexed(nil, pin, tc.copies)
			checkDistinct(t, pos, out.Size())
			_, oh, ow := chw(out)
			offset := map[string]int{}
			diags := map[int]bool{}
			for r := 0; r < m.Rows; r++ {
				o, y, x := r/(oh*ow), r/ow%oh, r%ow
				cols, _ := m.Row(r)
				for _, col := range cols {
					ci, iy, ix := col/(h*wd), col/wd%h, col%wd
					key := fmt.Sprint(o/tc.copies, ci, iy-y*g.SH, ix-x*g.SW)
					d := ((col-pos[r])%pin + pin) % pin
					if prev, ok := offset[key]; ok && prev != d {
						t.Fatalf("output (%d,%d,%d) reads channel %d tap %s at diagonal %d, its group at %d", o, y, x, ci, key, d, prev)
					}
					offset[key] = d
					diags[d] = true
				}
			}
			narrow := *g
			narrow.OutC = (tc.outC + tc.copies - 1) / tc.copies
			if max := narrow.OutC * c * tc.k * tc.k; len(diags) > max {
				t.Errorf("%d diagonals, more than the %d of one group", len(diags), max)
			}
		})
	}
}

// checkDistinct fails unless pos places n outputs on distinct slots.
func checkDistinct(t *testing.T, pos []int, n int) {
	t.Helper()
	if len(pos) != n {
		t.Fatalf("%d positions for %d outputs", len(pos), n)
	}
	seen := map[int]bool{}
	for _, p := range pos {
		if p < 0 || seen[p] {
			t.Fatalf("position %d negative or repeated", p)
		}
		seen[p] = true
	}
}
