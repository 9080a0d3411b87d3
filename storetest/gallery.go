package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/fheserve/fheserve"
)

// testGalleries: a gallery is created with its model, read back, moved
// to a new revision only from the revision it holds, and a job on it
// keeps its claim.
func testGalleries(t *testing.T, s fheserve.Store) {
	ctx := context.Background()
	alice := MustAccount(t, s, "alice", fheserve.RoleOwner)
	carol := MustAccount(t, s, "carol", fheserve.RoleUser)
	m := &fheserve.Model{ID: "mdl_g", OwnerID: alice.ID, Name: "faces", Status: fheserve.ModelActive,
		Packing: "latency", LogN: 15, InputShape: []int{128}, OutputShape: []int{16}, BatchSize: 1,
		PlanJSON: []byte(`{"version":1}`), WeightsKey: "models/mdl_g/weights", WrappedKey: []byte{1}, CreatedAt: t0}
	g := &fheserve.Gallery{Dim: 128, Metric: fheserve.GalleryCosine, Threshold: 0.5, Capacity: 16, UpdatedAt: t0}
	g.ModelID = m.ID
	must(t, s.CreateGallery(ctx, m, g))
	if m.Version != 1 {
		t.Fatalf("gallery's model version %d, want 1", m.Version)
	}
	wantCode(t, s.CreateGallery(ctx, m, g), fheserve.ECONFLICT)
	got, err := s.Gallery(ctx, m.ID)
	must(t, err)
	if got.Name != "faces" || got.Owner != "alice" || got.Dim != 128 || got.Threshold != 0.5 || got.Capacity != 16 || got.Revision != 0 || got.BlobKey != "" {
		t.Fatalf("Gallery = %+v", got)
	}
	if _, err := s.Model(ctx, m.ID); err != nil {
		t.Fatalf("the gallery's model: %v", err)
	}
	_, err = s.Gallery(ctx, "mdl_nope")
	wantCode(t, err, fheserve.ENOTFOUND)

	next := *got
	next.Revision, next.Templates, next.BlobKey, next.UpdatedAt = 1, 3, "models/mdl_g/templates/1", t0.Add(time.Minute)
	must(t, s.UpdateGallery(ctx, &next, 0))
	wantCode(t, s.UpdateGallery(ctx, &next, 0), fheserve.ECONFLICT)
	next.ModelID = "mdl_nope"
	wantCode(t, s.UpdateGallery(ctx, &next, 1), fheserve.ENOTFOUND)
	got, _ = s.Gallery(ctx, m.ID)
	if got.Revision != 1 || got.Templates != 3 || got.BlobKey != "models/mdl_g/templates/1" || !got.UpdatedAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("updated gallery = %+v", got)
	}

	k := MustKeySet(t, s, carol, m, "key_g")
	must(t, s.CreateJob(ctx, &fheserve.Job{ID: "job_g", AccountID: carol.ID, ModelID: m.ID, KeySetID: k.ID,
		Status: fheserve.JobQueued, Samples: 1, Claim: "ada lovelace", InputKey: "in", CreatedAt: t0}))
	if j, _ := s.Job(ctx, "job_g"); j.Claim != "ada lovelace" {
		t.Fatalf("job claim %q, want %q", j.Claim, "ada lovelace")
	}
}
