package onnx

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/fheserve/fheserve/nn"
)

// rank2In returns input 0, which must be computed with shape [N, K].
func (im *importer) rank2In() (*value, error) {
	x, err := im.computedIn(0)
	if err != nil {
		return nil, err
	}
	if len(x.shape) != 1 {
		return nil, im.unsupported("input has shape %s; only 2-D inputs [N, K] are supported (add a Flatten)", batchShape(x.shape))
	}
	return x, nil
}

// batchShape writes a per-sample shape with the batch axis, as ONNX
// does: [N, 1, 30].
func batchShape(s nn.Shape) string {
	var b strings.Builder
	b.WriteString("[N")
	for _, d := range s {
		fmt.Fprintf(&b, ", %d", d)
	}
	b.WriteString("]")
	return b.String()
}

// imageIn returns input 0, which must be computed with shape [N, C, H, W].
func (im *importer) imageIn() (*value, error) {
	x, err := im.computedIn(0)
	if err != nil {
		return nil, err
	}
	if len(x.shape) != 3 {
		return nil, im.unsupported("input has shape %s; only 2-D images [N, C, H, W] are supported", batchShape(x.shape))
	}
	return x, nil
}

// floatsOf converts a constant, naming it in errors. Converting integers
// allocates, so it is charged to the budget.
func (im *importer) floatsOf(t *tensor) ([]float64, error) {
	if t.isInt {
		if err := im.charge(t.size()); err != nil {
			return nil, err
		}
	}
	f, err := t.floats()
	if err != nil {
		return nil, im.wrap(err)
	}
	return f, nil
}

// rowVector reads a constant that broadcasts to [N, n] as n values.
func (im *importer) rowVector(t *tensor, n int, what string) ([]float64, error) {
	d := t.dims
	last := 1
	if len(d) > 0 {
		last = d[len(d)-1]
	}
	if len(d) > 2 || len(d) == 2 && d[0] != 1 || last != 1 && last != n {
		return nil, im.unsupported("the %s has shape %v; want [%d], [1, %d] or a scalar", what, d, n, n)
	}
	if err := im.charge(n); err != nil {
		return nil, err
	}
	f, err := im.floatsOf(t)
	if err != nil {
		return nil, err
	}
	if len(f) == n {
		return slices.Clone(f), nil
	}
	out := make([]float64, n)
	for k := range out {
		out[k] = f[0]
	}
	return out, nil
}

func (im *importer) gemm() error {
	if err := im.attrs("alpha", "beta", "transA", "transB", "broadcast"); err != nil {
		return err
	}
	if err := im.arity(2, 3); err != nil {
		return err
	}
	x, err := im.rank2In()
	if err != nil {
		return err
	}
	b, err := im.constIn(1, "weight matrix B")
	if err != nil {
		return err
	}
	alpha, beta, transB, err := im.gemmAttrs()
	if err != nil {
		return err
	}
	if len(b.dims) != 2 {
		return im.unsupported("weight matrix B has shape %v; it must be 2-D", b.dims)
	}
	in, out := b.dims[0], b.dims[1]
	if transB != 0 {
		in, out = out, in
	}
	if in != x.shape[0] {
		return im.invalid("weight matrix B has shape %v (transB=%d), but the input has %d features", b.dims, transB, x.shape[0])
	}
	w, err := im.gemmWeights(b, in, out, transB != 0, alpha)
	if err != nil {
		return err
	}
	d := &nn.Dense{In: in, Out: out, W: w}
	c, err := im.optConstIn(2, "bias C")
	if err != nil {
		return err
	}
	if c != nil {
		if d.B, err = im.rowVector(c, out, "bias C"); err != nil {
			return err
		}
		for k := range d.B {
			d.B[k] *= beta
		}
	}
	return im.emit("Gemm", d, x.id)
}

// gemmAttrs reads a Gemm's alpha, beta and transB, and refuses transA.
func (im *importer) gemmAttrs() (alpha, beta float64, transB int64, err error) {
	if alpha, err = im.floatAttr("alpha", 1); err != nil {
		return 0, 0, 0, err
	}
	if beta, err = im.floatAttr("beta", 1); err != nil {
		return 0, 0, 0, err
	}
	transA, err := im.intAttr("transA", 0)
	if err != nil {
		return 0, 0, 0, err
	}
	if transB, err = im.intAttr("transB", 0); err != nil {
		return 0, 0, 0, err
	}
	if transA != 0 {
		return 0, 0, 0, im.unsupported("transA=1; only transA=0 is supported")
	}
	return alpha, beta, transB, nil
}

