package app

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/storetest"
)

// unit returns the unit vector of dimension d along axis i.
func unit(d, i int) []float64 {
	v := make([]float64, d)
	v[i%d] = 1
	return v
}

func mustGallery(t *testing.T, a *App) (*fheserve.Account, *fheserve.Gallery) {
	t.Helper()
	owner := storetest.MustAccount(t, a.store, "olivia", fheserve.RoleOwner)
	g, err := a.CreateGallery(context.Background(), owner, &fheserve.GalleryRequest{Name: "faces", Dim: 8, Threshold: 0.5, Capacity: 4, Margin: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Enroll(context.Background(), owner, g.ModelID, &fheserve.EnrollRequest{Labels: []string{"ada", "bo"}, Embeddings: [][]float64{unit(8, 0), unit(8, 1)}}); err != nil {
		t.Fatal(err)
	}
	return owner, g
}

// sameGallery fails unless the gallery still holds labels at revision rev.
func sameGallery(t *testing.T, a *App, who *fheserve.Account, id string, labels []string, rev int) {
	t.Helper()
	g, err := a.Gallery(context.Background(), who, id)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(g.Labels, labels) || g.Revision != rev || g.Templates != len(labels) {
		t.Fatalf("gallery holds %v (%d templates) at revision %d, want %v at %d", g.Labels, g.Templates, g.Revision, labels, rev)
	}
}

// TestGalleryBadInput refuses bad galleries, enrolments and removals with
// a stable code and a message that says what to fix, and leaves the
// gallery as it was.
func TestGalleryBadInput(t *testing.T) {
	a, _ := mustApp(t)
	ctx := context.Background()
	owner, g := mustGallery(t, a)
	for _, tc := range []struct {
		name string
		req  fheserve.GalleryRequest
		msg  string
	}{
		{"dimension", fheserve.GalleryRequest{Name: "x", Dim: 0, Threshold: 0.5}, "--dim"},
		{"threshold", fheserve.GalleryRequest{Name: "x", Dim: 8, Threshold: 1}, "strictly between -1 and 1"},
		{"NaN threshold", fheserve.GalleryRequest{Name: "x", Dim: 8, Threshold: math.NaN()}, "threshold"},
		{"capacity", fheserve.GalleryRequest{Name: "x", Dim: 8, Threshold: 0.5, Capacity: 1 << 20}, "--capacity"},
		{"metric", fheserve.GalleryRequest{Name: "x", Dim: 8, Threshold: 0.5, Metric: "l2"}, `use "cosine"`},
		{"name", fheserve.GalleryRequest{Name: "a b", Dim: 8, Threshold: 0.5}, "letters, digits"},
	} {
		t.Run("create "+tc.name, func(t *testing.T) {
			_, err := a.CreateGallery(ctx, owner, &tc.req)
			wantCode(t, err, fheserve.EINVALID)
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("message %q does not say %q", err, tc.msg)
			}
		})
	}
	half := make([]float64, 8)
	half[0] = 0.5
	for _, tc := range []struct {
		name   string
		labels []string
		emb    [][]float64
		code   string
		msg    string
	}{
		{"wrong dimension", []string{"cy"}, [][]float64{unit(7, 2)}, fheserve.EINVALID, "dimension 8"},
		{"NaN", []string{"cy"}, [][]float64{append(unit(7, 2), math.NaN())}, fheserve.EINVALID, "non-finite"},
		{"infinite", []string{"cy"}, [][]float64{append(unit(7, 2), math.Inf(1))}, fheserve.EINVALID, "non-finite"},
		{"not unit norm", []string{"cy"}, [][]float64{half}, fheserve.EINVALID, "normalize embeddings to unit length"},
		{"duplicate in the request", []string{"cy", "cy"}, [][]float64{unit(8, 2), unit(8, 3)}, fheserve.EINVALID, "unique"},
		{"duplicate of an enrolled label", []string{"cy", "ada"}, [][]float64{unit(8, 2), unit(8, 3)}, fheserve.EINVALID, "unique"},
		{"empty label", []string{" "}, [][]float64{unit(8, 2)}, fheserve.EINVALID, "empty"},
		{"labels and embeddings", []string{"cy"}, [][]float64{unit(8, 2), unit(8, 3)}, fheserve.EINVALID, "one label per embedding"},
		{"beyond capacity", []string{"cy", "di", "ed"}, [][]float64{unit(8, 2), unit(8, 3), unit(8, 4)}, fheserve.EINVALID, "capacity of 4"},
		{"bad one among good ones", []string{"cy", "di"}, [][]float64{unit(8, 2), half}, fheserve.EINVALID, `"di" has norm`},
	} {
		t.Run("enrol "+tc.name, func(t *testing.T) {
			_, err := a.Enroll(ctx, owner, g.ModelID, &fheserve.EnrollRequest{Labels: tc.labels, Embeddings: tc.emb})
			wantCode(t, err, tc.code)
			if !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("message %q does not say %q", err, tc.msg)
			}
			sameGallery(t, a, owner, g.ModelID, []string{"ada", "bo"}, 1)
		})
	}
	_, err := a.RemoveTemplates(ctx, owner, g.ModelID, &fheserve.RemoveRequest{Labels: []string{"bo", "zed"}})
	wantCode(t, err, fheserve.ENOTFOUND)
	sameGallery(t, a, owner, g.ModelID, []string{"ada", "bo"}, 1)

	// A user sees labels and counts, and changes nothing.
	user := storetest.MustAccount(t, a.store, "ulrich", fheserve.RoleUser)
	sameGallery(t, a, user, g.ModelID, []string{"ada", "bo"}, 1)
	_, err = a.Enroll(ctx, user, g.ModelID, &fheserve.EnrollRequest{Labels: []string{"cy"}, Embeddings: [][]float64{unit(8, 2)}})
	wantCode(t, err, fheserve.EFORBIDDEN)
	other := storetest.MustAccount(t, a.store, "otto", fheserve.RoleOwner)
	_, err = a.RemoveTemplates(ctx, other, g.ModelID, &fheserve.RemoveRequest{Labels: []string{"ada"}})
	wantCode(t, err, fheserve.EFORBIDDEN)
}

