package sdk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/fheserve/fheserve"
)

// Progress reports a prediction's progress: Call of Calls jobs, with the
// latest status of that job (Done of Total steps), and Predicted of
// Samples samples decrypted so far. While Predict waits before a
// submission because the server said to (a rate limit, the cap on jobs
// queued per user, a busy server), Job is nil and Wait says how long.
type Progress struct {
	Call, Calls        int
	Job                *fheserve.Job
	Predicted, Samples int
	Wait               time.Duration
	Reason             string // the server's message, when waiting
}

// DefaultInFlight is how many jobs Predict keeps queued or running at
// once: the server's default cap on one user's jobs.
const DefaultInFlight = 16

// DefaultMaxWait is the longest wait the server may ask for that Predict
// waits out; a daily quota used up asks for hours, and ends the
// prediction instead.
const DefaultMaxWait = 10 * time.Minute

// PredictOptions tune Predict. The zero value is the default.
type PredictOptions struct {
	// InFlight bounds the jobs queued or running at once (default
	// DefaultInFlight). Use less when other programs of the same user
	// submit jobs too.
	InFlight int
	// MaxWait is the longest Retry-After that Predict waits out (default
	// DefaultMaxWait); a longer one ends it with the server's error.
	MaxWait time.Duration
	// Progress, if not nil, sees every status change of every job and
	// every wait, one call at a time.
	Progress func(Progress)
	// Stats, if not nil, is filled in.
	Stats *PredictStats
}

// PredictStats describe a prediction, for reports.
type PredictStats struct {
	Jobs        []string      // the jobs' ids, in the order of their samples
	Encrypt     time.Duration // summed over calls
	Evaluate    time.Duration // the jobs' evaluation times (server clock), summed
	Server      time.Duration // wall clock, from the first submission to the latest result
	Decrypt     time.Duration // summed over calls
	UploadBytes int64
	ResultBytes int64
	Retries     int           // submissions the server asked to repeat later
	Waited      time.Duration // time spent waiting because the server asked
}

// IncompleteError reports a prediction that stopped before its end: the
// outputs of the first Predicted of Total samples came back (Predict
// returns them), the rest did not, for the reason Err. Jobs already
// submitted were waited for and their results fetched, so that none is
// left behind on the server.
type IncompleteError struct {
	Predicted, Total int
	Err              error
}

func (e *IncompleteError) Error() string {
	return fmt.Sprintf("predicted %d of %d samples, then: %v", e.Predicted, e.Total, e.Err)
}

func (e *IncompleteError) Unwrap() error { return e.Err }

// Submit queues one call's encrypted input of n samples (from
// Keys.Encrypt(x, n)) under k's key set. The server counts the n samples
// against the owner's limits and returns the outputs of n samples.
func (c *Client) Submit(ctx context.Context, k *Keys, ciphertexts []byte, n int) (*fheserve.Job, error) {
	if k.KeySetID == "" {
		return nil, fheserve.Errorf(fheserve.EINVALID, "the keys are not uploaded: call UploadKeys first")
	}
	req := &fheserve.SubmitRequest{ModelID: k.ModelID, KeySetID: k.KeySetID, Samples: n}
	return c.API.Submit(ctx, req, bytes.NewReader(ciphertexts), int64(len(ciphertexts)))
}

// Wait follows a job until it is done or failed, calling progress (if not
// nil) with each new status. A failed job is returned with its error.
func (c *Client) Wait(ctx context.Context, jobID string, progress func(*fheserve.Job)) (*fheserve.Job, error) {
	j, err := c.API.WatchJob(ctx, jobID, progress)
	if err != nil {
		return nil, err
	}
	if j.Status != fheserve.JobDone {
		return j, &fheserve.Error{Code: j.ErrorCode, Message: "job " + j.ID + " failed: " + j.Error}
	}
	return j, nil
}

