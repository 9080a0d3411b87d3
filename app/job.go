package app

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/audit"
	"github.com/fheserve/fheserve/he"
	"github.com/fheserve/fheserve/plan"
)

// InputSize is the largest body a job's input may have: the plan's input
// ciphertexts written in full (seeded ones take about half).
func (a *App) InputSize(info *planInfo) int64 {
	return int64(he.CiphertextsSize(info.params, info.plan.Input.Level, info.plan.Input.Ciphertexts, false))
}

// Submit queues a job: body holds one call's input ciphertexts for the
// model (he.MarshalSeededCiphertexts or MarshalCiphertexts), encrypted
// under the calling user's key set, with req.Samples samples. They are
// checked against the plan as they are read and stored; the job runs
// later on a worker.
func (a *App) Submit(ctx context.Context, who *fheserve.Account, req *fheserve.SubmitRequest, body io.Reader, length int64) (*fheserve.Job, error) {
	m, ks, info, err := a.jobTarget(ctx, who, req)
	if err != nil {
		return nil, err
	}
	action, err := a.checkQuery(ctx, m, req.Claim)
	if err != nil {
		return nil, err
	}
	if err := a.checkQueue(ctx, who); err != nil {
		return nil, err
	}
	// The quota's samples stay pending until the job is stored or refused.
	admitted, err := a.checkLimits(ctx, who, m, req.Samples)
	if err != nil {
		return nil, err
	}
	defer admitted()
	release, err := a.uploadSlot(ctx, who)
	if err != nil {
		return nil, err
	}
	defer release()
	limit := a.InputSize(info)
	if length > limit {
		return nil, tooLarge("encrypted input", length, limit)
	}
	j := &fheserve.Job{
		ID:        newID("job"),
		AccountID: who.ID,
		Username:  who.Username,
		ModelID:   m.ID,
		KeySetID:  ks.ID,
		Status:    fheserve.JobQueued,
		Samples:   req.Samples,
		Claim:     req.Claim,
		Total:     len(info.plan.Steps) + 1,
		CreatedAt: a.cfg.Now().UTC(),
	}
	if err := a.storeInput(ctx, j, info, body, length, limit); err != nil {
		return nil, err
	}
	if err := a.store.CreateJob(ctx, j); err != nil {
		a.blobs.Delete(ctx, j.InputKey)
		return nil, err
	}
	if err := a.push(ctx, j); err != nil {
		return nil, err
	}
	a.audit(ctx, who, action, jobObj(j.ID), modelObj(m.ID), keySetObj(ks.ID))
	a.setPosition(j)
	return j, nil
}

// jobTarget checks what a submission names: a model the caller may use,
// an active key set of the caller's made for it, and a number of samples
// its plan takes.
func (a *App) jobTarget(ctx context.Context, who *fheserve.Account, req *fheserve.SubmitRequest) (*fheserve.Model, *fheserve.KeySet, *planInfo, error) {
	m, err := a.usableModel(ctx, who, req.ModelID)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := req.Validate(); err != nil {
		return nil, nil, nil, err
	}
	ks, err := a.ownKeySet(ctx, who, req.KeySetID)
	if err != nil {
		return nil, nil, nil, err
	}
	switch {
	case ks.ModelID != m.ID:
		return nil, nil, nil, fheserve.Errorf(fheserve.EINVALID, "key set %s was made for model %s, not %s", ks.ID, ks.ModelID, m.ID)
	case ks.Status != fheserve.KeySetActive:
		return nil, nil, nil, fheserve.Errorf(fheserve.ECONFLICT, "key set %s is revoked; create new keys with 'fheserve keys create'", ks.ID)
	}
	if err := a.checkSealed(ctx, m, ks); err != nil {
		return nil, nil, nil, err
	}
	info, err := a.planOf(m)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := checkSamples(info.plan, req.Samples); err != nil {
		return nil, nil, nil, err
	}
	return m, ks, info, nil
}

