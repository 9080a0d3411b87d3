package onnx

import (
	"math"
	"slices"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/nn"
	"github.com/fheserve/fheserve/nn/onnx/onnxpb"
)

// convert translates the current node.
func (im *importer) convert() error {
	n := im.node
	if d := n.GetDomain(); d != "" && d != "ai.onnx" {
		return im.unsupported("operator of domain %q; only the default ONNX domain is supported (%s)", clip(d), supported)
	}
	if len(n.GetOutput()) == 0 {
		return im.invalid("node has no output")
	}
	op := n.GetOpType()
	switch op {
	case "Constant":
		return im.constantOp()
	case "Identity":
		return im.identity()
	case "Dropout":
		return im.dropout()
	case "Cast":
		return im.cast()
	case "Shape":
		return im.shapeOp()
	case "Gather":
		return im.gather()
	case "Unsqueeze", "Squeeze":
		return im.squeeze(op == "Unsqueeze")
	case "Concat":
		return im.concat()
	case "Slice":
		return im.slice()
	case "Reshape":
		return im.reshape()
	case "Flatten":
		return im.flatten()
	case "Gemm":
		return im.gemm()
	case "MatMul":
		return im.matmul()
	case "Conv":
		return im.conv()
	case "AveragePool":
		return im.avgPool()
	case "GlobalAveragePool":
		return im.globalAvgPool()
	case "Pad":
		return im.pad()
	case "BatchNormalization":
		return im.batchNorm()
	case "Add", "Sub", "Mul", "Div":
		return im.binary(op)
	case "Pow":
		return im.pow()
	case "Relu", "Sigmoid", "Tanh", "Softplus", "Gelu":
		return im.activation(op)
	case "Erf":
		return im.erf()
	case "Softmax":
		return im.softmax()
	}
	return im.refuse(op)
}

// refuse explains why an operator is not supported, and what to use
// instead where there is something.
func (im *importer) refuse(op string) error {
	switch op {
	case "MaxPool":
		return im.unsupported("unsupported operator; use AveragePool instead (%s)", supported)
	case "GlobalMaxPool":
		return im.unsupported("unsupported operator; use GlobalAveragePool instead (%s)", supported)
	case "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "HardSigmoid", "HardSwish", "Mish",
		"ThresholdedRelu", "Softsign", "Exp", "Log", "Abs", "Clip", "Sqrt", "Reciprocal", "Sin", "Cos":
		return im.unsupported("unsupported activation; %s", supportedActivations)
	case "ReduceMean", "LayerNormalization", "InstanceNormalization", "GroupNormalization", "LpNormalization", "MeanVarianceNormalization":
		return im.unsupported("unsupported operator%s: a normalization over each sample's own values (LayerNorm, InstanceNorm, GroupNorm) "+
			"divides by a standard deviation computed from the encrypted input, which CKKS cannot evaluate accurately; "+
			"use BatchNorm (BatchNorm1d, BatchNorm2d), whose statistics are fixed after training and fold into the layer before it", layerNormHint(op))
	case "LogSoftmax":
		return im.unsupported("unsupported operator; use Softmax as the last operator instead (%s)", supported)
	default:
		return im.unsupported("unsupported operator (%s)", supported)
	}
}

// layerNormHint says what a ReduceMean probably is: PyTorch exports
// LayerNorm below opset 17 as ReduceMean, Sub, Pow, ReduceMean, Add,
// Sqrt, Div.
func layerNormHint(op string) string {
	if op == "ReduceMean" {
		return " (PyTorch exports LayerNorm as ReduceMean, Sub, Pow, ReduceMean, Add, Sqrt, Div)"
	}
	return ""
}

// ---- inputs, outputs and attributes ----

// arity checks the number of inputs and that only output 0 is used.
func (im *importer) arity(lo, hi int) error {
	n := im.node
	if k := len(n.GetInput()); k < lo || k > hi {
		if lo == hi {
			return im.invalid("has %d inputs, want %d", k, lo)
		}
		return im.invalid("has %d inputs, want %d to %d", k, lo, hi)
	}
	if n.GetOutput()[0] == "" {
		return im.invalid("output 0 has no name")
	}
	for k, o := range n.GetOutput()[1:] {
		if o != "" && im.uses[o] > 0 {
			return im.unsupported("output %d (%q) is used; only the first output is supported", k+1, clip(o))
		}
	}
	return nil
}

