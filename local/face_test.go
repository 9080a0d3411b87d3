package local

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/face"
	"github.com/fheserve/fheserve/npy"
	"github.com/fheserve/fheserve/plan"
)

// faceThreshold and faceMargin are the gallery a test of the demo faces
// enrols them in: the demo photos show 20 different people at cosines
// 0.81 to 0.94 from each other, and a face mirrored (another picture of
// the same person, as the detector and the aligner see it) lies at 0.966
// or more from its original, so the threshold lies in the middle of that
// gap. The narrowest margin a 2^15 ring holds there is 0.0152 (3 g3
// stages, depth 14), a little wider than half the gap (0.013): the
// nearest pairs on both sides lie inside it. The next stage (margin
// 0.0037) needs depth 17, which only a 2^16 ring holds, at 24.8 bits of
// circuit privacy over the default query budget.
const (
	faceThreshold = 0.953
	faceMargin    = 0.016
)

// demoFaces returns the demo faces as a gallery enrols them
// (face/testdata/demo.npy, unit rows, photo by photo and left to right)
// and, for the photos named, probes made with face from the photos
// flipped left to right: probes[i] is a mirrored picture of the person
// of template who[i].
func demoFaces(t *testing.T, photos []string) (g *compiler.Gallery, probes [][]float64, who []int) {
	t.Helper()
	dir := filepath.Join("..", "face", "testdata")
	a, err := npy.ReadFile(filepath.Join(dir, "demo.npy"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "demo.labels.txt"))
	if err != nil {
		t.Fatal(err)
	}
	g = &compiler.Gallery{Name: "demo", Dim: face.Dim, Metric: compiler.MetricCosine, Threshold: faceThreshold,
		Labels: strings.Fields(string(raw)), Templates: a.Data}
	e, err := face.New()
	if err != nil {
		t.Fatal(err)
	}
	for _, photo := range photos {
		img, err := face.ReadImage(filepath.Join(dir, photo+".jpg"))
		if err != nil {
			t.Fatal(err)
		}
		orig, flipped := e.Faces(img), e.Faces(mirror(img))
		face.SortLeftToRight(orig)
		first := slices.Index(g.Labels, photo+"-1")
		if first < 0 || first+len(orig) > len(g.Labels) || !strings.HasPrefix(g.Labels[first+len(orig)-1], photo+"-") {
			t.Fatalf("%s: %d faces, not as many as demo.labels.txt has", photo, len(orig))
		}
		// Each face's mirrored picture is the face found nearest where
		// the mirror puts its box's centre.
		for k, f := range orig {
			cx, cy := float64(img.Width)-(f.Box.X+f.Box.Width/2), f.Box.Y+f.Box.Height/2
			dist := func(m face.Face) float64 { return math.Hypot(m.Box.X+m.Box.Width/2-cx, m.Box.Y+m.Box.Height/2-cy) }
			if len(flipped) == 0 {
				t.Logf("%s-%d: no face in the mirrored photo; left out", photo, k+1)
				continue
			}
			m := slices.MinFunc(flipped, func(a, b face.Face) int { return cmp.Compare(dist(a), dist(b)) })
			if dist(m) > f.Box.Width/4 {
				// The detector does not see every face of a group photo
				// the same way mirrored.
				t.Logf("%s-%d: no face in the mirrored photo where the mirror puts it; left out", photo, k+1)
				continue
			}
			probes = append(probes, unit(m.Descriptor))
			who = append(who, first+k)
		}
	}
	if len(probes) == 0 {
		t.Fatalf("no face of %v found mirrored", photos)
	}
	return g, probes, who
}

// mirror flips img left to right.
func mirror(img *face.Image) *face.Image {
	out := &face.Image{Width: img.Width, Height: img.Height, Pix: make([]uint8, len(img.Pix))}
	for y := range img.Height {
		for x := range img.Width {
			copy(out.Pix[(y*img.Width+x)*3:][:3], img.Pix[(y*img.Width+img.Width-1-x)*3:][:3])
		}
	}
	return out
}

func unit(d []float32) []float64 {
	var n float64
	for _, v := range d {
		n += float64(v) * float64(v)
	}
	out := make([]float64, len(d))
	for i, v := range d {
		out[i] = float64(v) / math.Sqrt(n)
	}
	return out
}

