package main

import (
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
	rep := &remoteReport{Model: m.ID, Name: m.Name, Server: cfg.Server, KeySet: keys.KeySetID, Output: opts.Output,
		Samples: n, Precision: p.Precision.OutputError}
	bar := newBar(opts.ErrOut, n, fmt.Sprintf("%s: %d sample%s", m.Name, n, plural(n)))
	var stats sdk.PredictStats
	var firstSubmit, lastResult time.Time
	y, err := c.PredictWith(ctx, keys, a.Data, n, &sdk.PredictOptions{
		InFlight: opts.InFlight,
		Stats:    &stats,
		Progress: func(pr sdk.Progress) {
			if pr.Job != nil && firstSubmit.IsZero() {
				firstSubmit = time.Now()
			}
			if pr.Predicted == n && lastResult.IsZero() {
				lastResult = time.Now()
			}
			bar.set(pr.Predicted)
			if pr.Wait > 0 {
				bar.note(fmt.Sprintf("fheserve: waiting %s: %s", pr.Wait, pr.Reason))
			}
		},
	})
	bar.finish()
	var inc *sdk.IncompleteError
	var bad *sdk.OutOfBoundError
	switch {
	case errors.As(err, &inc) && inc.Predicted > 0:
		// Keep what came back: the first samples, in order.
		shape := append([]int{inc.Predicted}, p.OutputShape...)
		if werr := writeOutput(opts, &npy.Array{Shape: shape, Data: y}); werr != nil {
			return fmt.Errorf("%w (and cannot write the %d predictions made: %v)", err, inc.Predicted, werr)
		}
		return fmt.Errorf("%w; %s holds the predictions of the first %d samples", err, outputName(opts.Output), inc.Predicted)
	case errors.As(err, &bad):
	case err != nil:
		return err
	}
	rep.TimesMS.Server = millis(lastResult.Sub(firstSubmit))
	rep.TimesMS.Encrypt, rep.TimesMS.Evaluate, rep.TimesMS.Decrypt = millis(stats.Encrypt), millis(stats.Evaluate), millis(stats.Decrypt)
	rep.Jobs, rep.UploadBytes, rep.ResultBytes = stats.Jobs, stats.UploadBytes, stats.ResultBytes
	shape := append([]int{n}, p.OutputShape...)
	if err := writeOutput(opts, &npy.Array{Shape: shape, Data: y}); err != nil {
		return err
	}
	rep.TimesMS.Total = millis(time.Since(start))
	if bad != nil {
		rep.OutOfBound = bad.Samples
		fmt.Fprintf(opts.ErrOut, "fheserve: warning: %s (%s holds them too)\n", bad, outputName(opts.Output))
	}
	if opts.JSON {
		return printJSON(opts.Out, rep)
	}
	w := opts.ErrOut
	fmt.Fprintf(w, "predicted %d sample%s with %s v%d (%s) on %s under encryption, %d job%s\n",
		n, plural(n), m.Name, m.Version, m.ID, cfg.Server, len(stats.Jobs), plural(len(stats.Jobs)))
	fmt.Fprintf(w, "  wrote %s: float32, shape %v; expect errors below %.1e per value\n", outputName(opts.Output), shape, p.Precision.OutputError)
	t := rep.TimesMS
	fmt.Fprintf(w, "  time: encrypt %.0f ms, server %.0f ms (evaluation %.0f ms), decrypt %.0f ms, total %.0f ms\n",
		t.Encrypt, t.Server, t.Evaluate, t.Decrypt, t.Total)
	if stats.Retries > 0 {
		fmt.Fprintf(w, "  waited %s in all for the server's limits (%d submission%s repeated)\n", stats.Waited, stats.Retries, plural(stats.Retries))
	}
	fmt.Fprintf(w, "  sent %s of ciphertexts, received %s of results; the secret key stayed here\n",
		fmtBytes(int(rep.UploadBytes)), fmtBytes(int(rep.ResultBytes)))
	return nil
}

// writeOutput writes predictions to --output: a file, or with "-"
// standard output.
func writeOutput(opts *predictOptions, a *npy.Array) error {
	if opts.Output == "-" {
		if err := npy.Write(opts.Out, a); err != nil {
			return fmt.Errorf("cannot write the predictions to standard output: %w", err)
		}
		return nil
	}
	if err := npy.WriteFile(opts.Output, a); err != nil {
		return fmt.Errorf("cannot write the predictions to %q: %w", opts.Output, err)
	}
	return nil
}

// outputName names --output in messages.
func outputName(output string) string {
	if output == "-" {
		return "standard output"
	}
	return output
}

// bar is a progress bar on a terminal, nothing elsewhere.
type bar struct {
	pb *progressbar.ProgressBar
	w  io.Writer
}

func newBar(w io.Writer, total int, what string) *bar {
	f, ok := w.(*os.File)
	if !ok {
		return &bar{w: w}
	}
	if st, err := f.Stat(); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return &bar{w: w}
	}
	return &bar{w: w, pb: progressbar.NewOptions(total,
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

// note prints a line, above the bar on a terminal.
func (b *bar) note(line string) {
	if b.pb != nil {
		b.pb.Clear()
	}
	fmt.Fprintln(b.w, line)
}

func (b *bar) finish() {
	if b.pb != nil {
		b.pb.Finish()
	}
}