// in returns input k, which must be present.
func (im *importer) in(k int) (*value, error) {
	v, ok, err := im.optIn(k)
	if err == nil && !ok {
		err = im.invalid("input %d is missing", k)
	}
	return v, err
}

// optIn returns input k, or false if it is omitted.
func (im *importer) optIn(k int) (*value, bool, error) {
	ins := im.node.GetInput()
	if k >= len(ins) || ins[k] == "" {
		return nil, false, nil
	}
	v, ok := im.vals[ins[k]]
	if !ok {
		return nil, false, im.invalid("input %q is not defined before the node", clip(ins[k]))
	}
	return v, true, nil
}

// optConstIn returns input k, which must be a constant, or nil if it is
// omitted.
func (im *importer) optConstIn(k int, what string) (*tensor, error) {
	if _, ok, err := im.optIn(k); err != nil || !ok {
		return nil, err
	}
	return im.constIn(k, what)
}

// computedIn returns input k, which must be computed from the model input.
func (im *importer) computedIn(k int) (*value, error) {
	v, err := im.in(k)
	if err != nil {
		return nil, err
	}
	switch v.kind {
	case computed:
		return v, nil
	case constant:
		return nil, im.unsupported("input %d is a constant; this operator is supported only on values computed from the model input", k)
	}
	return nil, geluErr("%s", im.where())
}

// constIn returns input k, which must be a constant.
func (im *importer) constIn(k int, what string) (*tensor, error) {
	v, err := im.in(k)
	if err != nil {
		return nil, err
	}
	if v.kind != constant {
		return nil, im.unsupported("the %s (input %d) must be a constant initializer, not computed", what, k)
	}
	return v.c, nil
}

// constInts returns input k as integers.
func (im *importer) constInts(k int, what string) ([]int64, error) {
	t, err := im.constIn(k, what)
	if err != nil {
		return nil, err
	}
	v, err := t.ints()
	if err != nil {
		return nil, im.invalid("the %s: %s", what, fheserve.ErrorMessage(err))
	}
	return v, nil
}

func (im *importer) set(v *value) error { return im.define(im.node.GetOutput()[0], v) }

func (im *importer) setConst(t *tensor) error {
	return im.set(&value{kind: constant, c: t})
}

// emit appends an nn node and defines output 0 as its value.
func (im *importer) emit(opType string, op nn.Op, inputs ...int) error {
	v, err := im.emitValue(opType, op, inputs...)
	if err != nil {
		return err
	}
	return im.set(v)
}

func (im *importer) emitValue(opType string, op nn.Op, inputs ...int) (*value, error) {
	shapes := make([]nn.Shape, len(inputs))
	for k, v := range inputs {
		shapes[k] = im.g.ValueShape(v)
	}
	s, err := nn.InferShape(op, shapes)
	if err != nil {
		return nil, fheserve.Errorf(fheserve.ErrorCode(err), "%s: %s", im.where(), fheserve.ErrorMessage(err))
	}
	im.g.Nodes = append(im.g.Nodes, &nn.Node{Name: im.node.GetName(), OpType: opType, Op: op, Inputs: inputs, Shape: s})
	return &value{kind: computed, id: len(im.g.Nodes), shape: s}, nil
}

// attrs checks that the node has only the given attributes, once each.
func (im *importer) attrs(allowed ...string) error {
	seen := make(map[string]bool)
	for _, a := range im.node.GetAttribute() {
		name := a.GetName()
		if seen[name] {
			return im.invalid("attribute %q is given twice", clip(name))
		}
		seen[name] = true
		if !slices.Contains(allowed, name) {
			return im.unsupported("attribute %q is not supported", clip(name))
		}
		if a.GetRefAttrName() != "" {
			return im.unsupported("attribute %q refers to a function attribute", clip(name))
		}
	}
	return nil
}

