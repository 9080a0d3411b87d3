package app

import (
	"context"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/blob"
	"github.com/fheserve/fheserve/inproc"
	"github.com/fheserve/fheserve/internal/pgtest"
	"github.com/fheserve/fheserve/postgres"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestDailyQuotaNodes submits one-sample jobs of one user through two
// Apps (nodes) on one PostgreSQL at once, none stored yet, against a
// daily quota of 10: exactly 10 pass, whichever node takes them. With
// the in-process count alone each node would pass 10.
func TestDailyQuotaNodes(t *testing.T) {
	ctx := context.Background()
	apps := twoNodes(t)
	user, m, _ := mustKeySet(t, apps[0])
	m.Limits = fheserve.ModelLimits{Daily: 10}
	now := apps[0].cfg.Now().UTC()
	var passed atomic.Int64
	var wg sync.WaitGroup
	releases := make(chan func(), 30)
	for i := range 30 {
		wg.Go(func() {
			release, err := apps[i%2].checkDaily(ctx, user, m, 1, now)
			switch fheserve.ErrorCode(err) {
			case "":
				passed.Add(1)
				releases <- release
			case fheserve.ERATELIMIT:
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if passed.Load() != 10 {
		t.Fatalf("%d of 30 submissions passed a daily quota of 10 through two nodes", passed.Load())
	}
	// A refused submission's message says the quota is used up; once the
	// pending ones are released (refused, say), the quota has room again.
	_, err := apps[1].checkDaily(ctx, user, m, 1, now)
	wantCode(t, err, fheserve.ERATELIMIT)
	close(releases)
	for release := range releases {
		release()
	}
	release, err := apps[1].checkDaily(ctx, user, m, 3, now)
	if err != nil {
		t.Fatal(err)
	}
	release()
}

// TestRateLimitNodes: two Apps on one database, 20 submissions at once
// against a rate of one sample a minute in bursts of 5: exactly 5 pass
// (each node's own buckets would let 5 through each); a refused
// submission gives back the tokens the user's bucket took, so the
// model-wide rate does not starve the user.
func TestRateLimitNodes(t *testing.T) {
	ctx := context.Background()
	apps := twoNodes(t)
	user, m, _ := mustKeySet(t, apps[0])
	m.Limits = fheserve.ModelLimits{RatePerMinute: 1, Burst: 5}
	var passed atomic.Int64
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			release, err := apps[i%2].checkLimits(ctx, user, m, 1)
			switch fheserve.ErrorCode(err) {
			case "":
				passed.Add(1)
				release()
			case fheserve.ERATELIMIT:
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if passed.Load() != 5 {
		t.Fatalf("%d of 20 submissions passed a rate of 1 a minute in bursts of 5 through two nodes", passed.Load())
	}

	// A model-wide rate that refuses gives the user's tokens back.
	m.Limits = fheserve.ModelLimits{RatePerMinute: 1, Burst: 2, ModelRatePerMinute: 1, ModelBurst: 1}
	if _, err := apps[0].checkLimits(ctx, user, m, 1); err != nil {
		t.Fatal(err)
	}
	_, err := apps[1].checkLimits(ctx, user, m, 1)
	wantCode(t, err, fheserve.ERATELIMIT)
	m.Limits.ModelRatePerMinute, m.Limits.ModelBurst = 60, 1 // a new model-wide bucket
	if _, err := apps[1].checkLimits(ctx, user, m, 1); err != nil {
		t.Fatalf("the user's second token was not given back: %v", err)
	}
}

// twoNodes returns two Apps on one new PostgreSQL database, each with its
// own pool, as two API nodes.
func twoNodes(t *testing.T) []*App {
	ctx := context.Background()
	url := pgtest.NewDB(t)
	var apps []*App
	for range 2 {
		st, err := postgres.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		blobs, err := blob.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		a, err := New(Config{Store: st, Blobs: blobs, Queue: inproc.NewQueue(), MasterKey: make([]byte, 32), Audit: mustLog(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { a.Close() })
		apps = append(apps, a)
	}
	return apps
}
