package postgres

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/internal/pgtest"
	"github.com/fheserve/fheserve/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// MustOpen opens the store on url, closed at the end of the test.
func MustOpen(tb testing.TB, url string) *Store {
	tb.Helper()
	s, err := Open(context.Background(), url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func TestStore(t *testing.T) {
	storetest.Store(t, func(t *testing.T) fheserve.Store {
		s, err := Open(context.Background(), pgtest.NewDB(t))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestReopen checks that migrations run once and data survives a reopen.
func TestReopen(t *testing.T) {
	url := pgtest.NewDB(t)
	s := MustOpen(t, url)
	storetest.MustAccount(t, s, "alice", fheserve.RoleUser)
	s.Close()
	s = MustOpen(t, url)
	if _, err := s.AccountByUsername(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentMigrations starts several nodes (pools) on one empty
// database at once: each migration is applied once, and every node opens.
func TestConcurrentMigrations(t *testing.T) {
	url := pgtest.NewDB(t)
	const nodes = 6
	var wg sync.WaitGroup
	errs := make([]error, nodes)
	for i := range nodes {
		wg.Go(func() {
			s, err := Open(context.Background(), url)
			if err == nil {
				s.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("node %d: %v", i, err)
		}
	}
	s := MustOpen(t, url)
	var n, high int
	if err := s.db.QueryRow(context.Background(), `SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&n, &high); err != nil {
		t.Fatal(err)
	}
	if n != len(migrations) || high != len(migrations) {
		t.Errorf("schema_migrations holds %d rows up to version %d, want %d", n, high, len(migrations))
	}
}

// TestNewerSchema checks that a binary refuses a database migrated by a
// newer one rather than writing to a schema it does not know.
func TestNewerSchema(t *testing.T) {
	url := pgtest.NewDB(t)
	s := MustOpen(t, url)
	if _, err := s.db.Exec(context.Background(), `INSERT INTO schema_migrations VALUES ($1, 0)`, len(migrations)+1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := Open(context.Background(), url); err == nil {
		s.Close()
		t.Fatal("opened a database of a newer schema")
	}
}

// TestSealedModel checks that a sealed model's flag and bound are stored.
func TestSealedModel(t *testing.T) {
	ctx := context.Background()
	s := MustOpen(t, pgtest.NewDB(t))
	alice := storetest.MustAccount(t, s, "alice", fheserve.RoleOwner)
	m := &fheserve.Model{ID: "mdl_s", OwnerID: alice.ID, Name: "s", Status: fheserve.ModelActive, Packing: "latency",
		InputShape: []int{4}, OutputShape: []int{2}, PlanJSON: []byte(`{}`), WeightsKey: "models/mdl_s/weights",
		Sealed: true, MaxSealedKeySets: 7}
	if err := s.CreateModel(ctx, m); err != nil {
		t.Fatal(err)
	}
	got, err := s.Model(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Sealed || got.MaxSealedKeySets != 7 || len(got.WrappedKey) != 0 {
		t.Errorf("stored sealed model: sealed %v, max sealed key sets %d, wrapped key %x", got.Sealed, got.MaxSealedKeySets, got.WrappedKey)
	}
}

// TestConcurrentVersions deploys one name many times at once through two
// nodes: every deployment gets a version of its own, 1 to n.
func TestConcurrentVersions(t *testing.T) {
	url := pgtest.NewDB(t)
	a, b := MustOpen(t, url), MustOpen(t, url)
	alice := storetest.MustAccount(t, a, "alice", fheserve.RoleOwner)
	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			m := &fheserve.Model{ID: fmt.Sprintf("mdl_%d", i), OwnerID: alice.ID, Name: "mnist", Status: fheserve.ModelActive,
				InputShape: []int{1}, OutputShape: []int{1}, PlanJSON: []byte(`{}`), WrappedKey: []byte{1}}
			errs[i] = s.CreateModel(context.Background(), m)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("deployment %d: %v", i, err)
		}
	}
	ms, err := a.Models(context.Background(), fheserve.ModelFilter{OwnerID: alice.ID})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, m := range ms {
		seen[m.Version] = true
	}
	if len(ms) != n || len(seen) != n || !seen[1] || !seen[n] {
		t.Errorf("%d models with %d distinct versions, want %d of 1..%d", len(ms), len(seen), n, n)
	}
}

// TestGallery checks a gallery's round trip and that its revision is a
// compare-and-set across nodes: of two updates from one revision through
// two pools, one wins and the other gets ECONFLICT.
func TestGallery(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDB(t)
	a, b := MustOpen(t, url), MustOpen(t, url)
	alice := storetest.MustAccount(t, a, "alice", fheserve.RoleOwner)
	m := &fheserve.Model{ID: "mdl_g", OwnerID: alice.ID, Name: "faces", Status: fheserve.ModelActive,
		InputShape: []int{128}, OutputShape: []int{1}, PlanJSON: []byte(`{}`)}
	g := &fheserve.Gallery{Dim: 128, Metric: "cosine", Threshold: 0.4, Capacity: 64, UpdatedAt: time.Unix(0, 123456789)}
	if err := a.CreateGallery(ctx, m, g); err != nil {
		t.Fatal(err)
	}
	got, err := b.Gallery(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "faces" || got.Owner != "alice" || got.Dim != 128 || got.Threshold != 0.4 || got.Capacity != 64 || !got.UpdatedAt.Equal(g.UpdatedAt) {
		t.Fatalf("Gallery = %+v", got)
	}
	if _, err := b.Gallery(ctx, "mdl_nope"); fheserve.ErrorCode(err) != fheserve.ENOTFOUND {
		t.Fatalf("unknown gallery: %v", err)
	}
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, s := range []*Store{a, b} {
		wg.Go(func() {
			up := *got
			up.Templates, up.Revision, up.BlobKey = i+1, 1, fmt.Sprintf("galleries/%d", i)
			errs[i] = s.UpdateGallery(ctx, &up, 0)
		})
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch fheserve.ErrorCode(err) {
		case "":
			won++
		case fheserve.ECONFLICT:
		default:
			t.Fatal(err)
		}
	}
	if won != 1 {
		t.Fatalf("%d of 2 updates from one revision won: %v", won, errs)
	}
	if got, _ = a.Gallery(ctx, m.ID); got.Revision != 1 || got.Templates == 0 {
		t.Fatalf("after the update: %+v", got)
	}
	up := *got
	up.ModelID = "mdl_nope"
	if err := a.UpdateGallery(ctx, &up, 1); fheserve.ErrorCode(err) != fheserve.ENOTFOUND {
		t.Fatalf("update of an unknown gallery: %v", err)
	}
	k := storetest.MustKeySet(t, a, alice, m, "key_1")
	j := &fheserve.Job{ID: "job_v", AccountID: alice.ID, ModelID: m.ID, KeySetID: k.ID, Status: fheserve.JobQueued, Samples: 1, Claim: "olivia"}
	if err := a.CreateJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Job(ctx, j.ID); err != nil || got.Claim != "olivia" {
		t.Fatalf("job's claim: %+v, %v", got, err)
	}
}

// TestRestart restarts PostgreSQL under an open store: the pool's
// connections are dropped, and the store works again at once without
// reopening, with everything committed before.
func TestRestart(t *testing.T) {
	ctx := context.Background()
	s := MustOpen(t, pgtest.NewDB(t))
	storetest.MustAccount(t, s, "alice", fheserve.RoleUser)
	pgtest.Restart(t)
	time.Sleep(200 * time.Millisecond) // the pool pings connections idle longer than 100 ms
	if _, err := s.AccountByUsername(ctx, "alice"); err != nil {
		t.Fatalf("after the restart: %v", err)
	}
	storetest.MustAccount(t, s, "bob", fheserve.RoleUser)
}
