package nn

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/fheserve/fheserve"
)

// MaxSize is the largest number of elements of a tensor in a graph. It keeps
// shape arithmetic far from integer overflow and bounds evaluation memory;
// models evaluated under encryption are orders of magnitude smaller.
const MaxSize = 1 << 24

// maxWeights is the largest number of weights of one Dense or Conv.
const maxWeights = 1 << 26

func (*Dense) Kind() string      { return "dense" }
func (*Conv) Kind() string       { return "conv" }
func (*AvgPool) Kind() string    { return "avgpool" }
func (*Pad) Kind() string        { return "pad" }
func (*Affine) Kind() string     { return "affine" }
func (*Combine) Kind() string    { return "combine" }
func (*Mul) Kind() string        { return "mul" }
func (*Poly) Kind() string       { return "poly" }
func (*Activation) Kind() string { return "activation" }
func (*Softmax) Kind() string    { return "softmax" }
func (*Reshape) Kind() string    { return "reshape" }

func invalidf(format string, args ...any) error {
	return fheserve.Errorf(fheserve.EINVALID, format, args...)
}

// prefixErr prefixes err's message and keeps its code.
func prefixErr(err error, format string, args ...any) error {
	return fheserve.Errorf(fheserve.ErrorCode(err), "%s: %s", fmt.Sprintf(format, args...), fheserve.ErrorMessage(err))
}

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

// prepare checks the tensors handed to an op and returns its output shape.
func prepare(op Op, in []*Tensor) (Shape, error) {
	shapes := make([]Shape, len(in))
	for i, t := range in {
		if t == nil {
			return nil, invalidf("input %d is missing", i)
		}
		if err := CheckShape(t.Shape); err != nil {
			return nil, prefixErr(err, "input %d", i)
		}
		if len(t.Data) != t.Shape.Size() {
			return nil, invalidf("input %d has %d values for shape %v", i, len(t.Data), t.Shape)
		}
		shapes[i] = t.Shape
	}
	return InferShape(op, shapes)
}

// Eval computes y = W x + B.
func (d *Dense) Eval(in []*Tensor) (*Tensor, error) {
	s, err := prepare(d, in)
	if err != nil {
		return nil, err
	}
	y := NewTensor(s)
	x := in[0].Data
	for o := range d.Out {
		row := d.W[o*d.In : (o+1)*d.In]
		var acc float64
		for i, w := range row {
			acc += w * x[i]
		}
		if len(d.B) != 0 {
			acc += d.B[o]
		}
		y.Data[o] = acc
	}
	return y, nil
}

// Eval computes the convolution with zero padding.
func (cv *Conv) Eval(in []*Tensor) (*Tensor, error) {
	s, err := prepare(cv, in)
	if err != nil {
		return nil, err
	}
	y := NewTensor(s)
	x, h, w := in[0].Data, in[0].Shape[1], in[0].Shape[2]
	oh, ow := s[1], s[2]
	for o := range cv.OutC {
		var b float64
		if len(cv.B) != 0 {
			b = cv.B[o]
		}
		for oy := range oh {
			for ox := range ow {
				acc := b
				for c := range cv.InC {
					for ky := range cv.KH {
						iy := oy*cv.StrideH - cv.PadT + ky
						if iy < 0 || iy >= h {
							continue
						}
						wrow := cv.W[((o*cv.InC+c)*cv.KH+ky)*cv.KW:]
						xrow := x[(c*h+iy)*w:]
						for kx := range cv.KW {
							ix := ox*cv.StrideW - cv.PadL + kx
							if ix >= 0 && ix < w {
								acc += wrow[kx] * xrow[ix]
							}
						}
					}
				}
				y.Data[(o*oh+oy)*ow+ox] = acc
			}
		}
	}
	return y, nil
}

