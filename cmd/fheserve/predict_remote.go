package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/nn"
	"github.com/fheserve/fheserve/npy"
	"github.com/fheserve/fheserve/sdk"
	"github.com/schollz/progressbar/v3"
)

// remoteReport is what predict --json prints for a remote prediction.
type remoteReport struct {
	Model   string   `json:"model"`
	Name    string   `json:"name"`
	Server  string   `json:"server"`
	KeySet  string   `json:"keyset"`
	Output  string   `json:"output"`
	Samples int      `json:"samples"`
	Jobs    []string `json:"jobs"`
	TimesMS struct {
		Encrypt float64 `json:"encrypt"`
		// Server is the wall-clock time from the first submission to the
		// last result; Evaluate sums the jobs' evaluation times.
		Server   float64 `json:"server"`
		Evaluate float64 `json:"evaluate"`
		Decrypt  float64 `json:"decrypt"`
		Total    float64 `json:"total"`
	} `json:"times_ms"`
	UploadBytes int64   `json:"upload_bytes"`
	ResultBytes int64   `json:"result_bytes"`
	Precision   float64 `json:"precision"`
	// OutOfBound lists the samples whose decrypted outputs exceeded the
	// plan's output bound: predictions not to be trusted.
	OutOfBound []int `json:"out_of_bound,omitempty"`
}

// predictRemote encrypts the input here, runs it on the server, and
// decrypts the results here: the same output as predict --local.
func predictRemote(opts *predictOptions) error {
	ctx := opts.Ctx
	start := time.Now()
	c, cfg, err := opts.session()
	if err != nil {
		return err
	}
	m, err := c.Model(ctx, opts.Model)
	if err != nil {
		return err
	}
	keys, err := loadKeys(ctx, c, cfg, opts.Model, opts.Keys)
	if err != nil {
		return err
	}
	p := keys.Plan
	if _, err := os.Stat(opts.Input); err != nil {
		return fheserve.Errorf(fheserve.ENOTFOUND, "input file %q not found", opts.Input)
	}
	a, err := npy.ReadFile(opts.Input)
	if err != nil {
		return err
	}
	n, err := batchOf(a.Shape, nn.Shape(p.InputShape))
	if err != nil {
		return fheserve.Errorf(fheserve.EINVALID, "input file %q: %s", opts.Input, fheserve.ErrorMessage(err))
	}
	x := a.Data

	rep := &remoteReport{Model: m.ID, Name: m.Name, Server: cfg.Server, KeySet: keys.KeySetID, Output: opts.Output,
		Samples: n, Precision: p.Precision.OutputError}
	type call struct {
		start, n int
		job      *fheserve.Job
	}
	var calls []call
	for s := 0; s < n; s += p.BatchSize {
		calls = append(calls, call{start: s, n: min(p.BatchSize, n-s)})
	}
	steps := len(p.Steps) + 1
	bar := newBar(opts.ErrOut, len(calls)*steps, fmt.Sprintf("%s: %d call(s)", m.Name, len(calls)))

	in := p.InputSize()
	var serverStart time.Time
	for i := range calls {
		cl := &calls[i]
		t0 := time.Now()
		ct, err := keys.Encrypt(x[cl.start*in:(cl.start+cl.n)*in], cl.n)
		if err != nil {
			return err
		}
		rep.TimesMS.Encrypt += millis(time.Since(t0))
		rep.UploadBytes += int64(len(ct))
		if i == 0 {
			serverStart = time.Now()
		}
		if cl.job, err = c.Submit(ctx, keys, ct, cl.n); err != nil {
			return err
		}
		rep.Jobs = append(rep.Jobs, cl.job.ID)
	}
	y := make([]float64, 0, n*p.OutputSize())
	var bad sdk.OutOfBoundError
	for i, cl := range calls {
		j, err := c.Wait(ctx, cl.job.ID, func(j *fheserve.Job) { bar.set(i*steps + j.Done) })
		if err != nil {
			return err
		}
		if j.StartedAt != nil && j.FinishedAt != nil {
			rep.TimesMS.Evaluate += millis(j.FinishedAt.Sub(*j.StartedAt))
		}
		r, err := c.API.Result(ctx, cl.job.ID)
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		_, err = io.Copy(&buf, r)
		r.Close()
		if err != nil {
			return fheserve.Errorf(fheserve.EUNAVAILABLE, "cannot download the result of job %s: %v", cl.job.ID, err)
		}
		if i == len(calls)-1 {
			rep.TimesMS.Server = millis(time.Since(serverStart))
		}
		rep.ResultBytes += int64(buf.Len())
		t0 := time.Now()
		v, err := keys.Decrypt(&buf, cl.n)
		var oob *sdk.OutOfBoundError
		if errors.As(err, &oob) {
			bad.Merge(oob, cl.start)
		} else if err != nil {
			return err
		}
		rep.TimesMS.Decrypt += millis(time.Since(t0))
		y = append(y, v...)
	}
	bar.finish()
	shape := append([]int{n}, p.OutputShape...)
	if err := npy.WriteFile(opts.Output, &npy.Array{Shape: shape, Data: y}); err != nil {
		return fmt.Errorf("cannot write the predictions to %q: %w", opts.Output, err)
	}
	rep.TimesMS.Total = millis(time.Since(start))
	if len(bad.Samples) > 0 {
		bad.Total, rep.OutOfBound = n, bad.Samples
		fmt.Fprintf(opts.ErrOut, "fheserve: warning: %s (%s holds them too)\n", &bad, opts.Output)
	}
	if opts.JSON {
		return printJSON(opts.Out, rep)
	}
	w := opts.ErrOut
	fmt.Fprintf(w, "predicted %d sample%s with %s v%d (%s) on %s under encryption, %d job%s\n",
		n, plural(n), m.Name, m.Version, m.ID, cfg.Server, len(calls), plural(len(calls)))
	fmt.Fprintf(w, "  wrote %s: float32, shape %v; expect errors below %.1e per value\n", opts.Output, shape, p.Precision.OutputError)
	t := rep.TimesMS
	fmt.Fprintf(w, "  time: encrypt %.0f ms, server %.0f ms (evaluation %.0f ms), decrypt %.0f ms, total %.0f ms\n",
		t.Encrypt, t.Server, t.Evaluate, t.Decrypt, t.Total)
	fmt.Fprintf(w, "  sent %s of ciphertexts, received %s of results; the secret key stayed here\n",
		fmtBytes(int(rep.UploadBytes)), fmtBytes(int(rep.ResultBytes)))
	return nil
}

// bar is a progress bar on a terminal, nothing elsewhere.
type bar struct{ pb *progressbar.ProgressBar }

func newBar(w io.Writer, total int, what string) *bar {
	f, ok := w.(*os.File)
	if !ok {
		return &bar{}
	}
	if st, err := f.Stat(); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return &bar{}
	}
	return &bar{pb: progressbar.NewOptions(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionClearOnFinish(),
	)}
}

func (b *bar) set(n int) {
	if b.pb != nil {
		b.pb.Set(n)
	}
}

func (b *bar) finish() {
	if b.pb != nil {
		b.pb.Finish()
	}
}
