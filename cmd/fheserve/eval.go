package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/local"
	"github.com/fheserve/fheserve/nn"
	"github.com/fheserve/fheserve/npy"
	"github.com/fheserve/fheserve/plan"
	"github.com/spf13/cobra"
)

type evalOptions struct {
	IO  *IOStreams
	Ctx context.Context

	Model   string
	Data    string
	Labels  string
	Packing string
	Limit   int
	Workers int
	JSON    bool
	// PlaintextOnly skips encryption: the plaintext and approximated
	// accuracies alone, to choose a degree cheaply.
	PlaintextOnly bool
	engineFlags
}

const evalLong = `Run every sample of a labelled data set through the model encrypted (keys,
encryption, evaluation on ciphertexts, decryption, all in this process
through the wire format) and in plaintext, and report:

  - accuracy of the plaintext model, of the plaintext model with the
    activations replaced by the polynomials that run under encryption, and
    of the encrypted model;
  - how often the encrypted prediction agrees with the plaintext one, and
    the largest output difference;
  - for each approximated activation, how many samples drove it outside
    its interval, where the polynomial is inaccurate;
  - samples whose decrypted output exceeds the plan's output bound (not to
    be trusted);
  - the time per stage and per sample.

Batch packing (the default) puts up to N/2 samples in each call, which
makes test sets of thousands of images practical; latency packing runs
one sample per call. --plaintext-only compiles the plan but encrypts
nothing: it reports the plaintext and approximated accuracy in seconds, to
compare degrees (--degree, --degrees) before an encrypted run. Labels are class indices (for a single output, 1 for
above the threshold: 0.5 after a sigmoid head, 0 otherwise). For a regression
model (no sigmoid or softmax head, and labels that are not class indices:
fractions, or one target per output), eval reports the RMSE and the largest
absolute error against the labels and against the plaintext model instead
of accuracy and class agreement.`

func newEvalCmd(f *Factory, runF func(*evalOptions) error) *cobra.Command {
	opts := &evalOptions{IO: f.IO}
	cmd := leaf(&cobra.Command{
		Use:   "eval --model M.onnx --data X.npy --labels y.npy [flags]",
		Short: "Measure a model's accuracy under encryption on a labelled data set",
		Long:  evalLong,
		Example: `  fheserve eval --model examples/fmnist-mlp/model.onnx --data examples/data/fmnist.x.npy --labels examples/data/fmnist.y.npy
  fheserve eval --model model.onnx --data x.npy --labels y.npy --calibration calib.npy --degree 15 --json
  fheserve eval --model model.onnx --data x.npy --labels y.npy --packing latency --limit 20`,
	}, opts, &opts.Ctx, runF, evalRun, packingFlags(opts.IO.ErrOut),
		required("model", "data", "labels"), validated(opts.validate))
	fs := cmd.Flags()
	fs.StringVar(&opts.Model, "model", "", "ONNX model `file` (required)")
	fs.StringVar(&opts.Data, "data", "", "samples as an .npy `file`, batch dimension first (required)")
	fs.StringVar(&opts.Labels, "labels", "", "class index (or, for a regression model, targets) of each sample as an .npy `file` (required)")
	registerPacking(fs, &opts.Packing, plan.Batch)
	fs.IntVar(&opts.Limit, "limit", 0, "evaluate only the first `n` samples (default all)")
	registerCompileSettings(fs, &opts.Calibration, &opts.CompileSettings)
	fs.IntVar(&opts.Workers, "workers", 0, "goroutines the server may use (default: one per core)")
	fs.BoolVar(&opts.PlaintextOnly, "plaintext-only", false, "skip encryption: report the plaintext and approximated accuracy only (to choose a degree)")
	fs.BoolVar(&opts.JSON, "json", false, "print the report as JSON")
	return cmd
}

func (o *evalOptions) validate() error {
	switch {
	case o.Limit < 0:
		return fheserve.Errorf(fheserve.EINVALID, "--limit must not be negative")
	case o.Workers < 0:
		return fheserve.Errorf(fheserve.EINVALID, "--workers must not be negative")
	}
	return validSettings(o.Packing, &o.CompileSettings)
}