// Eval averages each window. As in ONNX AveragePool, padded positions count
// in the divisor only when CountIncludePad is set.
func (p *AvgPool) Eval(in []*Tensor) (*Tensor, error) {
	s, err := prepare(p, in)
	if err != nil {
		return nil, err
	}
	y := NewTensor(s)
	x, h, w := in[0].Data, in[0].Shape[1], in[0].Shape[2]
	c, oh, ow := s[0], s[1], s[2]
	for ch := range c {
		for oy := range oh {
			y0 := oy*p.StrideH - p.PadT
			ylo, yhi := max(y0, 0), min(y0+p.KH, h)
			for ox := range ow {
				x0 := ox*p.StrideW - p.PadL
				xlo, xhi := max(x0, 0), min(x0+p.KW, w)
				var sum float64
				for iy := ylo; iy < yhi; iy++ {
					for ix := xlo; ix < xhi; ix++ {
						sum += x[(ch*h+iy)*w+ix]
					}
				}
				n := p.KH * p.KW
				if !p.CountIncludePad {
					n = (yhi - ylo) * (xhi - xlo)
				}
				y.Data[(ch*oh+oy)*ow+ox] = sum / float64(n)
			}
		}
	}
	return y, nil
}

// Eval surrounds each channel with zeros.
func (p *Pad) Eval(in []*Tensor) (*Tensor, error) {
	s, err := prepare(p, in)
	if err != nil {
		return nil, err
	}
	y := NewTensor(s)
	x, h, w := in[0].Data, in[0].Shape[1], in[0].Shape[2]
	oh, ow := s[1], s[2]
	for c := range s[0] {
		for iy := range h {
			dst := y.Data[(c*oh+iy+p.PadT)*ow+p.PadL:]
			copy(dst[:w], x[(c*h+iy)*w:(c*h+iy+1)*w])
		}
	}
	return y, nil
}

// pick returns element j of an Affine vector for a tensor of size elements
// with perC elements per channel.
func pick(v []float64, j, perC, size int) float64 {
	switch len(v) {
	case 1:
		return v[0]
	case size:
		return v[j]
	default:
		return v[j/perC]
	}
}

// Eval computes x*Scale + Shift with Scale and Shift broadcast.
func (a *Affine) Eval(in []*Tensor) (*Tensor, error) {
	s, err := prepare(a, in)
	if err != nil {
		return nil, err
	}
	y := NewTensor(s)
	size := s.Size()
	perC := size / channels(s)
	for j, x := range in[0].Data {
		y.Data[j] = x*pick(a.Scale, j, perC, size) + pick(a.Shift, j, perC, size)
	}
	return y, nil
}

// Eval computes A*x0 + B*x1.
func (cb *Combine) Eval(in []*Tensor) (*Tensor, error) {
	s, err := prepare(cb, in)
	if err != nil {
		return nil, err
	}
	y := NewTensor(s)
	for j := range y.Data {
		y.Data[j] = cb.A*in[0].Data[j] + cb.B*in[1].Data[j]
	}
	return y, nil
}

// Eval computes the elementwise product.
func (m *Mul) Eval(in []*Tensor) (*Tensor, error) {
	s, err := prepare(m, in)
	if err != nil {
		return nil, err
	}
	y := NewTensor(s)
	for j := range y.Data {
		y.Data[j] = in[0].Data[j] * in[1].Data[j]
	}
	return y, nil
}

// Eval evaluates the polynomial by Horner's rule.
func (p *Poly) Eval(in []*Tensor) (*Tensor, error) {
	s, err := prepare(p, in)
	if err != nil {
		return nil, err
	}
	y := NewTensor(s)
	n := len(p.Coeffs)
	for j, x := range in[0].Data {
		v := p.Coeffs[n-1]
		for k := n - 2; k >= 0; k-- {
			v = v*x + p.Coeffs[k]
		}
		y.Data[j] = v
	}
	return y, nil
}

// Eval applies the exact activation function.
func (a *Activation) Eval(in []*Tensor) (*Tensor, error) {
	if _, err := prepare(a, in); err != nil {
		return nil, err
	}
	f, _ := ActivationFunc(a.Func) // checked by prepare
	return mapTensor(in[0], f), nil
}