func (im *importer) attr(name string, typ onnxpb.AttributeProto_AttributeType) (*onnxpb.AttributeProto, error) {
	for _, a := range im.node.GetAttribute() {
		if a.GetName() != name {
			continue
		}
		if t := a.GetType(); t != typ && t != onnxpb.AttributeProto_UNDEFINED {
			return nil, im.invalid("attribute %q has type %s, want %s", clip(name), t, typ)
		}
		return a, nil
	}
	return nil, nil
}

func (im *importer) intAttr(name string, def int64) (int64, error) {
	a, err := im.attr(name, onnxpb.AttributeProto_INT)
	if a == nil || err != nil {
		return def, err
	}
	return a.GetI(), nil
}

func (im *importer) intsAttr(name string) ([]int64, bool, error) {
	a, err := im.attr(name, onnxpb.AttributeProto_INTS)
	if a == nil || err != nil {
		return nil, false, err
	}
	return a.GetInts(), true, nil
}

func (im *importer) floatAttr(name string, def float64) (float64, error) {
	a, err := im.attr(name, onnxpb.AttributeProto_FLOAT)
	if a == nil || err != nil {
		return def, err
	}
	return float64(a.GetF()), nil
}

func (im *importer) stringAttr(name, def string) (string, error) {
	a, err := im.attr(name, onnxpb.AttributeProto_STRING)
	if a == nil || err != nil {
		return def, err
	}
	return string(a.GetS()), nil
}

// sizes converts attribute integers to ints in [lo, nn.MaxSize].
func (im *importer) sizes(name string, v []int64, want int, lo int64) ([]int, error) {
	if len(v) != want {
		return nil, im.unsupported("attribute %q has %d values, want %d", name, len(v), want)
	}
	out := make([]int, len(v))
	for k, x := range v {
		if x < lo || x > nn.MaxSize {
			return nil, im.unsupported("attribute %q value %d out of range", name, x)
		}
		out[k] = int(x)
	}
	return out, nil
}

// ---- constants and shape computations ----

func (im *importer) constantOp() error {
	if err := im.attrs("value", "value_float", "value_floats", "value_int", "value_ints", "sparse_value", "value_string", "value_strings"); err != nil {
		return err
	}
	if err := im.arity(0, 0); err != nil {
		return err
	}
	attrs := im.node.GetAttribute()
	if len(attrs) != 1 {
		return im.invalid("Constant needs exactly one value attribute")
	}
	a := attrs[0]
	switch a.GetName() {
	case "value":
		if a.GetT() == nil {
			return im.invalid("attribute \"value\" holds no tensor")
		}
		t, err := parseTensor(a.GetT())
		if err != nil {
			return fheserve.Errorf(fheserve.ErrorCode(err), "%s: %s", im.where(), fheserve.ErrorMessage(err))
		}
		return im.setConst(t)
	case "value_float":
		return im.setConst(floatTensor([]int{}, []float64{float64(a.GetF())}))
	case "value_floats":
		f := make([]float64, len(a.GetFloats()))
		for k, v := range a.GetFloats() {
			f[k] = float64(v)
		}
		return im.setConst(floatTensor([]int{len(f)}, f))
	case "value_int", "value_ints":
		v := slices.Clone(a.GetInts())
		dims := []int{len(v)}
		if a.GetName() == "value_int" {
			v, dims = []int64{a.GetI()}, []int{}
		}
		if slices.Contains(v, batchDim) {
			return im.invalid("%s holds the reserved integer %d", a.GetName(), int64(batchDim))
		}
		return im.setConst(intTensor(dims, v))
	}
	return im.unsupported("Constant with %q is not supported; only numeric tensors", a.GetName())
}

func (im *importer) identity() error {
	if err := im.attrs(); err != nil {
		return err
	}
	if err := im.arity(1, 1); err != nil {
		return err
	}
	v, err := im.in(0)
	if err != nil {
		return err
	}
	return im.set(v)
}