// storeInput reads j's input ciphertexts from body (length bytes, -1 if
// unknown, at most limit), checking them against the plan as they
// arrive, into a new blob, and sets j.InputKey and j.InputBytes. Nothing
// is stored unless all of it checks.
func (a *App) storeInput(ctx context.Context, j *fheserve.Job, info *planInfo, body io.Reader, length, limit int64) error {
	j.InputKey = "jobs/" + j.ID + "/input"
	w, err := a.blobs.Create(ctx, j.InputKey)
	if err != nil {
		return err
	}
	defer w.Abort()
	counted := &countingWriter{}
	in := io.TeeReader(&limitedReader{r: body, n: limit, limit: limit, length: length, what: "encrypted input"}, io.MultiWriter(w, counted))
	if _, err := readInput(in, info); err != nil {
		return err
	}
	if err := w.Commit(); err != nil {
		return err
	}
	j.InputBytes = counted.n
	return nil
}

// checkSamples checks the samples a job declares against its plan: up to
// the batch size, which is 1 in latency packing unless the plan has tiles
// (one sample per tile). The result carries the outputs of the declared
// samples only, and limits count them.
func checkSamples(p *plan.Plan, n int) error {
	switch {
	case n >= 1 && n <= p.BatchSize:
		return nil
	case p.BatchSize == 1:
		return fheserve.Errorf(fheserve.EINVALID, "a job on a %s-packed model holds 1 sample, not %d", p.Packing, n)
	case p.Packing == plan.Latency:
		return fheserve.Errorf(fheserve.EINVALID, "a job on this latency-packed model holds 1 to %d samples (one per tile), not %d", p.BatchSize, n)
	}
	return fheserve.Errorf(fheserve.EINVALID, "a job on this batch-packed model holds 1 to %d samples, not %d", p.BatchSize, n)
}

// readInput decodes and checks one call's input ciphertexts.
func readInput(r io.Reader, info *planInfo) (cts []*he.Ciphertext, err error) {
	p := info.plan
	cts, err = he.UnmarshalCiphertexts(r, info.params, he.Limits{MaxCount: p.Input.Ciphertexts, MinLevel: p.Input.Level, MaxLevel: p.Input.Level})
	if err != nil {
		if fheserve.ErrorCode(err) == fheserve.EINVALID {
			return nil, fheserve.Errorf(fheserve.EINVALID, "encrypted input does not match the model's plan or is damaged: %s", fheserve.ErrorMessage(err))
		}
		return nil, err
	}
	if len(cts) != p.Input.Ciphertexts {
		return nil, fheserve.Errorf(fheserve.EINVALID, "encrypted input has %d ciphertexts, the model's plan takes %d", len(cts), p.Input.Ciphertexts)
	}
	batched := p.Input.Encoding == plan.Slots
	dims := info.params.LogMaxDimensions()
	for i, ct := range cts {
		if ct.IsBatched != batched {
			return nil, fheserve.Errorf(fheserve.EINVALID, "encrypted input: ciphertext %d is encoded in %s, the plan takes %s", i, encodingName(ct.IsBatched), p.Input.Encoding)
		}
		// The evaluator embeds its inputs in the whole slot matrix.
		if ct.LogDimensions != dims {
			return nil, fheserve.Errorf(fheserve.EINVALID, "encrypted input: ciphertext %d has a slot matrix of 2^%d x 2^%d, the plan takes 2^%d x 2^%d",
				i, ct.LogDimensions.Rows, ct.LogDimensions.Cols, dims.Rows, dims.Cols)
		}
		if r := ct.Scale.Float64() / info.params.DefaultScale().Float64(); math.Abs(r-1) > 1e-9 {
			return nil, fheserve.Errorf(fheserve.EINVALID, "encrypted input: ciphertext %d has scale 2^%.2f, the plan takes 2^%d", i, math.Log2(ct.Scale.Float64()), p.Params.LogDefaultScale)
		}
	}
	return cts, nil
}

func encodingName(batched bool) string {
	if batched {
		return plan.Slots
	}
	return plan.Coeffs
}

// visibleJob returns a job if who submitted it or is an administrator.
func (a *App) visibleJob(ctx context.Context, who *fheserve.Account, id string) (*fheserve.Job, error) {
	if err := require(who, fheserve.RoleUser, fheserve.RoleAdmin); err != nil {
		return nil, err
	}
	j, err := a.store.Job(ctx, id)
	if err != nil {
		return nil, err
	}
	if who.Role != fheserve.RoleAdmin && j.AccountID != who.ID {
		return nil, fheserve.Errorf(fheserve.EFORBIDDEN, "job %s belongs to another user", id)
	}
	a.setPosition(j)
	return j, nil
}

