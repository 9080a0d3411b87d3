package nn

import "github.com/fheserve/fheserve"

// MaxSize is the largest number of elements of a tensor in a graph. It keeps
// shape arithmetic far from integer overflow and bounds evaluation memory;
// models evaluated under encryption are orders of magnitude smaller.
const MaxSize = 1 << 24

// maxWeights is the largest number of weights of one Dense or Conv.
const maxWeights = 1 << 26

// CheckShape reports whether s is a usable tensor shape: every dimension at
// least 1 and at most MaxSize elements in all.
func CheckShape(s Shape) error {
	n := 1
	for _, d := range s {
		if d < 1 || d > MaxSize {
			return invalidf("shape %v: dimension %d out of range [1, %d]", s, d, MaxSize)
		}
		n *= d // both factors <= MaxSize, so this cannot overflow
		if n > MaxSize {
			return invalidf("shape %v: more than %d elements", s, MaxSize)
		}
	}
	return nil
}

// product multiplies non-negative factors and reports whether the result is
// at most limit.
func product(limit int, xs ...int) (int, bool) {
	n := 1
	for _, x := range xs {
		if x < 0 || x > limit {
			return 0, false
		}
		n *= x
		if n > limit {
			return 0, false
		}
	}
	return n, true
}

// InferShape returns the output shape of op applied to inputs of the given
// shapes, after checking that the inputs and the op's own parameters (kernel
// sizes, weight lengths, vector lengths) are consistent.
func InferShape(op Op, in []Shape) (Shape, error) {
	for i, s := range in {
		if err := CheckShape(s); err != nil {
			return nil, prefixErr(err, "input %d", i)
		}
	}
	switch op := op.(type) {
	case *Dense:
		return op.shape(in)
	case *Conv:
		return op.shape(in)
	case *AvgPool:
		return op.shape(in)
	case *Pad:
		return op.shape(in)
	case *Affine:
		return op.shape(in)
	case *Combine:
		return sameShapes(op == nil, in)
	case *Mul:
		return sameShapes(op == nil, in)
	case *Poly:
		if op == nil || len(op.Coeffs) == 0 {
			return nil, invalidf("polynomial without coefficients")
		}
		return unary(in)
	case *Activation:
		if op == nil {
			return nil, invalidf("nil activation")
		}
		if _, err := ActivationFunc(op.Func); err != nil {
			return nil, err
		}
		return unary(in)
	case *Softmax:
		return unary(in)
	case *Reshape:
		return op.shape(in)
	case nil:
		return nil, invalidf("missing operation")
	default:
		return nil, fheserve.Errorf(fheserve.EUNSUPPORTED, "unknown operation %T", op)
	}
}

func arity(in []Shape, n int) error {
	if len(in) != n {
		return invalidf("%d inputs, want %d", len(in), n)
	}
	return nil
}

func unary(in []Shape) (Shape, error) {
	if err := arity(in, 1); err != nil {
		return nil, err
	}
	return append(Shape(nil), in[0]...), nil
}

func sameShapes(isNil bool, in []Shape) (Shape, error) {
	if isNil {
		return nil, invalidf("nil operation")
	}
	if err := arity(in, 2); err != nil {
		return nil, err
	}
	if !in[0].Equal(in[1]) {
		return nil, invalidf("input shapes %v and %v differ", in[0], in[1])
	}
	return append(Shape(nil), in[0]...), nil
}

func chw(in []Shape) (c, h, w int, err error) {
	if err := arity(in, 1); err != nil {
		return 0, 0, 0, err
	}
	if len(in[0]) != 3 {
		return 0, 0, 0, invalidf("input shape %v is not CHW", in[0])
	}
	return in[0][0], in[0][1], in[0][2], nil
}

// window checks one spatial axis of a sliding window and returns the number
// of output positions.
func window(axis string, n, k, stride, padLo, padHi int) (int, error) {
	if k < 1 || stride < 1 || padLo < 0 || padHi < 0 || k > MaxSize || stride > MaxSize || padLo > MaxSize || padHi > MaxSize {
		return 0, invalidf("%s: kernel %d, stride %d, pads %d,%d out of range", axis, k, stride, padLo, padHi)
	}
	if n+padLo+padHi < k {
		return 0, invalidf("%s: kernel %d larger than padded input %d", axis, k, n+padLo+padHi)
	}
	return (n+padLo+padHi-k)/stride + 1, nil
}

