package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/local"
	"github.com/fheserve/fheserve/nn"
	"github.com/fheserve/fheserve/npy"
	"github.com/fheserve/fheserve/plan"
	"github.com/fheserve/fheserve/sdk"
	"github.com/spf13/cobra"
)

type predictOptions struct {
	IO  *IOStreams
	Ctx context.Context

	Local   bool
	Keys    string
	Model   string
	Input   string
	Output  string
	Packing string
	Workers int
	// InFlight bounds the jobs queued or running at once (remote only).
	InFlight int
	JSON     bool
	engineFlags
	remote
}

func newPredictCmd(f *Factory, runF func(*predictOptions) error) *cobra.Command {
	opts := &predictOptions{IO: f.IO, remote: newRemote(f)}
	cmd := leaf(&cobra.Command{
		Use:   "predict --model ID --input X.npy --output Y.npy [flags]",
		Short: "Run an encrypted prediction",
		Long: `Encrypt the samples of an .npy file, evaluate the model on the ciphertexts,
decrypt the results and write them as float32 .npy, shaped [batch, output...].

Without --local, --model is the id of a model on the server: the samples are
encrypted here with the keys of 'fheserve keys create' (the newest for the
model, or --keys), submitted as jobs, and the encrypted results are
downloaded and decrypted here. A progress bar shows on a terminal.

With --local, the client (key generation, encryption, decryption) and the
server (evaluation on ciphertexts) both run in this process, talking through
the same wire format they use over a network. The input's first dimension is
the batch; the rest is the model's input shape or its flat size.

The results are also checked against the plaintext model with exact
activations: the summary gives the largest absolute difference and how often
the largest output (the predicted class) agrees.`,
		Example: `  fheserve predict --model mdl_... --input x.npy --output y.npy
  fheserve predict --local --model model.onnx --input x.npy --output y.npy
  fheserve predict --local --model model.onnx --input x.npy --output y.npy --packing batch --json`,
	}, opts, &opts.Ctx, runF, predictRun, packingFlags(opts.IO.ErrOut), validated(opts.validate))
	fs := cmd.Flags()
	fs.BoolVar(&opts.Local, "local", false, "run client and server in this process instead of using a server")
	fs.StringVar(&opts.Model, "model", "", "model ID on the server, or with --local an ONNX model `file` (required)")
	fs.StringVar(&opts.Keys, "keys", "", "key set `ID` to encrypt with (default: the newest for the model; not with --local)")
	opts.register(fs)
	fs.StringVar(&opts.Input, "input", "", "input samples as an .npy `file`, batch dimension first (required)")
	fs.StringVar(&opts.Output, "output", "", "`file` to write the predictions to, float32 .npy, or - for standard output (required)")
	registerPacking(fs, &opts.Packing, plan.Latency)
	registerCompileSettings(fs, &opts.Calibration, &opts.CompileSettings)
	fs.IntVar(&opts.Workers, "workers", 0, "goroutines the server may use (default: one per core)")
	fs.IntVar(&opts.InFlight, "in-flight", sdk.DefaultInFlight, "`jobs` to keep queued or running on the server at once (its default cap per user); less when other programs of yours submit jobs too")
	fs.BoolVar(&opts.JSON, "json", false, "print timings, sizes and the check against the plaintext model as JSON")
	return cmd
}

func (o *predictOptions) validate() error {
	switch {
	case !o.Local && (o.Calibration != "" || settingsGiven(&o.CompileSettings) || o.Packing != plan.Latency || o.Workers != 0):
		return fheserve.Errorf(fheserve.EINVALID, "--calibration, the compilation flags (--degree, --fit, --privacy-bits ...), --packing and --workers apply with --local only: the server compiled the model when it was deployed")
	case o.Local && (o.Keys != "" || o.Server != "" || o.InFlight != sdk.DefaultInFlight):
		return fheserve.Errorf(fheserve.EINVALID, "--keys, --server and --in-flight do not apply with --local")
	case o.InFlight < 1:
		return fheserve.Errorf(fheserve.EINVALID, "--in-flight must be at least 1")
	case o.Model == "":
		return requiredFlag("--model")
	case o.Input == "":
		return requiredFlag("--input")
	case o.Output == "":
		return requiredFlag("--output")
	case o.Workers < 0:
		return fheserve.Errorf(fheserve.EINVALID, "--workers must not be negative")
	case o.Output == "-" && o.JSON:
		return fheserve.Errorf(fheserve.EINVALID, "--json and --output - would both write to standard output: write the predictions to a file")
	}
	return validSettings(o.Packing, &o.CompileSettings)
}

// predictReport is what predict --json prints.
type predictReport struct {
	Model     string         `json:"model"`
	Output    string         `json:"output"`
	Samples   int            `json:"samples"`
	TimesMS   stageTimes     `json:"times_ms"`
	Sizes     local.Stats    `json:"sizes"`
	Plan      planSummary    `json:"plan"`
	Reference referenceCheck `json:"reference"`
	Warnings  []string       `json:"warnings,omitempty"`
}

// stageTimes are wall-clock milliseconds per stage, summed over calls.
type stageTimes struct {
	Compile  float64 `json:"compile"`
	Keygen   float64 `json:"keygen"`
	Encrypt  float64 `json:"encrypt"`
	Evaluate float64 `json:"evaluate"`
	Decrypt  float64 `json:"decrypt"`
}

type planSummary struct {
	Packing     string         `json:"packing"`
	LogN        int            `json:"log_n"`
	Depth       int            `json:"depth"`
	Rotations   int            `json:"rotations"`
	BatchSize   int            `json:"batch_size"`
	Precision   plan.Precision `json:"precision"`
	Fingerprint string         `json:"fingerprint"`
}