// gemmWeights returns alpha times the weight matrix b as [out, in],
// row-major: b itself when it is stored so and alpha is 1.
func (im *importer) gemmWeights(b *tensor, in, out int, transB bool, alpha float64) ([]float64, error) {
	bf, err := im.floatsOf(b)
	if err != nil {
		return nil, err
	}
	if transB && alpha == 1 {
		return bf, nil // shared with the constant
	}
	if err := im.charge(len(bf)); err != nil {
		return nil, err
	}
	w := make([]float64, len(bf))
	for o := range out {
		for i := range in {
			if transB {
				w[o*in+i] = alpha * bf[o*in+i]
			} else {
				w[o*in+i] = alpha * bf[i*out+o]
			}
		}
	}
	return w, nil
}

func (im *importer) matmul() error {
	if err := im.attrs(); err != nil {
		return err
	}
	if err := im.arity(2, 2); err != nil {
		return err
	}
	if a, err := im.in(0); err != nil || a.kind == constant {
		if err == nil {
			err = im.unsupported("MatMul is supported only as x @ W with a constant weight matrix W second")
		}
		return err
	}
	x, err := im.rank2In()
	if err != nil {
		return err
	}
	b, err := im.constIn(1, "weight matrix")
	if err != nil {
		return err
	}
	if len(b.dims) != 2 || b.dims[0] != x.shape[0] {
		return im.unsupported("weight matrix has shape %v; want [%d, out] for input [N %d]", b.dims, x.shape[0], x.shape[0])
	}
	bf, err := im.floatsOf(b)
	if err != nil {
		return err
	}
	in, out := b.dims[0], b.dims[1]
	if err := im.charge(len(bf)); err != nil {
		return err
	}
	w := make([]float64, len(bf))
	for i := range in {
		for o := range out {
			w[o*in+i] = bf[i*out+o]
		}
	}
	return im.emit("MatMul", &nn.Dense{In: in, Out: out, W: w}, x.id)
}

// window reads the kernel-window attributes shared by Conv and
// AveragePool over spatial (1 or 2) axes, as 2-D values: a 1-D window
// over L is a 2-D one over 1 x L. pads are top, left, bottom, right;
// strides and dilations are [H, W].
func (im *importer) window(spatial int) (pads, strides, dilations []int, err error) {
	one := func(name string, lo int64) ([]int, error) {
		v := []int{1, 1}
		a, ok, err := im.intsAttr(name)
		if err != nil || !ok {
			return v, err
		}
		got, err := im.sizes(name, a, spatial, lo)
		if err != nil {
			return nil, err
		}
		copy(v[2-spatial:], got)
		return v, nil
	}
	if dilations, err = one("dilations", 1); err != nil {
		return nil, nil, nil, err
	}
	if strides, err = one("strides", 1); err != nil {
		return nil, nil, nil, err
	}
	autoPad, err := im.stringAttr("auto_pad", "NOTSET")
	if err != nil {
		return nil, nil, nil, err
	}
	p, hasPads, err := im.intsAttr("pads")
	if err != nil {
		return nil, nil, nil, err
	}
	pads = []int{0, 0, 0, 0}
	switch autoPad {
	case "NOTSET", "":
		if hasPads {
			got, err := im.sizes("pads", p, 2*spatial, 0)
			if err != nil {
				return nil, nil, nil, err
			}
			if spatial == 1 { // begin, end of L
				got = []int{0, got[0], 0, got[1]}
			}
			pads = got
		}
	case "VALID":
		if slices.ContainsFunc(p, func(x int64) bool { return x != 0 }) {
			return nil, nil, nil, im.invalid("auto_pad VALID with nonzero pads %v", p)
		}
	default:
		return nil, nil, nil, im.unsupported("auto_pad %q; only NOTSET with explicit pads, or VALID, is supported", clip(autoPad))
	}
	return pads, strides, dilations, nil
}

