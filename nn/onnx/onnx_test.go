package onnx

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/nn"
	"github.com/fheserve/fheserve/nn/onnx/onnxpb"
)

var sqrt2 = float32(math.Sqrt2)

// importCases are models that import, with an input, the expected output
// computed by hand, and the kinds of the resulting nn nodes.
var importCases = []struct {
	name  string
	model func() *testModel
	x     []float64
	want  []float64
	shape nn.Shape // output shape
	kinds string
}{
	{
		name: "gemm transB=0 alpha beta row bias",
		model: func() *testModel {
			return newModel(13, "N", 2).
				init(floatT("B", []int{2, 3}, 1, 2, 3, 4, 5, 6), floatT("C", []int{1, 3}, 2, 4, 6)).
				node("Gemm", ins("x", "B", "C"), ins("y"), aFloat("alpha", 2), aFloat("beta", 0.5))
		},
		// x.B = [9 12 15]; 2*that + 0.5*[2 4 6].
		x: []float64{1, 2}, want: []float64{19, 26, 33}, shape: nn.Shape{3}, kinds: "dense",
	},
	{
		name: "gemm transB=1 scalar bias raw data",
		model: func() *testModel {
			return newModel(13, "N", 2).
				init(rawFloatT("B", []int{3, 2}, 1, 4, 2, 5, 3, 6), rawFloatT("C", []int{}, 2)).
				node("Gemm", ins("x", "B", "C"), ins("y"), aInt("transB", 1))
		},
		x: []float64{1, 2}, want: []float64{11, 14, 17}, shape: nn.Shape{3}, kinds: "dense",
	},
	{
		name: "gemm without bias, double weights",
		model: func() *testModel {
			return newModel(13, "N", 2).
				init(doubleT("B", []int{2, 1}, 0.5, -1)).
				node("Gemm", ins("x", "B"), ins("y"))
		},
		x: []float64{4, 1}, want: []float64{1}, shape: nn.Shape{1}, kinds: "dense",
	},
	{
		name: "matmul",
		model: func() *testModel {
			return newModel(13, "N", 2).
				init(floatT("W", []int{2, 3}, 1, 2, 3, 4, 5, 6)).
				node("MatMul", ins("x", "W"), ins("y"))
		},
		x: []float64{1, 2}, want: []float64{9, 12, 15}, shape: nn.Shape{3}, kinds: "dense",
	},
	{
		name: "matmul then add bias and mul fold into one dense",
		model: func() *testModel {
			return newModel(13, "N", 2).
				init(floatT("W", []int{2, 2}, 1, 0, 0, 1), floatT("b", []int{2}, 1, 2), floatT("s", []int{2}, 10, -1)).
				node("MatMul", ins("x", "W"), ins("h")).
				node("Add", ins("h", "b"), ins("h2")).
				node("Mul", ins("h2", "s"), ins("y"))
		},
		x: []float64{3, 4}, want: []float64{40, -6}, shape: nn.Shape{2}, kinds: "dense",
	},
	{
		name: "add per channel [C,1,1]",
		model: func() *testModel {
			return newModel(13, "N", 2, 1, 2).
				init(floatT("c", []int{2, 1, 1}, 10, 20)).
				node("Add", ins("x", "c"), ins("y"))
		},
		x: []float64{1, 2, 3, 4}, want: []float64{11, 12, 23, 24}, shape: nn.Shape{2, 1, 2}, kinds: "affine",
	},
	{
		name: "add per channel [1,C,1,1], constant first",
		model: func() *testModel {
			return newModel(13, "N", 2, 1, 2).
				init(floatT("c", []int{1, 2, 1, 1}, 10, 20)).
				node("Add", ins("c", "x"), ins("y"))
		},
		x: []float64{1, 2, 3, 4}, want: []float64{11, 12, 23, 24}, shape: nn.Shape{2, 1, 2}, kinds: "affine",
	},
	{
		name: "mul elementwise full shape",
		model: func() *testModel {
			return newModel(13, "N", 2, 1, 2).
				init(floatT("c", []int{1, 2, 1, 2}, 1, 2, 3, 4)).
				node("Mul", ins("x", "c"), ins("y"))
		},
		x: []float64{1, 2, 3, 4}, want: []float64{1, 4, 9, 16}, shape: nn.Shape{2, 1, 2}, kinds: "affine",
	},
	{
		name: "mul broadcast along H only expands",
		model: func() *testModel {
			return newModel(13, "N", 2, 2, 2).
				init(floatT("c", []int{2, 1}, 1, 10)).
				node("Mul", ins("x", "c"), ins("y"))
		},
		x: []float64{1, 2, 3, 4, 5, 6, 7, 8}, want: []float64{1, 2, 30, 40, 5, 6, 70, 80}, shape: nn.Shape{2, 2, 2}, kinds: "affine",
	},
	{
		name: "sub scalar constant node",
		model: func() *testModel {
			return newModel(13, "N", 4).
				node("Constant", nil, ins("c"), aTensor("value", floatT("", []int{}, 1))).
				node("Sub", ins("x", "c"), ins("y"))
		},
		x: []float64{1, 2, 3, 4}, want: []float64{0, 1, 2, 3}, shape: nn.Shape{4}, kinds: "affine",
	},
	{
		name: "constant minus x",
		model: func() *testModel {
			return newModel(13, "N", 4).
				node("Constant", nil, ins("c"), aFloat("value_float", 10)).
				node("Sub", ins("c", "x"), ins("y"))
		},
		x: []float64{1, 2, 3, 4}, want: []float64{9, 8, 7, 6}, shape: nn.Shape{4}, kinds: "affine",
	},
	{
		name: "div then mul merge into one affine",
		model: func() *testModel {
			return newModel(13, "N", 4).
				init(floatT("two", []int{1}, 2), floatT("s", []int{4}, 1, 2, 3, 4)).
				node("Div", ins("x", "two"), ins("h")).
				node("Mul", ins("h", "s"), ins("y"))
		},
		x: []float64{2, 2, 2, 2}, want: []float64{1, 2, 3, 4}, shape: nn.Shape{4}, kinds: "affine",
	},
	{
		name: "mul by one and add zero vanish",
		model: func() *testModel {
			return newModel(13, "N", 2).
				init(floatT("one", []int{}, 1), floatT("zero", []int{}, 0)).
				node("Relu", ins("x"), ins("r")).
				node("Mul", ins("r", "one"), ins("h")).
				node("Add", ins("h", "zero"), ins("y"))
		},
		x: []float64{-1, 2}, want: []float64{0, 2}, shape: nn.Shape{2}, kinds: "activation",
	},
	{
		name: "residual add, sub and product of computed values",
		model: func() *testModel {
			return newModel(13, "N", 2).
				node("Relu", ins("x"), ins("r")).
				node("Add", ins("r", "x"), ins("a")).
				node("Sub", ins("a", "r"), ins("s")).
				node("Mul", ins("s", "a"), ins("y"))
		},
		// r = [1 0], a = [2 -2], s = [1 -2], y = [2 4].
		x: []float64{1, -2}, want: []float64{2, 4}, shape: nn.Shape{2}, kinds: "activation combine combine mul",
	},
	{
		name: "square",
		model: func() *testModel {
			return newModel(13, "N", 2).node("Mul", ins("x", "x"), ins("y"))
		},
		x: []float64{3, -2}, want: []float64{9, 4}, shape: nn.Shape{2}, kinds: "mul",
	},
	{
		name: "pow 3 float exponent",
		model: func() *testModel {
			return newModel(13, "N", 2).
				init(floatT("e", []int{}, 3)).
				node("Pow", ins("x", "e"), ins("y"))
		},
		x: []float64{2, -3}, want: []float64{8, -27}, shape: nn.Shape{2}, kinds: "poly",
	},
	{
		name: "pow 2 int exponent",
		model: func() *testModel {
			return newModel(13, "N", 2).
				init(int64T("e", []int{1}, 2)).
				node("Pow", ins("x", "e"), ins("y"))
		},
		x: []float64{2, -3}, want: []float64{4, 9}, shape: nn.Shape{2}, kinds: "poly",
	},
	{
		name: "conv stride 2 pads 1 bias",
		model: func() *testModel {
			return newModel(13, "N", 1, 3, 3).
				init(floatT("W", []int{1, 1, 2, 2}, 1, 0, 0, -1), floatT("B", []int{1}, 1)).
				node("Conv", ins("x", "W", "B"), ins("y"),
					aInts("kernel_shape", 2, 2), aInts("strides", 2, 2), aInts("pads", 1, 1, 1, 1),
					aInts("dilations", 1, 1), aInt("group", 1))
		},
		// Each output is p[i][j] - p[i+1][j+1] + 1 on the zero-padded input.
		x: []float64{1, 2, 3, 4, 5, 6, 7, 8, 9}, want: []float64{0, -2, -6, -3}, shape: nn.Shape{1, 2, 2}, kinds: "conv",
	},
	{
		name: "conv auto_pad VALID two output channels",
		model: func() *testModel {
			return newModel(13, "N", 1, 2, 2).
				init(floatT("W", []int{2, 1, 2, 2}, 1, 1, 1, 1, 1, 0, 0, 0)).
				node("Conv", ins("x", "W"), ins("y"), aString("auto_pad", "VALID"))
		},
		x: []float64{1, 2, 3, 4}, want: []float64{10, 1}, shape: nn.Shape{2, 1, 1}, kinds: "conv",
	},
	{
		name: "conv then batchnorm folds into the conv",
		model: func() *testModel {
			return newModel(13, "N", 1, 1, 2).
				init(floatT("W", []int{2, 1, 1, 1}, 1, 2), floatT("B", []int{2}, 0, 0),
					floatT("g", []int{2}, 2, 1), floatT("b", []int{2}, 1, 0),
					floatT("m", []int{2}, 1, 2), floatT("v", []int{2}, 3, 0)).
				node("Conv", ins("x", "W", "B"), ins("c")).
				node("BatchNormalization", ins("c", "g", "b", "m", "v"), ins("y"), aFloat("epsilon", 1), aFloat("momentum", 0.9))
		},
		// Channels [x, 2x]; scale [2/2, 1/1], shift [1-1, 0-2].
		x: []float64{3, 4}, want: []float64{3, 4, 4, 6}, shape: nn.Shape{2, 1, 2}, kinds: "conv",
	},
	{
		name: "batchnorm on features stays an affine",
		model: func() *testModel {
			return newModel(9, "N", 2).
				init(floatT("g", []int{2}, 2, 1), floatT("b", []int{2}, 1, 0),
					floatT("m", []int{2}, 1, 2), floatT("v", []int{2}, 3, 0)).
				node("BatchNormalization", ins("x", "g", "b", "m", "v"), ins("y"), aFloat("epsilon", 1))
		},
		x: []float64{3, 4}, want: []float64{3, 2}, shape: nn.Shape{2}, kinds: "affine",
	},
	{
		name: "average pool pads excluded",
		model: func() *testModel {
			return newModel(13, "N", 1, 2, 2).
				node("AveragePool", ins("x"), ins("y"), aInts("kernel_shape", 2, 2), aInts("pads", 1, 1, 0, 0))
		},
		x: []float64{1, 2, 3, 4}, want: []float64{1, 1.5, 2, 2.5}, shape: nn.Shape{1, 2, 2}, kinds: "avgpool",
	},
	{
		name: "average pool pads included",
		model: func() *testModel {
			return newModel(13, "N", 1, 2, 2).
				node("AveragePool", ins("x"), ins("y"), aInts("kernel_shape", 2, 2), aInts("pads", 1, 1, 0, 0),
					aInt("count_include_pad", 1), aInts("strides", 1, 1), aInt("ceil_mode", 0))
		},
		x: []float64{1, 2, 3, 4}, want: []float64{0.25, 0.75, 1, 2.5}, shape: nn.Shape{1, 2, 2}, kinds: "avgpool",
	},
	{
		name: "global average pool",
		model: func() *testModel {
			return newModel(13, "N", 2, 2, 2).node("GlobalAveragePool", ins("x"), ins("y"))
		},
		x: []float64{1, 2, 3, 4, 5, 6, 7, 8}, want: []float64{2.5, 6.5}, shape: nn.Shape{2, 1, 1}, kinds: "avgpool",
	},
	{
		name: "pad from input (opset 13)",
		model: func() *testModel {
			return newModel(13, "N", 1, 1, 2).
				init(int64T("p", []int{8}, 0, 0, 1, 0, 0, 0, 0, 1)).
				node("Pad", ins("x", "p"), ins("y"), aString("mode", "constant"))
		},
		x: []float64{5, 7}, want: []float64{0, 0, 0, 5, 7, 0}, shape: nn.Shape{1, 2, 3}, kinds: "pad",
	},
	{
		name: "pad from attribute (opset 2) with zero value",
		model: func() *testModel {
			return newModel(2, "N", 1, 1, 2).
				node("Pad", ins("x"), ins("y"), aInts("pads", 0, 0, 1, 0, 0, 0, 0, 1), aFloat("value", 0))
		},
		x: []float64{5, 7}, want: []float64{0, 0, 0, 5, 7, 0}, shape: nn.Shape{1, 2, 3}, kinds: "pad",
	},
	{
		name: "pad with axes input (opset 18)",
		model: func() *testModel {
			return newModel(18, "N", 1, 1, 2).
				init(int64T("p", []int{4}, 1, 0, 0, 1), int64T("axes", []int{2}, 2, -1), floatT("v", []int{}, 0)).
				node("Pad", ins("x", "p", "v", "axes"), ins("y"))
		},
		x: []float64{5, 7}, want: []float64{0, 0, 0, 5, 7, 0}, shape: nn.Shape{1, 2, 3}, kinds: "pad",
	},
	{
		name: "x.view(x.size(0), -1) as PyTorch exports it (opset 13)",
		model: func() *testModel {
			return newModel(13, "batch", 2, 1, 2).
				node("Shape", ins("x"), ins("s")).
				node("Constant", nil, ins("zero"), aTensor("value", int64T("", []int{}, 0))).
				node("Gather", ins("s", "zero"), ins("n"), aInt("axis", 0)).
				node("Constant", nil, ins("axes"), aTensor("value", int64T("", []int{1}, 0))).
				node("Unsqueeze", ins("n", "axes"), ins("n1")).
				node("Constant", nil, ins("m1"), aTensor("value", rawInt64T("", []int{1}, -1))).
				node("Concat", ins("n1", "m1"), ins("shape"), aInt("axis", 0)).
				node("Reshape", ins("x", "shape"), ins("y"))
		},
		x: []float64{1, 2, 3, 4}, want: []float64{1, 2, 3, 4}, shape: nn.Shape{4}, kinds: "reshape",
	},
	{
		name: "view with unsqueeze axes attribute and a sliced shape (opset 11)",
		model: func() *testModel {
			return newModel(11, "batch", 4, 1).
				init(int64T("starts", []int{1}, 1), int64T("ends", []int{1}, -1), int64T("zero", []int{}, 0)).
				node("Shape", ins("x"), ins("s")).
				node("Slice", ins("s", "starts", "ends"), ins("c")).
				node("Gather", ins("s", "zero"), ins("n")).
				node("Unsqueeze", ins("n"), ins("n1"), aInts("axes", 0)).
				node("Concat", ins("n1", "c"), ins("shape"), aInt("axis", 0)).
				node("Reshape", ins("x", "shape"), ins("y"))
		},
		x: []float64{1, 2, 3, 4}, want: []float64{1, 2, 3, 4}, shape: nn.Shape{4}, kinds: "reshape",
	},
	{
		name: "reshape with the batch inferred",
		model: func() *testModel {
			return newModel(13, "N", 2, 2).
				init(int64T("s", []int{2}, -1, 4)).
				node("Reshape", ins("x", "s"), ins("y"))
		},
		x: []float64{1, 2, 3, 4}, want: []float64{1, 2, 3, 4}, shape: nn.Shape{4}, kinds: "reshape",
	},
	{
		name: "reshape with 0 and -1",
		model: func() *testModel {
			return newModel(13, "N", 4).
				init(int64T("s", []int{3}, 0, 2, -1)).
				node("Reshape", ins("x", "s"), ins("y"))
		},
		x: []float64{1, 2, 3, 4}, want: []float64{1, 2, 3, 4}, shape: nn.Shape{2, 2}, kinds: "reshape",
	},
	{
		name: "flatten, identity, cast",
		model: func() *testModel {
			return newModel(13, "N", 2, 1, 1).
				node("Flatten", ins("x"), ins("f"), aInt("axis", 1)).
				node("Identity", ins("f"), ins("i")).
				node("Cast", ins("i"), ins("y"), aInt("to", int64(onnxpb.TensorProto_FLOAT)))
		},
		x: []float64{1, 2}, want: []float64{1, 2}, shape: nn.Shape{2}, kinds: "reshape",
	},
	{
		name: "unsqueeze and squeeze a computed value",
		model: func() *testModel {
			return newModel(13, "N", 2).
				init(int64T("a", []int{1}, 1), int64T("b", []int{1}, -1)).
				node("Unsqueeze", ins("x", "a"), ins("u")).
				node("Unsqueeze", ins("u", "b"), ins("v")).
				node("Squeeze", ins("v", "a"), ins("y"))
		},
		x: []float64{1, 2}, want: []float64{1, 2}, shape: nn.Shape{2, 1}, kinds: "reshape reshape reshape",
	},
	{
		name: "dropout with ratio and training_mode inputs (opset 12)",
		model: func() *testModel {
			return newModel(12, "N", 2).
				init(floatT("ratio", []int{}, 0.5), &onnxpb.TensorProto{Name: proto.String("train"),
					DataType: proto.Int32(int32(onnxpb.TensorProto_INT32)), Int32Data: []int32{0}}).
				node("Dropout", ins("x", "ratio", "train"), ins("d", "mask")).
				node("Relu", ins("d"), ins("y"))
		},
		x: []float64{-1, 1}, want: []float64{0, 1}, shape: nn.Shape{2}, kinds: "activation",
	},
	{
		name:  "sigmoid",
		model: func() *testModel { return newModel(13, "N", 2).node("Sigmoid", ins("x"), ins("y")) },
		x:     []float64{0, math.Log(3)}, want: []float64{0.5, 0.75}, shape: nn.Shape{2}, kinds: "activation",
	},
	{
		name:  "tanh",
		model: func() *testModel { return newModel(13, "N", 2).node("Tanh", ins("x"), ins("y")) },
		x:     []float64{0, math.Log(2)}, want: []float64{0, 0.6}, shape: nn.Shape{2}, kinds: "activation",
	},
	{
		name:  "softplus",
		model: func() *testModel { return newModel(13, "N", 2).node("Softplus", ins("x"), ins("y")) },
		x:     []float64{0, math.Log(3)}, want: []float64{math.Ln2, math.Log(4)}, shape: nn.Shape{2}, kinds: "activation",
	},
	{
		name: "gelu operator (opset 20)",
		model: func() *testModel {
			return newModel(20, "N", 2).node("Gelu", ins("x"), ins("y"), aString("approximate", "none"))
		},
		x: []float64{1, -1}, want: []float64{0.841344746068543, -0.158655253931457}, shape: nn.Shape{2}, kinds: "activation",
	},
	{
		name: "silu as x * Sigmoid(x)",
		model: func() *testModel {
			return newModel(13, "N", 2).
				node("Sigmoid", ins("x"), ins("s")).
				node("Mul", ins("x", "s"), ins("y"))
		},
		x: []float64{0, math.Log(3)}, want: []float64{0, 0.75 * math.Log(3)}, shape: nn.Shape{2}, kinds: "activation",
	},
	{
		name: "silu as Sigmoid(x) * x after a dense",
		model: func() *testModel {
			return newModel(13, "N", 1).
				init(floatT("W", []int{1, 2}, 1, -1)).
				node("MatMul", ins("x", "W"), ins("h")).
				node("Sigmoid", ins("h"), ins("s")).
				node("Mul", ins("s", "h"), ins("y"))
		},
		x: []float64{math.Log(3)}, want: []float64{0.75 * math.Log(3), -0.25 * math.Log(3)}, shape: nn.Shape{2}, kinds: "dense activation",
	},
	{
		name: "gelu as PyTorch 1.13 exports it, 0.5 last",
		model: func() *testModel {
			return newModel(13, "N", 2).
				node("Constant", nil, ins("r2"), aTensor("value", floatT("", []int{}, sqrt2))).
				node("Div", ins("x", "r2"), ins("d")).
				node("Erf", ins("d"), ins("e")).
				node("Constant", nil, ins("one"), aTensor("value", floatT("", []int{}, 1))).
				node("Add", ins("e", "one"), ins("a")).
				node("Mul", ins("x", "a"), ins("m")).
				node("Constant", nil, ins("half"), aTensor("value", floatT("", []int{}, 0.5))).
				node("Mul", ins("m", "half"), ins("y"))
		},
		x: []float64{1, -1}, want: []float64{0.841344746068543, -0.158655253931457}, shape: nn.Shape{2}, kinds: "activation",
	},
	{
		name: "gelu with 0.5 first and operands swapped",
		model: func() *testModel {
			return newModel(13, "N", 2).
				init(floatT("r2", []int{}, sqrt2), floatT("one", []int{}, 1), floatT("half", []int{}, 0.5)).
				node("Mul", ins("x", "half"), ins("h")).
				node("Div", ins("x", "r2"), ins("d")).
				node("Erf", ins("d"), ins("e")).
				node("Add", ins("one", "e"), ins("a")).
				node("Mul", ins("a", "h"), ins("y"))
		},
		x: []float64{1, -1}, want: []float64{0.841344746068543, -0.158655253931457}, shape: nn.Shape{2}, kinds: "activation",
	},
	{
		name:  "softmax head",
		model: func() *testModel { return newModel(13, "N", 2).node("Softmax", ins("x"), ins("y"), aInt("axis", -1)) },
		x:     []float64{0, math.Log(3)}, want: []float64{0.25, 0.75}, shape: nn.Shape{2}, kinds: "softmax",
	},
	{
		name:  "softmax axis 1 over an image (opset 11)",
		model: func() *testModel { return newModel(11, "N", 2, 1, 1).node("Softmax", ins("x"), ins("y")) },
		x:     []float64{0, math.Log(3)}, want: []float64{0.25, 0.75}, shape: nn.Shape{2, 1, 1}, kinds: "softmax",
	},
	{
		name: "constant folding of arithmetic, activations and shapes",
		model: func() *testModel {
			return newModel(13, "N", 2).
				init(floatT("a", []int{2, 1}, 1, 2), floatT("b", []int{2}, 10, 20), int64T("flat", []int{1}, -1)).
				node("Add", ins("a", "b"), ins("ab")). // [[11 21] [12 22]]
				node("Relu", ins("ab"), ins("r")).
				node("Reshape", ins("r", "flat"), ins("f")). // [11 21 12 22]
				node("Constant", nil, ins("idx"), aTensor("value", int64T("", []int{2}, 3, 0))).
				node("Gather", ins("f", "idx"), ins("g")). // [22 11]
				node("Mul", ins("x", "g"), ins("y"))
		},
		x: []float64{1, 2}, want: []float64{22, 22}, shape: nn.Shape{2}, kinds: "affine",
	},
	{
		name: "casts of constants truncate toward zero",
		model: func() *testModel {
			return newModel(13, "N", 2).
				init(floatT("c", []int{2}, 2.7, -2.7)).
				node("Cast", ins("c"), ins("i"), aInt("to", int64(onnxpb.TensorProto_INT64))).
				node("Cast", ins("i"), ins("f"), aInt("to", int64(onnxpb.TensorProto_FLOAT))).
				node("Mul", ins("x", "f"), ins("y"))
		},
		x: []float64{1, 1}, want: []float64{2, -2}, shape: nn.Shape{2}, kinds: "affine",
	},
	{
		name: "per-channel and per-element affines merge",
		model: func() *testModel {
			return newModel(13, "N", 2, 1, 2).
				init(floatT("s", []int{2, 1, 1}, 2, 3), floatT("t", []int{1, 2, 1, 2}, 1, 2, 3, 4)).
				node("Mul", ins("x", "s"), ins("h")).
				node("Add", ins("h", "t"), ins("y"))
		},
		x: []float64{1, 1, 1, 1}, want: []float64{3, 4, 6, 7}, shape: nn.Shape{2, 1, 2}, kinds: "affine",
	},
	{
		name: "per-channel scale and scalar shift fold into a conv without bias",
		model: func() *testModel {
			return newModel(13, "N", 1, 1, 1).
				init(floatT("W", []int{2, 1, 1, 1}, 1, 2), floatT("s", []int{1, 2, 1, 1}, 3, 4), floatT("one", []int{1}, 1)).
				node("Conv", ins("x", "W"), ins("c")).
				node("Mul", ins("c", "s"), ins("h")).
				node("Add", ins("h", "one"), ins("y"))
		},
		x: []float64{2}, want: []float64{7, 17}, shape: nn.Shape{2, 1, 1}, kinds: "conv",
	},
	{
		name: "conv1d with stride, pads and bias",
		model: func() *testModel {
			return newModel(13, "N", 1, 5).
				init(floatT("W", []int{1, 1, 3}, 1, 2, 3), floatT("b", []int{1}, 10)).
				node("Conv", ins("x", "W", "b"), ins("y"), aInts("kernel_shape", 3), aInts("strides", 2), aInts("pads", 1, 1))
		},
		// Padded: 0 1 2 3 4 5 0; windows at 0, 2, 4.
		x: []float64{1, 2, 3, 4, 5}, want: []float64{18, 30, 24}, shape: nn.Shape{1, 3}, kinds: "reshape conv reshape",
	},
	{
		name: "conv1d dilated, two channels in and out",
		model: func() *testModel {
			return newModel(13, "N", 2, 5).
				init(floatT("W", []int{2, 2, 2}, 1, -1, 0, 1, 2, 0, 0, 0)).
				node("Conv", ins("x", "W"), ins("y"), aInts("dilations", 2))
		},
		// Out 0: x0[i] - x0[i+2] + x1[i+2]; out 1: 2 x0[i].
		x: []float64{1, 2, 4, 8, 16, 100, 200, 300, 400, 500}, want: []float64{297, 394, 488, 2, 4, 8}, shape: nn.Shape{2, 3}, kinds: "reshape conv reshape",
	},
	{
		name: "conv2d dilated",
		model: func() *testModel {
			return newModel(13, "N", 1, 3, 3).
				init(floatT("W", []int{1, 1, 2, 2}, 1, 2, 3, 4)).
				node("Conv", ins("x", "W"), ins("y"), aInts("dilations", 2, 2))
		},
		// The corners: 1*1 + 3*2 + 7*3 + 9*4.
		x: []float64{1, 2, 3, 4, 5, 6, 7, 8, 9}, want: []float64{64}, shape: nn.Shape{1, 1, 1}, kinds: "conv",
	},
	{
		name: "conv1d then batch norm per channel",
		model: func() *testModel {
			return newModel(13, "N", 1, 3).
				init(floatT("W", []int{2, 1, 1}, 1, 2),
					floatT("scale", []int{2}, 2, 3), floatT("bias", []int{2}, 1, -1),
					floatT("mean", []int{2}, 0, 0), floatT("var", []int{2}, 1, 1)).
				node("Conv", ins("x", "W"), ins("c")).
				node("BatchNormalization", ins("c", "scale", "bias", "mean", "var"), ins("y"), aFloat("epsilon", 0))
		},
		// Channel 0: 2x+1; channel 1: 3(2x)-1.
		x: []float64{1, 2, 3}, want: []float64{3, 5, 7, 5, 11, 17}, shape: nn.Shape{2, 3}, kinds: "reshape conv reshape",
	},
	{
		name: "initializer listed as a graph input is ignored",
		model: func() *testModel {
			m := newModel(13, "N", 2).
				init(floatT("c", []int{}, 3)).
				node("Mul", ins("x", "c"), ins("y"))
			return m
		},
		x: []float64{1, 2}, want: []float64{3, 6}, shape: nn.Shape{2}, kinds: "affine",
	},
}

