// Package onnx imports ONNX models into nn graphs.
//
// The importer accepts the subset of ONNX that fheserve can evaluate under
// encryption and refuses everything else at load time with one
// fheserve.EUNSUPPORTED error that names the node, its operator and what is
// supported instead. Constant subgraphs (such as the Shape, Gather,
// Unsqueeze, Concat chain PyTorch emits for x.view(x.size(0), -1)) are
// folded, BatchNormalization and other per-channel affine maps are folded
// into the preceding Conv or Gemm, and the SiLU and GELU subgraphs PyTorch
// exports become single activations.
//
// The model must have one input whose first axis is the batch (dynamic or
// 1); the graph describes one sample, so that axis is dropped.
package onnx

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/nn"
	"github.com/fheserve/fheserve/nn/onnx/onnxpb"
)

// DefaultMaxBytes is the model size limit when Options.MaxBytes is 0.
const DefaultMaxBytes = 256 << 20

// Options configures an import.
type Options struct {
	// MaxBytes is the largest model file accepted; 0 means DefaultMaxBytes.
	MaxBytes int64
}

func (o Options) maxBytes() int64 {
	if o.MaxBytes <= 0 {
		return DefaultMaxBytes
	}
	return o.MaxBytes
}

// supported lists what the importer accepts, for error messages.
const supported = "supported: Gemm, MatMul, Conv (1-D or 2-D), AveragePool, GlobalAveragePool, Pad, BatchNormalization, " +
	"Add, Sub, Mul, Div, Pow, Relu, Sigmoid, Tanh, Softplus, Gelu, Softmax (last operator only), " +
	"Flatten, Reshape, Identity, Dropout, Constant, x*Sigmoid(x) as SiLU, x*0.5*(1+Erf(x/sqrt(2))) as GELU, " +
	"and Shape, Gather, Unsqueeze, Squeeze, Concat, Slice, Cast on constant shapes"

// supportedActivations lists the activations, for error messages.
const supportedActivations = "supported activations: Relu, Sigmoid, Tanh, Softplus, " +
	"SiLU as x*Sigmoid(x), GELU as Gelu or x*0.5*(1+Erf(x/sqrt(2)))"

// ImportFile reads and imports the model at path. The graph is named after
// the file when the model does not name it.
func ImportFile(path string, opts Options) (*nn.Graph, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fheserve.Errorf(fheserve.ENOTFOUND, "model file %q not found", path)
	}
	if err != nil {
		return nil, fheserve.Errorf(fheserve.EINVALID, "cannot open model file %q: %v", path, err)
	}
	defer f.Close()
	limit := opts.maxBytes()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fheserve.Errorf(fheserve.EINVALID, "cannot read model file %q: %v", path, err)
	}
	g, err := Import(data, opts)
	if err != nil {
		return nil, err
	}
	if g.Name == "" {
		g.Name = strings.TrimSuffix(filepath.Base(path), ".onnx")
	}
	return g, nil
}

// Import converts a serialized ONNX ModelProto into a graph for one sample.
// The result passes Validate.
func Import(data []byte, opts Options) (*nn.Graph, error) {
	if limit := opts.maxBytes(); int64(len(data)) > limit {
		return nil, fheserve.Errorf(fheserve.ETOOLARGE, "model is larger than the limit of %d bytes", limit)
	}
	var m onnxpb.ModelProto
	if err := proto.Unmarshal(data, &m); err != nil {
		return nil, fheserve.Errorf(fheserve.EINVALID, "malformed ONNX model: %v", err)
	}
	im := &importer{
		vals:   make(map[string]*value),
		uses:   make(map[string]int),
		budget: 1<<24 + 2*len(data),
	}
	if err := im.run(&m); err != nil {
		return nil, err
	}
	g := im.g
	optimize(g, &im.budget)
	if err := g.Validate(); err != nil {
		return nil, fheserve.Errorf(fheserve.EINTERNAL, "imported graph is inconsistent: %v", err)
	}
	return g, nil
}

