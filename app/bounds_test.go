package app

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/storetest"
)

func TestMemorySizing(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	tests := []struct {
		name       string
		limit      int64
		evalMemory int64
		evalCache  int64
	}{
		{"no limit", 0, 0, 2 << 30},
		{"1 GiB", 1 << 30, 512 << 20, 256 << 20},
		{"100 MiB", 100 << 20, 50 << 20, 25 << 20},
		{"64 GiB", 64 << 30, 32 << 30, 16 << 30},
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
			if c.Workers != runtime.NumCPU() || c.EvalMemory != tt.evalMemory || c.EvaluatorCacheBytes != tt.evalCache {
				t.Fatalf("workers %d, evaluation memory %d, evaluator cache %d; want %d, %d, %d",
					c.Workers, c.EvalMemory, c.EvaluatorCacheBytes, runtime.NumCPU(), tt.evalMemory, tt.evalCache)
			}
		})
	}
}

// waitUntil waits for cond, which another goroutine makes true: tests
// order their goroutines by observable state, not by sleeping.
func waitUntil(t *testing.T, what string, cond func() bool) {
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Errorf("no %s after 30s", what)
			return
		}
		runtime.Gosched()
		time.Sleep(100 * time.Microsecond)
	}
}

// state returns the weight held and the number of waiters.
func (b *budget) state() [2]int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return [2]int64{b.used, int64(len(b.waiters))}
}

func waitersOf(b *budget) int { return int(b.state()[1]) }