// referenceCheck compares decrypted results with the plaintext model.
type referenceCheck struct {
	MaxAbsError float64 `json:"max_abs_error"`
	RMSE        float64 `json:"rmse"`
	// ArgmaxAgree counts the samples whose predicted class (argmax of the
	// output, or the side of the threshold for a single output) is the
	// same; ArgmaxAgreement is the fraction. Classifiers only: eval leaves
	// them out for a regression model.
	ArgmaxAgree     int     `json:"argmax_agree,omitempty"`
	ArgmaxAgreement float64 `json:"argmax_agreement,omitempty"`
	// WithinPrecision says whether MaxAbsError is at most the plan's
	// stated output error plus the largest activation approximation error.
	WithinPrecision bool `json:"within_precision"`
}

func predictRun(opts *predictOptions) error {
	if !opts.Local {
		return predictRemote(opts)
	}
	g, err := loadModel(opts.Model)
	if err != nil {
		return err
	}
	x, n, err := readSamples(opts.Input, "input", g)
	if err != nil {
		return err
	}
	copts, err := opts.compilerOptions(g, opts.Packing)
	if err != nil {
		return err
	}
	r, err := local.New(g, copts, opts.Workers)
	if err != nil {
		return err
	}
	p := r.Plan
	writeWarnings(opts.IO.ErrOut, p)
	y, err := r.Predict(opts.Ctx, x, n)
	if err != nil {
		return err
	}
	shape := append([]int{n}, p.OutputShape...)
	if err := writeOutput(opts, &npy.Array{Shape: shape, Data: y}); err != nil {
		return err
	}
	want, err := g.EvalBatch(x, n, nil)
	if err != nil {
		return err
	}
	rep := &predictReport{
		Model:     p.Model,
		Output:    opts.Output,
		Samples:   n,
		TimesMS:   stageTimesOf(&r.Stats),
		Sizes:     r.Stats,
		Plan:      summarize(p),
		Reference: compareOutputs(y, want, p, true),
		Warnings:  p.Warnings,
	}
	if opts.JSON {
		enc := json.NewEncoder(opts.IO.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	rep.Output = outputName(opts.Output)
	writePredictSummary(opts.IO.ErrOut, rep, shape)
	return nil
}

func stageTimesOf(s *local.Stats) stageTimes {
	return stageTimes{
		Compile:  millis(s.Compile),
		Keygen:   millis(s.Keygen),
		Encrypt:  millis(s.Encrypt),
		Evaluate: millis(s.Evaluate),
		Decrypt:  millis(s.Decrypt),
	}
}

// millis is d in milliseconds, to the microsecond.
func millis(d time.Duration) float64 {
	return math.Round(float64(d.Microseconds())) / 1000
}

func summarize(p *plan.Plan) planSummary {
	return planSummary{
		Packing:     p.Packing,
		LogN:        p.Params.LogN,
		Depth:       p.Depth,
		Rotations:   len(p.Rotations),
		BatchSize:   p.BatchSize,
		Precision:   p.Precision,
		Fingerprint: p.Fingerprint,
	}
}

// compareOutputs compares got with want, both row-major samples of the
// plan's output size, and when classify is set, their predicted classes.
func compareOutputs(got, want []float64, p *plan.Plan, classify bool) referenceCheck {
	size := p.OutputSize()
	e := errorsOf(got, want)
	c := referenceCheck{MaxAbsError: e.MaxAbsError, RMSE: e.RMSE}
	n := len(want) / size
	c.WithinPrecision = c.MaxAbsError <= p.Precision.OutputError+p.Precision.ApproximationError
	if !classify {
		return c
	}
	for s := 0; s < n; s++ {
		if classOf(got[s*size:(s+1)*size], p.Head) == classOf(want[s*size:(s+1)*size], p.Head) {
			c.ArgmaxAgree++
		}
	}
	if n > 0 {
		c.ArgmaxAgreement = float64(c.ArgmaxAgree) / float64(n)
	}
	return c
}

// classOf is the class an output vector predicts: its argmax, or for a
// single output whether it is above the decision threshold (0.5 after a
// sigmoid head, 0 for a raw score).
func classOf(v []float64, head string) int {
	if len(v) == 1 {
		threshold := 0.0
		if head == "sigmoid" {
			threshold = 0.5
		}
		if v[0] > threshold {
			return 1
		}
		return 0
	}
	return nn.Argmax(v)
}

func writePredictSummary(w io.Writer, r *predictReport, shape []int) {
	p := r.Plan
	fmt.Fprintf(w, "predicted %d sample%s of %s under encryption (%s packing, N = 2^%d, depth %d, %d rotation keys)\n",
		r.Samples, plural(r.Samples), r.Model, p.Packing, p.LogN, p.Depth, p.Rotations)
	fmt.Fprintf(w, "  wrote %s: float32, shape %v\n", r.Output, shape)
	t := r.TimesMS
	fmt.Fprintf(w, "  time: compile %.0f ms, keygen %.0f ms, encrypt %.0f ms, evaluate %.0f ms, decrypt %.0f ms\n",
		t.Compile, t.Keygen, t.Encrypt, t.Evaluate, t.Decrypt)
	s := r.Sizes
	fmt.Fprintf(w, "  sizes: evaluation keys %s, public key %s, uploads %s, results %s (%d call%s)\n",
		fmtBytes(s.EvalKeyByte), fmtBytes(s.PublicKey), fmtBytes(s.UploadBytes), fmtBytes(s.ResultBytes), s.Calls, plural(s.Calls))
	c := r.Reference
	fmt.Fprintf(w, "  vs plaintext: max abs error %.2e (stated precision %.2e), predicted class agrees on %d/%d\n",
		c.MaxAbsError, p.Precision.OutputError, c.ArgmaxAgree, r.Samples)
}