func mapTensor(x *Tensor, f func(float64) float64) *Tensor {
	y := NewTensor(x.Shape)
	for j, v := range x.Data {
		y.Data[j] = f(v)
	}
	return y
}

// Eval normalizes all elements: y = exp(x - max) / sum(exp(x - max)).
func (sm *Softmax) Eval(in []*Tensor) (*Tensor, error) {
	s, err := prepare(sm, in)
	if err != nil {
		return nil, err
	}
	y := NewTensor(s)
	m := math.Inf(-1)
	for _, v := range in[0].Data {
		m = max(m, v)
	}
	var sum float64
	for j, v := range in[0].Data {
		y.Data[j] = math.Exp(v - m)
		sum += y.Data[j]
	}
	for j := range y.Data {
		y.Data[j] /= sum
	}
	return y, nil
}

// Eval returns a copy of the input with the new shape.
func (r *Reshape) Eval(in []*Tensor) (*Tensor, error) {
	s, err := prepare(r, in)
	if err != nil {
		return nil, err
	}
	return &Tensor{Shape: s, Data: append([]float64(nil), in[0].Data...)}, nil
}

func relu(x float64) float64 {
	if x > 0 {
		return x
	}
	return 0
}

func sigmoid(x float64) float64 {
	if x >= 0 {
		return 1 / (1 + math.Exp(-x))
	}
	e := math.Exp(x) // never overflows for x < 0
	return e / (1 + e)
}

// softplus is log(1+e^x) written so that neither branch overflows.
func softplus(x float64) float64 {
	return max(x, 0) + math.Log1p(math.Exp(-math.Abs(x)))
}

func silu(x float64) float64 { return x * sigmoid(x) }

func gelu(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) }

// ActivationFunc returns the exact function of an Activation.Func name.
func ActivationFunc(name string) (func(float64) float64, error) {
	switch name {
	case ActReLU:
		return relu, nil
	case ActSigmoid:
		return sigmoid, nil
	case ActTanh:
		return math.Tanh, nil
	case ActSoftplus:
		return softplus, nil
	case ActSiLU:
		return silu, nil
	case ActGELU:
		return gelu, nil
	}
	return nil, fheserve.Errorf(fheserve.EUNSUPPORTED, "unknown activation %q (supported: %s, %s, %s, %s, %s, %s)",
		name, ActReLU, ActSigmoid, ActTanh, ActSoftplus, ActSiLU, ActGELU)
}

// Validate checks that every value id is defined before it is used, that
// each node's recorded shape is the shape its op computes from its inputs,
// and that weight and vector lengths match the op dimensions.
func (g *Graph) Validate() error {
	if g == nil {
		return invalidf("nil graph")
	}
	if err := CheckShape(g.Input); err != nil {
		return prefixErr(err, "graph input")
	}
	for i, n := range g.Nodes {
		if n == nil {
			return invalidf("node %d is missing", i)
		}
		ins := make([]Shape, len(n.Inputs))
		for k, v := range n.Inputs {
			if v < 0 || v > i {
				return invalidf("%s: input %d is value %d, which is not defined before the node", n.label(i), k, v)
			}
			ins[k] = g.ValueShape(v)
		}
		s, err := InferShape(n.Op, ins)
		if err != nil {
			return prefixErr(err, "%s", n.label(i))
		}
		if !s.Equal(n.Shape) {
			return invalidf("%s: recorded shape %v, but its inputs give %v", n.label(i), n.Shape, s)
		}
	}
	if g.Output < 0 || g.Output > len(g.Nodes) {
		return invalidf("graph output is value %d, which does not exist", g.Output)
	}
	return nil
}

func (n *Node) label(i int) string {
	return fmt.Sprintf("node %d %q (%s)", i, n.Name, n.OpType)
}

