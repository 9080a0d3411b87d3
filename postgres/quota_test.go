package postgres

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/internal/pgtest"
	"github.com/fheserve/fheserve/storetest"
)

// TestQuotaRace submits one-sample jobs of two users on one model through
// two nodes (pools) at once, each reserving against a daily quota of 10
// per user and 15 for the model, as the App does before it stores a job:
// exactly 15 pass, at most 10 of either user, however the requests
// interleave. Released and lapsed reservations stop counting; stored jobs
// count from the start of the day.
func TestQuotaRace(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDB(t)
	nodes := []*Store{MustOpen(t, url), MustOpen(t, url)}
	alice := storetest.MustAccount(t, nodes[0], "alice", fheserve.RoleOwner)
	users := []*fheserve.Account{storetest.MustAccount(t, nodes[0], "carol", fheserve.RoleUser), storetest.MustAccount(t, nodes[0], "dave", fheserve.RoleUser)}
	m := storetest.MustModel(t, nodes[0], alice, "mdl_1", "mnist")
	now := time.Date(2026, 12, 2, 18, 0, 0, 0, time.UTC)
	day := now.Truncate(24 * time.Hour)
	reserve := func(s *Store, id string, user *fheserve.Account, at time.Time) ([]int, bool, error) {
		return s.ReserveSamples(ctx, &fheserve.SampleReservation{ID: id, ModelID: m.ID, AccountID: user.ID, Samples: 1,
			Quotas: []fheserve.SampleQuota{{AccountID: user.ID, Limit: 10}, {Limit: 15}},
			At:     at, Since: day, Until: at.Add(time.Minute)})
	}

	const tries = 40
	var passed atomic.Int64
	var lastPassed atomic.Value
	perUser := make([]atomic.Int64, len(users))
	var wg sync.WaitGroup
	for i := range tries {
		wg.Go(func() {
			_, ok, err := reserve(nodes[i%2], fmt.Sprintf("res_%d", i), users[i/2%2], now)
			if err != nil {
				t.Error(err)
			}
			if ok {
				lastPassed.Store(i)
				passed.Add(1)
				perUser[i/2%2].Add(1)
			}
		})
	}
	wg.Wait()
	if passed.Load() != 15 || perUser[0].Load() > 10 || perUser[1].Load() > 10 {
		t.Fatalf("%d of %d passed (carol %d, dave %d); want 15, at most 10 each", passed.Load(), tries, perUser[0].Load(), perUser[1].Load())
	}

	// A released reservation frees its sample for the other node.
	used, ok, err := reserve(nodes[1], "res_x", users[0], now)
	if err != nil || ok || used[1] != 15 {
		t.Fatalf("a 16th sample: used %v, passed %v, %v", used, ok, err)
	}
	released := lastPassed.Load().(int)
	if err := nodes[0].ReleaseSamples(ctx, fmt.Sprintf("res_%d", released)); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := reserve(nodes[1], "res_x", users[released/2%2], now); err != nil || !ok {
		t.Fatalf("after a release: passed %v, %v", ok, err)
	}
	// Lapsed reservations no longer count; a stored job of today does.
	later := now.Add(2 * time.Minute)
	k := storetest.MustKeySet(t, nodes[0], users[0], m, "key_1")
	j := &fheserve.Job{ID: "job_1", AccountID: users[0].ID, ModelID: m.ID, KeySetID: k.ID, Status: fheserve.JobQueued, Samples: 4, CreatedAt: now}
	if err := nodes[1].CreateJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	used, ok, err = reserve(nodes[0], "res_y", users[0], later)
	if err != nil || !ok || used[0] != 4 || used[1] != 4 {
		t.Fatalf("after the reservations lapsed, with a stored job of 4: used %v, passed %v, %v; want [4 4], passed", used, ok, err)
	}
	if _, _, err := nodes[0].ReserveSamples(ctx, &fheserve.SampleReservation{ID: "res_z", ModelID: "mdl_nope"}); fheserve.ErrorCode(err) != fheserve.ENOTFOUND {
		t.Fatalf("a reservation on an unknown model: %v", err)
	}
}

// BenchmarkReserveSamples reserves and releases one sample of a model's
// quotas from 16 goroutines over two nodes (pools): every reservation on
// one model waits for the model's row lock.
func BenchmarkReserveSamples(b *testing.B) {
	ctx := context.Background()
	url := pgtest.NewDB(b)
	nodes := []*Store{MustOpen(b, url), MustOpen(b, url)}
	alice := storetest.MustAccount(b, nodes[0], "alice", fheserve.RoleOwner)
	carol := storetest.MustAccount(b, nodes[0], "carol", fheserve.RoleUser)
	m := storetest.MustModel(b, nodes[0], alice, "mdl_1", "mnist")
	now := time.Now()
	var next atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		s := nodes[next.Add(1)%2]
		for pb.Next() {
			id := fmt.Sprintf("res_%d", next.Add(1))
			_, ok, err := s.ReserveSamples(ctx, &fheserve.SampleReservation{ID: id, ModelID: m.ID, AccountID: carol.ID, Samples: 1,
				Quotas: []fheserve.SampleQuota{{AccountID: carol.ID, Limit: 1 << 30}, {Limit: 1 << 30}},
				At:     now, Since: now.Truncate(24 * time.Hour), Until: now.Add(time.Minute)})
			if err != nil || !ok {
				b.Error(ok, err)
				return
			}
			if err := s.ReleaseSamples(ctx, id); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reservations/s")
}

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