// dropout is the identity at inference.
func (im *importer) dropout() error {
	// is_test (opset < 7) is ignored: the model is only ever used for inference.
	if err := im.attrs("ratio", "seed", "is_test"); err != nil {
		return err
	}
	if err := im.arity(1, 3); err != nil {
		return err
	}
	t, err := im.optConstIn(2, "training_mode")
	if err != nil {
		return err
	}
	if t != nil {
		if v, ok := scalar(t); !ok || v != 0 {
			return im.unsupported("Dropout in training mode")
		}
	}
	v, err := im.in(0)
	if err != nil {
		return err
	}
	return im.set(v)
}

func (im *importer) cast() error {
	if err := im.attrs("to", "saturate"); err != nil {
		return err
	}
	if err := im.arity(1, 1); err != nil {
		return err
	}
	to, err := im.intAttr("to", 0)
	if err != nil {
		return err
	}
	v, err := im.in(0)
	if err != nil {
		return err
	}
	toFloat := false
	switch onnxpb.TensorProto_DataType(to) {
	case onnxpb.TensorProto_FLOAT, onnxpb.TensorProto_DOUBLE, onnxpb.TensorProto_FLOAT16:
		toFloat = true
	case onnxpb.TensorProto_INT64, onnxpb.TensorProto_INT32:
	default:
		return im.unsupported("Cast to %s; only casts to floating-point or integer types are supported", typeName(int32(to)))
	}
	if v.kind != constant {
		if !toFloat {
			return im.unsupported("Cast of a computed value to an integer type")
		}
		return im.set(v) // values are float64 throughout
	}
	t := v.c
	switch {
	case toFloat:
		f, err := im.floatsOf(t)
		if err != nil {
			return err
		}
		return im.setConst(floatTensor(t.dims, f))
	case t.isInt:
		return im.setConst(t)
	}
	if err := im.charge(len(t.f)); err != nil {
		return err
	}
	out := make([]int64, len(t.f))
	for k, x := range t.f {
		if math.IsNaN(x) || math.Abs(x) >= 1<<62 {
			return im.unsupported("Cast of %v to an integer", x)
		}
		out[k] = int64(x) // truncation toward zero
	}
	return im.setConst(intTensor(t.dims, out))
}

// wrap prefixes err with the current node.
func (im *importer) wrap(err error) error {
	return fheserve.Errorf(fheserve.ErrorCode(err), "%s: %s", im.where(), fheserve.ErrorMessage(err))
}

// shapeOp returns the shape of its input; the batch size is batchDim.
func (im *importer) shapeOp() error {
	if err := im.attrs("start", "end"); err != nil {
		return err
	}
	if err := im.arity(1, 1); err != nil {
		return err
	}
	v, err := im.in(0)
	if err != nil {
		return err
	}
	var dims []int64
	switch v.kind {
	case constant:
		if err := im.charge(len(v.c.dims)); err != nil {
			return err
		}
		for _, d := range v.c.dims {
			dims = append(dims, int64(d))
		}
	case computed:
		dims = append(dims, batchDim)
		for _, d := range v.shape {
			dims = append(dims, int64(d))
		}
	default:
		return geluErr("%s", im.where())
	}
	r := int64(len(dims))
	clamp := func(x int64) int64 {
		if x < 0 {
			x += r
		}
		return min(max(x, 0), r)
	}
	start, err := im.intAttr("start", 0)
	if err != nil {
		return err
	}
	end, err := im.intAttr("end", r)
	if err != nil {
		return err
	}
	start, end = clamp(start), clamp(end)
	end = max(end, start)
	return im.setConst(intTensor([]int{int(end - start)}, slices.Clone(dims[start:end])))
}