// EvalOptions changes how a graph is evaluated.
type EvalOptions struct {
	// Activation, if set, may replace the function of the Activation at
	// g.Nodes[node], for example by the polynomial approximation that will
	// run under encryption. Returning nil keeps the exact function.
	Activation func(node int, a *Activation) func(float64) float64
	// Trace, if set, is called after each node with its inputs and output.
	// The tensors must not be modified. EvalBatch calls it concurrently.
	Trace func(node int, in []*Tensor, out *Tensor)
}

// Eval evaluates the graph on one sample. x has shape g.Input or another
// shape of the same size, such as the flattened input. opt may be nil.
func (g *Graph) Eval(x *Tensor, opt *EvalOptions) (*Tensor, error) {
	if err := g.Validate(); err != nil {
		return nil, err
	}
	if x == nil {
		return nil, invalidf("missing input tensor")
	}
	if len(x.Shape) != 0 && x.Shape.Size() != g.Input.Size() {
		return nil, invalidf("input shape %v does not match the model input %v", x.Shape, g.Input)
	}
	return g.eval(x.Data, opt)
}

// eval evaluates a validated graph.
func (g *Graph) eval(x []float64, opt *EvalOptions) (*Tensor, error) {
	if len(x) != g.Input.Size() {
		return nil, invalidf("input has %d values, the model expects shape %v (%d values)", len(x), g.Input, g.Input.Size())
	}
	if opt == nil {
		opt = &EvalOptions{}
	}
	// Free each value after its last use so that deep graphs stay small.
	last := make([]int, len(g.Nodes)+1)
	for i, n := range g.Nodes {
		for _, v := range n.Inputs {
			last[v] = i
		}
	}
	last[g.Output] = len(g.Nodes)
	vals := make([]*Tensor, len(g.Nodes)+1)
	vals[0] = &Tensor{Shape: g.Input, Data: x}
	for i, n := range g.Nodes {
		in := make([]*Tensor, len(n.Inputs))
		for k, v := range n.Inputs {
			in[k] = vals[v]
		}
		var f func(float64) float64
		if a, ok := n.Op.(*Activation); ok && opt.Activation != nil {
			f = opt.Activation(i, a)
		}
		var out *Tensor
		var err error
		if f != nil {
			if _, err = prepare(n.Op, in); err == nil {
				out = mapTensor(in[0], f)
			}
		} else {
			out, err = n.Op.Eval(in)
		}
		if err != nil {
			return nil, prefixErr(err, "%s", n.label(i))
		}
		if opt.Trace != nil {
			opt.Trace(i, in, out)
		}
		vals[i+1] = out
		for _, v := range n.Inputs {
			if last[v] == i {
				vals[v] = nil
			}
		}
	}
	return vals[g.Output], nil
}

// EvalBatch evaluates batch samples stored row-major in x and returns the
// outputs row-major. Samples run in parallel, one goroutine per core.
func (g *Graph) EvalBatch(x []float64, batch int, opt *EvalOptions) ([]float64, error) {
	if err := g.Validate(); err != nil {
		return nil, err
	}
	in, out := g.Input.Size(), g.OutputShape().Size()
	if batch < 0 || len(x)%in != 0 || len(x)/in != batch {
		return nil, invalidf("input has %d values, want %d samples of %d", len(x), batch, in)
	}
	y := make([]float64, batch*out)
	var (
		next   atomic.Int64
		failed atomic.Bool
		mu     sync.Mutex
		errAt  = batch
		first  error
		wg     sync.WaitGroup
	)
	for range min(runtime.GOMAXPROCS(0), batch) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= batch {
					return
				}
				t, err := g.eval(x[i*in:(i+1)*in], opt)
				if err != nil {
					mu.Lock()
					if i < errAt {
						errAt, first = i, prefixErr(err, "sample %d", i)
					}
					mu.Unlock()
					failed.Store(true)
					return
				}
				copy(y[i*out:(i+1)*out], t.Data)
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	return y, nil
}