func (a *App) setPosition(j *fheserve.Job) {
	if j.Status != fheserve.JobQueued {
		return
	}
	if pos, ok := a.queue.Position(j.ID); ok {
		j.QueuePosition = &pos
	}
}

// Job returns a job's status and progress.
func (a *App) Job(ctx context.Context, who *fheserve.Account, id string) (*fheserve.Job, error) {
	return a.visibleJob(ctx, who, id)
}

// Jobs lists the calling user's jobs (every job, for an administrator).
func (a *App) Jobs(ctx context.Context, who *fheserve.Account) ([]*fheserve.Job, error) {
	if err := require(who, fheserve.RoleUser, fheserve.RoleAdmin); err != nil {
		return nil, err
	}
	f := fheserve.JobFilter{}
	if who.Role != fheserve.RoleAdmin {
		f.AccountID = who.ID
	}
	jobs, err := a.store.Jobs(ctx, f)
	for _, j := range jobs {
		a.setPosition(j)
	}
	return jobs, err
}

// Result opens the encrypted result of a finished job of the calling
// user (he.MarshalResult format) and returns its size.
func (a *App) Result(ctx context.Context, who *fheserve.Account, id string) (io.ReadCloser, int64, error) {
	if err := require(who, fheserve.RoleUser); err != nil {
		return nil, 0, err
	}
	j, err := a.visibleJob(ctx, who, id)
	if err != nil {
		return nil, 0, err
	}
	switch j.Status {
	case fheserve.JobDone:
		r, size, err := a.blobs.Open(ctx, j.ResultKey)
		if fheserve.ErrorCode(err) == fheserve.ENOTFOUND {
			return nil, 0, fheserve.Errorf(fheserve.ENOTFOUND, "the result of job %s was deleted", id)
		}
		return r, size, err
	case fheserve.JobFailed:
		return nil, 0, fheserve.Errorf(fheserve.ECONFLICT, "job %s failed: %s", id, j.Error)
	case fheserve.JobExpired:
		return nil, 0, fheserve.Errorf(fheserve.ENOTFOUND, "the result of job %s expired at %s and was deleted", id, j.ExpiresAt.Format(time.RFC3339))
	}
	return nil, 0, fheserve.Errorf(fheserve.ECONFLICT, "job %s is %s; wait until it is done", id, j.Status)
}

// Watcher follows one job for a progress stream.
type Watcher struct {
	c       chan struct{}
	changed atomic.Bool
	a       *App
	id      string
}

// Wake receives a value whenever the job changes or its queue position
// may have moved.
func (w *Watcher) Wake() <-chan struct{} { return w.c }

// Changed reports, and clears, whether the job itself changed since the
// last call: when it did not, only its queue position may have moved,
// which Refresh updates without reading the store.
func (w *Watcher) Changed() bool { return w.changed.Swap(false) }

// Refresh updates the queue position of j, a copy of the watched job.
func (w *Watcher) Refresh(j *fheserve.Job) {
	j.QueuePosition = nil
	w.a.setPosition(j)
}

// Stop stops watching.
func (w *Watcher) Stop() {
	a := w.a
	a.watchMu.Lock()
	defer a.watchMu.Unlock()
	delete(a.watchers[w.id], w)
	if len(a.watchers[w.id]) == 0 {
		delete(a.watchers, w.id)
	}
}

// Watch starts following a job of the caller.
func (a *App) Watch(ctx context.Context, who *fheserve.Account, id string) (fheserve.JobWatcher, error) {
	if _, err := a.visibleJob(ctx, who, id); err != nil {
		return nil, err
	}
	w := &Watcher{c: make(chan struct{}, 1), a: a, id: id}
	w.changed.Store(true)
	a.watchMu.Lock()
	if a.watchers[id] == nil {
		a.watchers[id] = map[*Watcher]bool{}
	}
	a.watchers[id][w] = true
	a.watchMu.Unlock()
	return w, nil
}

