package app

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fheserve/fheserve"
)

// ops is what the operator's probes and metrics read.
type ops struct {
	workers atomic.Int32 // worker goroutines running
	// keyHits and keyMisses count the jobs whose key set's evaluation
	// keys were cached, and those that read them from the blob store.
	keyHits, keyMisses atomic.Int64
	// derivations counts the derived key sets whose Galois keys were
	// derived from their master keys (not read stored).
	derivations atomic.Int64

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

// KeyDerivations returns how many times, since the App started, it
// derived a derived key set's Galois keys from its master keys rather
// than reading them stored: once per key set.
func (a *App) KeyDerivations() int64 { return a.ops.derivations.Load() }

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

// Ready reports whether the App can serve: its store and every
// dependency on a server answer, and its workers run (if it has any: an
// API node may leave jobs to separate workers). The error names each
// dependency that does not answer, and why.
func (a *App) Ready(ctx context.Context) error {
	var down []string
	for _, d := range a.Dependencies(ctx) {
		if d.Err != nil {
			down = append(down, fmt.Sprintf("the %s does not answer: %v", depNames[d.Name], d.Err))
		}
	}
	if len(down) > 0 {
		return fheserve.Errorf(fheserve.EUNAVAILABLE, "%s", strings.Join(down, "; "))
	}
	if a.cfg.Workers > 0 && a.ops.workers.Load() == 0 {
		return fheserve.Errorf(fheserve.EUNAVAILABLE, "no worker is running")
	}
	return nil
}

var depNames = map[string]string{"store": "store", "blobs": "blob store", "queue": "job queue"}

// pingTimeout bounds one dependency's check, so that a server that does
// not answer fails the probe rather than the load balancer's timeout.
const pingTimeout = 2 * time.Second

// Dependencies checks, at once, the store (its Ping, or a query when it
// has none) and the blob store and queue that live on a server
// (fheserve.Pinger); local ones cannot be down without the node.
func (a *App) Dependencies(ctx context.Context) []fheserve.Dependency {
	type check struct {
		name string
		ping func(context.Context) error
	}
	checks := []check{{"store", func(ctx context.Context) error { _, err := a.QueueDepth(ctx); return err }}}
	if p, ok := a.store.(fheserve.Pinger); ok {
		checks[0].ping = p.Ping
	}
	if p, ok := a.blobs.(fheserve.Pinger); ok {
		checks = append(checks, check{"blobs", p.Ping})
	}
	if p, ok := a.queue.(fheserve.Pinger); ok {
		checks = append(checks, check{"queue", p.Ping})
	}
	deps := make([]fheserve.Dependency, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, pingTimeout)
			defer cancel()
			deps[i] = fheserve.Dependency{Name: c.name, Err: c.ping(ctx)}
		})
	}
	wg.Wait()
	return deps
}
