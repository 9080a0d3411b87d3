package face

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/fheserve/fheserve/npy"
)

// golden is what @vladmandic/face-api computed on its demo photos
// (tools/faceapi/reference.js, on the pixels face.DecodeImage gives).
type golden struct {
	FaceAPI string `json:"face_api"`
	TFJS    string `json:"tfjs"`
	Backend string `json:"backend"`
	Images  []struct {
		Image         string `json:"image"`
		Width, Height int
		Faces         []struct {
			Score      float64
			Box        goldenRect
			Landmarks  [][2]float64
			Aligned    goldenRect
			Descriptor []float64
		}
	}
}

type goldenRect struct{ X, Y, Width, Height float64 }

func (r goldenRect) rect() Rect { return Rect(r) }

// The stated tolerances, each about 10 times the largest difference
// measured on the demo photos (in brackets). tfjs's own backends, wasm and
// CPU, differ by up to 4e-7 on these descriptors; the port sums in another
// order, so its float32 rounding differs as much.
const (
	descriptorTol = 1e-5    // max abs difference of a descriptor's values [3.8e-7]
	cosineMin     = 0.99999 // cosine similarity with face-api's descriptor [1 - 1e-12]
	landmarkTol   = 1e-3    // pixels [1.1e-4]
	scoreTol      = 1e-4    // detector confidence [7.9e-6]
	boxTol        = 5e-3    // pixels [6.1e-4]
)

var (
	goldenOnce sync.Once
	goldenData golden
	goldenErr  error
	images     = map[string]*Image{}
)

func mustGolden(tb testing.TB) *golden {
	tb.Helper()
	goldenOnce.Do(func() {
		raw, err := os.ReadFile("testdata/golden.json")
		if err != nil {
			goldenErr = err
			return
		}
		if goldenErr = json.Unmarshal(raw, &goldenData); goldenErr != nil {
			return
		}
		for _, im := range goldenData.Images {
			img, err := ReadImage(filepath.Join("testdata", im.Image+".jpg"))
			if err != nil {
				goldenErr = err
				return
			}
			images[im.Image] = img
		}
	})
	if goldenErr != nil {
		tb.Fatalf("golden fixture: %v", goldenErr)
	}
	return &goldenData
}