func TestImport(t *testing.T) {
	for _, tt := range importCases {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.model().proto()
			if strings.HasPrefix(tt.name, "initializer listed") {
				p.Graph.Input = append(p.Graph.Input, valueInfo("c"))
			}
			g := mustImport(t, mustMarshal(t, p))
			var kinds []string
			for _, n := range g.Nodes {
				kinds = append(kinds, n.Op.Kind())
			}
			if got := strings.Join(kinds, " "); got != tt.kinds {
				t.Errorf("nodes %q, want %q", got, tt.kinds)
			}
			if !g.OutputShape().Equal(tt.shape) {
				t.Errorf("output shape %v, want %v", g.OutputShape(), tt.shape)
			}
			got := mustEval(t, g, tt.x...)
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for i := range got {
				if math.Abs(got[i]-tt.want[i]) > 1e-6*max(1, math.Abs(tt.want[i])) {
					t.Fatalf("got %v, want %v", got, tt.want)
				}
			}
		})
	}
}

func TestDynamicBatch(t *testing.T) {
	for _, batch := range []any{"batch", 0, -1, 1, nil} {
		m := newModel(13, batch, 3, 2, 2).node("GlobalAveragePool", ins("x"), ins("y"))
		if batch == nil {
			m.input.Type.GetTensorType().Shape.Dim[0].Value = nil // unknown
		}
		g := mustImport(t, m.bytes(t))
		if !g.Input.Equal(nn.Shape{3, 2, 2}) || !g.OutputShape().Equal(nn.Shape{3, 1, 1}) {
			t.Errorf("batch %v: input %v, output %v", batch, g.Input, g.OutputShape())
		}
	}
	for _, batch := range []any{8, 2} {
		_, err := Import(newModel(13, batch, 3).node("Relu", ins("x"), ins("y")).bytes(t), Options{})
		if fheserve.ErrorCode(err) != fheserve.EUNSUPPORTED || !strings.Contains(err.Error(), "batch") {
			t.Errorf("batch %v: error %v", batch, err)
		}
	}
}