// conv imports a 2-D convolution, or a 1-D one (PyTorch's Conv1d, input
// [N, C, L]) as a 2-D one over [N, C, 1, L] between two reshapes, which
// move no data. Dilated kernels become kernels with zeros between their
// taps.
func (im *importer) conv() error {
	if err := im.attrs("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"); err != nil {
		return err
	}
	if err := im.arity(2, 3); err != nil {
		return err
	}
	x, err := im.computedIn(0)
	if err != nil {
		return err
	}
	spatial := len(x.shape) - 1
	if spatial != 1 && spatial != 2 {
		return im.unsupported("input has shape %s; only Conv1d over [N, C, L] and Conv2d over [N, C, H, W] are supported", batchShape(x.shape))
	}
	w, err := im.constIn(1, "weights")
	if err != nil {
		return err
	}
	if len(w.dims) != spatial+2 {
		want := map[int]string{1: "[out, in, k] for a Conv1d", 2: "[out, in, kH, kW] for a Conv2d"}[spatial]
		return im.unsupported("weights have shape %v; input %s needs weights %s", w.dims, batchShape(x.shape), want)
	}
	if g, err := im.intAttr("group", 1); err != nil || g != 1 {
		if err == nil {
			err = im.unsupported("grouped convolution (group=%d); only group=1 is supported", g)
		}
		return err
	}
	pads, strides, dilations, err := im.window(spatial)
	if err != nil {
		return err
	}
	wf, kh, kw, err := im.convKernels(w, spatial, dilations)
	if err != nil {
		return err
	}
	cv := &nn.Conv{
		InC: w.dims[1], OutC: w.dims[0], KH: kh, KW: kw,
		StrideH: strides[0], StrideW: strides[1],
		PadT: pads[0], PadL: pads[1], PadB: pads[2], PadR: pads[3],
		W: wf,
	}
	b, err := im.optConstIn(2, "bias")
	if err != nil {
		return err
	}
	if b != nil {
		if len(b.dims) != 1 || b.dims[0] != cv.OutC {
			return im.invalid("bias has shape %v; want [%d]", b.dims, cv.OutC)
		}
		if cv.B, err = im.floatsOf(b); err != nil {
			return err
		}
	}
	if spatial == 2 {
		return im.emit("Conv", cv, x.id)
	}
	return im.conv1d(cv, x)
}

// convKernels returns the kernels of weights w (checked against the
// kernel_shape attribute), dilated, as 2-D kernels of kh x kw.
func (im *importer) convKernels(w *tensor, spatial int, dilations []int) (wf []float64, kh, kw int, err error) {
	kernel := w.dims[2:]
	if ks, ok, err := im.intsAttr("kernel_shape"); err != nil || ok && !slices.EqualFunc(ks, kernel, func(a int64, b int) bool { return a == int64(b) }) {
		if err == nil {
			err = im.invalid("kernel_shape %v does not match weights of shape %v", ks, w.dims)
		}
		return nil, 0, 0, err
	}
	kh, kw = 1, kernel[len(kernel)-1]
	if spatial == 2 {
		kh = kernel[0]
	}
	if wf, err = im.floatsOf(w); err != nil {
		return nil, 0, 0, err
	}
	return im.dilate(wf, w.dims[0]*w.dims[1], kh, kw, dilations)
}

// conv1d emits cv, a Conv1d as a 2-D convolution, on x [C, L] between
// reshapes to [C, 1, L] and back.
func (im *importer) conv1d(cv *nn.Conv, x *value) error {
	in, err := im.emitValue("Reshape", &nn.Reshape{To: nn.Shape{x.shape[0], 1, x.shape[1]}}, x.id)
	if err != nil {
		return err
	}
	y, err := im.emitValue("Conv", cv, in.id)
	if err != nil {
		return err
	}
	return im.emit("Reshape", &nn.Reshape{To: nn.Shape{y.shape[0], y.shape[2]}}, y.id)
}

// dilate spreads the taps of n kernels of kh x kw by dilations [dH, dW],
// with zeros between them, and returns the new kernels and their size.
func (im *importer) dilate(w []float64, n, kh, kw int, dilations []int) ([]float64, int, int, error) {
	dh, dw := dilations[0], dilations[1]
	if dh == 1 && dw == 1 {
		return w, kh, kw, nil
	}
	kh2, kw2 := (kh-1)*dh+1, (kw-1)*dw+1
	if kh2 > nn.MaxSize || kw2 > nn.MaxSize {
		return nil, 0, 0, im.unsupported("dilations %v make a kernel of %d x %d", dilations, kh2, kw2)
	}
	if err := im.charge(n * kh2 * kw2); err != nil {
		return nil, 0, 0, err
	}
	out := make([]float64, n*kh2*kw2)
	for k := range n {
		for a := range kh {
			for b := range kw {
				out[(k*kh2+a*dh)*kw2+b*dw] = w[(k*kh+a)*kw+b]
			}
		}
	}
	return out, kh2, kw2, nil
}

