package nn

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/fheserve/fheserve"
)

func tensor(shape Shape, data ...float64) *Tensor {
	return &Tensor{Shape: shape, Data: data}
}

func seq(n int) []float64 {
	d := make([]float64, n)
	for i := range d {
		d[i] = float64(i + 1)
	}
	return d
}

func randData(r *rand.Rand, n int) []float64 {
	d := make([]float64, n)
	for i := range d {
		d[i] = r.NormFloat64()
	}
	return d
}

func assertClose(tb testing.TB, got, want []float64, tol float64) {
	tb.Helper()
	if len(got) != len(want) {
		tb.Fatalf("got %d values %v, want %d values %v", len(got), got, len(want), want)
	}
	for i := range got {
		if math.Abs(got[i]-want[i]) > tol*max(1, math.Abs(want[i])) {
			tb.Fatalf("value %d: got %v, want %v (all: got %v, want %v)", i, got[i], want[i], got, want)
		}
	}
}

// opEvalTests are ops on small inputs, with the shapes and values worked
// out by hand.
var opEvalTests = []struct {
	name  string
	op    Op
	in    []*Tensor
	shape Shape
	want  []float64
}{
	{
		name: "dense with bias",
		op:   &Dense{In: 3, Out: 2, W: []float64{1, 2, 3, -1, 0, 1}, B: []float64{10, 20}},
		in:   []*Tensor{tensor(Shape{3}, 1, 2, 3)},
		// [1+4+9+10, -1+0+3+20]
		shape: Shape{2}, want: []float64{24, 22},
	},
	{
		name:  "dense flattens its input, no bias",
		op:    &Dense{In: 4, Out: 1, W: []float64{1, 1, 1, 1}},
		in:    []*Tensor{tensor(Shape{1, 2, 2}, 1, 2, 3, 4)},
		shape: Shape{1}, want: []float64{10},
	},
	{
		name: "conv 1x1 kernel mixes channels",
		op:   &Conv{InC: 2, OutC: 1, KH: 1, KW: 1, StrideH: 1, StrideW: 1, W: []float64{2, -1}, B: []float64{0.5}},
		in:   []*Tensor{tensor(Shape{2, 1, 2}, 1, 2, 10, 20)},
		// 2*1-10+0.5, 2*2-20+0.5
		shape: Shape{1, 1, 2}, want: []float64{-7.5, -15.5},
	},
	{
		name: "conv 2x2 sum kernel with padding 1 on each side",
		op:   &Conv{InC: 1, OutC: 1, KH: 2, KW: 2, StrideH: 1, StrideW: 1, PadT: 1, PadL: 1, PadB: 1, PadR: 1, W: []float64{1, 1, 1, 1}},
		in:   []*Tensor{tensor(Shape{1, 2, 2}, 1, 2, 3, 4)},
		// Padded 4x4 grid; each output is the sum of a 2x2 window.
		shape: Shape{1, 3, 3}, want: []float64{1, 3, 2, 4, 10, 6, 3, 7, 4},
	},
	{
		name:  "conv stride 2 picks corners",
		op:    &Conv{InC: 1, OutC: 1, KH: 1, KW: 1, StrideH: 2, StrideW: 2, W: []float64{1}},
		in:    []*Tensor{tensor(Shape{1, 3, 3}, seq(9)...)},
		shape: Shape{1, 2, 2}, want: []float64{1, 3, 7, 9},
	},
	{
		name:  "avgpool 2x2 stride 2",
		op:    &AvgPool{KH: 2, KW: 2, StrideH: 2, StrideW: 2},
		in:    []*Tensor{tensor(Shape{1, 2, 4}, 1, 2, 3, 4, 5, 6, 7, 8)},
		shape: Shape{1, 1, 2}, want: []float64{(1 + 2 + 5 + 6) / 4.0, (3 + 4 + 7 + 8) / 4.0},
	},
	{
		name: "avgpool pads excluded from the divisor",
		op:   &AvgPool{KH: 2, KW: 2, StrideH: 1, StrideW: 1, PadT: 1, PadL: 1},
		in:   []*Tensor{tensor(Shape{1, 2, 2}, 1, 2, 3, 4)},
		// Windows: {1}, {1,2}, {1,3}, {1,2,3,4}.
		shape: Shape{1, 2, 2}, want: []float64{1, 1.5, 2, 2.5},
	},
	{
		name:  "avgpool pads included in the divisor",
		op:    &AvgPool{KH: 2, KW: 2, StrideH: 1, StrideW: 1, PadT: 1, PadL: 1, CountIncludePad: true},
		in:    []*Tensor{tensor(Shape{1, 2, 2}, 1, 2, 3, 4)},
		shape: Shape{1, 2, 2}, want: []float64{0.25, 0.75, 1, 2.5},
	},
	{
		name:  "pad",
		op:    &Pad{PadT: 1, PadL: 0, PadB: 0, PadR: 2},
		in:    []*Tensor{tensor(Shape{2, 1, 1}, 5, 7)},
		shape: Shape{2, 2, 3}, want: []float64{
			0, 0, 0, 5, 0, 0,
			0, 0, 0, 7, 0, 0,
		},
	},
	{
		name:  "affine scalar",
		op:    &Affine{Scale: []float64{2}, Shift: []float64{-1}},
		in:    []*Tensor{tensor(Shape{3}, 1, 2, 3)},
		shape: Shape{3}, want: []float64{1, 3, 5},
	},
	{
		name:  "affine per channel",
		op:    &Affine{Scale: []float64{1, 10}, Shift: []float64{0, 1}},
		in:    []*Tensor{tensor(Shape{2, 1, 2}, 1, 2, 3, 4)},
		shape: Shape{2, 1, 2}, want: []float64{1, 2, 31, 41},
	},
	{
		name:  "affine elementwise scale, scalar shift",
		op:    &Affine{Scale: []float64{1, 2, 3, 4}, Shift: []float64{100}},
		in:    []*Tensor{tensor(Shape{2, 2}, 1, 1, 1, 1)},
		shape: Shape{2, 2}, want: []float64{101, 102, 103, 104},
	},
	{
		name:  "combine",
		op:    &Combine{A: 1, B: -2},
		in:    []*Tensor{tensor(Shape{2}, 1, 2), tensor(Shape{2}, 3, 4)},
		shape: Shape{2}, want: []float64{-5, -6},
	},
	{
		name:  "mul",
		op:    &Mul{},
		in:    []*Tensor{tensor(Shape{3}, 1, -2, 3), tensor(Shape{3}, 4, 5, -6)},
		shape: Shape{3}, want: []float64{4, -10, -18},
	},
	{
		name:  "poly 1 + 2x + 3x^2",
		op:    &Poly{Coeffs: []float64{1, 2, 3}},
		in:    []*Tensor{tensor(Shape{3}, 0, 1, -2)},
		shape: Shape{3}, want: []float64{1, 6, 9},
	},
	{
		name:  "relu",
		op:    &Activation{Func: ActReLU},
		in:    []*Tensor{tensor(Shape{3}, -1, 0, 2.5)},
		shape: Shape{3}, want: []float64{0, 0, 2.5},
	},
	{
		name:  "sigmoid",
		op:    &Activation{Func: ActSigmoid},
		in:    []*Tensor{tensor(Shape{4}, 0, math.Log(3), -math.Log(3), -1000)},
		shape: Shape{4}, want: []float64{0.5, 0.75, 0.25, 0},
	},
	{
		name:  "tanh",
		op:    &Activation{Func: ActTanh},
		in:    []*Tensor{tensor(Shape{2}, 0, math.Log(2))},
		shape: Shape{2}, want: []float64{0, 0.6}, // (4-1)/(4+1)
	},
	{
		name:  "softplus, stable at both ends",
		op:    &Activation{Func: ActSoftplus},
		in:    []*Tensor{tensor(Shape{4}, 0, math.Log(3), 1000, -1000)},
		shape: Shape{4}, want: []float64{math.Ln2, math.Log(4), 1000, 0},
	},
	{
		name:  "silu",
		op:    &Activation{Func: ActSiLU},
		in:    []*Tensor{tensor(Shape{3}, 0, math.Log(3), -1000)},
		shape: Shape{3}, want: []float64{0, 0.75 * math.Log(3), 0},
	},
	{
		name: "gelu",
		op:   &Activation{Func: ActGELU},
		in:   []*Tensor{tensor(Shape{4}, 0, 1, -1, 3)},
		// Phi(1) = 0.841344746068543, Phi(3) = 0.998650101968370.
		shape: Shape{4}, want: []float64{0, 0.841344746068543, -0.158655253931457, 3 * 0.998650101968370},
	},
	{
		name:  "softmax over all elements",
		op:    &Softmax{},
		in:    []*Tensor{tensor(Shape{2, 1, 1}, math.Log(1), math.Log(3))},
		shape: Shape{2, 1, 1}, want: []float64{0.25, 0.75},
	},
	{
		name:  "softmax is shift invariant and does not overflow",
		op:    &Softmax{},
		in:    []*Tensor{tensor(Shape{2}, 1000, 1000)},
		shape: Shape{2}, want: []float64{0.5, 0.5},
	},
	{
		name:  "reshape",
		op:    &Reshape{To: Shape{3, 2}},
		in:    []*Tensor{tensor(Shape{2, 3}, seq(6)...)},
		shape: Shape{3, 2}, want: seq(6),
	},
}

