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
// memory) and jobs waiting for a worker.
type Bounds struct {
	Uploads        int // key sets and job inputs received at once (default 4)
	UploadsPerUser int // of those, by one user (default 2)
	QueuedPerUser  int // one user's jobs queued or running (default 16)
	// UploadWait is how long an upload waits for one of the Uploads
	// places before it is refused with 503 (default 30s). A waiting
	// upload holds no body in memory: it is read once it has a place.
	UploadWait time.Duration
}

func (b *Bounds) setDefaults() {
	for _, f := range []struct {
		v *int
		d int
	}{{&b.Uploads, 4}, {&b.UploadsPerUser, 2}, {&b.QueuedPerUser, 16}} {
		if *f.v <= 0 {
			*f.v = f.d
		}
	}
	if b.UploadWait <= 0 {
		b.UploadWait = 30 * time.Second
	}
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

// memBudget admits evaluations while their memory estimates fit, in the
// order they ask; an estimate above the whole budget is admitted alone.
type memBudget struct {
	mu      sync.Mutex
	cap     int64 // 0: unbounded
	used    int64
	waiters []*memWaiter
}

type memWaiter struct {
	n     int64
	ready chan struct{}
}

// acquire waits until n bytes fit (or ctx ends) and returns the function
// that gives them back.
func (b *memBudget) acquire(ctx context.Context, n int64) (release func(), err error) {
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
	w := &memWaiter{n: n, ready: make(chan struct{})}
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

func (b *memBudget) releaser(n int64) func() {
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

// admit admits waiters in order while they fit (b.mu held).
func (b *memBudget) admit() {
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

// slots counts the uploads in progress, in all and per user.
type slots struct {
	mu     sync.Mutex
	total  int
	byUser map[string]int
	freed  chan struct{} // closed when a place frees up, then replaced
}

// uploadSlot reserves a place for one upload of who, or says why there
// is none: 429 at once when who has UploadsPerUser uploads in progress;
// when the server has Uploads in progress, it waits for one to finish,
// up to UploadWait (503 after that) or until ctx ends.
func (a *App) uploadSlot(ctx context.Context, who *fheserve.Account) (release func(), err error) {
	s, b := &a.limits.uploads, a.cfg.Bounds
	s.mu.Lock()
	if s.byUser == nil {
		s.byUser = map[string]int{}
	}
	if n := s.byUser[who.ID]; n >= b.UploadsPerUser {
		s.mu.Unlock()
		return nil, retryLater(time.Second, "you have %d uploads in progress, the limit per user; wait for one to finish", n)
	}
	s.byUser[who.ID]++ // held while waiting, so that one user waits for one place at most UploadsPerUser times
	var timeout <-chan time.Time
	for s.total >= b.Uploads {
		if s.freed == nil {
			s.freed = make(chan struct{})
		}
		freed := s.freed
		s.mu.Unlock()
		if timeout == nil {
			t := time.NewTimer(b.UploadWait)
			defer t.Stop()
			timeout = t.C
		}
		var err error
		select {
		case <-freed:
		case <-timeout:
			err = &fheserve.Error{Code: fheserve.EUNAVAILABLE, RetryAfter: time.Second,
				Message: fmt.Sprintf("the server has been receiving %d uploads, its limit, for %s; try again in 1s", b.Uploads, b.UploadWait)}
		case <-ctx.Done():
			err = fheserve.Errorf(fheserve.EUNAVAILABLE, "the upload was given up while waiting for a place: %v", ctx.Err())
		}
		s.mu.Lock()
		if err != nil {
			s.dropUser(who.ID)
			s.mu.Unlock()
			return nil, err
		}
	}
	s.total++
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.total--
		s.dropUser(who.ID)
		if s.freed != nil {
			close(s.freed)
			s.freed = nil
		}
	}, nil
}

func (s *slots) dropUser(id string) {
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
// from the blob store as well.
func (a *App) warmLater(ctx context.Context, m *fheserve.Model, keySetID string, keys *he.EvalKeys) {
	if a.limits.warming.Add(1) > int32(a.cfg.Bounds.Uploads) {
		a.limits.warming.Add(-1)
		return
	}
	go func() {
		defer a.limits.warming.Add(-1)
		a.warm(ctx, m, keySetID, keys)
	}()
}