func (im *importer) avgPool() error {
	if err := im.attrs("auto_pad", "ceil_mode", "count_include_pad", "kernel_shape", "pads", "strides", "dilations"); err != nil {
		return err
	}
	if err := im.arity(1, 1); err != nil {
		return err
	}
	x, err := im.imageIn()
	if err != nil {
		return err
	}
	ks, ok, err := im.intsAttr("kernel_shape")
	if err != nil {
		return err
	}
	if !ok {
		return im.invalid("kernel_shape is missing")
	}
	k, err := im.sizes("kernel_shape", ks, 2, 1)
	if err != nil {
		return err
	}
	if c, err := im.intAttr("ceil_mode", 0); err != nil || c != 0 {
		if err == nil {
			err = im.unsupported("ceil_mode=%d; only ceil_mode=0 is supported", c)
		}
		return err
	}
	cip, err := im.intAttr("count_include_pad", 0)
	if err != nil {
		return err
	}
	pads, strides, dilations, err := im.window(2)
	if err != nil {
		return err
	}
	if dilations[0] != 1 || dilations[1] != 1 {
		return im.unsupported("dilations %v; only dilation 1 is supported", dilations)
	}
	return im.emit("AveragePool", &nn.AvgPool{
		KH: k[0], KW: k[1], StrideH: strides[0], StrideW: strides[1],
		PadT: pads[0], PadL: pads[1], PadB: pads[2], PadR: pads[3],
		CountIncludePad: cip != 0,
	}, x.id)
}

func (im *importer) globalAvgPool() error {
	if err := im.attrs(); err != nil {
		return err
	}
	if err := im.arity(1, 1); err != nil {
		return err
	}
	x, err := im.imageIn()
	if err != nil {
		return err
	}
	h, w := x.shape[1], x.shape[2]
	return im.emit("GlobalAveragePool", &nn.AvgPool{KH: h, KW: w, StrideH: 1, StrideW: 1}, x.id)
}

func (im *importer) pad() error {
	if err := im.attrs("mode", "pads", "value"); err != nil {
		return err
	}
	if err := im.arity(1, 4); err != nil {
		return err
	}
	x, err := im.imageIn()
	if err != nil {
		return err
	}
	if mode, err := im.stringAttr("mode", "constant"); err != nil || mode != "constant" {
		if err == nil {
			err = im.unsupported("mode %q; only constant zero padding is supported", clip(mode))
		}
		return err
	}
	pads, ok, err := im.intsAttr("pads")
	if err != nil {
		return err
	}
	if !ok { // opset >= 11: pads is an input
		if pads, err = im.constInts(1, "pads"); err != nil {
			return err
		}
	}
	if err := im.zeroPadValue(); err != nil {
		return err
	}
	lo, hi, err := im.padAmounts(pads)
	if err != nil {
		return err
	}
	if lo == [4]int64{} && hi == [4]int64{} {
		return im.set(x)
	}
	return im.emit("Pad", &nn.Pad{PadT: int(lo[2]), PadL: int(lo[3]), PadB: int(hi[2]), PadR: int(hi[3])}, x.id)
}

// zeroPadValue refuses a Pad whose value (attribute before opset 11,
// input since) is not zero.
func (im *importer) zeroPadValue() error {
	value, err := im.floatAttr("value", 0)
	if err != nil {
		return err
	}
	c, err := im.optConstIn(2, "constant_value")
	if err != nil {
		return err
	}
	if c != nil {
		if c.size() > 1 {
			return im.invalid("constant_value has %d values", c.size())
		}
		if v, ok := scalar(c); ok {
			value = v
		} else if c.size() == 1 {
			return im.unsupported("constant_value depends on the batch size")
		}
	}
	if value != 0 {
		return im.unsupported("pad value %v; only zero padding is supported", value)
	}
	return nil
}

