package nn

import (
	"strings"
	"testing"

	"github.com/fheserve/fheserve"
)

func TestInferShapeErrors(t *testing.T) {
	tests := []struct {
		name string
		op   Op
		in   []Shape
		want string
	}{
		{"dense wrong input size", &Dense{In: 3, Out: 1, W: []float64{1, 2, 3}}, []Shape{{4}}, "expects 3 inputs"},
		{"dense short weights", &Dense{In: 3, Out: 2, W: []float64{1, 2, 3}}, []Shape{{3}}, "3 weights, want 6"},
		{"dense bad bias", &Dense{In: 1, Out: 2, W: []float64{1, 2}, B: []float64{1}}, []Shape{{1}}, "1 biases"},
		{"dense overflow", &Dense{In: 1 << 20, Out: 1 << 20}, []Shape{{1}}, "more than"},
		{"conv not CHW", &Conv{InC: 1, OutC: 1, KH: 1, KW: 1, StrideH: 1, StrideW: 1, W: []float64{1}}, []Shape{{4}}, "not CHW"},
		{"conv channels", &Conv{InC: 2, OutC: 1, KH: 1, KW: 1, StrideH: 1, StrideW: 1, W: []float64{1, 1}}, []Shape{{1, 2, 2}}, "2 input channels"},
		{"conv kernel too big", &Conv{InC: 1, OutC: 1, KH: 3, KW: 1, StrideH: 1, StrideW: 1, W: []float64{1, 1, 1}}, []Shape{{1, 2, 2}}, "larger than padded"},
		{"conv zero stride", &Conv{InC: 1, OutC: 1, KH: 1, KW: 1, StrideW: 1, W: []float64{1}}, []Shape{{1, 2, 2}}, "out of range"},
		{"conv weight overflow", &Conv{InC: 1, OutC: 1 << 20, KH: 1 << 20, KW: 1 << 20, StrideH: 1, StrideW: 1}, []Shape{{1, 2, 2}}, "out of range"},
		{"pool pad as large as kernel", &AvgPool{KH: 2, KW: 2, StrideH: 1, StrideW: 1, PadT: 2}, []Shape{{1, 2, 2}}, "smaller than the kernel"},
		{"pad negative", &Pad{PadT: -1}, []Shape{{1, 2, 2}}, "out of range"},
		{"pad huge", &Pad{PadT: MaxSize}, []Shape{{1, 2, 2}}, "dimension"},
		{"affine bad length", &Affine{Scale: []float64{1, 2, 3}, Shift: []float64{0}}, []Shape{{2, 2}}, "must each be"},
		{"affine empty shift", &Affine{Scale: []float64{1}}, []Shape{{2}}, "must each be"},
		{"combine shapes differ", &Combine{A: 1, B: 1}, []Shape{{2}, {3}}, "differ"},
		{"mul arity", &Mul{}, []Shape{{2}}, "1 inputs, want 2"},
		{"poly empty", &Poly{}, []Shape{{2}}, "without coefficients"},
		{"unknown activation", &Activation{Func: "elu"}, []Shape{{2}}, "unknown activation"},
		{"reshape size", &Reshape{To: Shape{5}}, []Shape{{2, 2}}, "cannot reshape"},
		{"zero dimension", &Softmax{}, []Shape{{0}}, "out of range"},
		{"too many elements", &Softmax{}, []Shape{{1 << 20, 1 << 20}}, "more than"},
		{"nil op", nil, []Shape{{1}}, "missing operation"},
		{"typed nil op", (*Dense)(nil), []Shape{{1}}, "nil dense"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := InferShape(tt.op, tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("InferShape error = %v, want one containing %q", err, tt.want)
			}
			if code := fheserve.ErrorCode(err); code != fheserve.EINVALID && code != fheserve.EUNSUPPORTED {
				t.Fatalf("error code %q", code)
			}
		})
	}
}
