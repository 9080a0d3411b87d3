package postgres

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fheserve/fheserve/internal/pgtest"
)

// TestRateBuckets takes tokens of one bucket (a burst of 5, one token a
// minute) through two nodes (pools) at once: exactly 5 of 40 pass; the
// bucket refills one token a minute, says how long until it has what is
// asked, and takes back tokens given back.
func TestRateBuckets(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDB(t)
	nodes := []*Store{MustOpen(t, url), MustOpen(t, url)}
	now := time.Date(2026, 12, 3, 6, 0, 0, 0, time.UTC)
	const key, every, burst = "mdl_1\x00acc_1\x001\x005", time.Minute, 5
	var passed atomic.Int64
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			d, err := nodes[i%2].TakeTokens(ctx, key, every, burst, 1, now)
			switch {
			case err != nil:
				t.Error(err)
			case d == 0:
				passed.Add(1)
			case d != every:
				t.Errorf("an empty bucket of one token a minute says to wait %v", d)
			}
		})
	}
	wg.Wait()
	if passed.Load() != burst {
		t.Fatalf("%d of 40 took a token from a bucket of %d", passed.Load(), burst)
	}
	take := func(n int, at time.Time) time.Duration {
		t.Helper()
		d, err := nodes[0].TakeTokens(ctx, key, every, burst, n, at)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	// 90 s later: one token back, not two.
	if d := take(2, now.Add(90*time.Second)); d != 30*time.Second {
		t.Fatalf("2 tokens after 90 s: wait %v, want 30s", d)
	}
	if d := take(1, now.Add(90*time.Second)); d != 0 {
		t.Fatalf("1 token after 90 s: wait %v, want it taken", d)
	}
	// Given back, tokens are there to take again.
	if err := nodes[1].ReturnTokens(ctx, key, every, 3); err != nil {
		t.Fatal(err)
	}
	if d := take(3, now.Add(90*time.Second)); d != 0 {
		t.Fatalf("3 tokens given back: wait %v, want them taken", d)
	}
	if d := take(1, now.Add(90*time.Second)); d == 0 {
		t.Fatal("took a token from an empty bucket")
	}
	// A new bucket is full; a day later an old one is full, not more.
	if d := take(burst, now.Add(24*time.Hour)); d != 0 {
		t.Fatalf("a full bucket: wait %v for its burst", d)
	}
	if d := take(1, now.Add(24*time.Hour)); d != every {
		t.Fatalf("after its burst: wait %v, want %v", d, every)
	}
}