// padAmounts returns the padding before and after each NCHW axis, of H
// and W only.
func (im *importer) padAmounts(pads []int64) (lo, hi [4]int64, err error) {
	axes := []int64{0, 1, 2, 3}
	if _, ok, err := im.optIn(3); err != nil || ok {
		if err != nil {
			return lo, hi, err
		}
		if axes, err = im.constInts(3, "axes"); err != nil {
			return lo, hi, err
		}
	}
	if len(pads) != 2*len(axes) {
		return lo, hi, im.invalid("%d pads for %d axes", len(pads), len(axes))
	}
	seen := [4]bool{}
	for j, a := range axes {
		k, ok := normAxis(a, 4)
		if !ok || seen[k] {
			return lo, hi, im.invalid("axis %d out of range or repeated", a)
		}
		seen[k] = true
		lo[k], hi[k] = pads[j], pads[j+len(axes)]
	}
	if lo[0] != 0 || hi[0] != 0 || lo[1] != 0 || hi[1] != 0 {
		return lo, hi, im.unsupported("pads %v change the batch or channel axis; only H and W may be padded", pads)
	}
	for k := 2; k < 4; k++ {
		if lo[k] < 0 || hi[k] < 0 || lo[k] > nn.MaxSize || hi[k] > nn.MaxSize {
			return lo, hi, im.unsupported("pads %v; only non-negative padding is supported", pads)
		}
	}
	return lo, hi, nil
}

func (im *importer) batchNorm() error {
	if err := im.attrs("epsilon", "momentum", "training_mode", "spatial", "is_test", "consumed_inputs"); err != nil {
		return err
	}
	if err := im.arity(5, 5); err != nil {
		return err
	}
	x, err := im.computedIn(0)
	if err != nil {
		return err
	}
	if t, err := im.intAttr("training_mode", 0); err != nil || t != 0 {
		if err == nil {
			err = im.unsupported("training_mode=1; export the model in eval mode")
		}
		return err
	}
	if s, err := im.intAttr("spatial", 1); err != nil || s != 1 {
		if err == nil {
			err = im.unsupported("spatial=0; only spatial batch normalization is supported")
		}
		return err
	}
	eps, err := im.floatAttr("epsilon", 1e-5)
	if err != nil {
		return err
	}
	c := x.shape[0]
	if err := im.charge(2 * c); err != nil {
		return err
	}
	var p [4][]float64 // scale, bias, mean, var
	for k, what := range []string{"scale", "bias", "mean", "variance"} {
		t, err := im.constIn(k+1, what)
		if err != nil {
			return err
		}
		if len(t.dims) != 1 || t.dims[0] != c {
			return im.invalid("%s has shape %v; want [%d]", what, t.dims, c)
		}
		if p[k], err = im.floatsOf(t); err != nil {
			return err
		}
	}
	scale, shift := make([]float64, c), make([]float64, c)
	for k := range c {
		v := p[3][k] + eps
		if !(v > 0) || math.IsInf(v, 1) {
			return im.invalid("variance %v of channel %d is not positive", p[3][k], k)
		}
		scale[k] = p[0][k] / math.Sqrt(v)
		shift[k] = p[1][k] - p[2][k]*scale[k]
	}
	return im.emit("BatchNormalization", &nn.Affine{Scale: scale, Shift: shift}, x.id)
}

// affineVec turns a constant that broadcasts against a computed value of
// per-sample shape ps into an Affine vector: a scalar, one value per
// channel, or one value per element.
func (im *importer) affineVec(c *tensor, ps nn.Shape) ([]float64, error) {
	f, err := im.floatsOf(c)
	if err != nil {
		return nil, err
	}
	r := len(ps) + 1
	if len(c.dims) > r {
		return nil, im.unsupported("constant of shape %v has more axes than the value %s", c.dims, batchShape(ps))
	}
	full := make([]int, r)
	for j := range r {
		full[j] = dimAt(c.dims, j-(r-len(c.dims)))
	}
	if full[0] != 1 {
		return nil, im.unsupported("constant of shape %v varies along the batch axis", c.dims)
	}
	perChannel := true
	for j := 1; j < r; j++ {
		if full[j] != 1 && full[j] != ps[j-1] {
			return nil, im.unsupported("constant of shape %v does not broadcast to %s", c.dims, batchShape(ps))
		}
		perChannel = perChannel && (j == 1 || full[j] == 1)
	}
	switch {
	case len(f) == 1:
		return []float64{f[0]}, nil
	case perChannel:
		if err := im.charge(len(f)); err != nil {
			return nil, err
		}
		return slices.Clone(f), nil
	}
	size := ps.Size()
	if err := im.charge(2 * size); err != nil {
		return nil, err
	}
	out := make([]float64, size)
	for k, j := range broadcastIndex(full[1:], ps) {
		out[k] = f[j]
	}
	return out, nil
}