// Fetch downloads a finished job's result and decrypts its n samples, as
// Keys.Decrypt does (see there for *OutOfBoundError).
func (c *Client) Fetch(ctx context.Context, k *Keys, jobID string, n int) ([]float64, error) {
	r, err := c.API.Result(ctx, jobID)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return k.Decrypt(r, n)
}

// Predict runs n samples (row-major) through the model under encryption
// with the default options; progress, if not nil, is
// PredictOptions.Progress. See PredictWith.
func (c *Client) Predict(ctx context.Context, k *Keys, x []float64, n int, progress func(Progress)) ([]float64, error) {
	return c.PredictWith(ctx, k, x, n, &PredictOptions{Progress: progress})
}

// PredictWith runs n samples (row-major) through the model under
// encryption. It splits them into calls of at most the plan's batch size
// and the owner's burst limits, and paces itself: at most
// opts.InFlight jobs queued or running at once, submissions spaced by the
// owner's rate limits, and when the server refuses a submission for now
// (429 or 503), it waits the time the server names (Retry-After) and
// submits again. Results are fetched and decrypted as jobs finish.
//
// When some samples' outputs exceed the plan's output bound, Predict
// returns every output and an *OutOfBoundError listing those samples
// (numbered from 0 in x): their predictions are not to be trusted.
//
// When it cannot go on (a job fails, the server refuses for longer than
// opts.MaxWait, or for good), Predict submits nothing more, waits for the
// jobs already submitted and fetches their results, and returns the
// outputs of the samples predicted up to the first missing one with an
// *IncompleteError.
func (c *Client) PredictWith(ctx context.Context, k *Keys, x []float64, n int, opts *PredictOptions) ([]float64, error) {
	p := k.Plan
	in := p.InputSize()
	if n < 1 || len(x) != n*in {
		return nil, fheserve.Errorf(fheserve.EINVALID, "input has %d values, want %d samples of %d", len(x), n, in)
	}
	if k.KeySetID == "" {
		return nil, fheserve.Errorf(fheserve.EINVALID, "the keys are not uploaded: call UploadKeys first")
	}
	if opts == nil {
		opts = &PredictOptions{}
	}
	pr := &prediction{c: c, k: k, x: x, n: n, opts: *opts, stats: opts.Stats}
	if pr.stats == nil {
		pr.stats = &PredictStats{}
	}
	if pr.opts.InFlight <= 0 {
		pr.opts.InFlight = DefaultInFlight
	}
	if pr.opts.MaxWait <= 0 {
		pr.opts.MaxWait = DefaultMaxWait
	}
	// The owner's limits size the calls and pace the submissions; a
	// model that cannot be described is paced by the server's answers.
	if m, err := c.Model(ctx, k.ModelID); err == nil {
		pr.pace(m.Limits)
	} else if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return pr.run(ctx)
}

// prediction is the state of one PredictWith.
type prediction struct {
	c    *Client
	k    *Keys
	x    []float64
	n    int
	opts PredictOptions

	perJob  int             // samples per call
	limiter []*rate.Limiter // the owner's rates, in samples

	mu        sync.Mutex // guards what follows, and serializes Progress
	stats     *PredictStats
	submitted time.Time // the first submission
	calls     []call
	predicted int
	bad       OutOfBoundError
}

type call struct {
	start, n int
	job      *fheserve.Job
	y        []float64
	err      error
	done     bool
}

// pace sizes calls and rates to the owner's limits l: a job may hold no
// more samples than a burst or a daily quota.
func (pr *prediction) pace(l fheserve.ModelLimits) {
	for _, r := range []struct {
		perMinute float64
		burst     int
	}{{l.RatePerMinute, l.Burst}, {l.ModelRatePerMinute, l.ModelBurst}} {
		if r.perMinute <= 0 {
			continue
		}
		b := fheserve.BurstOr(r.burst, r.perMinute)
		pr.perJob = minPositive(pr.perJob, b)
		pr.limiter = append(pr.limiter, rate.NewLimiter(rate.Limit(r.perMinute/60), b))
	}
	for _, d := range []int{l.Daily, l.ModelDaily} {
		pr.perJob = minPositive(pr.perJob, d)
	}
}