func (im *importer) gather() error {
	if err := im.attrs("axis"); err != nil {
		return err
	}
	if err := im.arity(2, 2); err != nil {
		return err
	}
	data, err := im.constIn(0, "data")
	if err != nil {
		return err
	}
	idxT, err := im.constIn(1, "indices")
	if err != nil {
		return err
	}
	idx, err := idxT.ints()
	if err != nil {
		return im.wrap(err)
	}
	ax, err := im.intAttr("axis", 0)
	if err != nil {
		return err
	}
	axis, ok := normAxis(ax, len(data.dims))
	if !ok {
		return im.invalid("axis %d out of range for rank %d", ax, len(data.dims))
	}
	dims := slices.Concat(data.dims[:axis], idxT.dims, data.dims[axis+1:])
	n, ok := dimsSize(dims)
	if !ok {
		return im.invalid("result too large")
	}
	if err := im.charge(2 * n); err != nil {
		return err
	}
	outer, _ := dimsSize(data.dims[:axis])
	inner, _ := dimsSize(data.dims[axis+1:])
	d := data.dims[axis]
	flat := make([]int, 0, n)
	for o := range outer {
		for _, k := range idx {
			if k < 0 {
				k += int64(d)
			}
			if k < 0 || k >= int64(d) {
				return im.invalid("index out of range [0, %d)", d)
			}
			for j := range inner {
				flat = append(flat, (o*d+int(k))*inner+j)
			}
		}
	}
	return im.setConst(data.take(dims, flat))
}

// axesOf reads the axes of Squeeze and Unsqueeze from the attribute (opset
// < 13) or the second input.
func (im *importer) axesOf() ([]int64, bool, error) {
	if a, ok, err := im.intsAttr("axes"); err != nil || ok {
		return a, ok, err
	}
	if _, ok, err := im.optIn(1); err != nil || !ok {
		return nil, false, err
	}
	a, err := im.constInts(1, "axes")
	return a, true, err
}

// squeeze removes (or, for Unsqueeze, inserts) axes of size 1.
func (im *importer) squeeze(unsqueeze bool) error {
	if err := im.attrs("axes"); err != nil {
		return err
	}
	if err := im.arity(1, 2); err != nil {
		return err
	}
	v, err := im.in(0)
	if err != nil {
		return err
	}
	axes, given, err := im.axesOf()
	if err != nil {
		return err
	}
	var dims []int
	switch v.kind {
	case constant:
		dims = v.c.dims
	case computed:
		dims = append([]int{1}, v.shape...) // the batch axis must stay first
	default:
		return geluErr("%s", im.where())
	}
	r := len(dims)
	if unsqueeze {
		r += len(axes)
	}
	if len(axes) > r {
		return im.invalid("%d axes for rank %d", len(axes), r)
	}
	if err := im.charge(2 * r); err != nil {
		return err
	}
	mark := make([]bool, r)
	for _, a := range axes {
		k, ok := normAxis(a, r)
		if !ok || mark[k] {
			return im.invalid("axis %d out of range or repeated", a)
		}
		mark[k] = true
	}
	out, err := im.squeezedDims(dims, mark, given, unsqueeze)
	if err != nil {
		return err
	}
	if v.kind == constant {
		return im.setConst(v.c.reshaped(out))
	}
	if (unsqueeze && mark[0]) || (!unsqueeze && (mark[0] || !given)) {
		return im.unsupported("%s of the batch axis", im.node.GetOpType())
	}
	return im.reshapeTo(v, out[1:])
}

// squeezedDims is dims with the marked axes dropped (all of size 1 when
// no axes are given) or, for Unsqueeze, with axes of size 1 inserted
// where marked.
func (im *importer) squeezedDims(dims []int, mark []bool, given, unsqueeze bool) ([]int, error) {
	var out []int
	if unsqueeze {
		if !given {
			return nil, im.invalid("Unsqueeze needs axes")
		}
		src := 0
		for k := range mark {
			if mark[k] {
				out = append(out, 1)
			} else {
				out = append(out, dims[src])
				src++
			}
		}
		return out, nil
	}
	for k, d := range dims {
		drop := mark[k] || !given && d == 1
		if mark[k] && d != 1 {
			return nil, im.invalid("cannot squeeze axis %d of size %d", k, d)
		}
		if !drop {
			out = append(out, d)
		}
	}
	return out, nil
}

