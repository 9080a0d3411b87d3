package onnx

import (
	"encoding/binary"
	"math"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/nn/onnx/onnxpb"
)

// batchDim stands for the batch size inside integer constants computed by
// Shape: it is unknown at load time, yet Reshape may use it as is.
const batchDim = math.MinInt64

// maxElems bounds the element count of a constant's declared dims, so that
// their product cannot overflow; the data must also be present.
const maxElems = 1 << 40

// tensor is a constant. Integer tensors keep int64 so that shapes stay exact.
type tensor struct {
	dims  []int
	isInt bool
	f     []float64
	i     []int64
}

func (t *tensor) size() int {
	if t.isInt {
		return len(t.i)
	}
	return len(t.f)
}

// floats returns the values as float64.
func (t *tensor) floats() ([]float64, error) {
	if !t.isInt {
		return t.f, nil
	}
	f := make([]float64, len(t.i))
	for k, v := range t.i {
		if v == batchDim {
			return nil, fheserve.Errorf(fheserve.EUNSUPPORTED, "a computation depends on the batch size")
		}
		f[k] = float64(v)
	}
	return f, nil
}

// ints returns the values of an integer tensor.
func (t *tensor) ints() ([]int64, error) {
	if !t.isInt {
		return nil, fheserve.Errorf(fheserve.EINVALID, "expected an integer tensor, got a floating-point one")
	}
	return t.i, nil
}

// take returns a tensor of the given dims with elements idx of t.
func (t *tensor) take(dims []int, idx []int) *tensor {
	out := &tensor{dims: dims, isInt: t.isInt}
	if t.isInt {
		out.i = make([]int64, len(idx))
		for k, j := range idx {
			out.i[k] = t.i[j]
		}
	} else {
		out.f = make([]float64, len(idx))
		for k, j := range idx {
			out.f[k] = t.f[j]
		}
	}
	return out
}

// reshaped returns t with other dims; the data is shared, never modified.
func (t *tensor) reshaped(dims []int) *tensor {
	return &tensor{dims: dims, isInt: t.isInt, f: t.f, i: t.i}
}

func floatTensor(dims []int, f []float64) *tensor { return &tensor{dims: dims, f: f} }
func intTensor(dims []int, i []int64) *tensor     { return &tensor{dims: dims, isInt: true, i: i} }

// dimsSize multiplies dims, reporting false if one is negative or the
// product exceeds maxElems.
func dimsSize(dims []int) (int, bool) {
	n := 1
	for _, d := range dims {
		if d < 0 || d > maxElems {
			return 0, false
		}
		n *= d
		if n > maxElems {
			return 0, false
		}
	}
	return n, true
}

// parseTensor converts a TensorProto, checking that the data matches the
// dims exactly.
func parseTensor(tp *onnxpb.TensorProto) (*tensor, error) {
	name := clip(tp.GetName())
	bad := func(format string, args ...any) error {
		return fheserve.Errorf(fheserve.EINVALID, "tensor %q: "+format, append([]any{name}, args...)...)
	}
	if tp.GetDataLocation() == onnxpb.TensorProto_EXTERNAL || len(tp.GetExternalData()) > 0 {
		return nil, fheserve.Errorf(fheserve.EUNSUPPORTED, "tensor %q is stored in an external file; save the model with its weights inside", name)
	}
	if tp.GetSegment() != nil {
		return nil, fheserve.Errorf(fheserve.EUNSUPPORTED, "tensor %q is segmented", name)
	}
	dims := make([]int, len(tp.GetDims()))
	for k, d := range tp.GetDims() {
		if d < 0 || d > maxElems {
			return nil, bad("dimension %d out of range", d)
		}
		dims[k] = int(d)
	}
	n, ok := dimsSize(dims)
	if !ok {
		return nil, bad("dims %v have too many elements", dims)
	}
	raw := tp.GetRawData()
	typ := onnxpb.TensorProto_DataType(tp.GetDataType())
	width, typed, err := tensorWidth(tp, typ, name)
	if err != nil {
		return nil, err
	}
	switch {
	case len(raw) > 0 && typed > 0:
		return nil, bad("has both raw_data and typed data")
	case len(raw) > 0 && len(raw)/width != n || len(raw)%width != 0:
		return nil, bad("raw_data has %d bytes, dims %v need %d", len(raw), dims, n*width)
	case len(raw) == 0 && typed != n:
		return nil, bad("has %d values, dims %v need %d", typed, dims, n)
	}
	t := &tensor{dims: dims}
	if typ == onnxpb.TensorProto_FLOAT || typ == onnxpb.TensorProto_DOUBLE {
		t.f = tensorFloats(tp, typ, raw, n)
		return t, nil
	}
	t.isInt = true
	t.i = tensorInts(tp, typ, raw, width, n)
	for _, v := range t.i {
		if v == batchDim {
			return nil, bad("holds the integer %d, which is reserved", v)
		}
	}
	return t, nil
}

