package app

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/storetest"
)

func TestMemorySizing(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	tests := []struct {
		name      string
		limit     int64
		workers   int
		evalCache int64
	}{
		{"no limit", 0, runtime.NumCPU(), 2 << 30},
		{"1 GiB", 1 << 30, 1, 256 << 20},
		{"too little for one", 100 << 20, 1, 25 << 20},
		{"64 GiB", 64 << 30, runtime.NumCPU(), 16 << 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.limit == 0 {
				debug.SetMemoryLimit(1<<63 - 1)
			} else {
				debug.SetMemoryLimit(tt.limit)
			}
			var c Config
			c.setDefaults()
			if c.Workers != tt.workers || c.EvaluatorCacheBytes != tt.evalCache {
				t.Fatalf("workers %d, evaluator cache %d; want %d, %d", c.Workers, c.EvaluatorCacheBytes, tt.workers, tt.evalCache)
			}
		})
	}
}

// TestUploadSlots fills the per-user and the global cap and checks the
// refusals (429 at once for a user over its share, 503 after waiting
// UploadWait on a full server), that a waiting upload gets the place a
// finished one frees, and that a cancelled wait gives its place up.
func TestUploadSlots(t *testing.T) {
	ctx := context.Background()
	a, _ := mustApp(t)
	a.cfg.Bounds = Bounds{Uploads: 3, UploadsPerUser: 2, UploadWait: 20 * time.Millisecond}
	alice, bob, carol := &fheserve.Account{ID: "a"}, &fheserve.Account{ID: "b"}, &fheserve.Account{ID: "c"}
	steps := []struct {
		who  *fheserve.Account
		code string
	}{
		{alice, ""}, {alice, ""}, {alice, fheserve.ERATELIMIT}, {bob, ""}, {carol, fheserve.EUNAVAILABLE}, {bob, fheserve.EUNAVAILABLE},
	}
	var releases []func()
	for i, s := range steps {
		release, err := a.uploadSlot(ctx, s.who)
		if fheserve.ErrorCode(err) != s.code || (err != nil && fheserve.RetryAfter(err) <= 0) {
			t.Fatalf("step %d (%s): %v, want code %q with a time to retry", i, s.who.ID, err, s.code)
		}
		if release != nil {
			releases = append(releases, release)
		}
	}

	// A waiting upload gets the place of one that finishes.
	a.cfg.Bounds.UploadWait = time.Minute
	got := make(chan error, 1)
	go func() {
		release, err := a.uploadSlot(ctx, carol)
		if err == nil {
			release()
		}
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("carol did not wait for a place: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	releases[0]()
	if err := <-got; err != nil {
		t.Fatalf("carol, after one finished: %v", err)
	}

	// A cancelled wait leaves no trace: bob can still use two places.
	hold, err := a.uploadSlot(ctx, carol) // full again: alice, bob, carol
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	if _, err := a.uploadSlot(cctx, bob); fheserve.ErrorCode(err) != fheserve.EUNAVAILABLE {
		t.Fatalf("a cancelled wait on a full server: %v, want unavailable", err)
	}
	for _, release := range []func(){releases[1], releases[2], hold} {
		release()
	}
	for i := range 2 {
		if _, err := a.uploadSlot(ctx, bob); err != nil {
			t.Fatalf("bob's upload %d after the others finished: %v", i+1, err)
		}
	}
}

func TestQueuedPerUser(t *testing.T) {
	ctx := context.Background()
	a, _ := mustApp(t)
	a.cfg.Bounds.QueuedPerUser = 2
	owner := storetest.MustAccount(t, a.store, "olivia", fheserve.RoleOwner)
	u := storetest.MustAccount(t, a.store, "ulrich", fheserve.RoleUser)
	other := storetest.MustAccount(t, a.store, "ursula", fheserve.RoleUser)
	m := storetest.MustModel(t, a.store, owner, "mdl_1", "m")
	ks := storetest.MustKeySet(t, a.store, u, m, "key_1")
	for i, status := range []string{fheserve.JobDone, fheserve.JobQueued, fheserve.JobRunning} {
		j := &fheserve.Job{ID: fmt.Sprintf("job_%d", i), AccountID: u.ID, ModelID: m.ID, KeySetID: ks.ID, Status: status, CreatedAt: time.Now()}
		if err := a.store.CreateJob(ctx, j); err != nil {
			t.Fatal(err)
		}
	}
	err := a.checkQueue(ctx, u)
	if fheserve.ErrorCode(err) != fheserve.ERATELIMIT || fheserve.RetryAfter(err) <= 0 {
		t.Fatalf("third waiting job: %v, want rate_limited with a time to retry", err)
	}
	if err := a.checkQueue(ctx, other); err != nil {
		t.Fatalf("another user: %v", err)
	}
}
