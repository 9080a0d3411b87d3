package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/bundled"
	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/local"
	"github.com/fheserve/fheserve/nn"
	"github.com/fheserve/fheserve/nn/onnx"
	"github.com/spf13/cobra"
)

// defaultDemoModel is the bundled workload the demo runs unless told
// otherwise: small enough to finish in seconds.
const defaultDemoModel = "mlp"

type demoOptions struct {
	Out io.Writer
	Ctx context.Context

	Model   string
	Samples int
	Workers int
}

func newDemoCmd(runF func(*demoOptions) error) *cobra.Command {
	opts := &demoOptions{}
	cmd := &cobra.Command{
		Use:   "demo [flags]",
		Short: "Run an encrypted prediction on a bundled model and show what each party sees",
		Long: fmt.Sprintf(`Run a bundled model on a few of its sample inputs under encryption and print
what each party sees: the client (its keys and uploads), the server (the
plan it compiled, sizes and timings, never a value) and the user (the
decrypted prediction next to the plaintext model's).

The client and the server run in this process and exchange keys and
ciphertexts in the same wire format they use over a network.
Bundled models: %s.`, strings.Join(bundled.Names(), ", ")),
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Out, opts.Ctx = cmd.OutOrStdout(), cmd.Context()
			if err := opts.validate(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return demoRun(opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Model, "model", defaultDemoModel, "bundled `name` of the model to run")
	f.IntVar(&opts.Samples, "samples", 3, "number of bundled sample inputs to predict")
	f.IntVar(&opts.Workers, "workers", 0, "goroutines the server may use (default: one per core)")
	return cmd
}

func (o *demoOptions) validate() error {
	switch {
	case !slices.Contains(bundled.Names(), o.Model):
		return fheserve.Errorf(fheserve.ENOTFOUND, "no bundled model %q (have %s)", o.Model, strings.Join(bundled.Names(), ", "))
	case o.Samples < 1:
		return fheserve.Errorf(fheserve.EINVALID, "--samples must be at least 1")
	case o.Workers < 0:
		return fheserve.Errorf(fheserve.EINVALID, "--workers must not be negative")
	}
	return nil
}

// workload is a bundled model with its sample inputs.
type workload struct {
	graph  *nn.Graph
	x      []float64 // the samples the demo predicts
	n      int
	labels []float64 // true class of each sample; nil when unknown
	calib  []float64
}

func loadWorkload(name string, samples int) (*workload, error) {
	data, err := bundled.Model(name)
	if err != nil {
		return nil, err
	}
	g, err := onnx.Import(data, onnx.Options{})
	if err != nil {
		return nil, fmt.Errorf("bundled model %q: %w", name, err)
	}
	g.Name = name
	w := &workload{graph: g}
	inputs, err := bundled.Inputs(name)
	if err != nil {
		return nil, err
	}
	total, err := batchOf(inputs.Shape, g.Input)
	if err != nil {
		return nil, fmt.Errorf("bundled inputs of %q: %w", name, err)
	}
	w.n = min(samples, total)
	w.x = inputs.Data[:w.n*g.Input.Size()]
	if labels, err := bundled.Labels(name); err == nil && len(labels.Data) >= w.n {
		w.labels = labels.Data[:w.n]
	}
	calib, err := bundled.Calibration(name)
	if err != nil {
		return nil, err
	}
	w.calib = calib.Data
	return w, nil
}

func demoRun(opts *demoOptions) error {
	w, err := loadWorkload(opts.Model, opts.Samples)
	if err != nil {
		return err
	}
	r, err := local.New(w.graph, compiler.Options{Calibration: w.calib}, opts.Workers)
	if err != nil {
		return err
	}
	y, err := r.Predict(opts.Ctx, w.x, w.n)
	if err != nil {
		return err
	}
	want, err := w.graph.EvalBatch(w.x, w.n, nil)
	if err != nil {
		return err
	}
	out := opts.Out
	fmt.Fprintf(out, "fheserve demo: encrypted prediction with the bundled model %q on %d sample%s\n", opts.Model, w.n, plural(w.n))
	fmt.Fprintf(out, "(client and server run in this process and exchange keys and ciphertexts in the wire format)\n\n")
	showClient(out, r, w)
	showServer(out, r)
	showUser(out, r, w, opts.Model, y, want)
	return nil
}

// showClient prints what the user's device did and sent.
func showClient(out io.Writer, r *local.Runner, w *workload) {
	s, p := &r.Stats, r.Plan
	fmt.Fprintf(out, "CLIENT (the user's device: the only holder of the secret key)\n")
	fmt.Fprintf(out, "  generated keys in %.0f ms\n", millis(s.Keygen))
	fmt.Fprintf(out, "    secret key        kept on the device, never sent\n")
	fmt.Fprintf(out, "    public key        %s\n", fmtBytes(s.PublicKey))
	keys := fmt.Sprintf("%d rotation keys", len(p.Rotations))
	if p.Relin {
		keys = "a relinearization key and " + keys
	}
	fmt.Fprintf(out, "    evaluation keys   %s, sent to the server once (%s)\n", fmtBytes(s.EvalKeyByte), keys)
	uploads := fmt.Sprintf("1 upload of %s", fmtBytes(s.UploadBytes))
	if s.Calls > 1 {
		uploads = fmt.Sprintf("%d uploads of %s each", s.Calls, fmtBytes(s.UploadBytes/s.Calls))
	}
	fmt.Fprintf(out, "  encrypted %d sample%s of %d values in %.0f ms: %s\n\n",
		w.n, plural(w.n), p.InputSize(), millis(s.Encrypt), uploads)
}

// showServer prints what the server knew and did: the plan, sizes and
// timings. It never saw a value in the clear.
func showServer(out io.Writer, r *local.Runner) {
	s, p := &r.Stats, r.Plan
	fmt.Fprintf(out, "SERVER (sees the model, evaluation keys and ciphertexts; no value in the clear)\n")
	fmt.Fprintf(out, "  compiled %q in %.0f ms: %s packing, N = 2^%d, depth %d, log QP %.1f (128-bit bound %d)\n",
		p.Model, millis(s.Compile), p.Packing, p.Params.LogN, p.Depth, p.LogQP, p.SecurityBound)
	steps := make([]string, len(p.Steps))
	for i, st := range p.Steps {
		steps[i] = fmt.Sprintf("%s %s (%d -> %d)", st.Kind, st.Name, st.InLength, st.OutLength)
	}
	fmt.Fprintf(out, "  steps: %s\n", strings.Join(steps, ", "))
	fmt.Fprintf(out, "  received %s of evaluation keys and %d encrypted input%s (%s)\n",
		fmtBytes(s.EvalKeyByte), s.Calls, plural(s.Calls), fmtBytes(s.UploadBytes))
	fmt.Fprintf(out, "  evaluated %d call%s in %.0f ms (%.0f ms per call) and returned %s of sanitized results\n\n",
		s.Calls, plural(s.Calls), millis(s.Evaluate), millis(s.Evaluate)/float64(max(s.Calls, 1)), fmtBytes(s.ResultBytes))
}

// showUser prints the decrypted predictions next to the plaintext model's.
func showUser(out io.Writer, r *local.Runner, w *workload, name string, got, want []float64) {
	p := r.Plan
	size := p.OutputSize()
	fmt.Fprintf(out, "USER (decrypts the results)\n")
	fmt.Fprintf(out, "  decrypted in %.0f ms; the plan expects errors below %.1e per value\n",
		millis(r.Stats.Decrypt), p.Precision.OutputError)
	agree, correct := 0, 0
	for i := 0; i < w.n; i++ {
		g, t := got[i*size:(i+1)*size], want[i*size:(i+1)*size]
		cg, ct := classOf(g, p.Head), classOf(t, p.Head)
		fmt.Fprintf(out, "  sample %d", i)
		if w.labels != nil {
			fmt.Fprintf(out, " (true class %s)", className(name, int(w.labels[i])))
		}
		fmt.Fprintf(out, "\n    encrypted  %s\n    plaintext  %s\n", fmtVector(g), fmtVector(t))
		var diff float64
		for j := range g {
			diff = max(diff, abs(g[j]-t[j]))
		}
		fmt.Fprintf(out, "    predicted class %s (plaintext: %s), max |difference| %.1e\n",
			className(name, cg), className(name, ct), diff)
		if cg == ct {
			agree++
		}
		if w.labels != nil && cg == int(w.labels[i]) {
			correct++
		}
	}
	fmt.Fprintf(out, "  %d/%d encrypted predictions match the plaintext model", agree, w.n)
	if w.labels != nil {
		fmt.Fprintf(out, "; %d/%d match the true class", correct, w.n)
	}
	fmt.Fprintln(out)
}

// classNames names the classes of the bundled workloads that have names
// (testdata/gen/make_bundled.py says where each comes from).
var classNames = map[string][]string{
	"mlp":    fashionMNIST,
	"cnn":    fashionMNIST,
	"logreg": {"malignant", "benign"}, // scikit-learn's breast cancer targets
}

var fashionMNIST = []string{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
	"Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"}

func className(model string, c int) string {
	if names := classNames[model]; c >= 0 && c < len(names) {
		return fmt.Sprintf("%d %s", c, names[c])
	}
	return fmt.Sprint(c)
}

// fmtVector formats up to 10 values of v.
func fmtVector(v []float64) string {
	const show = 10
	parts := make([]string, 0, show+1)
	for i, x := range v {
		if i == show {
			parts = append(parts, fmt.Sprintf("... (%d values)", len(v)))
			break
		}
		parts = append(parts, fmt.Sprintf("%7.3f", x))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
