package app

import (
	"context"
	"fmt"
	"math"
	"runtime/debug"
	"sync"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/he"
)

// Bounds cap what the users, together and each, may make the server hold
// at once: uploads being decoded (each holds a key set or an input in
// memory), deployments being read and compiled, jobs waiting for a
// worker and key sets stored; and how slowly a request body may arrive.
type Bounds struct {
	Uploads        int // key sets and job inputs received at once (default 4)
	UploadsPerUser int // of those, by one user (default 2)
	QueuedPerUser  int // one user's jobs queued or running (default 16)
	// UploadWait is how long an upload (or a deployment) waits for one
	// of the Uploads (Deploys) places before it is refused with 503
	// (default 30s). A waiting upload holds no body in memory: it is read
	// once it has a place.
	UploadWait time.Duration
	// Deploys bounds the deployments read and compiled at once (default
	// 2), one per owner: each holds its model file in memory
	// (MaxModelBytes at most) and compiles it.
	Deploys int
	// KeySetsPerModel bounds one user's active key sets for one model
	// (default 3: say two devices' and a replacement being uploaded);
	// KeySetsPerUser bounds them over all models (default 12). With the
	// plans' key sizes they bound the bytes of keys one user stores.
	KeySetsPerModel int
	KeySetsPerUser  int
	// A request body must arrive at MinBodyRate bytes a second on
	// average once BodyGrace has passed since the handler started
	// reading it (defaults 32 KiB/s and 10s); a slower one is cut off by
	// a read deadline, and the place it held is freed. The HTTP server
	// enforces it.
	MinBodyRate int64
	BodyGrace   time.Duration
}

func (b *Bounds) setDefaults() {
	for _, f := range []struct {
		v *int
		d int
	}{{&b.Uploads, 4}, {&b.UploadsPerUser, 2}, {&b.QueuedPerUser, 16}, {&b.Deploys, 2}, {&b.KeySetsPerModel, 3}, {&b.KeySetsPerUser, 12}} {
		if *f.v <= 0 {
			*f.v = f.d
		}
	}
	if b.UploadWait <= 0 {
		b.UploadWait = 30 * time.Second
	}
	if b.MinBodyRate <= 0 {
		b.MinBodyRate = 32 << 10
	}
	if b.BodyGrace <= 0 {
		b.BodyGrace = 10 * time.Second
	}
}

// Bounds returns the App's bounds, defaults filled in.
func (a *App) Bounds() Bounds { return a.cfg.Bounds }

// MinBodyRate returns the pace a request body must keep: Bounds's
// MinBodyRate, after BodyGrace.
func (a *App) MinBodyRate() (bytesPerSecond int64, grace time.Duration) {
	return a.cfg.Bounds.MinBodyRate, a.cfg.Bounds.BodyGrace
}

// memoryLimit returns GOMEMLIMIT (or debug.SetMemoryLimit's value), or
// 0 when there is none.
func memoryLimit() int64 {
	if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
		return l
	}
	return 0
}

// defaultEvalMemory is, under a memory limit, half of it: the memory
// that evaluations in progress may hold together (their estimates,
// server.Model.MemoryEstimate); the other half is for cached evaluation
// keys (a quarter) and uploads, models and the runtime. Without a limit,
// 0: no bound beyond the number of workers.
func defaultEvalMemory() int64 {
	return memoryLimit() / 2
}

// budget is a weighted semaphore: it admits holders while their weights
// fit in cap, in the order they ask; one heavier than cap is admitted
// alone. It bounds the memory of evaluations in progress (weights: their
// estimates) and the uploads received at once (weight 1 each).
type budget struct {
	mu      sync.Mutex
	cap     int64 // 0: unbounded
	used    int64
	waiters []*budgetWaiter
}

type budgetWaiter struct {
	n     int64
	ready chan struct{}
}

// acquire waits until n fits (or ctx ends) and returns the function that
// gives it back.
func (b *budget) acquire(ctx context.Context, n int64) (release func(), err error) {
	if b.cap <= 0 {
		return func() {}, nil
	}
	n = min(max(n, 0), b.cap)
	b.mu.Lock()
	if len(b.waiters) == 0 && b.used+n <= b.cap {
		b.used += n
		b.mu.Unlock()
		return b.releaser(n), nil
	}
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()
	select {
	case <-w.ready:
		return b.releaser(n), nil
	case <-ctx.Done():
		b.mu.Lock()
		defer b.mu.Unlock()
		select {
		case <-w.ready: // admitted meanwhile: give it back
			b.used -= n
			b.admit()
		default:
			for i, o := range b.waiters {
				if o == w {
					b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
					break
				}
			}
			b.admit()
		}
		return nil, ctx.Err()
	}
}