// kind says what an ONNX value is during import.
type kind int

const (
	computed kind = iota // a value of the nn graph
	constant             // a tensor known at load time
	// erfPart and onePlusErfPart are the inside of an exported GELU:
	// Erf(x/sqrt(2)) and factor*(1 + Erf(x/sqrt(2))). They have no nn node.
	erfPart
	onePlusErfPart
)

type value struct {
	kind   kind
	c      *tensor  // constant
	id     int      // computed: nn value id; GELU parts: the id of x
	shape  nn.Shape // per-sample shape of computed values and GELU parts
	factor float64  // onePlusErfPart
}

type importer struct {
	g      *nn.Graph
	opset  int64
	vals   map[string]*value
	uses   map[string]int // node inputs and graph outputs reading each name
	output string
	budget int // elements that expansion and folding may still allocate

	node *onnxpb.NodeProto // the node being converted, for messages
	idx  int
}

func (im *importer) run(m *onnxpb.ModelProto) error {
	gp := m.GetGraph()
	if gp == nil {
		return fheserve.Errorf(fheserve.EINVALID, "ONNX model has no graph")
	}
	for _, o := range m.GetOpsetImport() {
		if d := o.GetDomain(); d == "" || d == "ai.onnx" {
			im.opset = o.GetVersion()
		}
	}
	if im.opset < 1 {
		return fheserve.Errorf(fheserve.EINVALID, "ONNX model does not import an opset of the default domain")
	}
	im.g = &nn.Graph{Name: gp.GetName()}
	if len(gp.GetSparseInitializer()) > 0 {
		return fheserve.Errorf(fheserve.EUNSUPPORTED, "sparse initializers are not supported")
	}
	for _, t := range gp.GetInitializer() {
		c, err := parseTensor(t)
		if err != nil {
			return err
		}
		if err := im.define(t.GetName(), &value{kind: constant, c: c}); err != nil {
			return err
		}
	}
	if err := im.input(gp); err != nil {
		return err
	}
	if len(gp.GetOutput()) != 1 {
		return fheserve.Errorf(fheserve.EUNSUPPORTED, "the model has %d outputs; exactly one is supported", len(gp.GetOutput()))
	}
	im.output = gp.GetOutput()[0].GetName()
	im.uses[im.output]++
	for _, n := range gp.GetNode() {
		for _, in := range n.GetInput() {
			im.uses[in]++
		}
	}
	for i, n := range gp.GetNode() {
		im.node, im.idx = n, i
		if err := im.convert(); err != nil {
			return err
		}
	}
	im.node = nil
	out, ok := im.vals[im.output]
	switch {
	case !ok:
		return fheserve.Errorf(fheserve.EINVALID, "graph output %q is not computed by any node", clip(im.output))
	case out.kind == constant:
		return fheserve.Errorf(fheserve.EUNSUPPORTED, "graph output %q is a constant that does not depend on the input", clip(im.output))
	case out.kind != computed:
		return geluErr("graph output %q", clip(im.output))
	}
	im.g.Output = out.id
	return nil
}

