// Package face computes face descriptors on the user's device, in plain Go:
// a port of @vladmandic/face-api 1.7.15's pipeline (TinyFaceDetector, then
// FaceLandmark68Net on the detected box, then FaceRecognitionNet on the
// crop that the landmarks align, as detectAllFaces(img,
// TinyFaceDetectorOptions()).withFaceLandmarks().withFaceDescriptors() runs
// it on an image tensor), reading the package's own weight files, which are
// embedded. Its descriptors match the package's to float32 rounding
// (face_test.go checks them against descriptors the package computed on
// its demo photos, testdata/golden.json).
package face

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	_ "image/jpeg" // the formats a user's photo comes in
	_ "image/png"
	"io"
	"math"
	"os"
	"sort"
	"sync"
)

// Dim is the length of a descriptor.
const Dim = 128

// Image is an RGB image, 8 bits a channel, rows top to bottom.
type Image struct {
	Width, Height int
	Pix           []uint8 // Width*Height*3
}

// MaxPixels bounds the images DecodeImage accepts (a 48-megapixel photo
// takes 144 MB decoded).
const MaxPixels = 48 << 20

// DecodeImage decodes a JPEG or PNG image, turned as a JPEG's EXIF
// orientation says, as a browser shows it.
func DecodeImage(r io.Reader) (*Image, error) {
	raw, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	cfg, _, err := image.DecodeConfig(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width > MaxPixels/max(cfg.Height, 1) {
		return nil, fmt.Errorf("image of %d x %d pixels: at most %d megapixels, and not empty", cfg.Width, cfg.Height, MaxPixels>>20)
	}
	src, _, err := image.Decode(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	b := src.Bounds()
	img := &Image{Width: b.Dx(), Height: b.Dy(), Pix: make([]uint8, b.Dx()*b.Dy()*3)}
	i := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			var r, g, bl uint8
			if yc, ok := src.(*image.YCbCr); ok {
				c := yc.YCbCrAt(x, y)
				r, g, bl = color.YCbCrToRGB(c.Y, c.Cb, c.Cr)
			} else {
				r16, g16, b16, _ := src.At(x, y).RGBA()
				r, g, bl = uint8(r16>>8), uint8(g16>>8), uint8(b16>>8)
			}
			img.Pix[i], img.Pix[i+1], img.Pix[i+2] = r, g, bl
			i += 3
		}
	}
	return orient(img, exifOrientation(raw)), nil
}

// ReadImage reads and decodes the image file at path.
func ReadImage(path string) (*Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, err := DecodeImage(f)
	if err != nil {
		return nil, fmt.Errorf("cannot decode %s: %w", path, err)
	}
	return img, nil
}

// crop returns the pixels of r (whole pixels, inside the image) as a tensor.
func (img *Image) crop(x, y, w, h int) *tensor {
	t := newTensor(h, w, 3)
	for row := range h {
		src := img.Pix[((y+row)*img.Width+x)*3 : ((y+row)*img.Width+x+w)*3]
		dst := t.d[row*w*3 : (row+1)*w*3]
		for i, v := range src {
			dst[i] = float32(v)
		}
	}
	return t
}

// Rect is a rectangle in image pixels.
type Rect struct {
	X, Y, Width, Height float64
}

// clip is face-api's Box.clipAtImageBorders: the part of r inside a w x h
// image, floored to whole pixels.
func (r Rect) clip(w, h int) (x, y, cw, ch int) {
	right, bottom := r.X+r.Width, r.Y+r.Height
	cx, cy := max(r.X, 0), max(r.Y, 0)
	nw := min(right-cx, float64(w)-cx)
	nh := min(bottom-cy, float64(h)-cy)
	return int(math.Floor(cx)), int(math.Floor(cy)), int(math.Floor(nw)), int(math.Floor(nh))
}

// Face is one face found in an image.
type Face struct {
	Score      float64        // the detector's confidence
	Box        Rect           // the detected box
	Landmarks  [68][2]float64 // the 68 points, in image pixels
	Aligned    Rect           // the crop the descriptor is computed on
	Descriptor []float32      // 128 values
}

// Extractor runs the three networks. It is safe for concurrent use.
type Extractor struct {
	det *detectorNet
	lm  *landmarkNet
	rec *recognitionNet
}

var (
	shared    *Extractor
	sharedErr error
	once      sync.Once
)

// New returns the extractor, loading the embedded weights on first use.
func New() (*Extractor, error) {
	once.Do(func() {
		e := &Extractor{}
		if e.det, sharedErr = newDetectorNet(); sharedErr != nil {
			return
		}
		if e.lm, sharedErr = newLandmarkNet(); sharedErr != nil {
			return
		}
		if e.rec, sharedErr = newRecognitionNet(); sharedErr != nil {
			return
		}
		shared = e
	})
	return shared, sharedErr
}

// Faces finds the faces in img and computes each one's descriptor, in
// face-api's order (strongest detection first).
func (e *Extractor) Faces(img *Image) []Face {
	full := img.crop(0, 0, img.Width, img.Height)
	var faces []Face
	for _, c := range e.det.detect(full) {
		w, h := float64(img.Width), float64(img.Height)
		b := Rect{c.rel.x * w, c.rel.y * h, c.rel.w * w, c.rel.h * h}
		f := Face{Score: c.score, Box: b}
		var cw, ch int
		f.Landmarks, cw, ch = e.landmarks(img, b)
		if cw <= 0 || ch <= 0 {
			continue
		}
		f.Aligned = alignDlib(f.Landmarks, cw, ch)
		f.Descriptor = e.Descriptor(img, f.Aligned)
		if f.Descriptor != nil {
			faces = append(faces, f)
		}
	}
	return faces
}

