package face

import (
	"math"
	"runtime"
	"sync"
)

// tensor is one image or feature map in tfjs's NHWC layout with a batch of
// one: h rows of w pixels of c channels, channels fastest.
type tensor struct {
	h, w, c int
	d       []float32
}

func newTensor(h, w, c int) *tensor {
	return &tensor{h: h, w: w, c: c, d: make([]float32, h*w*c)}
}

// parallelRows runs fn over [0, n) split into one contiguous range of rows
// per core.
func parallelRows(n int, fn func(lo, hi int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	if workers <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	for i := range workers {
		lo, hi := n*i/workers, n*(i+1)/workers
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	wg.Wait()
}

// samePad is TensorFlow's "same" padding along one axis: the output size and
// the padding before the first input (the odd one goes after the last).
func samePad(in, k, stride int) (out, before int) {
	out = (in + stride - 1) / stride
	total := max((out-1)*stride+k-in, 0)
	return out, total / 2
}

// validOut is the output size of a "valid" window along one axis.
func validOut(in, k, stride int) int { return (in-k)/stride + 1 }

// conv2d convolves x with f, a k x k filter in HWIO layout with oc output
// channels, at the given stride, with padT rows and padL columns of zeros
// before the input, into an oh x ow output.
func conv2d(x *tensor, f []float32, k, oc, stride, padT, padL, oh, ow int) *tensor {
	out := newTensor(oh, ow, oc)
	ic := x.c
	parallelRows(oh, func(lo, hi int) {
		for oy := lo; oy < hi; oy++ {
			for ox := range ow {
				acc := out.d[(oy*ow+ox)*oc : (oy*ow+ox+1)*oc]
				for ky := range k {
					iy := oy*stride + ky - padT
					if iy < 0 || iy >= x.h {
						continue
					}
					for kx := range k {
						ix := ox*stride + kx - padL
						if ix < 0 || ix >= x.w {
							continue
						}
						in := x.d[(iy*x.w+ix)*ic : (iy*x.w+ix+1)*ic]
						fk := f[(ky*k+kx)*ic*oc : (ky*k+kx+1)*ic*oc]
						for ci, v := range in {
							if v == 0 {
								continue
							}
							row := fk[ci*oc : (ci+1)*oc]
							for o, wv := range row {
								acc[o] += v * wv
							}
						}
					}
				}
			}
		}
	})
	return out
}

// convSame and convValid are conv2d with TensorFlow's two paddings.
func convSame(x *tensor, f []float32, k, oc, stride int) *tensor {
	oh, pt := samePad(x.h, k, stride)
	ow, pl := samePad(x.w, k, stride)
	return conv2d(x, f, k, oc, stride, pt, pl, oh, ow)
}

func convValid(x *tensor, f []float32, k, oc, stride int) *tensor {
	return conv2d(x, f, k, oc, stride, 0, 0, validOut(x.h, k, stride), validOut(x.w, k, stride))
}

// depthwise convolves each channel of x with its own k x k filter (HWC1
// layout), as tf.depthwiseConv2d with a channel multiplier of 1.
func depthwise(x *tensor, f []float32, k, stride, padT, padL, oh, ow int) *tensor {
	c := x.c
	out := newTensor(oh, ow, c)
	parallelRows(oh, func(lo, hi int) {
		for oy := lo; oy < hi; oy++ {
			for ox := range ow {
				acc := out.d[(oy*ow+ox)*c : (oy*ow+ox+1)*c]
				for ky := range k {
					iy := oy*stride + ky - padT
					if iy < 0 || iy >= x.h {
						continue
					}
					for kx := range k {
						ix := ox*stride + kx - padL
						if ix < 0 || ix >= x.w {
							continue
						}
						in := x.d[(iy*x.w+ix)*c : (iy*x.w+ix+1)*c]
						fk := f[(ky*k+kx)*c : (ky*k+kx+1)*c]
						for ch, v := range in {
							acc[ch] += v * fk[ch]
						}
					}
				}
			}
		}
	})
	return out
}

// separable is tf.separableConv2d: a 3 x 3 depthwise convolution, then a
// pointwise one to oc channels. same selects "same" padding, else "valid".
func separable(x *tensor, dw, pw []float32, oc, stride int, same bool) *tensor {
	var d *tensor
	if same {
		oh, pt := samePad(x.h, 3, stride)
		ow, pl := samePad(x.w, 3, stride)
		d = depthwise(x, dw, 3, stride, pt, pl, oh, ow)
	} else {
		d = depthwise(x, dw, 3, stride, 0, 0, validOut(x.h, 3, stride), validOut(x.w, 3, stride))
	}
	return convValid(d, pw, 1, oc, 1)
}

// addBias adds b to every pixel's channels, in place.
func (t *tensor) addBias(b []float32) *tensor {
	for i := 0; i < len(t.d); i += t.c {
		px := t.d[i : i+t.c]
		for c := range px {
			px[c] += b[c]
		}
	}
	return t
}

// relu clamps negative values to zero, in place.
func (t *tensor) relu() *tensor {
	for i, v := range t.d {
		if v < 0 {
			t.d[i] = 0
		}
	}
	return t
}

// add adds u elementwise, in place.
func (t *tensor) add(u *tensor) *tensor {
	for i := range t.d {
		t.d[i] += u.d[i]
	}
	return t
}

// clone copies t.
func (t *tensor) clone() *tensor {
	u := *t
	u.d = append([]float32(nil), t.d...)
	return &u
}

// maxPool is tf.maxPool with a k x k window; padT and padL are the padding
// before the input (padded positions never win), oh x ow the output.
func maxPool(x *tensor, k, stride, padT, padL, oh, ow int) *tensor {
	c := x.c
	out := newTensor(oh, ow, c)
	for oy := range oh {
		for ox := range ow {
			acc := out.d[(oy*ow+ox)*c : (oy*ow+ox+1)*c]
			for ch := range acc {
				acc[ch] = float32(math.Inf(-1))
			}
			for ky := range k {
				iy := oy*stride + ky - padT
				if iy < 0 || iy >= x.h {
					continue
				}
				for kx := range k {
					ix := ox*stride + kx - padL
					if ix < 0 || ix >= x.w {
						continue
					}
					in := x.d[(iy*x.w+ix)*c : (iy*x.w+ix+1)*c]
					for ch, v := range in {
						acc[ch] = max(acc[ch], v)
					}
				}
			}
		}
	}
	return out
}

func maxPoolSame(x *tensor, k, stride int) *tensor {
	oh, pt := samePad(x.h, k, stride)
	ow, pl := samePad(x.w, k, stride)
	return maxPool(x, k, stride, pt, pl, oh, ow)
}

// avgPoolValid is tf.avgPool with a k x k window and "valid" padding.
func avgPoolValid(x *tensor, k, stride int) *tensor {
	oh, ow, c := validOut(x.h, k, stride), validOut(x.w, k, stride), x.c
	out := newTensor(oh, ow, c)
	n := float32(k * k)
	for oy := range oh {
		for ox := range ow {
			acc := out.d[(oy*ow+ox)*c : (oy*ow+ox+1)*c]
			for ky := range k {
				for kx := range k {
					iy, ix := oy*stride+ky, ox*stride+kx
					in := x.d[(iy*x.w+ix)*c : (iy*x.w+ix+1)*c]
					for ch, v := range in {
						acc[ch] += v
					}
				}
			}
			for ch := range acc {
				acc[ch] /= n
			}
		}
	}
	return out
}

// normalize subtracts the per-channel mean and divides by 255, in float32
// as tfjs does, in place.
func (t *tensor) normalize(mean [3]float32) *tensor {
	for i := 0; i < len(t.d); i += 3 {
		for c := range 3 {
			t.d[i+c] = (t.d[i+c] - mean[c]) / 255
		}
	}
	return t
}

// resizeBilinear is tfjs's tf.image.resizeBilinear without aligned corners
// or half-pixel centres, on x padded with zeros to padH x padW: x sits at
// row offT and column offL of the padded image (face-api's padToSquare). It
// computes in float64 and rounds each value to float32, as tfjs's CPU
// kernel does.
func resizeBilinear(x *tensor, padH, padW, offT, offL, newH, newW int) *tensor {
	c := x.c
	out := newTensor(newH, newW, c)
	rowRatio := float64(padH) / float64(newH)
	colRatio := float64(padW) / float64(newW)
	at := func(y, xx, ch int) float64 {
		y -= offT
		xx -= offL
		if y < 0 || y >= x.h || xx < 0 || xx >= x.w {
			return 0
		}
		return float64(x.d[(y*x.w+xx)*c+ch])
	}
	parallelRows(newH, func(lo, hi int) {
		for r := lo; r < hi; r++ {
			fr := rowRatio * float64(r)
			r0 := max(0, int(math.Floor(fr)))
			rf := fr - float64(r0)
			r1 := min(padH-1, int(math.Ceil(fr)))
			for col := range newW {
				fc := colRatio * float64(col)
				c0 := max(0, int(math.Floor(fc)))
				cf := fc - float64(c0)
				c1 := min(padW-1, int(math.Ceil(fc)))
				for ch := range c {
					tl, tr := at(r0, c0, ch), at(r0, c1, ch)
					bl, br := at(r1, c0, ch), at(r1, c1, ch)
					top := tl + (tr-tl)*cf
					bottom := bl + (br-bl)*cf
					out.d[(r*newW+col)*c+ch] = float32(top + (bottom-top)*rf)
				}
			}
		}
	})
	return out
}

// toSquare is face-api's NetInput.toBatchTensor for one image: pad to a
// square with zeros (after the image, or split around it when centre is
// set, the larger half after), then resize to size x size unless it already
// is that size.
func toSquare(x *tensor, size int, centre bool) *tensor {
	side := max(x.h, x.w)
	diff := side - min(x.h, x.w)
	var after int
	if centre {
		after = int(math.Floor(float64(diff)*0.5 + 0.5))
	} else {
		after = diff
	}
	before := diff - after
	offT, offL := 0, 0
	if x.h > x.w {
		offL = before
	} else {
		offT = before
	}
	if side == size {
		out := newTensor(size, size, x.c)
		for y := range x.h {
			copy(out.d[((y+offT)*size+offL)*x.c:], x.d[y*x.w*x.c:(y+1)*x.w*x.c])
		}
		return out
	}
	return resizeBilinear(x, side, side, offT, offL, size, size)
}