func minPositive(a, b int) int {
	if a <= 0 || (b > 0 && b < a) {
		return b
	}
	return a
}

func (pr *prediction) run(ctx context.Context) ([]float64, error) {
	pr.split()
	failed := pr.submitAll(ctx)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return pr.results(failed)
}

// split cuts the samples into calls of a batch each, or of fewer when the
// owner's limits let a job hold fewer.
func (pr *prediction) split() {
	per := pr.k.Plan.BatchSize
	if pr.perJob > 0 {
		per = min(per, pr.perJob)
	}
	for start := 0; start < pr.n; start += per {
		pr.calls = append(pr.calls, call{start: start, n: min(per, pr.n-start)})
	}
	pr.stats.Jobs = make([]string, 0, len(pr.calls))
}

// submitAll submits the calls in order, with at most InFlight of them
// queued or running at once, and waits until every call submitted is
// collected. It returns the error that stopped the submissions, if any.
func (pr *prediction) submitAll(ctx context.Context) error {
	// Waiters use ctx, not stop's context: after a failure, the jobs
	// already submitted are still waited for and fetched.
	submitCtx, stop := context.WithCancel(ctx)
	defer stop()
	slots := make(chan struct{}, pr.opts.InFlight)
	var wg sync.WaitGroup
	var failed error
	for i := range pr.calls {
		select {
		case slots <- struct{}{}:
		case <-submitCtx.Done():
		}
		if submitCtx.Err() != nil {
			break
		}
		if err := pr.submit(submitCtx, i); err != nil {
			<-slots
			failed = err
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			if err := pr.collect(ctx, i); err != nil {
				stop() // submit no more
			}
		}()
	}
	wg.Wait()
	return failed
}

// results joins the calls' outputs in order. The first call not done ends
// them with an IncompleteError naming its cause (its own error, failed, or
// that it was not submitted); outputs out of the plan's bound give an
// OutOfBoundError with all the outputs.
func (pr *prediction) results(failed error) ([]float64, error) {
	y := make([]float64, 0, pr.n*pr.k.Plan.OutputSize())
	for i, cl := range pr.calls {
		if !cl.done {
			if cl.err != nil {
				failed = cl.err
			}
			if failed == nil {
				failed = fheserve.Errorf(fheserve.EINTERNAL, "call %d of %d was not submitted", i+1, len(pr.calls))
			}
			return y, &IncompleteError{Predicted: cl.start, Total: pr.n, Err: failed}
		}
		y = append(y, cl.y...)
	}
	if len(pr.bad.Samples) > 0 {
		pr.bad.Total = pr.n
		return y, &pr.bad
	}
	return y, nil
}

// submit encrypts and submits call i, waiting out the owner's rates and
// what the server asks for.
func (pr *prediction) submit(ctx context.Context, i int) error {
	cl := &pr.calls[i]
	for _, l := range pr.limiter {
		if err := l.WaitN(ctx, min(cl.n, l.Burst())); err != nil {
			return err
		}
	}
	in := pr.k.Plan.InputSize()
	t0 := time.Now()
	ct, err := pr.k.Encrypt(pr.x[cl.start*in:(cl.start+cl.n)*in], cl.n)
	if err != nil {
		return err
	}
	pr.mu.Lock()
	pr.stats.Encrypt += time.Since(t0)
	pr.mu.Unlock()
	for {
		j, err := pr.c.Submit(ctx, pr.k, ct, cl.n)
		if err == nil {
			pr.mu.Lock()
			defer pr.mu.Unlock()
			cl.job = j
			if pr.submitted.IsZero() {
				pr.submitted = time.Now()
			}
			pr.stats.Jobs = append(pr.stats.Jobs, j.ID)
			pr.stats.UploadBytes += int64(len(ct))
			pr.report(i, j, 0, "")
			return nil
		}
		d, ok := retryable(err)
		if !ok || d > pr.opts.MaxWait {
			return err
		}
		pr.mu.Lock()
		pr.stats.Retries++
		pr.stats.Waited += d
		pr.report(i, nil, d, fheserve.ErrorMessage(err))
		pr.mu.Unlock()
		if err := sleep(ctx, d); err != nil {
			return err
		}
	}
}

