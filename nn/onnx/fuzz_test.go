package onnx

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/internal/allocs"
	"github.com/fheserve/fheserve/internal/fuzzcorpus"
	"github.com/fheserve/fheserve/nn"
	"github.com/fheserve/fheserve/nn/onnx/onnxpb"
)

// FuzzImport checks that Import never panics and never allocates without
// bound on untrusted bytes, and that every graph it returns is valid and,
// when small, evaluates.
func FuzzImport(f *testing.F) {
	for _, tt := range importCases {
		f.Add(tt.model().bytes(f))
	}
	for _, tt := range refusalCases {
		f.Add(mustMarshal(f, tt.model()))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var g *nn.Graph
		var err error
		allocs.Bound(t, importBound(len(data)), func() { g, err = Import(data, Options{}) })
		if err != nil {
			if fheserve.ErrorMessage(err) == "internal error" || fheserve.ErrorCode(err) == fheserve.EINTERNAL {
				t.Fatalf("error is not a checked *fheserve.Error: %v", err)
			}
			return
		}
		if err := g.Validate(); err != nil {
			t.Fatalf("Import returned an invalid graph: %v", err)
		}
		if cheapToEval(g) {
			x := make([]float64, g.Input.Size())
			if _, err := g.Eval(&nn.Tensor{Shape: g.Input, Data: x}, nil); err != nil {
				t.Fatalf("Eval of an imported graph: %v", err)
			}
		}
	})
}

// importBound is the allocation the fuzz targets allow Import for n
// bytes of model: the importer's budget of 2^24 + 2n tensor elements at 8
// bytes, the decoded protobuf (at most 32 bytes per input byte: repeated
// fields decode to wider types), and 16 MiB for the graph and the parser.
func importBound(n int) uint64 { return 8*(1<<24+2*uint64(n)) + 32*uint64(n) + 16<<20 }

// cheapToEval bounds the work of evaluating g, so the fuzzer stays fast.
func cheapToEval(g *nn.Graph) bool {
	work := g.Input.Size()
	for _, n := range g.Nodes {
		per := 1
		switch op := n.Op.(type) {
		case *nn.Dense:
			per = op.In
		case *nn.Conv:
			per = op.InC * op.KH * op.KW
		case *nn.AvgPool:
			per = op.KH * op.KW
		case *nn.Poly:
			per = len(op.Coeffs)
		}
		work += n.Shape.Size() * per
		if work > 1<<20 {
			return false
		}
	}
	return true
}

// TestImportBoundsMemory checks that a tiny model cannot make the importer
// expand a constant to a huge tensor.
func TestImportBoundsMemory(t *testing.T) {
	// Input [N, 4096, 4096] times a [4096] constant (one value per column)
	// would need a full-size vector of 2^24 values.
	c := make([]float32, 4096)
	m := newModel(13, "N", 4096, 4096).
		init(floatT("c", []int{4096}, c...)).
		node("Mul", ins("x", "c"), ins("y"))
	_, err := Import(m.bytes(t), Options{})
	if fheserve.ErrorCode(err) != fheserve.ETOOLARGE || !strings.Contains(err.Error(), "too much memory") {
		t.Fatalf("error %v, want %s", err, fheserve.ETOOLARGE)
	}
	// Inputs above nn.MaxSize are refused before any node is converted.
	m = newModel(13, "N", 1<<13, 1<<13).node("Relu", ins("x"), ins("y"))
	if _, err := Import(m.bytes(t), Options{}); fheserve.ErrorCode(err) != fheserve.EUNSUPPORTED {
		t.Fatalf("error %v, want %s", err, fheserve.EUNSUPPORTED)
	}
}

// FuzzGeneratedModel builds well-formed models from the fuzzer's bytes, so
// that the fuzzer explores operator and attribute combinations rather than
// protobuf framing. The property is the same as FuzzImport's.
func FuzzGeneratedModel(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{3, 2, 1, 3, 3, 0, 5, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte("\x04\x01\x02\x02\x02\x01\x02\x00\x03\x07\x11\x05\x01\x00\x09\x02\x01\x08"))
	f.Fuzz(func(t *testing.T, data []byte) {
		model := mustMarshal(t, genModel(&byteReader{b: data}))
		var g *nn.Graph
		var err error
		allocs.Bound(t, importBound(len(model)), func() { g, err = Import(model, Options{}) })
		if err != nil {
			if fheserve.ErrorMessage(err) == "internal error" || fheserve.ErrorCode(err) == fheserve.EINTERNAL {
				t.Fatalf("error is not a checked *fheserve.Error: %v", err)
			}
			return
		}
		if err := g.Validate(); err != nil {
			t.Fatalf("Import returned an invalid graph: %v", err)
		}
		if cheapToEval(g) {
			x := make([]float64, g.Input.Size())
			if _, err := g.Eval(&nn.Tensor{Shape: g.Input, Data: x}, nil); err != nil {
				t.Fatalf("Eval of an imported graph: %v", err)
			}
		}
	})
}