func (im *importer) concat() error {
	if err := im.attrs("axis"); err != nil {
		return err
	}
	if err := im.arity(1, math.MaxInt); err != nil {
		return err
	}
	ts := make([]*tensor, len(im.node.GetInput()))
	isInt := true
	for k := range ts {
		t, err := im.constIn(k, "input")
		if err != nil {
			return err
		}
		ts[k] = t
		isInt = isInt && t.isInt
	}
	dims, axis, err := im.concatDims(ts)
	if err != nil {
		return err
	}
	n, ok := dimsSize(dims)
	if !ok {
		return im.invalid("result too large")
	}
	if err := im.charge(2 * n); err != nil {
		return err
	}
	outer, _ := dimsSize(dims[:axis])
	inner, _ := dimsSize(dims[axis+1:])
	out := &tensor{dims: dims, isInt: isInt}
	fs := make([][]float64, len(ts))
	for k, t := range ts {
		if !isInt {
			if fs[k], err = t.floats(); err != nil { // within the charge above
				return im.wrap(err)
			}
		}
	}
	for o := range outer {
		for k, t := range ts {
			lo, hi := o*t.dims[axis]*inner, (o+1)*t.dims[axis]*inner
			if isInt {
				out.i = append(out.i, t.i[lo:hi]...)
			} else {
				out.f = append(out.f, fs[k][lo:hi]...)
			}
		}
	}
	return im.setConst(out)
}

// concatDims returns the dims of the concatenation of ts along the axis
// attribute, and the axis.
func (im *importer) concatDims(ts []*tensor) ([]int, int, error) {
	ax, err := im.intAttr("axis", 0)
	if err != nil {
		return nil, 0, err
	}
	r := len(ts[0].dims)
	axis, ok := normAxis(ax, r)
	if !ok {
		return nil, 0, im.invalid("axis %d out of range for rank %d", ax, r)
	}
	dims := slices.Clone(ts[0].dims)
	dims[axis] = 0
	for _, t := range ts {
		if len(t.dims) != r {
			return nil, 0, im.invalid("inputs have different ranks")
		}
		for k := range r {
			if k != axis && t.dims[k] != dims[k] {
				return nil, 0, im.invalid("inputs have incompatible shapes")
			}
		}
		dims[axis] += t.dims[axis]
	}
	return dims, axis, nil
}

// slice folds Slice on constants.
func (im *importer) slice() error {
	if err := im.attrs("starts", "ends", "axes"); err != nil {
		return err
	}
	if err := im.arity(1, 5); err != nil {
		return err
	}
	data, err := im.constIn(0, "data")
	if err != nil {
		return err
	}
	r := len(data.dims)
	starts, ends, axes, steps, err := im.sliceArgs(r)
	if err != nil {
		return err
	}
	lo, step, cnt := make([]int, r), make([]int, r), slices.Clone(data.dims)
	for k := range r {
		step[k] = 1
	}
	seen := make([]bool, r)
	for j, a := range axes {
		k, ok := normAxis(a, r)
		if !ok || seen[k] {
			return im.invalid("axis %d out of range or repeated", a)
		}
		seen[k] = true
		if steps[j] == 0 {
			return im.invalid("step 0")
		}
		lo[k], step[k], cnt[k] = sliceAxis(starts[j], ends[j], steps[j], int64(data.dims[k]))
	}
	n, _ := dimsSize(cnt)
	if err := im.charge(n); err != nil {
		return err
	}
	return im.setConst(data.take(cnt, sliceOffsets(data.dims, lo, step, cnt, n)))
}