func (im *importer) binary(op string) error {
	// broadcast (opset < 7) is accepted: without axis it means NumPy broadcasting.
	if err := im.attrs("broadcast"); err != nil {
		return err
	}
	if err := im.arity(2, 2); err != nil {
		return err
	}
	a, err := im.in(0)
	if err != nil {
		return err
	}
	b, err := im.in(1)
	if err != nil {
		return err
	}
	switch {
	case a.kind == constant && b.kind == constant:
		return im.foldBinary(op, a.c, b.c)
	case a.kind == constant:
		return im.withConst(op, b, a.c, true)
	case b.kind == constant:
		return im.withConst(op, a, b.c, false)
	}
	return im.twoComputed(op, a, b)
}

// scalar returns the value of a one-element constant.
func scalar(t *tensor) (float64, bool) {
	if t.size() != 1 {
		return 0, false
	}
	f, err := t.floats()
	if err != nil {
		return 0, false
	}
	return f[0], true
}

// scalarIs reports whether t is a single value within 1e-6 of want.
func scalarIs(t *tensor, want float64) bool {
	v, ok := scalar(t)
	return ok && math.Abs(v-want) <= 1e-6
}

// withConst converts x op c, or c op x when reversed, into an Affine.
func (im *importer) withConst(op string, x *value, c *tensor, reversed bool) error {
	switch x.kind {
	case erfPart:
		if op == "Add" && scalarIs(c, 1) {
			return im.set(&value{kind: onePlusErfPart, id: x.id, shape: x.shape, factor: 1})
		}
		return geluErr("%s", im.where())
	case onePlusErfPart:
		s, ok := scalar(c)
		switch {
		case !ok:
		case op == "Mul":
			return im.set(&value{kind: onePlusErfPart, id: x.id, shape: x.shape, factor: x.factor * s})
		case op == "Div" && !reversed && s != 0:
			return im.set(&value{kind: onePlusErfPart, id: x.id, shape: x.shape, factor: x.factor / s})
		}
		return geluErr("%s", im.where())
	}
	vec, err := im.affineVec(c, x.shape)
	if err != nil {
		return err
	}
	a := &nn.Affine{Scale: []float64{1}, Shift: []float64{0}}
	switch op {
	case "Add":
		a.Shift = vec
	case "Sub":
		if reversed {
			a.Scale, a.Shift = []float64{-1}, vec
			break
		}
		for k := range vec {
			vec[k] = -vec[k]
		}
		a.Shift = vec
	case "Mul":
		a.Scale = vec
	case "Div":
		if reversed {
			return im.unsupported("division by a computed value; only division by a constant is supported")
		}
		for k, v := range vec {
			if v == 0 {
				return im.invalid("division by zero")
			}
			vec[k] = 1 / v
		}
		a.Scale = vec
	}
	return im.emit(op, a, x.id)
}

// producer returns the nn node computing v, or nil for the graph input.
func (im *importer) producer(v *value) *nn.Node {
	if v.kind != computed || v.id == 0 {
		return nil
	}
	return im.g.Nodes[v.id-1]
}

// scaleOf reports whether v = s*x for an nn value x (an Affine with a
// scalar scale and zero shift) and returns s and x.
func (im *importer) scaleOf(v *value) (s float64, x int, ok bool) {
	n := im.producer(v)
	if n == nil {
		return 0, 0, false
	}
	a, isAffine := n.Op.(*nn.Affine)
	if !isAffine || len(a.Scale) != 1 || len(a.Shift) != 1 || a.Shift[0] != 0 {
		return 0, 0, false
	}
	return a.Scale[0], n.Inputs[0], true
}

// sigmoidOf returns x if v = Sigmoid(x), else -1.
func (im *importer) sigmoidOf(v *value) int {
	if n := im.producer(v); n != nil {
		if a, ok := n.Op.(*nn.Activation); ok && a.Func == nn.ActSigmoid {
			return n.Inputs[0]
		}
	}
	return -1
}

