package http_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/internal/clustertest"
	"github.com/fheserve/fheserve/internal/unitvec"
)

var worldGalleries sync.Map // *world -> *fheserve.Gallery

// gallery is a gallery of olivia's that ulrich may use, created on first
// use, for the permission matrix.
func (w *world) gallery() *fheserve.Gallery {
	if g, ok := worldGalleries.Load(w); ok {
		return g.(*fheserve.Gallery)
	}
	g, err := w.owner.CreateGallery(context.Background(), w.galleryRequest())
	check(w.t, err)
	worldGalleries.Store(w, g)
	return g
}

func (w *world) galleryRequest() *fheserve.GalleryRequest {
	return &fheserve.GalleryRequest{Name: "faces", Dim: 4, Threshold: 0.5, Capacity: 256, Margin: 0.3, Allow: []string{"ulrich"}}
}

// enrolled enrols a fresh label in w's gallery and returns it.
func (w *world) enrolled() string {
	l := freshName("face")
	_, err := w.owner.Enroll(context.Background(), w.gallery().ModelID, []string{l}, [][]float64{{0, 1, 0, 0}})
	check(w.t, err)
	return l
}

// galleryEndpoints are the permission matrix's rows of the gallery routes.
func galleryEndpoints() []endpoint {
	return []endpoint{
		{"POST /v1/galleries", []string{owner, owner2}, func(w *world, _ string) call {
			return jsonCall("POST", "/v1/galleries", w.galleryRequest())
		}},
		{"GET /v1/galleries/{id}", []string{user, owner, admin}, func(w *world, _ string) call {
			return call{"GET", "/v1/galleries/" + w.gallery().ModelID, nil, ""}
		}},
		{"POST /v1/galleries/{id}/templates", []string{owner}, func(w *world, _ string) call {
			return jsonCall("POST", "/v1/galleries/"+w.gallery().ModelID+"/templates",
				fheserve.EnrollRequest{Labels: []string{freshName("face")}, Embeddings: [][]float64{{1, 0, 0, 0}}})
		}},
		{"POST /v1/galleries/{id}/remove", []string{owner}, func(w *world, _ string) call {
			return jsonCall("POST", "/v1/galleries/"+w.gallery().ModelID+"/remove", fheserve.RemoveRequest{Labels: []string{w.enrolled()}})
		}},
	}
}

// TestGalleryTemplatesSealed enrols templates and looks for them (each
// value as float64, float32 pairs and text) and for their labels in every
// file of the data directory and every row of the database: templates
// are sealed at rest like weights, and labels too.
func TestGalleryTemplatesSealed(t *testing.T) { clustertest.InModes(t, testGalleryTemplatesSealed) }

func testGalleryTemplatesSealed(t *testing.T, mode string) {
	ctx := context.Background()
	url, _, a, rest := mustServerIn(t, mode, t.TempDir())
	login := signup(t, url, a)
	owner := login("olivia", fheserve.RoleOwner)
	g, err := owner.CreateGallery(ctx, &fheserve.GalleryRequest{Name: "faces", Dim: 8, Threshold: 0.5, Capacity: 4, Margin: 0.5})
	check(t, err)
	rng := rand.New(rand.NewPCG(3, 3))
	labels := []string{"Ada Lovelace of London", "Grace Hopper of New York", "Katherine Johnson of Virginia"}
	var emb [][]float64
	var values []float64
	for range labels {
		e := unitvec.Random(rng, 8)
		emb, values = append(emb, e), append(values, e...)
	}
	_, err = owner.Enroll(ctx, g.ModelID, labels, emb)
	check(t, err)
	needles := valueNeedles("template value", values)
	for _, l := range labels {
		needles = append(needles, needle{"label " + l, []byte(l)})
	}
	files := rest.eachFile(t, func(path string, data []byte) {
		for _, n := range needles {
			if bytes.Contains(data, n.b) {
				t.Errorf("%s holds the %s", path, n.what)
			}
		}
	})
	nrows, _ := rest.eachRow(t, func(table, col string, b []byte) {
		for _, n := range needles {
			if bytes.Contains(b, n.b) {
				t.Errorf("table %s, column %s holds the %s", table, col, n.what)
			}
		}
	})
	if files < 3 || nrows < 3 {
		t.Fatalf("scanned only %d files and %d rows", files, nrows)
	}
	// The gallery still lists them: they are sealed, not lost.
	got, err := owner.Gallery(ctx, g.ModelID)
	check(t, err)
	if !slices.Equal(got.Labels, labels) {
		t.Fatalf("gallery lists %v", got.Labels)
	}
}