// sliceArgs reads the starts, ends, axes and steps of a Slice (attributes
// in opset 1, inputs since), defaulting the axes to the first ones and the
// steps to 1.
func (im *importer) sliceArgs(r int) (starts, ends, axes, steps []int64, err error) {
	read := func(k int, name string) ([]int64, bool, error) {
		if a, ok, err := im.intsAttr(name); err != nil || ok {
			return a, ok, err
		}
		if _, ok, err := im.optIn(k); err != nil || !ok {
			return nil, false, err
		}
		v, err := im.constInts(k, name)
		return v, true, err
	}
	var hasAxes, hasSteps bool
	if starts, _, err = read(1, "starts"); err != nil {
		return nil, nil, nil, nil, err
	}
	if ends, _, err = read(2, "ends"); err != nil {
		return nil, nil, nil, nil, err
	}
	if axes, hasAxes, err = read(3, "axes"); err != nil {
		return nil, nil, nil, nil, err
	}
	if steps, hasSteps, err = read(4, "steps"); err != nil {
		return nil, nil, nil, nil, err
	}
	if len(starts) > r {
		return nil, nil, nil, nil, im.invalid("%d starts for rank %d", len(starts), r)
	}
	if !hasAxes {
		for k := range starts {
			axes = append(axes, int64(k))
		}
	}
	if !hasSteps {
		steps = make([]int64, len(starts))
		for k := range steps {
			steps[k] = 1
		}
	}
	if len(ends) != len(starts) || len(axes) != len(starts) || len(steps) != len(starts) {
		return nil, nil, nil, nil, im.invalid("starts, ends, axes and steps differ in length")
	}
	return starts, ends, axes, steps, nil
}

// sliceAxis clamps a slice s:e:st (st not 0) of an axis of length d as
// ONNX does, and returns its first index, step and element count.
func sliceAxis(s, e, st, d int64) (lo, step, cnt int) {
	// A step longer than the axis takes one element at most; clamping
	// it keeps the arithmetic below from overflowing.
	st = max(min(st, d+1), -d-1)
	if s < 0 {
		s += d
	}
	if e < 0 {
		e += d
	}
	var c int64
	if st > 0 {
		s, e = min(max(s, 0), d), min(max(e, 0), d)
		if e > s {
			c = (e-s-1)/st + 1
		}
	} else {
		s, e = min(max(s, 0), d-1), min(max(e, -1), d-1)
		if s > e {
			c = (s-e-1)/(-st) + 1
		}
	}
	return int(s), int(st), int(c)
}

// sliceOffsets lists the row-major offsets in a tensor of dims of the n
// elements of a slice: per axis, cnt elements from lo by step.
func sliceOffsets(dims, lo, step, cnt []int, n int) []int {
	r := len(dims)
	strides := make([]int, r)
	s := 1
	for k := r - 1; k >= 0; k-- {
		strides[k] = s
		s *= dims[k]
	}
	flat := make([]int, 0, n)
	ctr := make([]int, r)
	for range n {
		off := 0
		for k := range r {
			off += (lo[k] + ctr[k]*step[k]) * strides[k]
		}
		flat = append(flat, off)
		for k := r - 1; k >= 0; k-- {
			if ctr[k]++; ctr[k] < cnt[k] {
				break
			}
			ctr[k] = 0
		}
	}
	return flat
}

// targetShape resolves a Reshape target against dims (ONNX semantics with
// allowzero = 0): 0 copies the input axis, -1 is inferred.
func (im *importer) targetShape(t []int64, dims []int, size int) ([]int, error) {
	out := make([]int, len(t))
	infer := -1
	known := 1
	for k, d := range t {
		switch {
		case d == 0:
			if k >= len(dims) {
				return nil, im.invalid("target shape %v copies axis %d, which the input lacks", t, k)
			}
			out[k] = dims[k]
		case d == -1:
			if infer >= 0 {
				return nil, im.invalid("target shape %v has two -1", t)
			}
			infer = k
			continue
		case d < 0 || d > maxElems:
			return nil, im.unsupported("target shape %v has dimension %d", t, d)
		default:
			out[k] = int(d)
		}
		if out[k] == 0 || known > maxElems/out[k] {
			return nil, im.unsupported("target shape %v is empty or too large", t)
		}
		known *= out[k]
	}
	if infer >= 0 {
		if size%known != 0 {
			return nil, im.invalid("cannot reshape %d elements to %v", size, t)
		}
		out[infer] = size / known
	}
	if n, ok := dimsSize(out); !ok || n != size {
		return nil, im.invalid("cannot reshape %v to %v", dims, t)
	}
	return out, nil
}

