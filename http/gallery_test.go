package http_test

import (
	"context"
	"sync"

	"github.com/fheserve/fheserve"
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
