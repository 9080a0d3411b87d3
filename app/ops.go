package app

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/fheserve/fheserve"
)

// ops is what the operator's probes and metrics read.
type ops struct {
	workers atomic.Int32 // worker goroutines running
	// keyHits and keyMisses count the jobs whose key set's evaluation
	// keys were cached, and those that read them from the blob store.
	keyHits, keyMisses atomic.Int64

	mu       sync.Mutex
	finished []func(*fheserve.Job)
}

// OnJobFinished registers f to be called with every job that ends (done
// or failed), after it is stored. f must not block.
func (a *App) OnJobFinished(f func(*fheserve.Job)) {
	a.ops.mu.Lock()
	defer a.ops.mu.Unlock()
	a.ops.finished = append(a.ops.finished, f)
}

func (a *App) jobFinished(j *fheserve.Job) {
	a.ops.mu.Lock()
	fs := a.ops.finished
	a.ops.mu.Unlock()
	for _, f := range fs {
		f(j)
	}
}

// KeyCacheStats returns how many jobs found their key set's evaluation
// keys in the evaluator cache (hits) and how many read them from the
// blob store (misses), since the App started.
func (a *App) KeyCacheStats() (hits, misses int64) {
	return a.ops.keyHits.Load(), a.ops.keyMisses.Load()
}

// QueueDepth returns the number of jobs waiting to be evaluated.
func (a *App) QueueDepth(ctx context.Context) (int, error) {
	jobs, err := a.store.Jobs(ctx, fheserve.JobFilter{Statuses: []string{fheserve.JobQueued}})
	return len(jobs), err
}

// ActiveKeySets returns the number of key sets that are not revoked.
func (a *App) ActiveKeySets(ctx context.Context) (int, error) {
	ks, err := a.store.KeySets(ctx, fheserve.KeySetFilter{Status: fheserve.KeySetActive})
	return len(ks), err
}

// Ready reports whether the App can serve: its store (and a shared queue
// or blob store with a Check method) answers and its
// workers run (if it has any: an API node may leave jobs to separate
// workers).
func (a *App) Ready(ctx context.Context) error {
	if _, err := a.QueueDepth(ctx); err != nil {
		return fheserve.Errorf(fheserve.EUNAVAILABLE, "the store does not answer: %v", err)
	}
	// A shared queue or blob store (NATS) answers too.
	for what, d := range map[string]any{"job queue": a.queue, "blob store": a.blobs} {
		if c, ok := d.(interface{ Check(context.Context) error }); ok {
			if err := c.Check(ctx); err != nil {
				return fheserve.Errorf(fheserve.EUNAVAILABLE, "the %s does not answer: %v", what, err)
			}
		}
	}
	if a.cfg.Workers > 0 && a.ops.workers.Load() == 0 {
		return fheserve.Errorf(fheserve.EUNAVAILABLE, "no worker is running")
	}
	return nil
}