func (im *importer) twoComputed(op string, a, b *value) error {
	if op == "Mul" && a.kind == computed && b.kind == onePlusErfPart {
		return im.gelu(a, b)
	}
	if op == "Mul" && b.kind == computed && a.kind == onePlusErfPart {
		return im.gelu(b, a)
	}
	if a.kind != computed || b.kind != computed {
		return geluErr("%s", im.where())
	}
	if op == "Div" {
		return im.unsupported("division by a computed value; only division by a constant is supported")
	}
	if op == "Mul" {
		if im.sigmoidOf(b) == a.id {
			return im.emit("SiLU", &nn.Activation{Func: nn.ActSiLU}, a.id)
		}
		if im.sigmoidOf(a) == b.id {
			return im.emit("SiLU", &nn.Activation{Func: nn.ActSiLU}, b.id)
		}
	}
	if !a.shape.Equal(b.shape) {
		return im.unsupported("%s of computed values of shapes %s and %s; both must have the same shape", op, batchShape(a.shape), batchShape(b.shape))
	}
	switch op {
	case "Add":
		return im.emit(op, &nn.Combine{A: 1, B: 1}, a.id, b.id)
	case "Sub":
		return im.emit(op, &nn.Combine{A: 1, B: -1}, a.id, b.id)
	}
	return im.emit(op, &nn.Mul{}, a.id, b.id)
}

// gelu completes the GELU pattern a * factor*(1 + Erf(x/sqrt(2))), where a
// is x or k*x, as 2*k*factor*GELU(x).
func (im *importer) gelu(a, p *value) error {
	k := 1.0
	if a.id != p.id {
		s, x, ok := im.scaleOf(a)
		if !ok || x != p.id {
			return geluErr("%s", im.where())
		}
		k = s
	}
	g, err := im.emitValue("GELU", &nn.Activation{Func: nn.ActGELU}, p.id)
	if err != nil {
		return err
	}
	if f := 2 * k * p.factor; f != 1 {
		return im.emit("GELU", &nn.Affine{Scale: []float64{f}, Shift: []float64{0}}, g.id)
	}
	return im.set(g)
}

func (im *importer) erf() error {
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
	if v.kind == constant {
		return im.foldUnary(v.c, math.Erf)
	}
	s, x, ok := im.scaleOf(v)
	if !ok || math.Abs(s-1/math.Sqrt2) > 1e-4 {
		return geluErr("%s", im.where())
	}
	return im.set(&value{kind: erfPart, id: x, shape: v.shape})
}

func (im *importer) pow() error {
	if err := im.attrs(); err != nil {
		return err
	}
	if err := im.arity(2, 2); err != nil {
		return err
	}
	a, err := im.in(0)
	if err != nil {
		return err
	}
	if b, err := im.in(1); err == nil && a.kind == constant && b.kind == constant {
		return im.foldBinary("Pow", a.c, b.c)
	}
	x, err := im.computedIn(0)
	if err != nil {
		return err
	}
	e, err := im.constIn(1, "exponent")
	if err != nil {
		return err
	}
	f, ok := scalar(e)
	if !ok || f != math.Trunc(f) || f < 1 || f > 8 {
		return im.unsupported("only constant integer exponents from 1 to 8 are supported")
	}
	n := int(f)
	if n == 1 {
		return im.set(x)
	}
	coeffs := make([]float64, n+1)
	coeffs[n] = 1
	return im.emit("Pow", &nn.Poly{Coeffs: coeffs}, x.id)
}

func (im *importer) activation(op string) error {
	allowed := []string{}
	if op == "Gelu" {
		allowed = []string{"approximate"}
	}
	if err := im.attrs(allowed...); err != nil {
		return err
	}
	if err := im.arity(1, 1); err != nil {
		return err
	}
	fn := map[string]string{"Relu": nn.ActReLU, "Sigmoid": nn.ActSigmoid, "Tanh": nn.ActTanh, "Softplus": nn.ActSoftplus, "Gelu": nn.ActGELU}[op]
	if op == "Gelu" {
		if a, err := im.stringAttr("approximate", "none"); err != nil || a != "none" {
			if err == nil {
				err = im.unsupported("approximate=%q; only the exact erf form of GELU is supported", clip(a))
			}
			return err
		}
	}
	v, err := im.in(0)
	if err != nil {
		return err
	}
	if v.kind == constant {
		f, _ := nn.ActivationFunc(fn)
		return im.foldUnary(v.c, f)
	}
	x, err := im.computedIn(0)
	if err != nil {
		return err
	}
	return im.emit(op, &nn.Activation{Func: fn}, x.id)
}

