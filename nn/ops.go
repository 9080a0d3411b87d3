package nn

import (
	"math"

	"github.com/fheserve/fheserve"
)

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

// Argmax returns the index of the largest value of v, the first of equal
// largest values, and 0 for an empty v: the class an output vector
// predicts.
func Argmax(v []float64) int {
	best := 0
	for i := range v {
		if v[i] > v[best] {
			best = i
		}
	}
	return best
}