// evalReport is what eval --json prints. With --plaintext-only, the
// encrypted fields are omitted.
type evalReport struct {
	Model   string      `json:"model"`
	Data    string      `json:"data"`
	Samples int         `json:"samples"`
	Plan    planSummary `json:"plan"`
	// Task is "classification" (labels are class indices) or
	// "regression" (labels are target values).
	Task string `json:"task"`
	// Accuracy is the fraction of samples whose predicted class is the
	// label: plaintext (exact activations), approximated (plaintext with
	// the plan's polynomials; omitted when every operation is exact) and
	// encrypted. Classification only.
	Accuracy *accuracies `json:"accuracy,omitempty"`
	// Labels compares the outputs with the labels, the same three ways:
	// regression only.
	Labels *labelErrors `json:"vs_labels,omitempty"`
	// Plaintext compares the encrypted outputs with the exact plaintext
	// model: HE noise plus the activation approximations.
	Plaintext *referenceCheck `json:"vs_plaintext,omitempty"`
	// Approximated compares them with the plaintext model using the
	// plan's polynomials: HE noise alone, which the plan bounds by its
	// output error.
	Approximated *referenceCheck `json:"vs_approximated,omitempty"`
	Activations  []activationUse `json:"activations,omitempty"`
	// OutOfBound counts the samples whose decrypted output exceeded the
	// plan's output bound.
	OutOfBound int `json:"out_of_bound"`
	// MaxOutput is the largest output magnitude of the plaintext model on
	// the data, to compare with the plan's output bound.
	MaxOutput float64      `json:"max_output"`
	TimesMS   evalTimes    `json:"times_ms"`
	Sizes     *local.Stats `json:"sizes,omitempty"`
	Warnings  []string     `json:"warnings,omitempty"`
	correct   evalCounts   // for the text report
}

type accuracies struct {
	Plaintext    float64  `json:"plaintext"`
	Approximated *float64 `json:"approximated,omitempty"`
	Encrypted    *float64 `json:"encrypted,omitempty"`
}

// labelErrors are a regression model's errors against its labels.
type labelErrors struct {
	Plaintext    errorStats  `json:"plaintext"`
	Approximated *errorStats `json:"approximated,omitempty"`
	Encrypted    *errorStats `json:"encrypted,omitempty"`
}

// errorStats summarize the differences between outputs and references.
type errorStats struct {
	RMSE        float64 `json:"rmse"`
	MaxAbsError float64 `json:"max_abs_error"`
}

// errorsOf returns the RMSE and largest absolute difference of got and want.
func errorsOf(got, want []float64) errorStats {
	var e errorStats
	for i := range want {
		d := math.Abs(got[i] - want[i])
		e.MaxAbsError = math.Max(e.MaxAbsError, d)
		e.RMSE += d * d
	}
	if len(want) > 0 {
		e.RMSE = math.Sqrt(e.RMSE / float64(len(want)))
	}
	return e
}

// activationUse says how the data used one approximated activation.
type activationUse struct {
	Node     string     `json:"node"`
	Func     string     `json:"func"`
	Degree   int        `json:"degree"`
	Interval [2]float64 `json:"interval"`
	// Outside counts the samples that drove the activation outside its
	// interval at least once, and Excursion is the farthest input beyond
	// it, in half-widths of the interval (0 when none).
	Outside   int     `json:"samples_outside"`
	Excursion float64 `json:"max_excursion"`
}

type evalTimes struct {
	stageTimes
	// PerSample is the client and server time of one sample: encryption,
	// evaluation and decryption over the samples (keys are made once).
	PerSample float64 `json:"per_sample"`
	// Plaintext is the float64 reference model's time per sample.
	Plaintext float64 `json:"plaintext_per_sample"`
	Total     float64 `json:"total"`
}

// evalCounts are the correctly classified samples behind the accuracies.
type evalCounts struct {
	plain, approx, enc int
}

