package app

import (
	"context"
	"fmt"
	"math"
	"runtime"
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

// perEvaluation is the memory one evaluation is assumed to take: a call's
// ciphertexts at N = 2^14 and the key-switching buffers, with room to spare.
const perEvaluation = 512 << 20

// memoryLimit returns GOMEMLIMIT (or debug.SetMemoryLimit's value), or
// 0 when there is none.
func memoryLimit() int64 {
	if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
		return l
	}
	return 0
}

// defaultWorkers is one worker per core or, under a memory limit, as many
// evaluations as fit in half of it (at least one): the other half is for
// cached evaluation keys (a quarter) and uploads, models and the runtime.
func defaultWorkers() int {
	n := runtime.NumCPU()
	if l := memoryLimit(); l > 0 {
		n = int(min(int64(n), max(1, l/2/perEvaluation)))
	}
	return n
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