// notify wakes the watchers of a job that changed, here and, through
// JobEvents, in the other processes; a slow watcher misses nothing but
// intermediate states.
func (a *App) notify(id string) {
	if a.cfg.JobEvents != nil {
		a.cfg.JobEvents.Publish(id)
	}
	a.notifyHere(id)
}

// notifyHere wakes this process's watchers of a job that changed.
func (a *App) notifyHere(id string) {
	a.watchMu.Lock()
	defer a.watchMu.Unlock()
	for w := range a.watchers[id] {
		w.changed.Store(true)
		w.wake()
	}
}

func (w *Watcher) wake() {
	select {
	case w.c <- struct{}{}:
	default:
	}
}

// notifyAll wakes the watchers of every job, as queue positions moved;
// they need not read the store for that.
func (a *App) notifyAll() {
	a.watchMu.Lock()
	defer a.watchMu.Unlock()
	for _, ws := range a.watchers {
		for w := range ws {
			w.wake()
		}
	}
}

// push queues j, under its key set on an AffinityQueue.
func (a *App) push(ctx context.Context, j *fheserve.Job) error {
	if aq, ok := a.queue.(fheserve.AffinityQueue); ok {
		return aq.PushFor(ctx, j.ID, j.KeySetID)
	}
	return a.queue.Push(ctx, j.ID)
}

// lease leases a job from lq, preferring on an AffinityQueue the jobs of
// the key sets whose evaluators are cached.
func (a *App) lease(ctx context.Context, lq fheserve.LeaseQueue) (fheserve.Lease, error) {
	if aq, ok := lq.(fheserve.AffinityQueue); ok {
		return aq.LeasePreferring(ctx, a.evaluators.keys)
	}
	return lq.Lease(ctx)
}