func mustExtractor(tb testing.TB) *Extractor {
	tb.Helper()
	e, err := New()
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

func compareDescriptor(t *testing.T, got []float32, want []float64) {
	t.Helper()
	if len(got) != Dim || len(want) != Dim {
		t.Fatalf("descriptor lengths %d and %d, want %d", len(got), len(want), Dim)
	}
	var maxDiff, dot, ng, nw float64
	for i, g := range got {
		maxDiff = max(maxDiff, math.Abs(float64(g)-want[i]))
		dot += float64(g) * want[i]
		ng += float64(g) * float64(g)
		nw += want[i] * want[i]
	}
	cos := dot / math.Sqrt(ng*nw)
	if maxDiff > descriptorTol || cos < cosineMin {
		t.Errorf("descriptor: max abs diff %.3g (tolerance %g), cosine %.7f (at least %g)", maxDiff, descriptorTol, cos, cosineMin)
	}
	t.Logf("descriptor: max abs diff %.3g, cosine %.9f", maxDiff, cos)
}

// TestLandmarksMatchFaceAPI runs the landmark net on face-api's detection
// boxes and compares the points and the aligned crops.
func TestLandmarksMatchFaceAPI(t *testing.T) {
	g := mustGolden(t)
	e := mustExtractor(t)
	var all float64
	for _, im := range g.Images {
		for _, f := range im.Faces {
			pts, cw, ch := e.landmarks(images[im.Image], f.Box.rect())
			var worst float64
			for i, p := range pts {
				worst = max(worst, math.Abs(p[0]-f.Landmarks[i][0]), math.Abs(p[1]-f.Landmarks[i][1]))
			}
			all = max(all, worst)
			if worst > landmarkTol {
				t.Errorf("%s at %.0f,%.0f: landmarks differ by up to %.3g px", im.Image, f.Box.X, f.Box.Y, worst)
			}
			if a := alignDlib(pts, cw, ch); a != f.Aligned.rect() {
				t.Errorf("%s at %.0f,%.0f: aligned crop %+v, face-api %+v", im.Image, f.Box.X, f.Box.Y, a, f.Aligned)
			}
		}
	}
	t.Logf("landmarks: largest difference %.3g px", all)
}

// TestFacesMatchFaceAPI runs the whole pipeline, detector included, on each
// demo photo, and compares every stage's result with face-api's: the
// detections, the aligned crops and the descriptors.
func TestFacesMatchFaceAPI(t *testing.T) {
	g := mustGolden(t)
	e := mustExtractor(t)
	for _, im := range g.Images {
		t.Run(im.Image, func(t *testing.T) {
			faces := e.Faces(images[im.Image])
			if len(faces) != len(im.Faces) {
				t.Fatalf("%d faces, face-api found %d", len(faces), len(im.Faces))
			}
			SortLeftToRight(faces)
			for i, want := range im.Faces {
				got := faces[i]
				t.Logf("face %d: score differs by %.3g, box by %.3g px", i, math.Abs(got.Score-want.Score),
					max(math.Abs(got.Box.X-want.Box.X), math.Abs(got.Box.Y-want.Box.Y), math.Abs(got.Box.Width-want.Box.Width), math.Abs(got.Box.Height-want.Box.Height)))
				if math.Abs(got.Score-want.Score) > scoreTol {
					t.Errorf("face %d: score %.6f, face-api %.6f", i, got.Score, want.Score)
				}
				b, w := got.Box, want.Box
				if d := max(math.Abs(b.X-w.X), math.Abs(b.Y-w.Y), math.Abs(b.Width-w.Width), math.Abs(b.Height-w.Height)); d > boxTol {
					t.Errorf("face %d: box %+v, face-api %+v", i, b, w)
				}
				if got.Aligned != want.Aligned.rect() {
					// Then the descriptors differ by more than rounding;
					// the recognition net alone is checked on face-api's crop.
					t.Errorf("face %d: aligned crop %+v, face-api %+v", i, got.Aligned, want.Aligned)
					compareDescriptor(t, e.Descriptor(images[im.Image], want.Aligned.rect()), want.Descriptor)
					continue
				}
				compareDescriptor(t, got.Descriptor, want.Descriptor)
			}
		})
	}
}

// TestDescriptorsSeparatePeople checks that the descriptors behave as face
// descriptors: a demo face, cut out of its photo with a margin and mirrored
// (another picture of the same person, as the detector and the aligner see
// it), is nearer its original than any of the other 19 demo faces, and
// nearer than any two different demo faces are to each other. The demo
// photos show 20 different people, so identity is known by construction.
func TestDescriptorsSeparatePeople(t *testing.T) {
	g := mustGolden(t)
	e := mustExtractor(t)
	all, closestOthers := demoDescriptors(g)
	var farthestSelf float64
	lowestSelfCos, highestOthersCos := 1.0, -1.0
	for i := range all {
		for j := range i {
			highestOthersCos = max(highestOthersCos, cosine64(all[i], all[j]))
		}
	}
	first := 0 // the index in all of each photo's first face
	// One face of each photo keeps the test to a second or two.
	for _, im := range g.Images {
		r := im.Faces[0].Aligned.rect()
		cut, cx, cy := mirroredCut(images[im.Image], r, 4)
		found := e.Faces(cut)
		if len(found) == 0 {
			t.Fatalf("%s at %.0f,%.0f: no face in the mirrored cut", im.Image, r.X, r.Y)
		}
		// The face cut around is the one whose crop is centred nearest.
		self := found[0]
		near := func(f Face) float64 {
			return math.Hypot(f.Aligned.X+f.Aligned.Width/2-cx, f.Aligned.Y+f.Aligned.Height/2-cy)
		}
		for _, f := range found[1:] {
			if near(f) < near(self) {
				self = f
			}
		}
		nearest, best := -1, math.Inf(1)
		for i, d := range all {
			if dist := distance32(self.Descriptor, d); dist < best {
				nearest, best = i, dist
			}
		}
		d := distance32(self.Descriptor, all[first])
		farthestSelf = max(farthestSelf, d)
		lowestSelfCos = min(lowestSelfCos, cosine64(asFloat64(self.Descriptor), all[first]))
		if nearest != first {
			t.Errorf("%s at %.0f,%.0f: the mirrored face is nearest demo face %d (%.3f), not itself (%.3f)", im.Image, r.X, r.Y, nearest, best, d)
		}
		if d >= closestOthers {
			t.Errorf("%s at %.0f,%.0f: mirrored face at distance %.3f, two different people at %.3f", im.Image, r.X, r.Y, d, closestOthers)
		}
		first += len(im.Faces)
	}
	t.Logf("euclidean distance: same face mirrored at most %.3f, different people at least %.3f (face-api's usual threshold 0.6)", farthestSelf, closestOthers)
	t.Logf("cosine similarity: same face mirrored at least %.4f, different people at most %.4f", lowestSelfCos, highestOthersCos)
	if lowestSelfCos <= highestOthersCos {
		t.Errorf("a cosine threshold cannot separate them: same face at least %.4f, different people up to %.4f", lowestSelfCos, highestOthersCos)
	}
}

// demoDescriptors returns face-api's descriptors of the demo faces and the
// smallest distance between two of them (two different people).
func demoDescriptors(g *golden) (all [][]float64, closest float64) {
	for _, im := range g.Images {
		for _, f := range im.Faces {
			all = append(all, f.Descriptor)
		}
	}
	closest = math.Inf(1)
	for i := range all {
		for j := range i {
			closest = min(closest, distance64(all[i], all[j]))
		}
	}
	return all, closest
}

// mirroredCut returns the square around r, scale times its side, clipped to
// the image and flipped left to right, with the centre of r in it.
func mirroredCut(img *Image, r Rect, scale float64) (cut *Image, cx, cy float64) {
	cx, cy = r.X+r.Width/2, r.Y+r.Height/2
	side := scale * max(r.Width, r.Height)
	x0, y0 := max(0, int(cx-side/2)), max(0, int(cy-side/2))
	x1, y1 := min(img.Width, int(cx+side/2)), min(img.Height, int(cy+side/2))
	cut = &Image{Width: x1 - x0, Height: y1 - y0, Pix: make([]uint8, (x1-x0)*(y1-y0)*3)}
	for y := range cut.Height {
		for x := range cut.Width {
			src := ((y0+y)*img.Width + x1 - 1 - x) * 3
			copy(cut.Pix[(y*cut.Width+x)*3:][:3], img.Pix[src:src+3])
		}
	}
	return cut, float64(x1) - cx, cy - float64(y0)
}

func cosine64(a, b []float64) float64 {
	var dot, na, nb float64
	for i := range a {
		dot += a[i] * b[i]
		na += a[i] * a[i]
		nb += b[i] * b[i]
	}
	return dot / math.Sqrt(na*nb)
}

func asFloat64(d []float32) []float64 {
	out := make([]float64, len(d))
	for i, v := range d {
		out[i] = float64(v)
	}
	return out
}

func distance64(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += (a[i] - b[i]) * (a[i] - b[i])
	}
	return math.Sqrt(s)
}

