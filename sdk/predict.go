package sdk

import (
	"bytes"
	"context"

	"github.com/fheserve/fheserve"
)

// Progress reports a prediction's progress: Call of Calls jobs, with the
// latest status of that job (Done of Total steps).
type Progress struct {
	Call, Calls int
	Job         *fheserve.Job
}

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

// Predict runs n samples (row-major) through the model under encryption:
// it splits them into calls of at most the plan's batch size, encrypts and
// submits every call, then waits for each, fetches and decrypts. progress,
// if not nil, sees every status change of every job.
//
// When some samples' outputs exceed the plan's output bound, Predict
// returns every output and an *OutOfBoundError listing those samples
// (numbered from 0 in x): their predictions are not to be trusted.
func (c *Client) Predict(ctx context.Context, k *Keys, x []float64, n int, progress func(Progress)) ([]float64, error) {
	p := k.Plan
	in, out := p.InputSize(), p.OutputSize()
	if n < 1 || len(x) != n*in {
		return nil, fheserve.Errorf(fheserve.EINVALID, "input has %d values, want %d samples of %d", len(x), n, in)
	}
	type call struct {
		start, n int
		job      *fheserve.Job
	}
	var calls []call
	for start := 0; start < n; start += p.BatchSize {
		calls = append(calls, call{start: start, n: min(p.BatchSize, n-start)})
	}
	for i := range calls {
		cl := &calls[i]
		ct, err := k.Encrypt(x[cl.start*in:(cl.start+cl.n)*in], cl.n)
		if err != nil {
			return nil, err
		}
		if cl.job, err = c.Submit(ctx, k, ct, cl.n); err != nil {
			return nil, err
		}
		if progress != nil {
			progress(Progress{Call: i, Calls: len(calls), Job: cl.job})
		}
	}
	y := make([]float64, 0, n*out)
	var bad OutOfBoundError
	for i, cl := range calls {
		var f func(*fheserve.Job)
		if progress != nil {
			f = func(j *fheserve.Job) { progress(Progress{Call: i, Calls: len(calls), Job: j}) }
		}
		if _, err := c.Wait(ctx, cl.job.ID, f); err != nil {
			return nil, err
		}
		v, err := c.Fetch(ctx, k, cl.job.ID, cl.n)
		if err := bad.add(err, cl.start); err != nil {
			return nil, err
		}
		y = append(y, v...)
	}
	if len(bad.Samples) > 0 {
		bad.Total = n
		return y, &bad
	}
	return y, nil
}