func (d *Dense) shape(in []Shape) (Shape, error) {
	if d == nil {
		return nil, invalidf("nil dense")
	}
	if err := arity(in, 1); err != nil {
		return nil, err
	}
	if d.In < 1 || d.Out < 1 || d.Out > MaxSize {
		return nil, invalidf("dense %dx%d: dimensions out of range", d.Out, d.In)
	}
	n, ok := product(maxWeights, d.Out, d.In)
	if !ok {
		return nil, invalidf("dense %dx%d: more than %d weights", d.Out, d.In, maxWeights)
	}
	if in[0].Size() != d.In {
		return nil, invalidf("dense expects %d inputs, got shape %v", d.In, in[0])
	}
	if len(d.W) != n {
		return nil, invalidf("dense %dx%d has %d weights, want %d", d.Out, d.In, len(d.W), n)
	}
	if len(d.B) != 0 && len(d.B) != d.Out {
		return nil, invalidf("dense has %d biases, want %d", len(d.B), d.Out)
	}
	return Shape{d.Out}, nil
}

func (cv *Conv) shape(in []Shape) (Shape, error) {
	if cv == nil {
		return nil, invalidf("nil conv")
	}
	c, h, w, err := chw(in)
	if err != nil {
		return nil, err
	}
	if c != cv.InC {
		return nil, invalidf("conv expects %d input channels, got shape %v", cv.InC, in[0])
	}
	n, ok := product(maxWeights, cv.OutC, cv.InC, cv.KH, cv.KW)
	if !ok || cv.OutC < 1 {
		return nil, invalidf("conv %dx%dx%dx%d: dimensions out of range", cv.OutC, cv.InC, cv.KH, cv.KW)
	}
	oh, err := window("conv height", h, cv.KH, cv.StrideH, cv.PadT, cv.PadB)
	if err != nil {
		return nil, err
	}
	ow, err := window("conv width", w, cv.KW, cv.StrideW, cv.PadL, cv.PadR)
	if err != nil {
		return nil, err
	}
	if len(cv.W) != n {
		return nil, invalidf("conv has %d weights, want %d", len(cv.W), n)
	}
	if len(cv.B) != 0 && len(cv.B) != cv.OutC {
		return nil, invalidf("conv has %d biases, want %d", len(cv.B), cv.OutC)
	}
	out := Shape{cv.OutC, oh, ow}
	return out, CheckShape(out)
}

func (p *AvgPool) shape(in []Shape) (Shape, error) {
	if p == nil {
		return nil, invalidf("nil avgpool")
	}
	c, h, w, err := chw(in)
	if err != nil {
		return nil, err
	}
	oh, err := window("pool height", h, p.KH, p.StrideH, p.PadT, p.PadB)
	if err != nil {
		return nil, err
	}
	ow, err := window("pool width", w, p.KW, p.StrideW, p.PadL, p.PadR)
	if err != nil {
		return nil, err
	}
	// With pads smaller than the kernel every window holds an input element,
	// so the divisor without padding is never zero.
	if !p.CountIncludePad && (p.PadT >= p.KH || p.PadB >= p.KH || p.PadL >= p.KW || p.PadR >= p.KW) {
		return nil, invalidf("pool pads %d,%d,%d,%d must be smaller than the kernel %dx%d", p.PadT, p.PadL, p.PadB, p.PadR, p.KH, p.KW)
	}
	return Shape{c, oh, ow}, nil
}

func (p *Pad) shape(in []Shape) (Shape, error) {
	if p == nil {
		return nil, invalidf("nil pad")
	}
	c, h, w, err := chw(in)
	if err != nil {
		return nil, err
	}
	for _, v := range []int{p.PadT, p.PadL, p.PadB, p.PadR} {
		if v < 0 || v > MaxSize {
			return nil, invalidf("pads %d,%d,%d,%d out of range", p.PadT, p.PadL, p.PadB, p.PadR)
		}
	}
	out := Shape{c, h + p.PadT + p.PadB, w + p.PadL + p.PadR}
	return out, CheckShape(out)
}

func (a *Affine) shape(in []Shape) (Shape, error) {
	if a == nil {
		return nil, invalidf("nil affine")
	}
	out, err := unary(in)
	if err != nil {
		return nil, err
	}
	if !vecFits(len(a.Scale), out) || !vecFits(len(a.Shift), out) {
		return nil, invalidf("affine scale length %d and shift length %d must each be 1, %d or %d for shape %v",
			len(a.Scale), len(a.Shift), channels(out), out.Size(), out)
	}
	return out, nil
}

// channels is C of a [C, ...] shape, or 1 for a scalar shape.
func channels(s Shape) int {
	if len(s) == 0 {
		return 1
	}
	return s[0]
}

// vecFits reports whether an Affine vector of length n fits shape s.
func vecFits(n int, s Shape) bool {
	return n == 1 || n == channels(s) || n == s.Size()
}

func (r *Reshape) shape(in []Shape) (Shape, error) {
	if r == nil {
		return nil, invalidf("nil reshape")
	}
	if err := arity(in, 1); err != nil {
		return nil, err
	}
	if err := CheckShape(r.To); err != nil {
		return nil, err
	}
	if r.To.Size() != in[0].Size() {
		return nil, invalidf("cannot reshape %v to %v", in[0], r.To)
	}
	return append(Shape(nil), r.To...), nil
}