func (b *budget) releaser(n int64) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			b.used -= n
			b.admit()
		})
	}
}

// held returns the weight held.
func (b *budget) held() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// admit admits waiters in order while they fit (b.mu held).
func (b *budget) admit() {
	for len(b.waiters) > 0 && b.used+b.waiters[0].n <= b.cap {
		w := b.waiters[0]
		b.waiters = b.waiters[1:]
		b.used += w.n
		close(w.ready)
	}
}

// defaultEvaluatorCacheBytes is 2 GiB or, under a memory limit, a
// quarter of it.
func defaultEvaluatorCacheBytes() int64 {
	if l := memoryLimit(); l > 0 {
		return l / 4
	}
	return 2 << 30
}

// slots counts the uploads (or deployments) in progress, in all and per
// user.
type slots struct {
	total   *budget // places in all
	perUser int
	what    string // "uploads", "deployments"
	mu      sync.Mutex
	byUser  map[string]int
}

// uploadSlot reserves a place for one upload of who, or says why there
// is none: 429 at once when who has UploadsPerUser uploads in progress;
// when the server has Uploads in progress, it waits for one to finish,
// in order, up to UploadWait (503 after that) or until ctx ends.
func (a *App) uploadSlot(ctx context.Context, who *fheserve.Account) (release func(), err error) {
	return a.limits.uploads.take(ctx, who, a.cfg.Bounds.UploadWait)
}

// take reserves a place for who, waiting up to wait for one.
func (s *slots) take(ctx context.Context, who *fheserve.Account, wait time.Duration) (release func(), err error) {
	s.mu.Lock()
	if s.byUser == nil {
		s.byUser = map[string]int{}
	}
	if n := s.byUser[who.ID]; n >= s.perUser {
		s.mu.Unlock()
		return nil, retryLater(time.Second, "you have %d %s in progress, the limit per user; wait for one to finish", n, s.what)
	}
	s.byUser[who.ID]++ // held while waiting, so that one user waits for one place at most perUser times
	s.mu.Unlock()
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	placed, err := s.total.acquire(wctx, 1)
	if err != nil {
		s.dropUser(who.ID)
		if ctx.Err() != nil {
			return nil, fheserve.Errorf(fheserve.EUNAVAILABLE, "the request was given up while waiting for a place: %v", ctx.Err())
		}
		return nil, &fheserve.Error{Code: fheserve.EUNAVAILABLE, RetryAfter: time.Second,
			Message: fmt.Sprintf("the server has been receiving %d %s, its limit, for %s; try again in 1s", s.total.cap, s.what, wait)}
	}
	return func() {
		placed()
		s.dropUser(who.ID)
	}, nil
}

// UploadsInProgress is the number of uploads holding a place.
func (a *App) UploadsInProgress() int { return int(a.limits.uploads.total.held()) }

func (s *slots) dropUser(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byUser[id]--; s.byUser[id] <= 0 {
		delete(s.byUser, id)
	}
}

// checkQueue refuses a job of who when who already has QueuedPerUser jobs
// waiting or running, so that one user cannot fill the queue.
func (a *App) checkQueue(ctx context.Context, who *fheserve.Account) error {
	n, err := a.store.CountJobs(ctx, fheserve.JobFilter{AccountID: who.ID, Statuses: []string{fheserve.JobQueued, fheserve.JobRunning}})
	if err != nil {
		return err
	}
	if n >= a.cfg.Bounds.QueuedPerUser {
		return retryLater(10*time.Second, "you have %d jobs queued or running, the limit per user; wait for one to finish", n)
	}
	return nil
}

// warmLater prepares an evaluator for a key set just uploaded, in the
// background, unless Bounds.Uploads are being prepared already: the
// preparation holds the decoded keys, and the job's worker can load them
// from the blob store as well. An App with no workers of its own (an API
// node in front of separate workers) prepares nothing: its jobs are
// evaluated elsewhere.
func (a *App) warmLater(ctx context.Context, m *fheserve.Model, keySetID string, keys *he.EvalKeys) {
	if a.cfg.Workers == 0 {
		return
	}
	if a.limits.warming.Add(1) > int32(a.cfg.Bounds.Uploads) {
		a.limits.warming.Add(-1)
		return
	}
	go func() {
		defer a.limits.warming.Add(-1)
		a.warm(ctx, m, keySetID, keys)
	}()
}
