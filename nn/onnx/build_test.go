package onnx

import (
	"encoding/binary"
	"math"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/fheserve/fheserve/nn"
	"github.com/fheserve/fheserve/nn/onnx/onnxpb"
)

// Helpers that build ONNX models in Go, so tests do not depend on Python.

// testModel is a one-input, one-output model under construction.
type testModel struct {
	opset  int64
	input  *onnxpb.ValueInfoProto
	inits  []*onnxpb.TensorProto
	nodes  []*onnxpb.NodeProto
	output string
}

// newModel starts a model with input "x" of the given dims: a string is a
// symbolic dimension, an int a fixed one.
func newModel(opset int64, dims ...any) *testModel {
	return &testModel{opset: opset, input: valueInfo("x", dims...), output: "y"}
}

func valueInfo(name string, dims ...any) *onnxpb.ValueInfoProto {
	shape := &onnxpb.TensorShapeProto{}
	for _, d := range dims {
		dim := &onnxpb.TensorShapeProto_Dimension{}
		switch d := d.(type) {
		case string:
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: d}
		case int:
			dim.Value = &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: int64(d)}
		}
		shape.Dim = append(shape.Dim, dim)
	}
	return &onnxpb.ValueInfoProto{
		Name: proto.String(name),
		Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
			ElemType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)),
			Shape:    shape,
		}}},
	}
}

// node adds a node named after its op and first output.
func (m *testModel) node(op string, ins, outs []string, attrs ...*onnxpb.AttributeProto) *testModel {
	m.nodes = append(m.nodes, &onnxpb.NodeProto{
		Name: proto.String(op + "_" + outs[0]), OpType: proto.String(op),
		Input: ins, Output: outs, Attribute: attrs,
	})
	return m
}

func (m *testModel) init(ts ...*onnxpb.TensorProto) *testModel {
	m.inits = append(m.inits, ts...)
	return m
}

func (m *testModel) proto() *onnxpb.ModelProto {
	return &onnxpb.ModelProto{
		IrVersion:   proto.Int64(7),
		OpsetImport: []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(m.opset)}},
		Graph: &onnxpb.GraphProto{
			Name:        proto.String("test"),
			Node:        m.nodes,
			Initializer: m.inits,
			Input:       []*onnxpb.ValueInfoProto{m.input},
			Output:      []*onnxpb.ValueInfoProto{{Name: proto.String(m.output)}},
		},
	}
}

func (m *testModel) bytes(tb testing.TB) []byte {
	tb.Helper()
	return mustMarshal(tb, m.proto())
}

func mustMarshal(tb testing.TB, p proto.Message) []byte {
	tb.Helper()
	b, err := proto.Marshal(p)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func mustImport(tb testing.TB, data []byte) *nn.Graph {
	tb.Helper()
	g, err := Import(data, Options{})
	if err != nil {
		tb.Fatalf("Import: %v", err)
	}
	if err := g.Validate(); err != nil {
		tb.Fatalf("Validate: %v", err)
	}
	return g
}

func mustEval(tb testing.TB, g *nn.Graph, x ...float64) []float64 {
	tb.Helper()
	y, err := g.Eval(&nn.Tensor{Shape: g.Input, Data: x}, nil)
	if err != nil {
		tb.Fatalf("Eval: %v", err)
	}
	return y.Data
}

// Tensors.

func dims64(dims []int) []int64 {
	d := make([]int64, len(dims))
	for k, v := range dims {
		d[k] = int64(v)
	}
	return d
}

// floatT is a float tensor stored in float_data.
func floatT(name string, dims []int, v ...float32) *onnxpb.TensorProto {
	return &onnxpb.TensorProto{Name: proto.String(name), Dims: dims64(dims),
		DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), FloatData: v}
}

// rawFloatT is a float tensor stored in raw_data, as PyTorch writes them.
func rawFloatT(name string, dims []int, v ...float32) *onnxpb.TensorProto {
	raw := make([]byte, 4*len(v))
	for k, x := range v {
		binary.LittleEndian.PutUint32(raw[4*k:], math.Float32bits(x))
	}
	return &onnxpb.TensorProto{Name: proto.String(name), Dims: dims64(dims),
		DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), RawData: raw}
}

func doubleT(name string, dims []int, v ...float64) *onnxpb.TensorProto {
	return &onnxpb.TensorProto{Name: proto.String(name), Dims: dims64(dims),
		DataType: proto.Int32(int32(onnxpb.TensorProto_DOUBLE)), DoubleData: v}
}

func rawInt64T(name string, dims []int, v ...int64) *onnxpb.TensorProto {
	raw := make([]byte, 8*len(v))
	for k, x := range v {
		binary.LittleEndian.PutUint64(raw[8*k:], uint64(x))
	}
	return &onnxpb.TensorProto{Name: proto.String(name), Dims: dims64(dims),
		DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)), RawData: raw}
}

func int64T(name string, dims []int, v ...int64) *onnxpb.TensorProto {
	return &onnxpb.TensorProto{Name: proto.String(name), Dims: dims64(dims),
		DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)), Int64Data: v}
}

// Attributes.

func aInt(name string, v int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INT.Enum(), I: proto.Int64(v)}
}

func aInts(name string, v ...int64) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_INTS.Enum(), Ints: v}
}

func aFloat(name string, v float32) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_FLOAT.Enum(), F: proto.Float32(v)}
}

func aString(name, v string) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_STRING.Enum(), S: []byte(v)}
}

func aTensor(name string, t *onnxpb.TensorProto) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_TENSOR.Enum(), T: t}
}

func ins(names ...string) []string { return names }