func (a *App) work(ctx context.Context) {
	a.ops.workers.Add(1)
	defer a.ops.workers.Add(-1)
	lq, leased := a.queue.(fheserve.LeaseQueue)
	for {
		if leased {
			l, err := a.lease(ctx, lq)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				a.log.Warn("cannot lease a job", "err", err)
				sleep(ctx, time.Second)
				continue
			}
			a.notifyAll()
			a.runLeased(ctx, l)
			continue
		}
		id, err := a.queue.Pop(ctx)
		if err != nil {
			return
		}
		a.notifyAll()
		a.run(ctx, id)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// run evaluates one job. If ctx ends (the service stops) the job stays
// running in the store and runs again on the next start.
// While the store does not answer (PostgreSQL restarting), the job is
// not dropped: it goes back to the queue if it could not be loaded or
// started, and its end is recorded again until the store takes it.
func (a *App) run(ctx context.Context, id string) {
	j, err := a.store.Job(ctx, id)
	if err != nil {
		a.log.Error("cannot load queued job", "job", id, "err", err)
		a.requeueLater(ctx, id, err)
		return
	}
	if j.Status != fheserve.JobQueued {
		return
	}
	if err := a.startJob(ctx, j); err != nil {
		a.requeueLater(ctx, id, err)
		return
	}
	t0 := time.Now()
	err = a.evaluate(ctx, j)
	if ctx.Err() != nil {
		return
	}
	if err != nil && a.outage(ctx, j, err) {
		return
	}
	untilStored(ctx, func() bool { return a.finishJob(ctx, j, err, t0) })
}

// untilStored calls store until it reports that the store took the write,
// pausing between tries (from 100 ms, doubling up to 5 s), and reports
// false if ctx ends first.
func untilStored(ctx context.Context, store func() bool) bool {
	for wait := 100 * time.Millisecond; !store(); wait = min(2*wait, 5*time.Second) {
		if sleep(ctx, wait); ctx.Err() != nil {
			return false
		}
	}
	return true
}

// outage queues j again, and reports true, if its evaluation failed for
// a cause outside it (outsideJob: the blob store or the store restarting,
// say), unless the job was started MaxAttempts times: the same rule as
// runLeased's on a shared queue. Whether a dependency is down is not
// asked: a read that timed out during an outage fails after the
// dependency is back, and the job is not to blame either way.
func (a *App) outage(ctx context.Context, j *fheserve.Job, err error) bool {
	if !outsideJob(err) || j.Attempts >= a.cfg.MaxAttempts {
		return false
	}
	a.log.Warn("job failed for a cause outside it; queued again", "job", j.ID, "attempt", j.Attempts, "err", err)
	j.Status, j.Done, j.StartedAt = fheserve.JobQueued, 0, nil
	if !untilStored(ctx, func() bool { return a.store.UpdateJob(context.WithoutCancel(ctx), j) == nil }) {
		return true
	}
	a.notify(j.ID)
	a.requeueLater(ctx, j.ID, err)
	return true
}

// requeueLater pushes id to the queue again after a pause, unless err
// says the job is gone or the service stops (then the next start finds
// it queued or running).
func (a *App) requeueLater(ctx context.Context, id string, err error) {
	if !outsideJob(err) {
		return
	}
	go func() {
		if sleep(ctx, time.Second); ctx.Err() == nil {
			a.queue.Push(ctx, id)
		}
	}()
}

// runLeased evaluates the job of a lease from a LeaseQueue, which
// several processes share: it extends the lease while it works and
// removes the job from the queue once the store records its end. A job
// leased while the store says it is running was interrupted (the worker
// that ran it died or lost the queue): it runs again, unless it was
// started MaxAttempts times, when it fails with that cause. A job that
// fails for a cause outside it (EINTERNAL, EUNAVAILABLE: the blob store
// was unreachable, say) runs again after a pause, until MaxAttempts, when
// it fails with its last error. If ctx ends, the job is given back to
// the queue for another worker.
func (a *App) runLeased(ctx context.Context, l fheserve.Lease) {
	id := l.JobID()
	j, err := a.store.Job(ctx, id)
	switch {
	case fheserve.ErrorCode(err) == fheserve.ENOTFOUND:
		a.log.Warn("queued job is not in the store", "job", id)
		a.leaseDone(l)
		return
	case err != nil:
		if ctx.Err() == nil {
			// The store does not answer: give it a moment, then hand the
			// job back.
			a.log.Error("cannot load queued job", "job", id, "err", err)
			sleep(ctx, time.Second)
		}
		l.Release()
		return
	}
	switch j.Status {
	case fheserve.JobQueued:
	case fheserve.JobRunning:
		a.log.Warn("job was interrupted", "job", id, "attempts", j.Attempts, "max_attempts", a.cfg.MaxAttempts)
		if j.Attempts >= a.cfg.MaxAttempts {
			cause := fheserve.Errorf(fheserve.EUNAVAILABLE, "its evaluation was interrupted %d times (the workers running it stopped or lost the queue); it is not tried again", j.Attempts)
			if a.finishJob(ctx, j, cause, time.Now()) {
				a.leaseDone(l)
			}
			return
		}
	default:
		// A worker recorded its end and did not remove it from the queue.
		a.leaseDone(l)
		return
	}
	stop := keepLease(l, a.log)
	defer stop()
	if err := a.startJob(ctx, j); err != nil {
		l.Release()
		return
	}
	t0 := time.Now()
	err = a.evaluate(ctx, j)
	if ctx.Err() != nil {
		a.giveBack(ctx, j, l)
		return
	}
	if err != nil && l.Extend() != nil {
		// This worker lost the queue, so another may hold the job now:
		// its failure here may be the lost connection's, and is not
		// recorded.
		a.log.Warn("job failed on a worker that lost the queue; left for another", "job", id, "err", err)
		return
	}
	if err != nil && outsideJob(err) && j.Attempts < a.cfg.MaxAttempts {
		// Not the job's fault (the store, the blobs, a bug): another
		// attempt, after a pause, until MaxAttempts.
		a.log.Warn("job failed for a cause outside it; queued again", "job", id, "attempts", j.Attempts, "err", err)
		a.retryLater(ctx, j, l)
		return
	}
	if a.finishJob(ctx, j, err, t0) {
		a.leaseDone(l)
	}
}

// outsideJob reports whether a job's error comes from outside the job
// (internal or unavailable), not from its input, keys or model.
func outsideJob(err error) bool {
	code := fheserve.ErrorCode(err)
	return code == fheserve.EINTERNAL || code == fheserve.EUNAVAILABLE
}

// retryPause is how long a job that failed for a cause outside it waits,
// per attempt so far, before it is handed out again.
const retryPause = 2 * time.Second

// retryLater records j as queued again, its attempt counted, and hands
// it back to the queue after a pause (at once if the queue cannot
// delay it). If the store cannot record it, j stays running and counts
// as interrupted when its lease lapses.
func (a *App) retryLater(ctx context.Context, j *fheserve.Job, l fheserve.Lease) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	j.Status, j.Done, j.StartedAt = fheserve.JobQueued, 0, nil
	if err := a.store.UpdateJob(ctx, j); err != nil {
		a.log.Warn("cannot queue a job again", "job", j.ID, "err", err)
		return
	}
	a.notify(j.ID)
	var err error
	if d, ok := l.(interface{ ReleaseAfter(time.Duration) error }); ok {
		err = d.ReleaseAfter(time.Duration(j.Attempts) * retryPause)
	} else {
		err = l.Release()
	}
	if err != nil {
		// The lease lapses: the job is handed out again, queued.
		a.log.Warn("cannot hand a job back to the queue", "job", j.ID, "err", err)
	}
}

