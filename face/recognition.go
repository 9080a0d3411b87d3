package face

import "fmt"

// loader reads a network's weights by name and shape, keeping the first
// error so a constructor can read them all and check once.
type loader struct {
	w   weights
	err error
}

func (l *loader) get(name string, shape ...int) []float32 {
	if l.err != nil {
		return nil
	}
	d, err := l.w.get(name, shape...)
	l.err = err
	return d
}

// convScale is a convolution with a bias followed by a per-channel affine
// scale layer (dlib's batch normalization, folded).
type convScale struct {
	k, oc          int
	filters, bias  []float32
	scaleW, scaleB []float32
}

func (l *loader) convScale(prefix string, k, ic, oc int) convScale {
	return convScale{
		k: k, oc: oc,
		filters: l.get(prefix+"/conv/filters", k, k, ic, oc),
		bias:    l.get(prefix+"/conv/bias", oc),
		scaleW:  l.get(prefix+"/scale/weights", oc),
		scaleB:  l.get(prefix+"/scale/biases", oc),
	}
}

// apply runs the layer at stride 1 with "same" padding, or at stride 2 with
// "valid" padding (face-api's convDown), then the bias and the scale, each
// rounded to float32 in turn as tfjs's separate ops round them.
func (p convScale) apply(x *tensor, down, relu bool) *tensor {
	var out *tensor
	if down {
		out = convValid(x, p.filters, p.k, p.oc, 2)
	} else {
		out = convSame(x, p.filters, p.k, p.oc, 1)
	}
	c := p.oc
	for i := 0; i < len(out.d); i += c {
		px := out.d[i : i+c]
		for ch := range px {
			v := px[ch] + p.bias[ch]
			v = v * p.scaleW[ch]
			v = v + p.scaleB[ch]
			if relu && v < 0 {
				v = 0
			}
			px[ch] = v
		}
	}
	return out
}

type residualLayer struct {
	conv1, conv2 convScale
	down         bool
}

func (l *loader) residual(prefix string, ic, oc int, down bool) residualLayer {
	return residualLayer{
		conv1: l.convScale(prefix+"/conv1", 3, ic, oc),
		conv2: l.convScale(prefix+"/conv2", 3, oc, oc),
		down:  down,
	}
}

// apply is face-api's residual and residualDown: in the latter the shortcut
// is a 2 x 2 average pool padded with zero channels, and when the pool is a
// row and a column larger than the strided convolution, the convolution's
// output gets a zero row and column at the end.
func (r residualLayer) apply(x *tensor) *tensor {
	out := r.conv1.apply(x, r.down, true)
	out = r.conv2.apply(out, false, false)
	short := x
	if r.down {
		short = avgPoolValid(x, 2, 2)
		if short.h != out.h || short.w != out.w {
			grown := newTensor(out.h+1, out.w+1, out.c)
			for y := range out.h {
				copy(grown.d[y*grown.w*out.c:], out.d[y*out.w*out.c:(y+1)*out.w*out.c])
			}
			out = grown
		}
		if short.c != out.c {
			wide := newTensor(short.h, short.w, out.c)
			for i := range short.h * short.w {
				copy(wide.d[i*out.c:], short.d[i*short.c:(i+1)*short.c])
			}
			short = wide
		}
	}
	return out.add(short).relu()
}

// recognitionNet is face-api's FaceRecognitionNet, a port of dlib's ResNet
// face descriptor: 150 x 150 RGB in, 128 values out.
type recognitionNet struct {
	convDown convScale
	blocks   []residualLayer
	fc       []float32 // 256 x 128
}

func newRecognitionNet() (*recognitionNet, error) {
	w, err := loadWeights("face_recognition_model")
	if err != nil {
		return nil, err
	}
	l := &loader{w: w}
	n := &recognitionNet{convDown: l.convScale("conv32_down", 7, 3, 32)}
	for _, b := range []struct {
		name   string
		ic, oc int
		down   bool
	}{
		{"conv32_1", 32, 32, false}, {"conv32_2", 32, 32, false}, {"conv32_3", 32, 32, false},
		{"conv64_down", 32, 64, true}, {"conv64_1", 64, 64, false}, {"conv64_2", 64, 64, false}, {"conv64_3", 64, 64, false},
		{"conv128_down", 64, 128, true}, {"conv128_1", 128, 128, false}, {"conv128_2", 128, 128, false},
		{"conv256_down", 128, 256, true}, {"conv256_1", 256, 256, false}, {"conv256_2", 256, 256, false},
		{"conv256_down_out", 256, 256, true},
	} {
		n.blocks = append(n.blocks, l.residual(b.name, b.ic, b.oc, b.down))
	}
	n.fc = l.get("fc", 256, 128)
	if l.err != nil {
		return nil, fmt.Errorf("face recognition net: %w", l.err)
	}
	return n, nil
}

var recognitionMean = [3]float32{122.782, 117.001, 104.298}

// descriptor computes the 128-d descriptor of a face crop (pixel values in
// 0..255), as FaceRecognitionNet.computeFaceDescriptor does for a tensor.
func (n *recognitionNet) descriptor(face *tensor) []float32 {
	x := toSquare(face, 150, true).normalize(recognitionMean)
	x = n.convDown.apply(x, true, true)
	x = maxPool(x, 3, 2, 0, 0, validOut(x.h, 3, 2), validOut(x.w, 3, 2))
	for _, b := range n.blocks {
		x = b.apply(x)
	}
	// The global average over rows and columns, then the fully connected layer.
	avg := make([]float32, x.c)
	for i := 0; i < len(x.d); i += x.c {
		for ch := range x.c {
			avg[ch] += x.d[i+ch]
		}
	}
	px := float32(x.h * x.w)
	for ch := range avg {
		avg[ch] /= px
	}
	out := make([]float32, 128)
	for i, v := range avg {
		row := n.fc[i*128 : (i+1)*128]
		for o, w := range row {
			out[o] += v * w
		}
	}
	return out
}