func (im *importer) softmax() error {
	if err := im.attrs("axis"); err != nil {
		return err
	}
	if err := im.arity(1, 1); err != nil {
		return err
	}
	x, err := im.computedIn(0)
	if err != nil {
		return err
	}
	if out := im.node.GetOutput()[0]; out != im.output || im.uses[out] != 1 {
		return im.unsupported("Softmax is only supported as the last operator, where the client applies it after decryption")
	}
	def := int64(-1)
	if im.opset < 13 {
		def = 1
	}
	ax, err := im.intAttr("axis", def)
	if err != nil {
		return err
	}
	axis, ok := normAxis(ax, len(x.shape)+1)
	if !ok {
		return im.invalid("axis %d out of range", ax)
	}
	// Before opset 13 Softmax normalizes axes axis..end together; since then
	// only the one axis. Either way it must cover every non-trivial axis of a
	// sample, as the client normalizes the whole output.
	whole := axis > 0
	for k, d := range x.shape {
		covered := k+1 == axis || im.opset < 13 && k+1 >= axis
		whole = whole && (covered || d == 1)
	}
	if !whole {
		return im.unsupported("Softmax over axis %d of %s normalizes only part of a sample; only a softmax over a sample's whole output is supported", ax, batchShape(x.shape))
	}
	return im.emit("Softmax", &nn.Softmax{}, x.id)
}

// foldUnary applies f to a constant.
func (im *importer) foldUnary(t *tensor, f func(float64) float64) error {
	x, err := im.floatsOf(t)
	if err != nil {
		return err
	}
	if err := im.charge(len(x)); err != nil {
		return err
	}
	y := make([]float64, len(x))
	for k, v := range x {
		y[k] = f(v)
	}
	return im.setConst(floatTensor(t.dims, y))
}

// foldBinary computes a op b on constants with NumPy broadcasting.
func (im *importer) foldBinary(op string, a, b *tensor) error {
	dims, ok := broadcastDims(a.dims, b.dims)
	if !ok {
		return im.invalid("shapes %v and %v do not broadcast", a.dims, b.dims)
	}
	n, ok := dimsSize(dims)
	if !ok {
		return im.invalid("result too large")
	}
	// Index vectors, the result and converted integers: 5n at most.
	if err := im.charge(5 * n); err != nil {
		return err
	}
	ia, ib := broadcastIndex(a.dims, dims), broadcastIndex(b.dims, dims)
	if a.isInt && b.isInt && op != "Pow" {
		out, err := im.foldInts(op, a.i, b.i, ia, ib)
		if err != nil {
			return err
		}
		return im.setConst(intTensor(dims, out))
	}
	fa, err := im.floatsOf(a)
	if err != nil {
		return err
	}
	fb, err := im.floatsOf(b)
	if err != nil {
		return err
	}
	out := make([]float64, n)
	for k := range out {
		if x, y := fa[ia[k]], fb[ib[k]]; op == "Pow" {
			out[k] = math.Pow(x, y)
		} else {
			out[k] = arith(op, x, y)
		}
	}
	return im.setConst(floatTensor(dims, out))
}

// arith computes x op y for op Add, Sub, Mul or Div.
func arith[T int64 | float64](op string, x, y T) T {
	switch op {
	case "Add":
		return x + y
	case "Sub":
		return x - y
	case "Mul":
		return x * y
	}
	return x / y
}

// foldInts computes the integer op element by element on a and b
// broadcast by the index vectors ia and ib, refusing arithmetic on the
// batch size, division by zero and overflow into the batch sentinel.
func (im *importer) foldInts(op string, a, b []int64, ia, ib []int) ([]int64, error) {
	out := make([]int64, len(ia))
	for k := range out {
		x, y := a[ia[k]], b[ib[k]]
		if x == batchDim || y == batchDim {
			return nil, im.unsupported("arithmetic on the batch size; shapes may only pass the batch size through")
		}
		if op == "Div" && y == 0 {
			return nil, im.invalid("integer division by zero")
		}
		if out[k] = arith(op, x, y); out[k] == batchDim {
			return nil, im.unsupported("integer overflow in a constant computation")
		}
	}
	return out, nil
}
