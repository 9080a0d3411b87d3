package face

import (
	"fmt"
	"math"
	"sort"
)

// detectorNet is face-api's TinyFaceDetector: a Tiny YOLO v2 with
// depthwise separable convolutions, 416 x 416 in, a 13 x 13 grid of five
// anchor boxes out.
type detectorNet struct {
	conv0, conv0Bias []float32
	sep              [5]sepConv
	conv8, conv8Bias []float32
}

const (
	detectorSize      = 416
	detectorThreshold = 0.5
	detectorIOU       = 0.4
)

var (
	detectorMean    = [3]float32{117.001, 114.697, 97.404}
	detectorAnchors = [5][2]float64{
		{1.603231, 2.094468}, {6.041143, 7.080126}, {2.882459, 3.518061},
		{4.266906, 5.178857}, {9.041765, 10.66308},
	}
)

func newDetectorNet() (*detectorNet, error) {
	w, err := loadWeights("tiny_face_detector_model")
	if err != nil {
		return nil, err
	}
	l := &loader{w: w}
	n := &detectorNet{
		conv0:     l.get("conv0/filters", 3, 3, 3, 16),
		conv0Bias: l.get("conv0/bias", 16),
		conv8:     l.get("conv8/filters", 1, 1, 512, 25),
		conv8Bias: l.get("conv8/bias", 25),
	}
	for i, ch := range []int{16, 32, 64, 128, 256} {
		n.sep[i] = l.sepConv(fmt.Sprintf("conv%d", i+1), ch, 2*ch)
	}
	if l.err != nil {
		return nil, fmt.Errorf("face detector net: %w", l.err)
	}
	return n, nil
}

// leaky is face-api's leaky ReLU, relu(x - 0.1x) + 0.1x in float32, in
// place.
func (t *tensor) leaky() *tensor {
	for i, v := range t.d {
		m := v * 0.10000000149011612
		r := v - m
		if r < 0 {
			r = 0
		}
		t.d[i] = r + m
	}
	return t
}

// pad1 surrounds t with one row and one column of zeros on each side.
func pad1(t *tensor) *tensor {
	out := newTensor(t.h+2, t.w+2, t.c)
	for y := range t.h {
		copy(out.d[((y+1)*out.w+1)*t.c:], t.d[y*t.w*t.c:(y+1)*t.w*t.c])
	}
	return out
}

// box is a rectangle in face-api's Box terms: x, y, width, height.
type box struct{ x, y, w, h float64 }

func (b box) right() float64  { return b.x + b.w }
func (b box) bottom() float64 { return b.y + b.h }

type candidate struct {
	score float64
	rel   box // relative to the image: 0..1 across its width and height
}

// detect returns the faces TinyFaceDetector finds in img with its default
// options (input 416, score above 0.5), strongest first after non-maximum
// suppression, each with its box relative to the image.
func (n *detectorNet) detect(img *tensor) []candidate {
	x := toSquare(img, detectorSize, false).normalize(detectorMean)
	x = convValid(x, n.conv0, 3, 16, 1).addBias(n.conv0Bias).leaky()
	for i, s := range n.sep {
		x = maxPoolSame(x, 2, 2)
		x = s.apply(pad1(x), 1, false).leaky()
		if i == len(n.sep)-1 {
			x = maxPoolSame(x, 2, 1)
		}
	}
	x = convValid(x, n.conv8, 1, 25, 1).addBias(n.conv8Bias)

	// extractBoxes: the grid covers the padded square; boxes are corrected
	// to the image's own width and height.
	scale := float64(detectorSize) / float64(max(img.h, img.w))
	rw := math.Floor(float64(img.w)*scale + 0.5)
	rh := math.Floor(float64(img.h)*scale + 0.5)
	inputSize := max(rw, rh)
	corrX, corrY := inputSize/rw, inputSize/rh
	cells := x.h
	var found []candidate
	for row := range cells {
		for col := range cells {
			for a, anchor := range detectorAnchors {
				v := x.d[(row*cells+col)*25+a*5:]
				score := sigmoid(float64(v[4]))
				if score <= detectorThreshold {
					continue
				}
				ctX := (float64(col) + sigmoid(float64(v[0]))) / float64(cells) * corrX
				ctY := (float64(row) + sigmoid(float64(v[1]))) / float64(cells) * corrY
				w := math.Exp(float64(v[2])) * anchor[0] / float64(cells) * corrX
				h := math.Exp(float64(v[3])) * anchor[1] / float64(cells) * corrY
				left, top := ctX-w/2, ctY-h/2
				// A BoundingBox(left, top, right, bottom) keeps right-left as
				// its width.
				right, bottom := left+w, top+h
				found = append(found, candidate{score: score, rel: box{left, top, right - left, bottom - top}})
			}
		}
	}
	return nonMaxSuppression(found, detectorIOU)
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// nonMaxSuppression is face-api's: take the highest score left (the last
// of equals), drop every box overlapping it by more than iouMax, repeat.
func nonMaxSuppression(c []candidate, iouMax float64) []candidate {
	order := make([]int, len(c))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(i, j int) bool { return c[order[i]].score < c[order[j]].score })
	scaled := func(b box) box {
		return box{b.x * detectorSize, b.y * detectorSize, b.w * detectorSize, b.h * detectorSize}
	}
	var picked []candidate
	for len(order) > 0 {
		cur := order[len(order)-1]
		order = order[:len(order)-1]
		picked = append(picked, c[cur])
		a := scaled(c[cur].rel)
		kept := order[:0]
		for _, i := range order {
			if iou(a, scaled(c[i].rel)) <= iouMax {
				kept = append(kept, i)
			}
		}
		order = kept
	}
	return picked
}

func iou(a, b box) float64 {
	w := max(0, min(a.right(), b.right())-max(a.x, b.x))
	h := max(0, min(a.bottom(), b.bottom())-max(a.y, b.y))
	inter := w * h
	return inter / (a.w*a.h + b.w*b.h - inter)
}