// TestFaceDecisions enrols the 20 demo faces in a gallery whose threshold
// lies between different people (at most 0.94) and mirrored pictures of
// the same person (at least 0.966), at the default margin (2^15, depth
// 11) or with -long at faceMargin (2^16, depth 14, minutes), and probes it, encrypted, with mirrored pictures: for every probe
// the identification's 20 decisions, and the verifications of its own
// label, of the nearest other person's and of the farthest's, equal the float64 decisions
// for every pair outside the stated margin, and lie in [0, 1] inside it
// (where the sign approximation may err: how many pairs lie there and
// how many of them erred is logged). -long probes with every demo face
// mirrored, the default with sample2's.
//
// The randomized decisions (plan.Randomized, at their default margin) are
// checked the same way: the sign outside the margin, the magnitude
// within the factors' spread.
func TestFaceDecisions(t *testing.T) {
	for _, method := range []string{plan.Polynomial, plan.Randomized} {
		t.Run(method, func(t *testing.T) {
			if method == plan.Polynomial && !*long {
				// 11 levels of sign polynomials at N=2^15: TestGalleryDecisionsEncrypted
				// and sdk's TestGalleryResultHoldsDecisionsOnly check polynomial
				// decisions by default, on smaller galleries.
				t.Skip("-long: polynomial decisions on the demo faces (N=2^15, 10 s or more)")
			}
			faceDecisions(t, method)
		})
	}
}

func faceDecisions(t *testing.T, method string) {
	photos, margin := []string{"sample2"}, 0.0
	if *long {
		photos = []string{"sample1", "sample2", "sample3", "sample4", "sample5", "sample6"}
		if method == plan.Polynomial {
			margin = faceMargin
		}
	}
	g, probes, who := demoFaces(t, photos)
	r, err := NewGalleryPlan(g, len(g.Labels), compiler.GalleryOptions{Margin: margin, Decision: method}, 2)
	if err != nil {
		t.Fatal(err)
	}
	d := r.Plan.Decision
	if margin > 0 && d.Margin > margin {
		t.Fatalf("margin %.4g stated, %g asked", d.Margin, margin)
	}
	identify, err := r.Query(g, "", 2)
	if err != nil {
		t.Fatal(err)
	}
	nearest := 1.0 // the distance to the threshold of the pair nearest it
	var inside, erred int
	count := func(out, score []float64) {
		for i, s := range score {
			if math.Abs(s-faceThreshold) < d.Margin {
				inside++
				if d.Decisions(out[i : i+1])[0] != (s >= faceThreshold) {
					erred++
				}
			}
		}
	}
	for p, probe := range probes {
		score := scores(g, probe)
		for _, s := range score {
			nearest = min(nearest, math.Abs(s-faceThreshold))
		}
		out, err := identify.Predict(context.Background(), probe, 1)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(fmt.Sprintf("identify %d", p), func(t *testing.T) { checkDecisions(t, identify.Plan, out, score) })
		count(out, score)
		// The verifications: the probe's own person, the other person who
		// scores highest (the impostor nearest the threshold) and the one
		// who scores lowest.
		near, far := -1, -1
		for j, s := range score {
			if j == who[p] {
				continue
			}
			if near < 0 || s > score[near] {
				near = j
			}
			if far < 0 || s < score[far] {
				far = j
			}
		}
		for _, j := range []int{who[p], near, far} {
			v, err := r.Query(g, g.Labels[j], 2)
			if err != nil {
				t.Fatal(err)
			}
			out, err := v.Predict(context.Background(), probe, 1)
			if err != nil {
				t.Fatal(err)
			}
			t.Run(fmt.Sprintf("verify %d as %s", p, g.Labels[j]), func(t *testing.T) {
				if e := v.Plan.Precision.OutputError; !d.IsRandomized() && math.Abs(score[j]-faceThreshold) < d.Margin && (out[0] < -e || out[0] > 1+e) {
					t.Fatalf("score %.4f inside the margin decrypts to %.4f, outside [0, 1]", score[j], out[0])
				} else if d.IsRandomized() || math.Abs(score[j]-faceThreshold) >= d.Margin {
					checkDecisions(t, v.Plan, out, score[j:j+1])
				}
			})
			count(out, score[j:j+1])
		}
	}
	if nearest >= compiler.DefaultGalleryMargin {
		t.Errorf("the pair nearest the threshold lies %.4f from it, not near it", nearest)
	}
	t.Logf("%s: %d probes of %d templates: logN %d depth %d, margin %.4g (asked %.3g), error %.3g; pair nearest the threshold at %.4f; %d decisions inside the margin, %d of them wrong; identification evaluates in %v",
		method, len(probes), len(g.Labels), r.Plan.Params.LogN, r.Plan.Depth, d.Margin, margin, d.Error, nearest, inside, erred, identify.Stats.Evaluate)
}