// Refusals: each model fails with one error of the given code whose message
// contains every listed string.
var refusalCases = []struct {
	name  string
	model func() *onnxpb.ModelProto
	code  string
	want  []string
}{
	{
		name: "maxpool suggests averagepool",
		model: func() *onnxpb.ModelProto {
			m := newModel(13, "N", 1, 4, 4).node("MaxPool", ins("x"), ins("y"), aInts("kernel_shape", 2, 2))
			m.nodes[0].Name = proto.String("maxpool_3")
			return m.proto()
		},
		code: fheserve.EUNSUPPORTED, want: []string{`node "maxpool_3" (MaxPool)`, "use AveragePool instead", "supported: Gemm"},
	},
	{
		name:  "leaky relu lists the activations",
		model: func() *onnxpb.ModelProto { return newModel(13, "N", 2).node("LeakyRelu", ins("x"), ins("y")).proto() },
		code:  fheserve.EUNSUPPORTED, want: []string{"LeakyRelu", "supported activations: Relu, Sigmoid"},
	},
	{
		name:  "unknown operator",
		model: func() *onnxpb.ModelProto { return newModel(13, "N", 2).node("TopK", ins("x"), ins("y")).proto() },
		code:  fheserve.EUNSUPPORTED, want: []string{"(TopK): unsupported operator (supported:"},
	},
	{
		name: "custom domain",
		model: func() *onnxpb.ModelProto {
			p := newModel(13, "N", 2).node("Relu", ins("x"), ins("y")).proto()
			p.Graph.Node[0].Domain = proto.String("com.microsoft")
			return p
		},
		code: fheserve.EUNSUPPORTED, want: []string{"domain"},
	},
	{
		name: "grouped conv",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 2, 2, 2).init(floatT("W", []int{2, 1, 1, 1}, 1, 1)).
				node("Conv", ins("x", "W"), ins("y"), aInt("group", 2)).proto()
		},
		code: fheserve.EUNSUPPORTED, want: []string{"group=2", "only group=1"},
	},
	{
		name: "dilated avgpool",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 1, 3, 3).
				node("AveragePool", ins("x"), ins("y"), aInts("kernel_shape", 2, 2), aInts("dilations", 2, 2)).proto()
		},
		code: fheserve.EUNSUPPORTED, want: []string{"dilation"},
	},
	{
		name: "conv SAME padding",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 1, 3, 3).init(floatT("W", []int{1, 1, 1, 1}, 1)).
				node("Conv", ins("x", "W"), ins("y"), aString("auto_pad", "SAME_UPPER")).proto()
		},
		code: fheserve.EUNSUPPORTED, want: []string{"SAME_UPPER", "VALID"},
	},
	{
		name: "conv with computed weights",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 1, 1, 1).node("Conv", ins("x", "x"), ins("y")).proto()
		},
		code: fheserve.EUNSUPPORTED, want: []string{"weights", "constant"},
	},
	{
		name: "3-D conv",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 1, 2, 2, 2).init(floatT("W", []int{1, 1, 1, 1, 1}, 1)).
				node("Conv", ins("x", "W"), ins("y")).proto()
		},
		code: fheserve.EUNSUPPORTED, want: []string{"input has shape [N, 1, 2, 2, 2]", "Conv1d over [N, C, L] and Conv2d over [N, C, H, W]"},
	},
	{
		name: "1-D conv with 2-D weights",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 1, 3).init(floatT("W", []int{1, 1, 1, 1}, 1)).
				node("Conv", ins("x", "W"), ins("y")).proto()
		},
		code: fheserve.EUNSUPPORTED, want: []string{"weights have shape [1 1 1 1]", "[out, in, k] for a Conv1d"},
	},
	{
		name: "1-D conv with 2-D strides",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 1, 3).init(floatT("W", []int{1, 1, 1}, 1)).
				node("Conv", ins("x", "W"), ins("y"), aInts("strides", 1, 1)).proto()
		},
		code: fheserve.EUNSUPPORTED, want: []string{`attribute "strides" has 2 values, want 1`},
	},
	{
		name: "the shape of a 3-D input reads as ONNX writes it",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 1, 30).init(floatT("B", []int{30, 1}, make([]float32, 30)...)).
				node("Gemm", ins("x", "B"), ins("y")).proto()
		},
		code: fheserve.EUNSUPPORTED, want: []string{"input has shape [N, 1, 30]; only 2-D inputs [N, K]"},
	},
	{
		name: "LayerNorm as PyTorch exports it",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 4).node("ReduceMean", ins("x"), ins("y"), aInts("axes", -1)).proto()
		},
		code: fheserve.EUNSUPPORTED, want: []string{"(ReduceMean)", "LayerNorm", "BatchNorm"},
	},
	{
		name: "LayerNormalization (opset 17)",
		model: func() *onnxpb.ModelProto {
			return newModel(17, "N", 4).init(floatT("g", []int{4}, 1, 1, 1, 1)).
				node("LayerNormalization", ins("x", "g"), ins("y")).proto()
		},
		code: fheserve.EUNSUPPORTED, want: []string{"(LayerNormalization)", "BatchNorm"},
	},
	{
		name: "avgpool ceil mode",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 1, 3, 3).
				node("AveragePool", ins("x"), ins("y"), aInts("kernel_shape", 2, 2), aInt("ceil_mode", 1)).proto()
		},
		code: fheserve.EUNSUPPORTED, want: []string{"ceil_mode"},
	},
	{
		name: "pad reflect",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 1, 2, 2).init(int64T("p", []int{8}, 0, 0, 1, 1, 0, 0, 1, 1)).
				node("Pad", ins("x", "p"), ins("y"), aString("mode", "reflect")).proto()
		},
		code: fheserve.EUNSUPPORTED, want: []string{"reflect"},
	},
	{
		name: "pad channels",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 1, 2, 2).init(int64T("p", []int{8}, 0, 1, 0, 0, 0, 0, 0, 0)).
				node("Pad", ins("x", "p"), ins("y")).proto()
		},
		code: fheserve.EUNSUPPORTED, want: []string{"channel"},
	},
	{
		name: "pad nonzero value",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 1, 2, 2).init(int64T("p", []int{8}, 0, 0, 1, 0, 0, 0, 0, 0), floatT("v", []int{}, 1)).
				node("Pad", ins("x", "p", "v"), ins("y")).proto()
		},
		code: fheserve.EUNSUPPORTED, want: []string{"zero padding"},
	},
	{
		name: "pow fractional",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 2).init(floatT("e", []int{}, 0.5)).node("Pow", ins("x", "e"), ins("y")).proto()
		},
		code: fheserve.EUNSUPPORTED, want: []string{"integer exponents from 1 to 8"},
	},
	{
		name: "pow 9",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 2).init(floatT("e", []int{}, 9)).node("Pow", ins("x", "e"), ins("y")).proto()
		},
		code: fheserve.EUNSUPPORTED, want: []string{"integer exponents from 1 to 8"},
	},
	{
		name: "division by a computed value",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 2).init(floatT("c", []int{}, 1)).node("Div", ins("c", "x"), ins("y")).proto()
		},
		code: fheserve.EUNSUPPORTED, want: []string{"division by a computed value"},
	},
	{
		name: "division by zero",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 2).init(floatT("c", []int{2}, 1, 0)).node("Div", ins("x", "c"), ins("y")).proto()
		},
		code: fheserve.EINVALID, want: []string{"division by zero"},
	},
	{
		name: "erf alone",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 2).node("Erf", ins("x"), ins("y")).proto()
		},
		code: fheserve.EUNSUPPORTED, want: []string{"Erf", "GELU"},
	},
	{
		name: "erf part as output",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 2).init(floatT("r2", []int{}, sqrt2)).
				node("Div", ins("x", "r2"), ins("d")).node("Erf", ins("d"), ins("y")).proto()
		},
		code: fheserve.EUNSUPPORTED, want: []string{"Erf", "GELU"},
	},
	{
		name: "erf part misused",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 2).init(floatT("r2", []int{}, sqrt2)).
				node("Div", ins("x", "r2"), ins("d")).node("Erf", ins("d"), ins("e")).
				node("Relu", ins("e"), ins("y")).proto()
		},
		code: fheserve.EUNSUPPORTED, want: []string{"Erf", "GELU"},
	},
	{
		name: "gelu tanh approximation",
		model: func() *onnxpb.ModelProto {
			return newModel(20, "N", 2).node("Gelu", ins("x"), ins("y"), aString("approximate", "tanh")).proto()
		},
		code: fheserve.EUNSUPPORTED, want: []string{"approximate"},
	},
	{
		name: "softmax not last",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 2).node("Softmax", ins("x"), ins("s")).node("Relu", ins("s"), ins("y")).proto()
		},
		code: fheserve.EUNSUPPORTED, want: []string{"Softmax is only supported as the last operator"},
	},
	{
		name: "softmax over part of a sample",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 2, 1, 3).node("Softmax", ins("x"), ins("y")).proto()
		},
		code: fheserve.EUNSUPPORTED, want: []string{"only part of a sample"},
	},
	{
		name: "gemm transA",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 2).init(floatT("B", []int{2, 1}, 1, 1)).
				node("Gemm", ins("x", "B"), ins("y"), aInt("transA", 1)).proto()
		},
		code: fheserve.EUNSUPPORTED, want: []string{"transA"},
	},
	{
		name: "gemm on an image",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 1, 2, 1).init(floatT("B", []int{2, 1}, 1, 1)).
				node("Gemm", ins("x", "B"), ins("y")).proto()
		},
		code: fheserve.EUNSUPPORTED, want: []string{"Flatten"},
	},
	{
		name: "matmul of two computed values",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 2).node("MatMul", ins("x", "x"), ins("y")).proto()
		},
		code: fheserve.EUNSUPPORTED, want: []string{"constant"},
	},
	{
		name: "add with broadcasting between computed values",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 2).init(floatT("W", []int{2, 1}, 1, 1)).
				node("MatMul", ins("x", "W"), ins("h")).node("Add", ins("x", "h"), ins("y")).proto()
		},
		code: fheserve.EUNSUPPORTED, want: []string{"same shape"},
	},
	{
		name: "constant varying along the batch",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 1).init(floatT("c", []int{2, 1}, 1, 2)).
				node("Add", ins("x", "c"), ins("y")).proto()
		},
		code: fheserve.EUNSUPPORTED, want: []string{"batch axis"},
	},
	{
		name: "batchnorm training",
		model: func() *onnxpb.ModelProto {
			return newModel(15, "N", 1).
				init(floatT("g", []int{1}, 1), floatT("b", []int{1}, 0), floatT("m", []int{1}, 0), floatT("v", []int{1}, 1)).
				node("BatchNormalization", ins("x", "g", "b", "m", "v"), ins("y"), aInt("training_mode", 1)).proto()
		},
		code: fheserve.EUNSUPPORTED, want: []string{"training_mode"},
	},
	{
		name: "dropout mask used",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 1).node("Dropout", ins("x"), ins("d", "mask")).
				node("Add", ins("d", "mask"), ins("y")).proto()
		},
		code: fheserve.EUNSUPPORTED, want: []string{"only the first output"},
	},
	{
		name: "flatten axis 2",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 1, 2, 2).node("Flatten", ins("x"), ins("y"), aInt("axis", 2)).proto()
		},
		code: fheserve.EUNSUPPORTED, want: []string{"axis 1"},
	},
	{
		name: "reshape across the batch",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 4).init(int64T("s", []int{2}, 2, -1)).
				node("Reshape", ins("x", "s"), ins("y")).proto()
		},
		code: fheserve.EUNSUPPORTED, want: []string{"batch"},
	},
	{
		name: "reshape changing the batch size",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 4).init(int64T("s", []int{2}, -1, 2)).
				node("Reshape", ins("x", "s"), ins("y")).proto()
		},
		code: fheserve.EUNSUPPORTED, want: []string{"batch size"},
	},
	{
		name: "reshape with arithmetic on the batch size",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 4).init(int64T("zero", []int{}, 0), int64T("two", []int{}, 2), int64T("axes", []int{1}, 0)).
				node("Shape", ins("x"), ins("s")).
				node("Gather", ins("s", "zero"), ins("n")).
				node("Mul", ins("n", "two"), ins("n2")).
				node("Unsqueeze", ins("n2", "axes"), ins("n1")).
				node("Reshape", ins("x", "n1"), ins("y")).proto()
		},
		code: fheserve.EUNSUPPORTED, want: []string{"batch size"},
	},
	{
		name: "reshape to a computed shape",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 2).node("Reshape", ins("x", "x"), ins("y")).proto()
		},
		code: fheserve.EUNSUPPORTED, want: []string{"target shape", "constant"},
	},
	{
		name: "symbolic spatial axis",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 1, "H", 4).node("Relu", ins("x"), ins("y")).proto()
		},
		code: fheserve.EUNSUPPORTED, want: []string{"symbolic", "only the batch axis"},
	},
	{
		name: "two inputs",
		model: func() *onnxpb.ModelProto {
			p := newModel(13, "N", 2).node("Add", ins("x", "z"), ins("y")).proto()
			p.Graph.Input = append(p.Graph.Input, valueInfo("z", "N", 2))
			return p
		},
		code: fheserve.EUNSUPPORTED, want: []string{"more than one input"},
	},
	{
		name: "two outputs",
		model: func() *onnxpb.ModelProto {
			p := newModel(13, "N", 2).node("Relu", ins("x"), ins("y")).proto()
			p.Graph.Output = append(p.Graph.Output, &onnxpb.ValueInfoProto{Name: proto.String("x")})
			return p
		},
		code: fheserve.EUNSUPPORTED, want: []string{"2 outputs"},
	},
	{
		name: "constant output",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 2).node("Constant", nil, ins("y"), aFloat("value_float", 1)).proto()
		},
		code: fheserve.EUNSUPPORTED, want: []string{"constant"},
	},
	{
		name: "external data",
		model: func() *onnxpb.ModelProto {
			w := floatT("W", []int{2, 1}, 1, 1)
			w.DataLocation = onnxpb.TensorProto_EXTERNAL.Enum()
			return newModel(13, "N", 2).init(w).node("MatMul", ins("x", "W"), ins("y")).proto()
		},
		code: fheserve.EUNSUPPORTED, want: []string{"external"},
	},
	{
		name: "float16 initializer",
		model: func() *onnxpb.ModelProto {
			w := &onnxpb.TensorProto{Name: proto.String("W"), Dims: []int64{2, 1},
				DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT16)), Int32Data: []int32{1, 1}}
			return newModel(13, "N", 2).init(w).node("MatMul", ins("x", "W"), ins("y")).proto()
		},
		code: fheserve.EUNSUPPORTED, want: []string{"FLOAT16"},
	},
	{
		name: "unknown attribute",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 2).node("Relu", ins("x"), ins("y"), aInt("alpha", 1)).proto()
		},
		code: fheserve.EUNSUPPORTED, want: []string{`attribute "alpha"`},
	},
	// Malformed models.
	{
		name:  "no graph",
		model: func() *onnxpb.ModelProto { return &onnxpb.ModelProto{} },
		code:  fheserve.EINVALID, want: []string{"no graph"},
	},
	{
		name: "no opset",
		model: func() *onnxpb.ModelProto {
			p := newModel(13, "N", 2).node("Relu", ins("x"), ins("y")).proto()
			p.OpsetImport = nil
			return p
		},
		code: fheserve.EINVALID, want: []string{"opset"},
	},
	{
		name: "raw data too short",
		model: func() *onnxpb.ModelProto {
			w := rawFloatT("W", []int{2, 1}, 1)
			return newModel(13, "N", 2).init(w).node("MatMul", ins("x", "W"), ins("y")).proto()
		},
		code: fheserve.EINVALID, want: []string{`tensor "W"`, "raw_data has 4 bytes"},
	},
	{
		name: "raw and typed data",
		model: func() *onnxpb.ModelProto {
			w := rawFloatT("W", []int{2, 1}, 1, 2)
			w.FloatData = []float32{1, 2}
			return newModel(13, "N", 2).init(w).node("MatMul", ins("x", "W"), ins("y")).proto()
		},
		code: fheserve.EINVALID, want: []string{"both"},
	},
	{
		name: "float data count",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 2).init(floatT("W", []int{2, 1}, 1, 2, 3)).node("MatMul", ins("x", "W"), ins("y")).proto()
		},
		code: fheserve.EINVALID, want: []string{"3 values"},
	},
	{
		name: "negative dim",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 2).init(floatT("W", []int{-2, -1}, 1, 2)).node("MatMul", ins("x", "W"), ins("y")).proto()
		},
		code: fheserve.EINVALID, want: []string{"dimension -2"},
	},
	{
		name: "dims overflow",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 2).init(floatT("W", []int{1 << 30, 1 << 30, 1 << 30}, 1)).node("MatMul", ins("x", "W"), ins("y")).proto()
		},
		code: fheserve.EINVALID, want: []string{"too many elements"},
	},
	{
		name: "undefined input",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 2).node("Relu", ins("nope"), ins("y")).proto()
		},
		code: fheserve.EINVALID, want: []string{`"nope" is not defined`},
	},
	{
		name: "value defined twice",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 2).node("Relu", ins("x"), ins("y")).node("Relu", ins("x"), ins("y")).proto()
		},
		code: fheserve.EINVALID, want: []string{"defined twice"},
	},
	{
		name: "gemm shape mismatch",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 2).init(floatT("B", []int{3, 1}, 1, 1, 1)).node("Gemm", ins("x", "B"), ins("y")).proto()
		},
		code: fheserve.EINVALID, want: []string{"2 features"},
	},
	{
		name: "kernel_shape mismatch",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 1, 3, 3).init(floatT("W", []int{1, 1, 1, 1}, 1)).
				node("Conv", ins("x", "W"), ins("y"), aInts("kernel_shape", 2, 2)).proto()
		},
		code: fheserve.EINVALID, want: []string{"kernel_shape"},
	},
	{
		name: "conv channel mismatch",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 2, 3, 3).init(floatT("W", []int{1, 1, 1, 1}, 1)).
				node("Conv", ins("x", "W"), ins("y")).proto()
		},
		code: fheserve.EINVALID, want: []string{"input channels"},
	},
	{
		name: "attribute of the wrong type",
		model: func() *onnxpb.ModelProto {
			return newModel(13, "N", 1, 3, 3).init(floatT("W", []int{1, 1, 1, 1}, 1)).
				node("Conv", ins("x", "W"), ins("y"), aFloat("group", 1)).proto()
		},
		code: fheserve.EINVALID, want: []string{`attribute "group" has type FLOAT`},
	},
}