func (a *App) leaseDone(l fheserve.Lease) {
	if err := l.Done(); err != nil {
		// The job is handed out again and found finished.
		a.log.Warn("cannot remove a finished job from the queue", "job", l.JobID(), "err", err)
	}
}

// keepLease extends l every l.Heartbeat() until stop is called.
func keepLease(l fheserve.Lease, log *slog.Logger) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(l.Heartbeat())
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if err := l.Extend(); err != nil {
					log.Warn("cannot extend a job's lease", "job", l.JobID(), "err", err)
				}
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// giveBack records j as queued again, its run not counted, and hands it
// back to the queue, when the worker stops cleanly. If the queue cannot
// take it back (the connection is lost), j stays running in the store:
// the worker that leases it after the lease lapses counts it as
// interrupted.
func (a *App) giveBack(ctx context.Context, j *fheserve.Job, l fheserve.Lease) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	started := j.StartedAt
	j.Status, j.Done, j.StartedAt = fheserve.JobQueued, 0, nil
	j.Attempts--
	if err := a.store.UpdateJob(ctx, j); err != nil {
		a.log.Warn("cannot give a job back", "job", j.ID, "err", err)
		return
	}
	// The lease still holds: no other worker has the job yet.
	if err := l.Release(); err != nil {
		a.log.Warn("cannot hand a job back to the queue", "job", j.ID, "err", err)
		j.Status, j.StartedAt = fheserve.JobRunning, started
		j.Attempts++
		if err := a.store.UpdateJob(ctx, j); err != nil {
			a.log.Warn("cannot record a job as interrupted", "job", j.ID, "err", err)
		}
	}
	a.notify(j.ID)
}

// startJob records that j starts running, as one more attempt.
func (a *App) startJob(ctx context.Context, j *fheserve.Job) error {
	now := a.cfg.Now().UTC()
	j.Status, j.Done, j.StartedAt = fheserve.JobRunning, 0, &now
	j.Attempts++
	if err := a.store.UpdateJob(ctx, j); err != nil {
		a.log.Error("cannot start job", "job", j.ID, "err", err)
		return err
	}
	a.notify(j.ID)
	return nil
}

// finishJob records the end of j, which failed with err if not nil, and
// reports whether the store has it.
func (a *App) finishJob(ctx context.Context, j *fheserve.Job, err error, t0 time.Time) bool {
	id := j.ID
	end := a.cfg.Now().UTC()
	j.FinishedAt = &end
	if err != nil {
		j.Status, j.ErrorCode, j.Error = fheserve.JobFailed, fheserve.ErrorCode(err), fheserve.ErrorMessage(err)
		if j.ErrorCode == fheserve.EINTERNAL {
			a.log.Error("job failed", "job", id, "err", err)
		}
	} else {
		exp := end.Add(a.cfg.ResultTTL)
		j.Status, j.Done, j.ExpiresAt = fheserve.JobDone, j.Total, &exp
	}
	if err := a.store.UpdateJob(context.WithoutCancel(ctx), j); err != nil {
		a.log.Error("cannot finish job", "job", id, "err", err)
		return false
	}
	a.blobs.Delete(ctx, j.InputKey)
	a.log.Info("job finished", "job", id, "model", j.ModelID, "status", j.Status, "seconds", time.Since(t0).Seconds(),
		"input_bytes", j.InputBytes, "result_bytes", j.ResultBytes, "attempts", j.Attempts)
	action, outcome := "job.complete", audit.OutcomeOK
	if j.Status == fheserve.JobFailed {
		action, outcome = "job.fail", j.ErrorCode
	}
	// The user and the owner each see how their job ended.
	a.auditOutcome(ctx, nil, action, outcome, jobObj(id), modelObj(j.ModelID), accountObj(j.AccountID), keySetObj(j.KeySetID))
	a.jobFinished(j)
	a.notify(id)
	return true
}

