// Package nn holds fheserve's model graph: tensor operations with shapes and a
// float64 reference evaluator. The reference is the oracle every encrypted
// result is checked against. The package knows nothing about encryption.
//
// A Graph describes one sample: the batch dimension of the source model is
// removed on import. Value 0 is the input; node i produces value i+1. Tensors
// are dense and row-major, so Flatten and Reshape never move data.
package nn

import "fmt"

// Shape is a tensor shape without the batch dimension, for example [1 28 28]
// for a one-channel image (CHW) or [30] for a feature vector.
type Shape []int

// Size is the number of elements of a tensor of this shape.
func (s Shape) Size() int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

// Equal reports whether two shapes are identical.
func (s Shape) Equal(t Shape) bool {
	if len(s) != len(t) {
		return false
	}
	for i := range s {
		if s[i] != t[i] {
			return false
		}
	}
	return true
}

func (s Shape) String() string { return fmt.Sprint([]int(s)) }

// Tensor is a dense row-major float64 tensor.
type Tensor struct {
	Shape Shape
	Data  []float64
}

// NewTensor allocates a zero tensor of the given shape.
func NewTensor(shape Shape) *Tensor {
	return &Tensor{Shape: append(Shape(nil), shape...), Data: make([]float64, shape.Size())}
}

// Head is a monotonic output function that the client applies after
// decryption instead of the server approximating it under encryption.
type Head string

const (
	HeadNone    Head = ""
	HeadSigmoid Head = "sigmoid"
	HeadSoftmax Head = "softmax"
)

// Graph is a model for one sample.
type Graph struct {
	Name   string
	Input  Shape   // per-sample input shape
	Nodes  []*Node // topological order; Nodes[i] produces value i+1
	Output int     // value id of the graph output (0 is the input)
}

// Node is one operation of a graph.
type Node struct {
	Name   string // name in the source model, used in messages
	OpType string // operator name in the source model, such as "Conv"
	Op     Op
	Inputs []int // value ids
	Shape  Shape // output shape
}

// ValueShape returns the shape of value v.
func (g *Graph) ValueShape(v int) Shape {
	if v == 0 {
		return g.Input
	}
	return g.Nodes[v-1].Shape
}

// OutputShape is the per-sample shape of the graph output.
func (g *Graph) OutputShape() Shape { return g.ValueShape(g.Output) }

// Op is a tensor operation. Eval computes the output for one sample.
type Op interface {
	Kind() string
	Eval(in []*Tensor) (*Tensor, error)
}

// Dense is y = W x + B on the flattened input: W is Out x In, row-major.
type Dense struct {
	In, Out int
	W       []float64
	B       []float64 // length Out, or nil for no bias
}

// Conv is a 2-D convolution on CHW tensors (groups = 1, dilation = 1).
type Conv struct {
	InC, OutC, KH, KW int
	StrideH, StrideW  int
	// Pads: top, left, bottom, right.
	PadT, PadL, PadB, PadR int
	W                      []float64 // [OutC][InC][KH][KW]
	B                      []float64 // length OutC, or nil
}

// AvgPool is average pooling on CHW tensors. GlobalAveragePool is an
// AvgPool whose kernel covers the whole image.
type AvgPool struct {
	KH, KW, StrideH, StrideW int
	PadT, PadL, PadB, PadR   int
	CountIncludePad          bool
}

// Pad adds zeros around the spatial dimensions of a CHW tensor.
type Pad struct {
	PadT, PadL, PadB, PadR int
}

// Affine is y = x*Scale + Shift elementwise. Scale and Shift each have
// length 1 (a scalar), C (one per channel of a CHW or [C] tensor), or the
// full size of the tensor.
type Affine struct {
	Scale []float64
	Shift []float64
}

// Combine is y = A*x0 + B*x1 for two values of the same shape (residual Add, Sub).
type Combine struct {
	A, B float64
}

// Mul is the elementwise product of two values of the same shape
// (x*x when both inputs are the same value).
type Mul struct{}

// Poly is an elementwise polynomial with Coeffs[i] the coefficient of x^i.
type Poly struct {
	Coeffs []float64
}

// Activation is an elementwise non-polynomial function. Func is one of the
// Activation* constants.
type Activation struct {
	Func string
}

const (
	ActReLU     = "relu"
	ActSigmoid  = "sigmoid"
	ActTanh     = "tanh"
	ActSoftplus = "softplus"
	ActSiLU     = "silu"
	ActGELU     = "gelu"
)

// Softmax normalizes the flattened input; it is only supported as an output
// head applied by the client.
type Softmax struct{}

// Reshape changes the shape without moving data (Flatten, Reshape).
type Reshape struct {
	To Shape
}