// collect waits for call i's job, fetches its result and decrypts it.
func (pr *prediction) collect(ctx context.Context, i int) (err error) {
	cl := &pr.calls[i]
	defer func() {
		if err != nil {
			pr.mu.Lock()
			cl.err = err
			pr.mu.Unlock()
		}
	}()
	j, err := retry(ctx, pr.opts.MaxWait, func() (*fheserve.Job, error) {
		return pr.c.Wait(ctx, cl.job.ID, func(j *fheserve.Job) {
			pr.mu.Lock()
			defer pr.mu.Unlock()
			pr.report(i, j, 0, "")
		})
	})
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if _, err := retry(ctx, pr.opts.MaxWait, func() (int64, error) {
		buf.Reset()
		r, err := pr.c.API.Result(ctx, cl.job.ID)
		if err != nil {
			return 0, err
		}
		defer r.Close()
		if _, err := io.Copy(&buf, r); err != nil {
			return 0, fheserve.Errorf(fheserve.EUNAVAILABLE, "cannot download the result of job %s: %v", cl.job.ID, err)
		}
		return 0, nil
	}); err != nil {
		return err
	}
	size := int64(buf.Len()) // before Decrypt reads it
	t0 := time.Now()
	y, err := pr.k.Decrypt(&buf, cl.n)
	var oob *OutOfBoundError
	if err != nil && !errors.As(err, &oob) {
		return err
	}
	pr.mu.Lock()
	defer pr.mu.Unlock()
	pr.stats.Decrypt += time.Since(t0)
	pr.stats.ResultBytes += size
	if j.StartedAt != nil && j.FinishedAt != nil {
		pr.stats.Evaluate += j.FinishedAt.Sub(*j.StartedAt)
	}
	if oob != nil {
		pr.bad.Merge(oob, cl.start)
	}
	cl.y, cl.done = y, true
	pr.predicted += cl.n
	pr.stats.Server = time.Since(pr.submitted)
	pr.report(i, j, 0, "")
	return nil
}

// report calls the Progress function (pr.mu held).
func (pr *prediction) report(i int, j *fheserve.Job, wait time.Duration, reason string) {
	if pr.opts.Progress != nil {
		pr.opts.Progress(Progress{Call: i, Calls: len(pr.calls), Job: j, Predicted: pr.predicted, Samples: pr.n, Wait: wait, Reason: reason})
	}
}

// retryable says whether the server refused for now, and for how long: a
// rate limit or the cap on queued jobs (429) or a busy server (503).
// An unreachable server (503 without Retry-After) is tried again after a
// second.
func retryable(err error) (time.Duration, bool) {
	switch fheserve.ErrorCode(err) {
	case fheserve.ERATELIMIT, fheserve.EUNAVAILABLE:
		if d := fheserve.RetryAfter(err); d > 0 {
			return d, true
		}
		return time.Second, true
	}
	return 0, false
}

// maxAttempts bounds how often a wait or a download is tried when the
// server does not answer.
const maxAttempts = 5

// retry calls f until it succeeds, fails for good, or has failed
// maxAttempts times for now, waiting between as the server asks.
func retry[T any](ctx context.Context, maxWait time.Duration, f func() (T, error)) (T, error) {
	for attempt := 1; ; attempt++ {
		v, err := f()
		d, ok := retryable(err)
		if err == nil || !ok || d > maxWait || attempt == maxAttempts || ctx.Err() != nil {
			return v, err
		}
		if err := sleep(ctx, d); err != nil {
			return v, err
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