func TestOpEval(t *testing.T) {
	for _, tt := range opEvalTests {
		t.Run(tt.name, func(t *testing.T) {
			shapes := make([]Shape, len(tt.in))
			for i, x := range tt.in {
				shapes[i] = x.Shape
			}
			s, err := InferShape(tt.op, shapes)
			if err != nil {
				t.Fatalf("InferShape: %v", err)
			}
			if !s.Equal(tt.shape) {
				t.Fatalf("InferShape = %v, want %v", s, tt.shape)
			}
			y, err := tt.op.Eval(tt.in)
			if err != nil {
				t.Fatalf("Eval: %v", err)
			}
			if !y.Shape.Equal(tt.shape) {
				t.Fatalf("Eval shape = %v, want %v", y.Shape, tt.shape)
			}
			assertClose(t, y.Data, tt.want, 1e-12)
		})
	}
}

// naiveConv is the textbook formula on an explicitly zero-padded input.
func naiveConv(x []float64, c, h, w int, cv *Conv) []float64 {
	ph, pw := h+cv.PadT+cv.PadB, w+cv.PadL+cv.PadR
	padded := make([][][]float64, c)
	for ci := range padded {
		padded[ci] = make([][]float64, ph)
		for y := range padded[ci] {
			padded[ci][y] = make([]float64, pw)
			if y >= cv.PadT && y < cv.PadT+h {
				for xx := range w {
					padded[ci][y][xx+cv.PadL] = x[ci*h*w+(y-cv.PadT)*w+xx]
				}
			}
		}
	}
	var out []float64
	for o := range cv.OutC {
		for y := 0; y+cv.KH <= ph; y += cv.StrideH {
			for xx := 0; xx+cv.KW <= pw; xx += cv.StrideW {
				s := 0.0
				if cv.B != nil {
					s = cv.B[o]
				}
				for ci := range c {
					for i := range cv.KH {
						for j := range cv.KW {
							s += cv.W[o*c*cv.KH*cv.KW+ci*cv.KH*cv.KW+i*cv.KW+j] * padded[ci][y+i][xx+j]
						}
					}
				}
				out = append(out, s)
			}
		}
	}
	return out
}

func TestConvMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		c, h, w := 1+r.IntN(3), 3+r.IntN(6), 3+r.IntN(6)
		cv := &Conv{
			InC: c, OutC: 1 + r.IntN(3), KH: 1 + r.IntN(3), KW: 1 + r.IntN(3),
			StrideH: 1 + r.IntN(3), StrideW: 1 + r.IntN(3),
			PadT: r.IntN(2), PadL: r.IntN(3), PadB: r.IntN(2), PadR: r.IntN(2),
		}
		cv.W = randData(r, cv.OutC*c*cv.KH*cv.KW)
		if r.IntN(2) == 0 {
			cv.B = randData(r, cv.OutC)
		}
		x := randData(r, c*h*w)
		y, err := cv.Eval([]*Tensor{tensor(Shape{c, h, w}, x...)})
		if err != nil {
			t.Fatalf("%+v: %v", cv, err)
		}
		assertClose(t, y.Data, naiveConv(x, c, h, w, cv), 1e-12)
	}
}

func TestOpEvalRejectsBadTensors(t *testing.T) {
	if _, err := (&Mul{}).Eval([]*Tensor{tensor(Shape{2}, 1, 2), nil}); err == nil {
		t.Fatal("nil input accepted")
	}
	if _, err := (&Softmax{}).Eval([]*Tensor{tensor(Shape{3}, 1, 2)}); err == nil {
		t.Fatal("short data accepted")
	}
}

func TestActivationFunc(t *testing.T) {
	for _, name := range []string{ActReLU, ActSigmoid, ActTanh, ActSoftplus, ActSiLU, ActGELU} {
		if f, err := ActivationFunc(name); err != nil || f == nil {
			t.Errorf("ActivationFunc(%q) = %v", name, err)
		}
	}
	_, err := ActivationFunc("swish")
	if fheserve.ErrorCode(err) != fheserve.EUNSUPPORTED || !strings.Contains(err.Error(), "gelu") {
		t.Fatalf("ActivationFunc(swish) error = %v", err)
	}
}