func TestImportRefusals(t *testing.T) {
	for _, tt := range refusalCases {
		t.Run(tt.name, func(t *testing.T) {
			g, err := Import(mustMarshal(t, tt.model()), Options{})
			if err == nil {
				t.Fatalf("imported %d nodes, want an error", len(g.Nodes))
			}
			if code := fheserve.ErrorCode(err); code != tt.code {
				t.Errorf("code %q, want %q (%v)", code, tt.code, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestImportMalformedBytes(t *testing.T) {
	for _, data := range [][]byte{{0xff}, {0x3a, 0x10, 0x01}, []byte("not a model at all")} {
		_, err := Import(data, Options{})
		if fheserve.ErrorCode(err) != fheserve.EINVALID {
			t.Errorf("Import(%q) error %v, want %s", data, err, fheserve.EINVALID)
		}
	}
}

func TestImportSizeLimit(t *testing.T) {
	data := newModel(13, "N", 2).node("Relu", ins("x"), ins("y")).bytes(t)
	_, err := Import(data, Options{MaxBytes: int64(len(data)) - 1})
	if fheserve.ErrorCode(err) != fheserve.ETOOLARGE {
		t.Fatalf("error %v, want %s", err, fheserve.ETOOLARGE)
	}
	if _, err := Import(data, Options{MaxBytes: int64(len(data))}); err != nil {
		t.Fatal(err)
	}
}

func TestImportFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tiny.onnx")
	p := newModel(13, "N", 2).node("Relu", ins("x"), ins("y")).proto()
	p.Graph.Name = nil
	data := mustMarshal(t, p)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	g, err := ImportFile(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if g.Name != "tiny" {
		t.Errorf("name %q, want tiny", g.Name)
	}
	if _, err := ImportFile(path, Options{MaxBytes: 3}); fheserve.ErrorCode(err) != fheserve.ETOOLARGE {
		t.Errorf("limit: %v", err)
	}
	if _, err := ImportFile(filepath.Join(dir, "missing.onnx"), Options{}); fheserve.ErrorCode(err) != fheserve.ENOTFOUND {
		t.Errorf("missing file: %v", err)
	}
}

// TestSharedWeightsNotModified checks that folding a BatchNormalization into
// one of two Convs sharing an initializer leaves the other Conv alone.
func TestSharedWeightsNotModified(t *testing.T) {
	m := newModel(13, "N", 1, 1, 1).
		init(floatT("W", []int{1, 1, 1, 1}, 2),
			floatT("g", []int{1}, 3), floatT("b", []int{1}, 0), floatT("m", []int{1}, 0), floatT("v", []int{1}, 1)).
		node("Conv", ins("x", "W"), ins("c1")).
		node("BatchNormalization", ins("c1", "g", "b", "m", "v"), ins("bn"), aFloat("epsilon", 0)).
		node("Conv", ins("x", "W"), ins("c2")).
		node("Add", ins("bn", "c2"), ins("y"))
	g := mustImport(t, m.bytes(t))
	// 3*2x + 2x = 8x
	if got := mustEval(t, g, 1); got[0] != 8 {
		t.Fatalf("got %v, want 8", got)
	}
	if len(g.Nodes) != 3 {
		t.Fatalf("%d nodes, want conv, conv, combine", len(g.Nodes))
	}
}

// TestFoldKeepsSharedValues checks that an Affine is not folded into a node
// whose output has another consumer.
func TestFoldKeepsSharedValues(t *testing.T) {
	m := newModel(13, "N", 1).
		init(floatT("W", []int{1, 1}, 2), floatT("s", []int{}, 3)).
		node("MatMul", ins("x", "W"), ins("h")).
		node("Mul", ins("h", "s"), ins("a")).
		node("Add", ins("a", "h"), ins("y"))
	g := mustImport(t, m.bytes(t))
	if got := mustEval(t, g, 1); got[0] != 8 { // 3*2 + 2
		t.Fatalf("got %v, want 8", got)
	}
	if len(g.Nodes) != 3 {
		t.Fatalf("%d nodes, want dense, affine, combine", len(g.Nodes))
	}
}