// byteReader hands out the fuzzer's bytes as small choices, then zeros.
type byteReader struct {
	b []byte
}

func (r *byteReader) byte() byte {
	if len(r.b) == 0 {
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

// n returns a choice in [0, k).
func (r *byteReader) n(k int) int { return int(r.byte()) % k }

// small returns an integer in [-2, 9].
func (r *byteReader) small() int64 { return int64(r.n(12)) - 2 }

// genOps lists operators with their input counts and attributes, so that
// most generated nodes get past the first checks.
var genOps = []struct {
	op     string
	lo, hi int
	attrs  []string
}{
	{"Gemm", 2, 3, []string{"alpha", "beta", "transA", "transB"}},
	{"MatMul", 2, 2, nil},
	{"Conv", 2, 3, []string{"kernel_shape", "strides", "pads", "dilations", "group", "auto_pad"}},
	{"AveragePool", 1, 1, []string{"kernel_shape", "strides", "pads", "ceil_mode", "count_include_pad", "auto_pad"}},
	{"GlobalAveragePool", 1, 1, nil},
	{"Pad", 1, 4, []string{"mode", "pads", "value"}},
	{"BatchNormalization", 5, 5, []string{"epsilon", "momentum", "training_mode"}},
	{"Add", 2, 2, nil}, {"Sub", 2, 2, nil}, {"Mul", 2, 2, nil}, {"Div", 2, 2, nil}, {"Pow", 2, 2, nil},
	{"Relu", 1, 1, nil}, {"Sigmoid", 1, 1, nil}, {"Tanh", 1, 1, nil}, {"Softplus", 1, 1, nil},
	{"Gelu", 1, 1, []string{"approximate"}}, {"Erf", 1, 1, nil}, {"Softmax", 1, 1, []string{"axis"}},
	{"Flatten", 1, 1, []string{"axis"}}, {"Reshape", 2, 2, []string{"allowzero"}},
	{"Identity", 1, 1, nil}, {"Dropout", 1, 3, []string{"ratio"}},
	{"Constant", 0, 0, []string{"value", "value_float", "value_ints", "value_int", "value_floats"}},
	{"Shape", 1, 1, []string{"start", "end"}}, {"Gather", 2, 2, []string{"axis"}},
	{"Unsqueeze", 1, 2, []string{"axes"}}, {"Squeeze", 1, 2, []string{"axes"}},
	{"Concat", 1, 3, []string{"axis"}}, {"Slice", 1, 5, []string{"starts", "ends", "axes"}},
	{"Cast", 1, 1, []string{"to"}}, {"MaxPool", 1, 1, []string{"kernel_shape"}}, {"Transpose", 1, 1, nil},
}

// genAttrTypes gives each attribute its usual type; the fuzzer may still
// pick another.
var genAttrTypes = map[string]int{
	"alpha": 2, "beta": 2, "epsilon": 2, "momentum": 2, "value": 4, "value_float": 2, "ratio": 2,
	"kernel_shape": 1, "strides": 1, "pads": 1, "dilations": 1, "axes": 1, "starts": 1, "ends": 1, "value_ints": 1,
	"value_floats": 5, "auto_pad": 3, "mode": 3, "approximate": 3,
}

func genTensor(r *byteReader, name string) *onnxpb.TensorProto {
	rank := r.n(5)
	dims := make([]int, rank)
	n := 1
	for k := range dims {
		dims[k] = r.n(5)
		n *= dims[k]
	}
	switch r.n(4) {
	case 0:
		v := make([]int64, n)
		for k := range v {
			v[k] = r.small()
		}
		return int64T(name, dims, v...)
	case 1:
		v := make([]float64, n)
		for k := range v {
			v[k] = float64(r.small()) / 2
		}
		return doubleT(name, dims, v...)
	default:
		v := make([]float32, n)
		for k := range v {
			v[k] = float32(r.small()) / 2
		}
		if r.n(2) == 0 {
			return rawFloatT(name, dims, v...)
		}
		return floatT(name, dims, v...)
	}
}

func genAttr(r *byteReader, name string) *onnxpb.AttributeProto {
	typ, ok := genAttrTypes[name]
	if !ok {
		typ = 0
	}
	if r.n(8) == 0 {
		typ = r.n(6)
	}
	switch typ {
	case 0:
		return aInt(name, r.small())
	case 1:
		v := make([]int64, []int{0, 1, 2, 2, 4, 4, 8, 3}[r.n(8)])
		for k := range v {
			v[k] = r.small()
		}
		return aInts(name, v...)
	case 2:
		return aFloat(name, float32(r.small())/2)
	case 3:
		return aString(name, []string{"NOTSET", "VALID", "SAME_UPPER", "constant", "reflect", "none", "tanh"}[r.n(7)])
	case 4:
		return aTensor(name, genTensor(r, ""))
	}
	return &onnxpb.AttributeProto{Name: proto.String(name), Type: onnxpb.AttributeProto_FLOATS.Enum(), Floats: []float32{1, 2}}
}

// genModel builds a model from r: an input, a few initializers and nodes
// wired to earlier values.
func genModel(r *byteReader) *onnxpb.ModelProto {
	opsets := []int64{13, 11, 18, 20, 7, 9, 12}
	dims := []any{[]any{"N", 0, 1, "N", "N", -1, 8}[r.n(7)]}
	for range 1 + r.n(3) {
		dims = append(dims, 1+r.n(5))
	}
	m := newModel(opsets[r.n(len(opsets))], dims...)
	consts, computed := []string{}, []string{"x"}
	for k := range r.n(5) {
		name := fmt.Sprintf("c%d", k)
		m.init(genTensor(r, name))
		consts = append(consts, name)
	}
	pick := func(from []string) string {
		if len(from) == 0 {
			return ""
		}
		return from[len(from)-1-r.n(len(from))]
	}
	for k := range 1 + r.n(8) {
		spec := genOps[r.n(len(genOps))]
		var in []string
		for j := range spec.lo + r.n(spec.hi-spec.lo+1) {
			switch {
			case r.n(16) == 0:
				in = append(in, "")
			case j == 0 && r.n(4) != 0:
				in = append(in, pick(computed))
			case r.n(3) == 0:
				in = append(in, pick(computed))
			case len(consts) == 0:
				in = append(in, pick(computed))
			default:
				in = append(in, pick(consts))
			}
		}
		out := []string{fmt.Sprintf("v%d", k)}
		if r.n(4) == 0 {
			out = append(out, fmt.Sprintf("m%d", k))
		}
		var attrs []*onnxpb.AttributeProto
		if len(spec.attrs) > 0 {
			for range r.n(len(spec.attrs) + 1) {
				attrs = append(attrs, genAttr(r, spec.attrs[r.n(len(spec.attrs))]))
			}
		}
		m.node(spec.op, in, out, attrs...)
		if spec.op == "Constant" || spec.op == "Shape" {
			consts = append(consts, out[0])
		} else {
			computed = append(computed, out[0])
		}
	}
	m.output = pick(computed)
	return m.proto()
}

// TestFuzzCorpusReachesGraphs checks that the committed corpora still
// reach the checks that follow a successful import: after a change to the
// importer or to genModel, a corpus of refusals only would fuzz the
// refusal paths and nothing else.
func TestFuzzCorpusReachesGraphs(t *testing.T) {
	// Today 46 of FuzzImport's 474 committed seeds import (the rest are
	// mutations the fuzzer kept for new refusal paths) and 331 of
	// FuzzGeneratedModel's 1,500; the floors leave room for pruning.
	for target, floor := range map[string]int{"FuzzImport": 20, "FuzzGeneratedModel": 150} {
		entries, err := fuzzcorpus.Read(".", target)
		if err != nil {
			t.Fatal(err)
		}
		imported := 0
		for _, e := range entries {
			data, ok := e.Values[0].([]byte)
			if len(e.Values) != 1 || !ok {
				t.Fatalf("%s: want one []byte", e.Path)
			}
			if target == "FuzzGeneratedModel" {
				data = mustMarshal(t, genModel(&byteReader{b: data}))
			}
			if g, err := Import(data, Options{}); err == nil && g.Validate() == nil {
				imported++
			}
		}
		t.Logf("%s: %d of %d seeds import", target, imported, len(entries))
		if imported < floor {
			t.Errorf("%s: only %d of %d committed seeds import", target, imported, len(entries))
		}
	}
}