// TestBudget checks the weighted semaphore that admits evaluations by
// memory and uploads by count: in order, while they fit; one larger than
// the budget alone; a cancelled wait leaves no trace.
func TestBudget(t *testing.T) {
	ctx := context.Background()
	b := &budget{cap: 100}
	r1, err := b.acquire(ctx, 60)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := b.acquire(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	// 35 does not fit beside 90; a later 10 that would fit waits behind it.
	got := make(chan string, 2)
	releases := map[string]chan func(){"a": make(chan func(), 1), "b": make(chan func(), 1)}
	for i, w := range []struct {
		name string
		n    int64
	}{{"a", 35}, {"b", 10}} {
		go func() {
			r, err := b.acquire(ctx, w.n)
			if err != nil {
				got <- "error " + err.Error()
				return
			}
			releases[w.name] <- r
			got <- w.name
		}()
		// b queues after a.
		waitUntil(t, w.name+" waiting", func() bool { return waitersOf(b) == i+1 })
	}
	if st := b.state(); st != [2]int64{90, 2} || len(got) != 0 {
		t.Fatalf("a full budget: used %d, %d waiters, %d admitted", st[0], st[1], len(got))
	}
	r2() // 60 used: a fits (95); b (105) does not
	if g := <-got; g != "a" {
		t.Fatalf("admitted %s, want a", g)
	}
	if st := b.state(); st != [2]int64{95, 1} || len(got) != 0 {
		t.Fatalf("with a admitted: used %d, %d waiters, %d admitted", st[0], st[1], len(got))
	}
	(<-releases["a"])()
	if g := <-got; g != "b" {
		t.Fatalf("admitted %s, want b", g)
	}
	r1()
	(<-releases["b"])()
	if b.used != 0 || len(b.waiters) != 0 {
		t.Fatalf("after every release: used %d, %d waiters", b.used, len(b.waiters))
	}

	// Larger than the budget: admitted alone.
	big, err := b.acquire(ctx, 1000)
	if err != nil || b.used != 100 {
		t.Fatalf("a job above the budget: %v, used %d", err, b.used)
	}
	cctx, cancel := context.WithCancel(ctx)
	go func() {
		waitUntil(t, "a waiter", func() bool { return waitersOf(b) == 1 })
		cancel()
	}()
	if _, err := b.acquire(cctx, 1); err == nil {
		t.Fatal("admitted beside a job that takes the whole budget")
	}
	big()
	if b.used != 0 || len(b.waiters) != 0 {
		t.Fatalf("after a cancelled wait: used %d, %d waiters", b.used, len(b.waiters))
	}
	// Unbounded: admits at once.
	if _, err := (&budget{}).acquire(ctx, 1<<40); err != nil {
		t.Fatal(err)
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
	a.limits.uploads = slots{total: &budget{cap: 3}, perUser: 2, what: "uploads"}
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
	waitUntil(t, "carol waiting", func() bool { return waitersOf(a.limits.uploads.total) == 1 })
	if len(got) != 0 {
		t.Fatalf("carol did not wait for a place: %v", <-got)
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
	go func() {
		waitUntil(t, "bob waiting", func() bool { return waitersOf(a.limits.uploads.total) == 1 })
		cancel()
	}()
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

// TestWatcher checks what a progress stream is told: a change of the job
// marks it changed; a move of the queue only wakes it, and Refresh reads
// the new position from the queue, not the store.
func TestWatcher(t *testing.T) {
	ctx := context.Background()
	a, _ := mustApp(t)
	u, m, ks := mustKeySet(t, a)
	for _, id := range []string{"job_a", "job_b"} {
		j := &fheserve.Job{ID: id, AccountID: u.ID, ModelID: m.ID, KeySetID: ks.ID, Status: fheserve.JobQueued, CreatedAt: time.Now()}
		if err := a.store.CreateJob(ctx, j); err != nil {
			t.Fatal(err)
		}
		if err := a.queue.Push(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	w, err := a.Watch(ctx, u, "job_b")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if !w.Changed() {
		t.Fatal("a new watcher must read the job once")
	}
	j, err := a.Job(ctx, u, "job_b")
	if err != nil || j.QueuePosition == nil || *j.QueuePosition != 1 {
		t.Fatalf("job_b: %+v, %v; want queued at position 1", j, err)
	}

	// The worker takes job_a: the queue moved, job_b did not change.
	if id, err := a.queue.Pop(ctx); err != nil || id != "job_a" {
		t.Fatalf("pop: %q, %v", id, err)
	}
	a.notifyAll()
	select {
	case <-w.Wake():
	case <-time.After(time.Second):
		t.Fatal("a move of the queue did not wake the watcher")
	}
	if w.Changed() {
		t.Fatal("a move of the queue marked the job changed")
	}
	w.Refresh(j)
	if j.QueuePosition == nil || *j.QueuePosition != 0 {
		t.Fatalf("after Refresh: position %v, want 0", j.QueuePosition)
	}

	// A change of job_b marks it changed.
	a.notify("job_b")
	<-w.Wake()
	if !w.Changed() {
		t.Fatal("a change of the job did not mark it changed")
	}
	if _, err := a.Watch(ctx, &fheserve.Account{ID: "x", Role: fheserve.RoleUser, Status: fheserve.AccountActive}, "job_b"); err == nil {
		t.Fatal("another user watched job_b")
	}
}

// TestNoWarmUpWithoutWorkers: an App with no workers of its own (an API
// node with --workers 0 in front of separate workers) starts no
// preparation after a key set's upload or a gallery's change, since its
// jobs are evaluated elsewhere; one with workers starts both (here they
// fail, on a stored model without weights, and say so).
func TestNoWarmUpWithoutWorkers(t *testing.T) {
	for _, workers := range []int{0, 1} {
		t.Run(fmt.Sprint("workers=", workers), func(t *testing.T) {
			a, _ := mustApp(t)
			// Written by the preparations before they end, read after.
			var log bytes.Buffer
			a.cfg.Workers, a.log = workers, slog.New(slog.NewTextHandler(&log, nil))
			_, m, _ := mustKeySet(t, a)
			ctx := context.Background()
			a.warmLater(ctx, m, "key_1", nil)
			a.warmQueryLater(ctx, m, 1)
			for deadline := time.Now().Add(10 * time.Second); a.limits.warming.Load() != 0; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the preparations did not end")
				}
			}
			if got, want := strings.Count(log.String(), "cannot prepare"), 2*workers; got != want {
				t.Errorf("%d preparations tried, want %d:\n%s", got, want, log.String())
			}
		})
	}
}