func (im *importer) reshape() error {
	if err := im.attrs("allowzero"); err != nil {
		return err
	}
	if err := im.arity(2, 2); err != nil {
		return err
	}
	if z, err := im.intAttr("allowzero", 0); err != nil || z != 0 {
		if err == nil {
			err = im.unsupported("allowzero=1")
		}
		return err
	}
	v, err := im.in(0)
	if err != nil {
		return err
	}
	t, err := im.constInts(1, "target shape")
	if err != nil {
		return err
	}
	if err := im.charge(2 * len(t)); err != nil {
		return err
	}
	switch v.kind {
	case constant:
		if slices.Contains(t, batchDim) {
			return im.unsupported("Reshape of a constant to a shape that depends on the batch size")
		}
		dims, err := im.targetShape(t, v.c.dims, v.c.size())
		if err != nil {
			return err
		}
		return im.setConst(v.c.reshaped(dims))
	case computed:
		return im.reshapeSamples(v, t)
	}
	return geluErr("%s", im.where())
}

// reshapeSamples reshapes computed v to the target t, whose first axis
// must stay the batch axis.
func (im *importer) reshapeSamples(v *value, t []int64) error {
	if len(t) < 2 {
		return im.unsupported("Reshape to %v; the target must keep the batch axis first and have at least one more", t)
	}
	switch t[0] {
	case batchDim, 0, 1:
	case -1:
		if slices.Contains(t[1:], -1) {
			return im.unsupported("Reshape to %v; only one axis may be -1 and the first must be the batch", t)
		}
	default:
		return im.unsupported("Reshape to %v; the first axis must stay the batch axis (use -1, 0 or x.size(0))", t)
	}
	rest := slices.Clone(t[1:])
	if slices.Contains(rest, batchDim) {
		return im.unsupported("Reshape to %v; the batch size may only appear first", t)
	}
	if t[0] == -1 {
		// With the batch inferred, every other axis must be given, and
		// they must hold one sample exactly.
		n := 1
		for _, d := range rest {
			if d <= 0 || d > nn.MaxSize || n*int(d) > nn.MaxSize {
				return im.unsupported("Reshape to %v with an inferred batch needs every other axis given", t)
			}
			n *= int(d)
		}
		if n != v.shape.Size() {
			return im.unsupported("Reshape to %v changes the batch size; a sample has %d values", t, v.shape.Size())
		}
	}
	// Axis k of rest is ONNX axis k+1, so 0 there copies per-sample axis k.
	shape, err := im.targetShape(rest, v.shape, v.shape.Size())
	if err != nil {
		return err
	}
	return im.reshapeTo(v, shape)
}

// reshapeTo gives computed v a new per-sample shape.
func (im *importer) reshapeTo(v *value, shape []int) error {
	if len(shape) == 0 {
		shape = []int{1}
	}
	if nn.Shape(shape).Equal(v.shape) {
		return im.set(v)
	}
	return im.emit(im.node.GetOpType(), &nn.Reshape{To: shape}, v.id)
}

func (im *importer) flatten() error {
	if err := im.attrs("axis"); err != nil {
		return err
	}
	if err := im.arity(1, 1); err != nil {
		return err
	}
	v, err := im.in(0)
	if err != nil {
		return err
	}
	ax, err := im.intAttr("axis", 1)
	if err != nil {
		return err
	}
	switch v.kind {
	case constant:
		r := len(v.c.dims)
		if ax < 0 {
			ax += int64(r)
		}
		if ax < 0 || ax > int64(r) {
			return im.invalid("axis %d out of range", ax)
		}
		a, _ := dimsSize(v.c.dims[:ax])
		b, _ := dimsSize(v.c.dims[ax:])
		return im.setConst(v.c.reshaped([]int{a, b}))
	case computed:
	default:
		return geluErr("%s", im.where())
	}
	if ax < 0 {
		ax += int64(len(v.shape) + 1)
	}
	if ax != 1 {
		return im.unsupported("Flatten with axis %d; only axis 1 (keep the batch axis) is supported", ax)
	}
	return im.reshapeTo(v, []int{v.shape.Size()})
}