func distance32(a []float32, b []float64) float64 {
	var s float64
	for i := range a {
		s += (float64(a[i]) - b[i]) * (float64(a[i]) - b[i])
	}
	return math.Sqrt(s)
}

// BenchmarkFaces times the whole pipeline on a 1920 x 1280 demo photo with
// three faces; BenchmarkDescriptor the recognition net alone on one crop.
func BenchmarkFaces(b *testing.B) {
	g := mustGolden(b)
	e := mustExtractor(b)
	img := images[g.Images[0].Image]
	for b.Loop() {
		e.Faces(img)
	}
}

func BenchmarkDescriptor(b *testing.B) {
	g := mustGolden(b)
	e := mustExtractor(b)
	im := g.Images[0]
	for b.Loop() {
		e.Descriptor(images[im.Image], im.Faces[0].Aligned.rect())
	}
}

func BenchmarkDetect(b *testing.B) {
	g := mustGolden(b)
	e := mustExtractor(b)
	img := images[g.Images[0].Image]
	for b.Loop() {
		e.det.detect(img.crop(0, 0, img.Width, img.Height))
	}
}

// TestDemoEmbeddings checks testdata/demo.npy and demo.labels.txt, the demo
// faces as a gallery enrols them (fheserve face embed --all
// testdata/sample*.jpg -o testdata/demo.npy: unit length, photo by photo,
// left to right, labelled sampleN-K): each row is face-api's descriptor
// scaled to unit length.
func TestDemoEmbeddings(t *testing.T) {
	g := mustGolden(t)
	a, err := npy.ReadFile(filepath.Join("testdata", "demo.npy"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join("testdata", "demo.labels.txt"))
	if err != nil {
		t.Fatal(err)
	}
	labels := strings.Fields(string(raw))
	row := 0
	for _, im := range g.Images {
		for k, f := range im.Faces {
			if row >= len(labels) || labels[row] != fmt.Sprintf("%s-%d", im.Image, k+1) {
				t.Fatalf("label %d is not %s-%d: %v", row, im.Image, k+1, labels)
			}
			var norm float64
			for _, v := range f.Descriptor {
				norm += v * v
			}
			norm = math.Sqrt(norm)
			for i, v := range f.Descriptor {
				if d := math.Abs(a.Data[row*Dim+i] - v/norm); d > descriptorTol {
					t.Fatalf("%s: value %d differs from face-api's scaled descriptor by %.3g", labels[row], i, d)
				}
			}
			row++
		}
	}
	if fmt.Sprint(a.Shape) != fmt.Sprint([]int{row, Dim}) || len(labels) != row {
		t.Fatalf("demo.npy shape %v and %d labels, want %d faces", a.Shape, len(labels), row)
	}
}

// TestFindCloseUp checks Find on close-ups, where the face fills the frame
// and the detector alone finds nothing: a mirrored cut of 1.2 times the
// aligned crop. The face found must be nearer its original than any two
// different demo people are to each other.
func TestFindCloseUp(t *testing.T) {
	g := mustGolden(t)
	e := mustExtractor(t)
	_, closestOthers := demoDescriptors(g)
	for _, name := range []string{"sample2"} {
		for _, im := range g.Images {
			if im.Image != name {
				continue
			}
			f := im.Faces[0]
			cut, _, _ := mirroredCut(images[name], f.Aligned.rect(), 1.2)
			if n := len(e.Faces(cut)); n != 0 {
				t.Fatalf("%s: the detector alone found %d faces in the close-up, so it does not test the border", name, n)
			}
			found := e.Find(cut)
			if len(found) != 1 {
				t.Fatalf("%s: Find found %d faces in the close-up, want 1", name, len(found))
			}
			d := distance32(found[0].Descriptor, f.Descriptor)
			t.Logf("%s: close-up at distance %.3f from the original", name, d)
			if d >= closestOthers {
				t.Errorf("%s: close-up at distance %.3f from the original, different people at %.3f", name, d, closestOthers)
			}
			if b := found[0].Box; b.X > float64(cut.Width)/2 || b.X+b.Width < float64(cut.Width)/2 {
				t.Errorf("%s: box %+v does not cover the close-up's centre (%d wide)", name, b, cut.Width)
			}
		}
	}
}

// TestEmbed checks the one-call API: the descriptor of a photo's one face,
// and ErrFaceCount for a photo with several.
func TestEmbed(t *testing.T) {
	g := mustGolden(t)
	d, err := Embed(filepath.Join("testdata", "sample2.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	for _, im := range g.Images {
		if im.Image == "sample2" {
			compareDescriptor(t, d, im.Faces[0].Descriptor)
		}
	}
	if _, err := Embed(filepath.Join("testdata", "sample1.jpg")); !errors.Is(err, ErrFaceCount) || !strings.Contains(err.Error(), "found 3") {
		t.Errorf("Embed of a photo with 3 faces: %v, want ErrFaceCount saying 3", err)
	}
}