type failingBlobs struct {
	fheserve.BlobStore
	fail string // keys containing it fail to be created
}

func (b failingBlobs) Create(ctx context.Context, key string) (fheserve.BlobWriter, error) {
	if strings.Contains(key, b.fail) {
		return nil, errors.New("disk full")
	}
	return b.BlobStore.Create(ctx, key)
}

type failingUpdate struct{ fheserve.Store }

func (failingUpdate) UpdateGallery(context.Context, *fheserve.Gallery, int) error {
	return errors.New("database is locked")
}

// TestGalleryChangeFailsWhole makes an enrolment and a removal fail half
// way, when the new templates are written and when the gallery is to
// move to them, and a change race another: each leaves the gallery as it
// was, with no new blob left behind.
func TestGalleryChangeFailsWhole(t *testing.T) {
	a, _ := mustApp(t)
	ctx := context.Background()
	owner, g := mustGallery(t, a)
	enrol := func() error {
		_, err := a.Enroll(ctx, owner, g.ModelID, &fheserve.EnrollRequest{Labels: []string{"cy"}, Embeddings: [][]float64{unit(8, 2)}})
		return err
	}
	remove := func() error {
		_, err := a.RemoveTemplates(ctx, owner, g.ModelID, &fheserve.RemoveRequest{Labels: []string{"ada"}})
		return err
	}
	blobs, store := a.blobs, a.store
	for _, change := range []func() error{enrol, remove} {
		a.blobs = failingBlobs{BlobStore: blobs, fail: "/templates/"}
		if err := change(); err == nil {
			t.Fatal("a change whose templates cannot be written succeeded")
		}
		a.blobs = blobs
		a.store = failingUpdate{store}
		if err := change(); err == nil {
			t.Fatal("a change whose gallery cannot be updated succeeded")
		}
		a.store = store
		if _, _, err := blobs.Open(ctx, "models/"+g.ModelID+"/templates/2"); fheserve.ErrorCode(err) != fheserve.ENOTFOUND {
			t.Fatalf("the templates of the failed change were left behind: %v", err)
		}
		sameGallery(t, a, owner, g.ModelID, []string{"ada", "bo"}, 1)
	}
	// A change that started from revision 1 after another moved it on.
	cur, err := a.store.Gallery(ctx, g.ModelID)
	if err != nil {
		t.Fatal(err)
	}
	if err := enrol(); err != nil {
		t.Fatal(err)
	}
	cur.Revision = 2
	wantCode(t, a.store.UpdateGallery(ctx, cur, 1), fheserve.ECONFLICT)
	sameGallery(t, a, owner, g.ModelID, []string{"ada", "bo", "cy"}, 2)
	if _, _, err := blobs.Open(ctx, "models/"+g.ModelID+"/templates/1"); fheserve.ErrorCode(err) != fheserve.ENOTFOUND {
		t.Fatalf("the replaced templates were left behind: %v", err)
	}
}
