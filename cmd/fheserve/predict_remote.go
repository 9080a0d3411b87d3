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
	"github.com/fheserve/fheserve/plan"
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
	// Predicted is each sample's label of highest score, for a model
	// with labels and more than one output.
	Predicted []string `json:"predicted,omitempty"`
}

// predictedLabels names each sample's output of highest score, for a
// model with labels and more than one output (nil otherwise).
func predictedLabels(labels []string, y []float64, n int) []string {
	k := len(labels)
	if k < 2 || len(y) != n*k {
		return nil
	}
	out := make([]string, n)
	for i := range n {
		row := y[i*k : (i+1)*k]
		best := 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		out[i] = labels[best]
	}
	return out
}

// predictRemote encrypts the input here, runs it on the server, and
// decrypts the results here: the same output as predict --local.
func predictRemote(opts *predictOptions) error {
	ctx := opts.Ctx
	start := time.Now()
	c, cfg, m, err := opts.sessionModel(ctx, opts.Model)
	if err != nil {
		return err
	}
	keys, err := opts.loadKeys(ctx, c, cfg, opts.Model, opts.Keys)
	if err != nil {
		return err
	}
	if waiting, err := waitingForSeal(opts, c, m, keys.KeySetID); waiting || err != nil {
		return err
	}
	p := keys.Plan
	a, n, err := readRemoteInput(opts.Input, p)
	if err != nil {
		return err
	}
	var stats sdk.PredictStats
	y, err := predictPaced(opts, c, keys, m.Name, a.Data, n, &stats)
	if fheserve.IsWaitingForSeal(err) {
		return sealStatus(opts, m, keys.KeySetID)
	}
	var bad *sdk.OutOfBoundError
	if !errors.As(err, &bad) && err != nil {
		return keepPartial(opts, p, y, err)
	}
	shape := append([]int{n}, p.OutputShape...)
	if err := writeOutput(opts, &npy.Array{Shape: shape, Data: y}); err != nil {
		return err
	}
	rep := &remoteReport{Model: m.ID, Name: m.Name, Server: cfg.Server, KeySet: keys.KeySetID, Output: opts.Output,
		Samples: n, Precision: p.Precision.OutputError, Jobs: stats.Jobs, UploadBytes: stats.UploadBytes, ResultBytes: stats.ResultBytes}
	rep.TimesMS.Encrypt, rep.TimesMS.Server, rep.TimesMS.Evaluate, rep.TimesMS.Decrypt = millis(stats.Encrypt), millis(stats.Server), millis(stats.Evaluate), millis(stats.Decrypt)
	rep.TimesMS.Total = millis(time.Since(start))
	rep.Predicted = predictedLabels(m.Labels, y, n)
	if bad != nil {
		rep.OutOfBound = bad.Samples
		fmt.Fprintf(opts.IO.ErrOut, "fheserve: warning: %s (%s holds them too)\n", bad, outputName(opts.Output))
	}
	if opts.JSON {
		return printJSON(opts.IO.Out, rep)
	}
	writeRemoteSummary(opts.IO.ErrOut, rep, m, shape, &stats)
	return nil
}

// readRemoteInput reads --input for plan p: its samples and how many.
func readRemoteInput(path string, p *plan.Plan) (*npy.Array, int, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, 0, fheserve.Errorf(fheserve.ENOTFOUND, "input file %q not found", path)
	}
	a, err := npy.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	n, err := batchOf(a.Shape, nn.Shape(p.InputShape))
	if err != nil {
		return nil, 0, fheserve.Errorf(fheserve.EINVALID, "input file %q: %s", path, fheserve.ErrorMessage(err))
	}
	return a, n, nil
}

// predictPaced runs the prediction through the SDK, which paces it, with
// a progress bar on a terminal and a line for each wait the server asks.
func predictPaced(opts *predictOptions, c *sdk.Client, keys *sdk.Keys, name string, x []float64, n int, stats *sdk.PredictStats) ([]float64, error) {
	bar := newBar(opts.IO, n, fmt.Sprintf("%s: %d sample%s", name, n, plural(n)))
	defer bar.finish()
	return c.PredictWith(opts.Ctx, keys, x, n, &sdk.PredictOptions{
		InFlight: opts.InFlight,
		Stats:    stats,
		Progress: func(pr sdk.Progress) {
			bar.set(pr.Predicted)
			if pr.Wait > 0 {
				bar.note(fmt.Sprintf("fheserve: waiting %s: %s", pr.Wait, pr.Reason))
			}
		},
	})
}

// keepPartial writes what an incomplete prediction returned, the first
// samples' predictions in order, and returns err saying so.
func keepPartial(opts *predictOptions, p *plan.Plan, y []float64, err error) error {
	var inc *sdk.IncompleteError
	if !errors.As(err, &inc) || inc.Predicted == 0 {
		return err
	}
	shape := append([]int{inc.Predicted}, p.OutputShape...)
	if werr := writeOutput(opts, &npy.Array{Shape: shape, Data: y}); werr != nil {
		return fmt.Errorf("%w (and cannot write the %d predictions made: %v)", err, inc.Predicted, werr)
	}
	return fmt.Errorf("%w; %s holds the predictions of the first %d samples", err, outputName(opts.Output), inc.Predicted)
}

// writeRemoteSummary prints a remote prediction's summary for a person.
func writeRemoteSummary(w io.Writer, rep *remoteReport, m *fheserve.Model, shape []int, stats *sdk.PredictStats) {
	n := rep.Samples
	fmt.Fprintf(w, "predicted %d sample%s with %s v%d (%s) on %s under encryption, %d job%s\n",
		n, plural(n), m.Name, m.Version, m.ID, rep.Server, len(stats.Jobs), plural(len(stats.Jobs)))
	fmt.Fprintf(w, "  wrote %s: float32, shape %v; expect errors below %.1e per value\n", outputName(rep.Output), shape, rep.Precision)
	t := rep.TimesMS
	fmt.Fprintf(w, "  time: encrypt %.0f ms, server %.0f ms (evaluation %.0f ms), decrypt %.0f ms, total %.0f ms\n",
		t.Encrypt, t.Server, t.Evaluate, t.Decrypt, t.Total)
	if stats.Retries > 0 {
		fmt.Fprintf(w, "  waited %s in all for the server's limits (%d submission%s repeated)\n", stats.Waited, stats.Retries, plural(stats.Retries))
	}
	fmt.Fprintf(w, "  sent %s of ciphertexts, received %s of results; the secret key stayed here\n",
		fmtBytes(int(rep.UploadBytes)), fmtBytes(int(rep.ResultBytes)))
	const shown = 10
	for i, l := range rep.Predicted[:min(len(rep.Predicted), shown)] {
		fmt.Fprintf(w, "  sample %d: %s\n", i, l)
	}
	if len(rep.Predicted) > shown {
		fmt.Fprintf(w, "  (and %d more samples: --json lists every label)\n", len(rep.Predicted)-shown)
	}
}

// writeOutput writes predictions to --output: a file, or with "-"
// standard output.
func writeOutput(opts *predictOptions, a *npy.Array) error {
	if opts.Output == "-" {
		if err := npy.Write(opts.IO.Out, a); err != nil {
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

func newBar(io *IOStreams, total int, what string) *bar {
	w := io.ErrOut
	if !io.ErrTTY {
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