// tensorWidth returns the width in bytes of a value of data type typ in
// raw data, and the number of values in tp's typed data.
func tensorWidth(tp *onnxpb.TensorProto, typ onnxpb.TensorProto_DataType, name string) (width, typed int, err error) {
	switch typ {
	case onnxpb.TensorProto_FLOAT:
		return 4, len(tp.GetFloatData()), nil
	case onnxpb.TensorProto_DOUBLE:
		return 8, len(tp.GetDoubleData()), nil
	case onnxpb.TensorProto_INT64:
		return 8, len(tp.GetInt64Data()), nil
	case onnxpb.TensorProto_INT32:
		return 4, len(tp.GetInt32Data()), nil
	}
	return 0, 0, fheserve.Errorf(fheserve.EUNSUPPORTED, "tensor %q has data type %s; supported: FLOAT, DOUBLE, INT32, INT64",
		name, typeName(tp.GetDataType()))
}

// tensorFloats decodes the n values of a FLOAT or DOUBLE tensor, from raw
// data if it has any.
func tensorFloats(tp *onnxpb.TensorProto, typ onnxpb.TensorProto_DataType, raw []byte, n int) []float64 {
	f := make([]float64, n)
	for k := range n {
		switch {
		case typ == onnxpb.TensorProto_FLOAT && len(raw) > 0:
			f[k] = float64(math.Float32frombits(binary.LittleEndian.Uint32(raw[4*k:])))
		case typ == onnxpb.TensorProto_FLOAT:
			f[k] = float64(tp.FloatData[k])
		case len(raw) > 0:
			f[k] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*k:]))
		default:
			f[k] = tp.DoubleData[k]
		}
	}
	return f
}

// tensorInts decodes the n values of an INT64 or INT32 tensor, from raw
// data (values width bytes wide) if it has any.
func tensorInts(tp *onnxpb.TensorProto, typ onnxpb.TensorProto_DataType, raw []byte, width, n int) []int64 {
	v := make([]int64, n)
	for k := range n {
		switch {
		case len(raw) > 0 && width == 8:
			v[k] = int64(binary.LittleEndian.Uint64(raw[8*k:]))
		case len(raw) > 0:
			v[k] = int64(int32(binary.LittleEndian.Uint32(raw[4*k:])))
		case typ == onnxpb.TensorProto_INT64:
			v[k] = tp.Int64Data[k]
		default:
			v[k] = int64(tp.Int32Data[k])
		}
	}
	return v
}

// broadcastDims returns the NumPy broadcast of two shapes.
func broadcastDims(a, b []int) ([]int, bool) {
	r := max(len(a), len(b))
	out := make([]int, r)
	for k := range r {
		x, y := dimAt(a, k-(r-len(a))), dimAt(b, k-(r-len(b)))
		switch {
		case x == y || y == 1:
			out[k] = x
		case x == 1:
			out[k] = y
		default:
			return nil, false
		}
	}
	return out, true
}

// dimAt is dims[k], or 1 left of the first axis.
func dimAt(dims []int, k int) int {
	if k < 0 {
		return 1
	}
	return dims[k]
}

// broadcastIndex returns, for each element of a tensor of dims dst, the
// flat index of the element of a tensor of dims src it is broadcast from.
// src has at most len(dst) axes and each is 1 or the matching dst axis.
func broadcastIndex(src, dst []int) []int {
	r := len(dst)
	strides := make([]int, r)
	s := 1
	for k := r - 1; k >= 0; k-- {
		if d := dimAt(src, k-(r-len(src))); d != 1 {
			strides[k] = s
			s *= d
		}
	}
	n, _ := dimsSize(dst)
	idx := make([]int, n)
	ctr := make([]int, r)
	off := 0
	for i := range n {
		idx[i] = off
		for k := r - 1; k >= 0; k-- {
			ctr[k]++
			off += strides[k]
			if ctr[k] < dst[k] {
				break
			}
			off -= strides[k] * ctr[k]
			ctr[k] = 0
		}
	}
	return idx
}

// normAxis maps a possibly negative axis of a rank-r tensor to [0, r).
func normAxis(axis int64, r int) (int, bool) {
	if axis < 0 {
		axis += int64(r)
	}
	if axis < 0 || axis >= int64(r) {
		return 0, false
	}
	return int(axis), true
}