func evalRun(opts *evalOptions) error {
	start := time.Now()
	g, x, n, labels, err := evalInputs(opts)
	if err != nil {
		return err
	}
	r, p, err := evalPlan(opts, g)
	if err != nil {
		return err
	}
	writeWarnings(opts.IO.ErrOut, p)

	t0 := time.Now()
	ref, err := evalReference(g, p, x, n)
	if err != nil {
		return err
	}
	plainTime := time.Since(t0)

	rep := &evalReport{Model: p.Model, Data: opts.Data, Samples: n, Plan: summarize(p), Warnings: p.Warnings, Activations: ref.uses}
	scorePlaintext(rep, p, labels, ref)
	rep.TimesMS.Plaintext = millis(plainTime) / float64(n)
	for _, v := range ref.exact {
		rep.MaxOutput = math.Max(rep.MaxOutput, math.Abs(v))
	}
	if r != nil {
		got, err := predictWithProgress(opts, r, x, n)
		if err != nil {
			return err
		}
		scoreEncrypted(rep, p, labels, ref, got)
		rep.OutOfBound = len(r.OutOfBound)
		st := r.Stats
		rep.Sizes = &st
		rep.TimesMS.stageTimes = stageTimesOf(&st)
		rep.TimesMS.PerSample = millis(st.Encrypt+st.Evaluate+st.Decrypt) / float64(n)
	}
	rep.TimesMS.Total = millis(time.Since(start))
	if opts.JSON {
		enc := json.NewEncoder(opts.IO.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	writeEvalSummary(opts.IO.Out, rep)
	return nil
}

// evalInputs reads the model, the first --limit samples and their labels.
func evalInputs(opts *evalOptions) (g *nn.Graph, x []float64, n int, labels *labelSet, err error) {
	if g, err = loadModel(opts.Model); err != nil {
		return nil, nil, 0, nil, err
	}
	if x, n, err = readSamples(opts.Data, "data", g); err != nil {
		return nil, nil, 0, nil, err
	}
	if opts.Limit > 0 && opts.Limit < n {
		n = opts.Limit
		x = x[:n*g.Input.Size()]
	}
	if labels, err = readLabels(opts.Labels, n, g); err != nil {
		return nil, nil, 0, nil, err
	}
	return g, x, n, labels, nil
}

// evalPlan compiles g's plan, and unless --plaintext-only, the runner that
// evaluates it encrypted (nil otherwise).
func evalPlan(opts *evalOptions, g *nn.Graph) (*local.Runner, *plan.Plan, error) {
	copts, err := opts.compilerOptions(g, opts.Packing)
	if err != nil {
		return nil, nil, err
	}
	if opts.PlaintextOnly {
		res, err := compiler.Compile(g, copts)
		if err != nil {
			return nil, nil, err
		}
		return nil, res.Plan, nil
	}
	r, err := local.New(g, copts, opts.Workers)
	if err != nil {
		return nil, nil, err
	}
	return r, r.Plan, nil
}

// scorePlaintext scores the plaintext model, exact and approximated,
// against the labels: accuracy for a classifier, errors for a regression.
func scorePlaintext(rep *evalReport, p *plan.Plan, labels *labelSet, ref *reference) {
	if labels.classes != nil {
		rep.Task, rep.Accuracy = "classification", &accuracies{}
		rep.Accuracy.Plaintext = *accuracyOf(ref.exact, p, labels.classes, &rep.correct.plain)
		if len(p.Activations) > 0 {
			rep.Accuracy.Approximated = accuracyOf(ref.approx, p, labels.classes, &rep.correct.approx)
		}
		return
	}
	rep.Task, rep.Labels = "regression", &labelErrors{Plaintext: errorsOf(ref.exact, labels.targets)}
	if len(p.Activations) > 0 {
		e := errorsOf(ref.approx, labels.targets)
		rep.Labels.Approximated = &e
	}
}

// scoreEncrypted scores the decrypted outputs got against the labels and
// compares them with the plaintext model's.
func scoreEncrypted(rep *evalReport, p *plan.Plan, labels *labelSet, ref *reference, got []float64) {
	classify := labels.classes != nil
	if classify {
		rep.Accuracy.Encrypted = accuracyOf(got, p, labels.classes, &rep.correct.enc)
	} else {
		e := errorsOf(got, labels.targets)
		rep.Labels.Encrypted = &e
	}
	c := compareOutputs(got, ref.exact, p, classify)
	rep.Plaintext = &c
	if len(p.Activations) > 0 {
		c := compareOutputs(got, ref.approx, p, classify)
		c.WithinPrecision = c.MaxAbsError <= p.Precision.OutputError
		rep.Approximated = &c
	} else {
		// Every operation is exact: the plaintext model is the
		// reference and the HE error alone is compared with the plan's.
		rep.Plaintext.WithinPrecision = rep.Plaintext.MaxAbsError <= p.Precision.OutputError
	}
}

// accuracyOf counts in *count the samples of y whose predicted class is
// their label and returns the fraction.
func accuracyOf(y []float64, p *plan.Plan, classes []int, count *int) *float64 {
	size := p.OutputSize()
	for s, c := range classes {
		if classOf(y[s*size:(s+1)*size], p.Head) == c {
			*count++
		}
	}
	acc := float64(*count) / float64(len(classes))
	return &acc
}

// labelSet is what eval compares a model's outputs with: class indices,
// or for a regression model target values.
type labelSet struct {
	classes []int     // one per sample; nil for regression
	targets []float64 // regression: one per output value, row-major
}

// readLabels reads the labels of n samples of g's data (the first n of
// the file): class indices, one per sample, any integer-valued numeric
// .npy. A model without a sigmoid or softmax head may be a regression: its
// labels are then the target values, one per output (shape [n] for a
// single output, [n, output...] otherwise), and a label that is not a
// class index (a fraction, or beyond the outputs) marks it as one.
func readLabels(path string, n int, g *nn.Graph) (*labelSet, error) {
	a, err := npy.ReadFile(path)
	if err != nil {
		return nil, err
	}
	size := g.OutputShape().Size()
	regression := !hasHead(g)
	if regression && size > 1 && len(a.Shape) > 1 && a.Shape[0] >= n && a.Size() == a.Shape[0]*size {
		return &labelSet{targets: a.Data[:n*size]}, nil
	}
	if len(a.Data) < n || (len(a.Shape) > 1 && a.Size() != a.Shape[0]) {
		want := fmt.Sprintf("want one class index per sample, [%d]", n)
		if regression && size > 1 {
			want += fmt.Sprintf(", or for a regression model one target per output, [%d %s]", n, dims(g.OutputShape()))
		}
		return nil, fheserve.Errorf(fheserve.EINVALID, "labels file %q has shape %v: %s", path, a.Shape, want)
	}
	classes := max(2, size) // a single output is a yes or no
	labels := make([]int, n)
	for i, v := range a.Data[:n] {
		if v != math.Trunc(v) || v < 0 || v >= float64(classes) {
			if regression && size == 1 {
				return &labelSet{targets: a.Data[:n]}, nil
			}
			return nil, fheserve.Errorf(fheserve.EINVALID, "labels file %q: label %d is %g, not a class index (0 to %d)", path, i, v, classes-1)
		}
		labels[i] = int(v)
	}
	return &labelSet{classes: labels}, nil
}

// hasHead reports whether g ends in a sigmoid or softmax, which the
// compiler leaves to the client (a classifier's head).
func hasHead(g *nn.Graph) bool {
	if g.Output == 0 {
		return false
	}
	switch op := g.Nodes[g.Output-1].Op.(type) {
	case *nn.Softmax:
		return true
	case *nn.Activation:
		return op.Func == nn.ActSigmoid
	}
	return false
}

// predictWithProgress runs the samples encrypted one call at a time and
// reports progress on stderr when the run is long.
func predictWithProgress(opts *evalOptions, r *local.Runner, x []float64, n int) ([]float64, error) {
	p := r.Plan
	in := p.InputSize()
	chunk := p.BatchSize
	if p.Packing == plan.Latency {
		chunk = max(1, min(n/10, 100))
	}
	out := make([]float64, 0, n*p.OutputSize())
	t0 := time.Now()
	last := t0
	for start := 0; start < n; start += chunk {
		k := min(chunk, n-start)
		y, err := r.Predict(opts.Ctx, x[start*in:(start+k)*in], k)
		if err != nil {
			return nil, err
		}
		out = append(out, y...)
		if start+k < n && time.Since(last) > 10*time.Second {
			last = time.Now()
			fmt.Fprintf(opts.IO.ErrOut, "  ... %d/%d samples encrypted and evaluated in %.0f s\n", start+k, n, last.Sub(t0).Seconds())
		}
	}
	return out, nil
}

// reference holds the plaintext model's outputs and how the samples used
// the approximated activations.
type reference struct {
	exact, approx []float64
	uses          []activationUse
}

// evalReference runs the plaintext model on every sample, exactly and with
// the plan's polynomials, and records which samples drove an activation
// outside its interval.
func evalReference(g *nn.Graph, p *plan.Plan, x []float64, n int) (*reference, error) {
	out := g.OutputShape().Size()
	ref := &reference{exact: make([]float64, n*out)}
	t := newActivationTracer(g, p)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, runtime.GOMAXPROCS(0))
	for w := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				s := int(next.Add(1) - 1)
				if s >= n {
					return
				}
				y, err := t.eval(s, x)
				if err != nil {
					errs[w] = fmt.Errorf("sample %d: %w", s, err)
					return
				}
				copy(ref.exact[s*out:], y)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	if len(p.Activations) == 0 {
		return ref, nil
	}
	var err error
	if ref.approx, err = g.EvalBatch(x, n, compiler.Approximated(g, p)); err != nil {
		return nil, err
	}
	for k, a := range p.Activations {
		ref.uses = append(ref.uses, activationUse{Node: a.Node, Func: a.Func, Degree: a.Degree, Interval: a.Interval,
			Outside: int(t.outside[k]), Excursion: t.worst[k]})
	}
	return ref, nil
}

// activationTracer records, over the samples evaluated, how many drove
// each approximated activation outside its interval, and how far at
// worst, in half-widths of the interval.
type activationTracer struct {
	g     *nn.Graph
	p     *plan.Plan
	index map[int]int // graph node -> activation

	mu      sync.Mutex
	outside []int
	worst   []float64
}

func newActivationTracer(g *nn.Graph, p *plan.Plan) *activationTracer {
	t := &activationTracer{g: g, p: p, index: map[int]int{},
		outside: make([]int, len(p.Activations)), worst: make([]float64, len(p.Activations))}
	for i, nd := range g.Nodes {
		for k, a := range p.Activations {
			if a.Node == nd.Name {
				t.index[i] = k
			}
		}
	}
	return t
}

// eval evaluates sample s of x exactly, tracing the inputs of the
// approximated activations; it is safe for concurrent use.
func (t *activationTracer) eval(s int, x []float64) ([]float64, error) {
	in, acts := t.g.Input.Size(), t.p.Activations
	hit := make([]bool, len(acts))
	far := make([]float64, len(acts))
	opt := &nn.EvalOptions{Trace: func(node int, ins []*nn.Tensor, _ *nn.Tensor) {
		k, ok := t.index[node]
		if !ok {
			return
		}
		lo, hi := acts[k].Interval[0], acts[k].Interval[1]
		half := (hi - lo) / 2
		for _, v := range ins[0].Data {
			if v < lo || v > hi {
				hit[k] = true
				far[k] = math.Max(far[k], math.Max(lo-v, v-hi)/half)
			}
		}
	}}
	y, err := t.g.Eval(&nn.Tensor{Shape: t.g.Input, Data: x[s*in : (s+1)*in]}, opt)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for k := range hit {
		if hit[k] {
			t.outside[k]++
		}
		t.worst[k] = math.Max(t.worst[k], far[k])
	}
	return y.Data, nil
}

func writeEvalSummary(w io.Writer, r *evalReport) {
	p := r.Plan
	if r.Sizes == nil {
		fmt.Fprintf(w, "evaluated %s on %d sample%s of %s in plaintext only (plan: %s packing, N = 2^%d, depth %d)\n",
			r.Model, r.Samples, plural(r.Samples), r.Data, p.Packing, p.LogN, p.Depth)
	} else {
		fmt.Fprintf(w, "evaluated %s on %d sample%s of %s under encryption (%s packing, N = 2^%d, depth %d, %d call%s)\n",
			r.Model, r.Samples, plural(r.Samples), r.Data, p.Packing, p.LogN, p.Depth, r.Sizes.Calls, plural(r.Sizes.Calls))
	}
	if r.Accuracy != nil {
		writeClassification(w, r)
	} else {
		writeRegression(w, r)
	}
	for _, a := range r.Activations {
		fmt.Fprintf(w, "  activation %s (%s, degree %d on [%.4g, %.4g]): %d sample%s outside the interval",
			a.Node, a.Func, a.Degree, a.Interval[0], a.Interval[1], a.Outside, plural(a.Outside))
		if a.Outside > 0 {
			fmt.Fprintf(w, ", at most %.2f half-widths beyond", a.Excursion)
		}
		fmt.Fprintln(w)
	}
	if r.OutOfBound > 0 {
		fmt.Fprintf(w, "  WARNING: %d sample%s decrypted beyond the output bound %.4g the parameters were sized for (largest plaintext output %.4g):\n"+
			"    the stated precision does not cover them; calibrate on more data like them. Past about 8 times the bound\n"+
			"    values wrap around the modulus, and in batch packing that spoils every sample of the call.\n",
			r.OutOfBound, plural(r.OutOfBound), p.Precision.OutputBound, r.MaxOutput)
	} else if r.MaxOutput > p.Precision.OutputBound {
		fmt.Fprintf(w, "  note: the largest plaintext output %.4g is beyond the plan's output bound %.4g\n", r.MaxOutput, p.Precision.OutputBound)
	}
	t := r.TimesMS
	if s := r.Sizes; s != nil {
		fmt.Fprintf(w, "  time: keygen %s, encrypt %s, evaluate %s, decrypt %s; %.3g ms per sample encrypted, %.3g ms in plaintext; total %s\n",
			secs(t.Keygen), secs(t.Encrypt), secs(t.Evaluate), secs(t.Decrypt), t.PerSample, t.Plaintext, secs(t.Total))
		fmt.Fprintf(w, "  sizes: evaluation keys %s, uploads %s, results %s\n", fmtBytes(s.EvalKeyByte), fmtBytes(s.UploadBytes), fmtBytes(s.ResultBytes))
	} else {
		fmt.Fprintf(w, "  time: %.3g ms per sample in plaintext; total %s\n", t.Plaintext, secs(t.Total))
	}
}

// writeClassification reports a classifier's accuracy and agreement.
func writeClassification(w io.Writer, r *evalReport) {
	p, k := r.Plan, r.correct
	fmt.Fprintf(w, "  accuracy: plaintext %s (%d)", pct(r.Accuracy.Plaintext), k.plain)
	if a := r.Accuracy.Approximated; a != nil {
		fmt.Fprintf(w, ", approximated activations %s (%d)", pct(*a), k.approx)
	}
	if a := r.Accuracy.Encrypted; a != nil {
		fmt.Fprintf(w, ", encrypted %s (%d)", pct(*a), k.enc)
	}
	fmt.Fprintln(w)
	c := r.Plaintext
	if c == nil {
		return
	}
	fmt.Fprintf(w, "  encrypted vs plaintext: predicted class agrees on %d/%d (%s), max abs error %.2e\n",
		c.ArgmaxAgree, r.Samples, pct(c.ArgmaxAgreement), c.MaxAbsError)
	if a := r.Approximated; a != nil {
		fmt.Fprintf(w, "  encrypted vs approximated plaintext: agrees on %d/%d (%s), max abs error %.2e (plan's output error %.2e)\n",
			a.ArgmaxAgree, r.Samples, pct(a.ArgmaxAgreement), a.MaxAbsError, p.Precision.OutputError)
	} else {
		writeExact(w, r)
	}
}

// writeRegression reports a regression model's errors.
func writeRegression(w io.Writer, r *evalReport) {
	p, l := r.Plan, r.Labels
	fmt.Fprintf(w, "  vs labels (regression): plaintext RMSE %.3e, max abs error %.3e", l.Plaintext.RMSE, l.Plaintext.MaxAbsError)
	if e := l.Approximated; e != nil {
		fmt.Fprintf(w, "; approximated activations RMSE %.3e, max %.3e", e.RMSE, e.MaxAbsError)
	}
	if e := l.Encrypted; e != nil {
		fmt.Fprintf(w, "; encrypted RMSE %.3e, max %.3e", e.RMSE, e.MaxAbsError)
	}
	fmt.Fprintln(w)
	c := r.Plaintext
	if c == nil {
		return
	}
	fmt.Fprintf(w, "  encrypted vs plaintext: RMSE %.2e, max abs error %.2e\n", c.RMSE, c.MaxAbsError)
	if a := r.Approximated; a != nil {
		fmt.Fprintf(w, "  encrypted vs approximated plaintext: RMSE %.2e, max abs error %.2e (plan's output error %.2e)\n",
			a.RMSE, a.MaxAbsError, p.Precision.OutputError)
	} else {
		writeExact(w, r)
	}
}

// writeExact says how the error of a model whose every operation is exact
// compares with the plan's.
func writeExact(w io.Writer, r *evalReport) {
	within := "within"
	if !r.Plaintext.WithinPrecision {
		within = "ABOVE"
	}
	fmt.Fprintf(w, "  every operation is exact under encryption: the error is %s the plan's output error %.2e\n", within, r.Plan.Precision.OutputError)
}

// pct formats a fraction as a percentage with two decimals.
func pct(f float64) string { return fmt.Sprintf("%.2f%%", 100*f) }

// secs formats milliseconds as seconds or milliseconds.
func secs(ms float64) string {
	if ms >= 1000 {
		return fmt.Sprintf("%.1f s", ms/1000)
	}
	return fmt.Sprintf("%.0f ms", ms)
}
