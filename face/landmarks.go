package face

import "fmt"

// sepConv is a depthwise separable 3 x 3 convolution with a bias.
type sepConv struct {
	oc     int
	dw, pw []float32
	bias   []float32
}

func (l *loader) sepConv(prefix string, ic, oc int) sepConv {
	return sepConv{
		oc:   oc,
		dw:   l.get(prefix+"/depthwise_filter", 3, 3, ic, 1),
		pw:   l.get(prefix+"/pointwise_filter", 1, 1, ic, oc),
		bias: l.get(prefix+"/bias", oc),
	}
}

func (s sepConv) apply(x *tensor, stride int, same bool) *tensor {
	return separable(x, s.dw, s.pw, s.oc, stride, same).addBias(s.bias)
}

// denseBlock is face-api's denseBlock4: four convolutions, each fed the
// rectified sum of the previous outputs; the first halves the resolution.
type denseBlock struct {
	first        bool // the first block's first layer is a plain convolution
	conv0        sepConv
	conv0Filters []float32
	conv         [3]sepConv
}

func (l *loader) denseBlock(prefix string, ic, oc int, first bool) denseBlock {
	b := denseBlock{first: first}
	if first {
		b.conv0Filters = l.get(prefix+"/conv0/filters", 3, 3, ic, oc)
		b.conv0 = sepConv{oc: oc, bias: l.get(prefix+"/conv0/bias", oc)}
	} else {
		b.conv0 = l.sepConv(prefix+"/conv0", ic, oc)
	}
	for i := range b.conv {
		b.conv[i] = l.sepConv(fmt.Sprintf("%s/conv%d", prefix, i+1), oc, oc)
	}
	return b
}

func (b denseBlock) apply(x *tensor) *tensor {
	var out1 *tensor
	if b.first {
		out1 = convSame(x, b.conv0Filters, 3, b.conv0.oc, 2).addBias(b.conv0.bias)
	} else {
		out1 = b.conv0.apply(x, 2, true)
	}
	out1.relu()
	out2 := b.conv[0].apply(out1, 1, true)
	in3 := out1.clone().add(out2).relu()
	out3 := b.conv[1].apply(in3, 1, true)
	// tf.add(out1, tf.add(out2, out3)): the inner sum first.
	sum23 := out2.clone().add(out3)
	in4 := out1.clone().add(sum23).relu()
	out4 := b.conv[2].apply(in4, 1, true)
	sum234 := out2.add(out3.add(out4))
	return out1.add(sum234).relu()
}

// landmarkNet is face-api's FaceLandmark68Net: a 112 x 112 face crop to 68
// points.
type landmarkNet struct {
	dense  [4]denseBlock
	fcW    []float32 // 256 x 136
	fcBias []float32
}

func newLandmarkNet() (*landmarkNet, error) {
	w, err := loadWeights("face_landmark_68_model")
	if err != nil {
		return nil, err
	}
	l := &loader{w: w}
	n := &landmarkNet{}
	n.dense[0] = l.denseBlock("dense0", 3, 32, true)
	n.dense[1] = l.denseBlock("dense1", 32, 64, false)
	n.dense[2] = l.denseBlock("dense2", 64, 128, false)
	n.dense[3] = l.denseBlock("dense3", 128, 256, false)
	n.fcW = l.get("fc/weights", 256, 136)
	n.fcBias = l.get("fc/bias", 136)
	if l.err != nil {
		return nil, fmt.Errorf("face landmark net: %w", l.err)
	}
	return n, nil
}

// landmarks returns the 68 points of a face crop, relative to the crop
// (0..1 across its width and height), as FaceLandmark68Net.forwardInput and
// its postProcess compute them.
func (n *landmarkNet) landmarks(face *tensor) [68][2]float32 {
	x := toSquare(face, 112, true).normalize(recognitionMean)
	for _, b := range n.dense {
		x = b.apply(x)
	}
	x = avgPoolValid(x, 7, 2)
	out := make([]float32, 136)
	for i, v := range x.d {
		row := n.fcW[i*136 : (i+1)*136]
		for o, w := range row {
			out[o] += v * w
		}
	}
	for o := range out {
		out[o] += n.fcBias[o]
	}
	// postProcess: undo the centred padding of the square input.
	w, h := float64(face.w), float64(face.h)
	scale := 112 / max(h, w)
	sw, sh := w*scale, h*scale
	var padX, padY float64
	if sw < sh {
		padX = (sh - sw) / 2
	}
	if sh < sw {
		padY = (sw - sh) / 2
	}
	var pts [68][2]float32
	for i := range pts {
		pts[i][0] = (out[2*i]*112 - float32(padX)) / float32(sw)
		pts[i][1] = (out[2*i+1]*112 - float32(padY)) / float32(sh)
	}
	return pts
}