func (a *App) evaluate(ctx context.Context, j *fheserve.Job) error {
	m, err := a.store.Model(ctx, j.ModelID)
	if err != nil {
		return err
	}
	ks, err := a.store.KeySet(ctx, j.KeySetID)
	if err != nil {
		return err
	}
	if ks.Status != fheserve.KeySetActive {
		return fheserve.Errorf(fheserve.ECONFLICT, "key set %s was revoked before the job ran", ks.ID)
	}
	pm, err := a.preparedJob(ctx, m, ks, j)
	if err != nil {
		return err
	}
	// Wait until the evaluation's memory fits beside the others'.
	release, err := a.evalMem.acquire(ctx, pm.memory)
	if err != nil {
		return err
	}
	defer release()
	ev, err := a.evaluatorFor(ctx, pm, ks)
	if err != nil {
		return err
	}
	r, _, err := a.blobs.Open(ctx, j.InputKey)
	if err != nil {
		return err
	}
	cts, err := readInput(bufio.NewReader(r), pm.planInfo)
	r.Close()
	if err != nil {
		return err
	}
	out, err := ev.ev.EvaluateOwned(ctx, cts, j.Samples, func(done, total int) {
		j.Done, j.Total = done, total
		if err := a.store.UpdateJob(ctx, j); err != nil && !errors.Is(err, context.Canceled) {
			a.log.Warn("cannot record progress", "job", j.ID, "err", err)
		}
		a.notify(j.ID)
	})
	if err != nil {
		return err
	}
	j.ResultKey = "jobs/" + j.ID + "/result"
	w, err := a.blobs.Create(ctx, j.ResultKey)
	if err != nil {
		return err
	}
	defer w.Abort()
	counted := &countingWriter{}
	if err := he.MarshalResult(io.MultiWriter(w, counted), pm.params, out, pm.plan.ResultBits); err != nil {
		return err
	}
	j.ResultBytes = counted.n
	return w.Commit()
}

// preparedJob returns j's model prepared for evaluation: a gallery's
// query, or the model.
func (a *App) preparedJob(ctx context.Context, m *fheserve.Model, ks *fheserve.KeySet, j *fheserve.Job) (*preparedModel, error) {
	gal, err := a.isGallery(m)
	if err != nil {
		return nil, err
	}
	if gal {
		return a.preparedQuery(ctx, m, j.Claim)
	}
	return a.preparedFor(ctx, m, ks)
}

// janitor deletes results past their retention time.
func (a *App) janitor(ctx context.Context) {
	t := time.NewTicker(a.cfg.JanitorInterval)
	defer t.Stop()
	for {
		a.expire(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (a *App) expire(ctx context.Context) {
	jobs, err := a.store.Jobs(ctx, fheserve.JobFilter{Statuses: []string{fheserve.JobDone}, ExpiresBefore: a.cfg.Now()})
	if err != nil {
		if ctx.Err() == nil {
			a.log.Error("cannot list expired results", "err", err)
		}
		return
	}
	for _, j := range jobs {
		if err := a.blobs.Delete(ctx, j.ResultKey); err != nil {
			a.log.Error("cannot delete expired result", "job", j.ID, "err", err)
			continue
		}
		j.Status = fheserve.JobExpired
		if err := a.store.UpdateJob(ctx, j); err != nil {
			a.log.Error("cannot expire job", "job", j.ID, "err", err)
		}
		a.notify(j.ID)
	}
}