// Find is Faces, and when Faces finds none, Faces on img inside a black
// border of a quarter of its size on every side, with the boxes and points
// moved back onto img. A close-up, whose face fills the frame, is larger
// than the detector's anchor boxes cover and is found only in the wider
// frame; the aligned crop may then reach into the border. Where Faces
// finds a face, Find gives what face-api gives.
func (e *Extractor) Find(img *Image) []Face {
	if faces := e.Faces(img); len(faces) > 0 {
		return faces
	}
	bx, by := img.Width/4, img.Height/4
	wide := &Image{Width: img.Width + 2*bx, Height: img.Height + 2*by}
	wide.Pix = make([]uint8, wide.Width*wide.Height*3)
	for y := range img.Height {
		copy(wide.Pix[((y+by)*wide.Width+bx)*3:], img.Pix[y*img.Width*3:(y+1)*img.Width*3])
	}
	faces := e.Faces(wide)
	dx, dy := float64(bx), float64(by)
	for i := range faces {
		f := &faces[i]
		f.Box.X, f.Box.Y = f.Box.X-dx, f.Box.Y-dy
		f.Aligned.X, f.Aligned.Y = f.Aligned.X-dx, f.Aligned.Y-dy
		for k := range f.Landmarks {
			f.Landmarks[k][0] -= dx
			f.Landmarks[k][1] -= dy
		}
	}
	return faces
}

// landmarks runs the landmark net on the detection box b and returns the
// points in image pixels, with the size of the crop it ran on.
func (e *Extractor) landmarks(img *Image, b Rect) (pts [68][2]float64, cw, ch int) {
	// FaceDetection.forSize: the box goes through its relative form again.
	w, h := float64(img.Width), float64(img.Height)
	rb := Rect{b.X * (1 / w), b.Y * (1 / h), b.Width * (1 / w), b.Height * (1 / h)}
	rb = Rect{rb.X * w, rb.Y * h, rb.Width * w, rb.Height * h}
	x, y, cw, ch := rb.clip(img.Width, img.Height)
	if cw <= 0 || ch <= 0 {
		return pts, cw, ch
	}
	rel := e.lm.landmarks(img.crop(x, y, cw, ch))
	fw, fh := float64(cw), float64(ch)
	for i, p := range rel {
		// FaceLandmarks68 in crop pixels, then shiftBy the detection box.
		px, py := float64(p[0])*fw, float64(p[1])*fh
		pts[i][0] = px/fw*fw + b.X
		pts[i][1] = py/fh*fh + b.Y
	}
	return pts, cw, ch
}

// alignDlib is FaceLandmarks.align with useDlibAlignment: a square around
// the eyes and the mouth. cw and ch are the size of the crop the landmarks
// came from, which face-api uses as the image size here.
func alignDlib(pts [68][2]float64, cw, ch int) Rect {
	centre := func(from, to int) [2]float64 {
		var s [2]float64
		for _, p := range pts[from:to] {
			s[0] += p[0]
			s[1] += p[1]
		}
		n := float64(to - from)
		return [2]float64{s[0] / n, s[1] / n}
	}
	le, re, mouth := centre(36, 42), centre(42, 48), centre(48, 68)
	dist := func(p [2]float64) float64 {
		dx, dy := mouth[0]-p[0], mouth[1]-p[1]
		return math.Sqrt(dx*dx + dy*dy)
	}
	size := math.Floor((dist(le) + dist(re)) / 2 / 0.45)
	ref := [2]float64{(0 + le[0] + re[0] + mouth[0]) / 3, (0 + le[1] + re[1] + mouth[1]) / 3}
	x := math.Floor(max(0, ref[0]-0.5*size))
	y := math.Floor(max(0, ref[1]-0.43*size))
	return Rect{x, y, min(size, float64(cw)+x), min(size, float64(ch)+y)}
}

// Descriptor computes the descriptor of the crop r of img, nil when r holds
// no pixel of it.
func (e *Extractor) Descriptor(img *Image, r Rect) []float32 {
	x, y, w, h := r.clip(img.Width, img.Height)
	if w <= 0 || h <= 0 {
		return nil
	}
	return e.rec.descriptor(img.crop(x, y, w, h))
}

// ErrFaceCount is returned by Embed when a photo does not hold exactly one
// face.
var ErrFaceCount = errors.New("face: not exactly one face")

// Embed reads the photo at path and returns the descriptor of the one face
// in it. A photo with no face or with several is refused (ErrFaceCount):
// crop it to the face to use.
func Embed(path string) ([]float32, error) {
	e, err := New()
	if err != nil {
		return nil, err
	}
	img, err := ReadImage(path)
	if err != nil {
		return nil, err
	}
	faces := e.Find(img)
	if len(faces) != 1 {
		return nil, fmt.Errorf("%w: found %d in %s; crop the photo to the face to use", ErrFaceCount, len(faces), path)
	}
	return faces[0].Descriptor, nil
}

// UnitLength returns d scaled to Euclidean norm 1, in float64: the form a
// cosine gallery enrols and queries.
func UnitLength(d []float32) []float64 {
	var s float64
	for _, v := range d {
		s += float64(v) * float64(v)
	}
	n := math.Sqrt(s)
	out := make([]float64, len(d))
	for i, v := range d {
		out[i] = float64(v) / n
	}
	return out
}

// SortLeftToRight orders faces by the left edge of their detected box.
func SortLeftToRight(faces []Face) {
	sort.SliceStable(faces, func(i, j int) bool { return faces[i].Box.X < faces[j].Box.X })
}