// input defines the one graph input that is not an initializer.
func (im *importer) input(gp *onnxpb.GraphProto) error {
	var in *onnxpb.ValueInfoProto
	for _, vi := range gp.GetInput() {
		if _, ok := im.vals[vi.GetName()]; ok {
			continue // an initializer listed as an input (older exporters)
		}
		if in != nil {
			return fheserve.Errorf(fheserve.EUNSUPPORTED, "the model has more than one input (%q and %q); exactly one is supported",
				clip(in.GetName()), clip(vi.GetName()))
		}
		in = vi
	}
	if in == nil {
		return fheserve.Errorf(fheserve.EUNSUPPORTED, "the model has no input")
	}
	name := clip(in.GetName())
	tt := in.GetType().GetTensorType()
	if tt == nil {
		return fheserve.Errorf(fheserve.EUNSUPPORTED, "input %q is not a tensor", name)
	}
	switch onnxpb.TensorProto_DataType(tt.GetElemType()) {
	case onnxpb.TensorProto_FLOAT, onnxpb.TensorProto_DOUBLE, onnxpb.TensorProto_FLOAT16:
	default:
		return fheserve.Errorf(fheserve.EUNSUPPORTED, "input %q has element type %s; only floating-point inputs are supported",
			name, typeName(tt.GetElemType()))
	}
	dims := tt.GetShape().GetDim()
	if len(dims) < 2 {
		return fheserve.Errorf(fheserve.EUNSUPPORTED, "input %q has %d axes; it needs a batch axis and at least one more (such as [N, F] or [N, C, H, W])",
			name, len(dims))
	}
	if b := dims[0]; b.GetDimParam() == "" && b.GetDimValue() != 0 && b.GetDimValue() != -1 && b.GetDimValue() != 1 {
		return fheserve.Errorf(fheserve.EUNSUPPORTED, "input %q has a fixed batch size of %d; export with a dynamic batch axis or batch size 1",
			name, b.GetDimValue())
	}
	shape := make(nn.Shape, len(dims)-1)
	for i, d := range dims[1:] {
		if d.GetDimParam() != "" {
			return fheserve.Errorf(fheserve.EUNSUPPORTED, "input %q axis %d is symbolic (%q); only the batch axis may be dynamic",
				name, i+1, clip(d.GetDimParam()))
		}
		v := d.GetDimValue()
		if v < 1 || v > nn.MaxSize {
			return fheserve.Errorf(fheserve.EUNSUPPORTED, "input %q axis %d has size %d; export with a fixed input size", name, i+1, v)
		}
		shape[i] = int(v)
	}
	if err := nn.CheckShape(shape); err != nil {
		return fheserve.Errorf(fheserve.EUNSUPPORTED, "input %q: %s", name, fheserve.ErrorMessage(err))
	}
	im.g.Input = shape
	return im.define(in.GetName(), &value{kind: computed, id: 0, shape: shape})
}

func (im *importer) define(name string, v *value) error {
	if name == "" {
		return fheserve.Errorf(fheserve.EINVALID, "%s: a value has an empty name", im.where())
	}
	if _, ok := im.vals[name]; ok {
		return fheserve.Errorf(fheserve.EINVALID, "%s: value %q is defined twice", im.where(), clip(name))
	}
	im.vals[name] = v
	return nil
}

// where names the current node, or the graph before nodes are converted.
func (im *importer) where() string {
	if im.node == nil {
		return "graph"
	}
	if name := im.node.GetName(); name != "" {
		return fmt.Sprintf("node %q (%s)", clip(name), clip(im.node.GetOpType()))
	}
	return fmt.Sprintf("node %d (%s)", im.idx, clip(im.node.GetOpType()))
}

// clip shortens names for messages.
func clip(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}

func (im *importer) unsupported(format string, args ...any) error {
	return fheserve.Errorf(fheserve.EUNSUPPORTED, "%s: %s", im.where(), fmt.Sprintf(format, args...))
}

func (im *importer) invalid(format string, args ...any) error {
	return fheserve.Errorf(fheserve.EINVALID, "%s: %s", im.where(), fmt.Sprintf(format, args...))
}

// geluErr is the error for an Erf outside the GELU pattern.
func geluErr(format string, args ...any) error {
	return fheserve.Errorf(fheserve.EUNSUPPORTED, "%s uses Erf outside GELU; Erf is only supported as x*0.5*(1+Erf(x/sqrt(2)))",
		fmt.Sprintf(format, args...))
}

// charge takes n elements from the allocation budget.
func (im *importer) charge(n int) error {
	if n < 0 || n > im.budget {
		return fheserve.Errorf(fheserve.ETOOLARGE, "%s: the model needs too much memory to import", im.where())
	}
	im.budget -= n
	return nil
}

func typeName(t int32) string {
	if s, ok := onnxpb.TensorProto_DataType_name[t]; ok {
		return s
	}
	return fmt.Sprint(t)
}
