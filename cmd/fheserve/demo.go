package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/app"
	"github.com/fheserve/fheserve/audit"
	"github.com/fheserve/fheserve/bundled"
	"github.com/fheserve/fheserve/nn"
	"github.com/fheserve/fheserve/node"
	"github.com/fheserve/fheserve/npy"
	"github.com/fheserve/fheserve/plan"
	"github.com/fheserve/fheserve/sdk"
	"github.com/spf13/cobra"
)

// defaultDemoModel is the bundled workload the demo runs unless told
// otherwise: small enough to finish in seconds.
const defaultDemoModel = "mlp"

type demoOptions struct {
	IO  *IOStreams
	Ctx context.Context

	Model   string
	Samples int
	Workers int
}

func newDemoCmd(f *Factory, runF func(*demoOptions) error) *cobra.Command {
	opts := &demoOptions{IO: f.IO}
	cmd := leaf(&cobra.Command{
		Use:   "demo [flags]",
		Short: "Run the service on a temporary data directory and show what each party sees",
		Long: fmt.Sprintf(`Start a server on a temporary data directory and play every party through
its real HTTP API: an administrator approves an owner and a user; the owner
deploys a bundled model; the user generates keys, uploads the public part,
encrypts a few of the model's sample inputs, submits them, follows the jobs,
downloads the encrypted results and decrypts them. Print what each party
saw (the server: sizes, timings and its audit trail, never a value; the
user: the decrypted prediction next to the plaintext model's), then stop
the server and delete its data.
Bundled models: %s.`, strings.Join(bundled.Names(), ", ")),
	}, opts, &opts.Ctx, runF, demoRun, validated(opts.validate))
	fs := cmd.Flags()
	fs.StringVar(&opts.Model, "model", defaultDemoModel, "bundled `name` of the model to run")
	fs.IntVar(&opts.Samples, "samples", 3, "number of bundled sample inputs to predict")
	fs.IntVar(&opts.Workers, "workers", 0, "goroutines one evaluation may use (default: one per core)")
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
	g, err := bundled.Graph(name)
	if err != nil {
		return nil, err
	}
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
	dir, err := os.MkdirTemp("", "fheserve-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	d := &demo{opts: opts, out: opts.IO.Out, w: w, ctx: opts.Ctx}
	err = d.run(dir)
	if d.daemon != nil {
		d.daemon.Close()
		fmt.Fprintf(d.out, "\nstopped the server and deleted its data directory\n")
	}
	return err
}

// demo runs the service on a temporary data directory and plays the
// administrator, an owner and a user through the real HTTP API; each step
// prints what its party saw.
type demo struct {
	opts   *demoOptions
	out    io.Writer
	w      *workload
	ctx    context.Context
	daemon *node.Node

	url                string
	admin, owner, user *sdk.Client
	model              *fheserve.Model
	keys               *sdk.Keys
	jobs               []*fheserve.Job
	got                []float64 // the decrypted predictions
}

const demoPassword = "demo-password-not-secret"

func (d *demo) run(dir string) error {
	if err := d.start(dir); err != nil {
		return err
	}
	for _, step := range []func() error{d.accounts, d.deploy, d.userKeys, d.userPredict, d.serverView} {
		if err := step(); err != nil {
			return err
		}
	}
	want, err := d.w.graph.EvalBatch(d.w.x, d.w.n, nil)
	if err != nil {
		return err
	}
	showPredictions(d.out, d.keys.Plan, d.w, classesOf(d.opts.Model, d.model), d.got, want)
	return nil
}

// start starts the server on dir.
func (d *demo) start(dir string) error {
	var err error
	d.daemon, err = node.Start(d.ctx, dir, "127.0.0.1:0", app.Config{EvalThreads: d.opts.Workers})
	if err != nil {
		return err
	}
	d.url = d.daemon.URL()
	fmt.Fprintf(d.out, "fheserve demo: an encrypted prediction service on this machine, the bundled model %q, %d sample%s\n", d.opts.Model, d.w.n, plural(d.w.n))
	fmt.Fprintf(d.out, "started a server at %s on a temporary data directory; every step below goes through its HTTP API\n\n", d.url)
	return nil
}

// accounts: the administrator is created offline, like 'fheserve admin
// init', and approves the owner and the user.
func (d *demo) accounts() error {
	ctx, out := d.ctx, d.out
	if _, err := d.daemon.App.InitAdmin(ctx, "admin", demoPassword); err != nil {
		return err
	}
	d.admin, d.owner, d.user = sdk.New(d.url), sdk.New(d.url), sdk.New(d.url)
	admin := d.admin
	if _, err := d.owner.Register(ctx, "owner", demoPassword, fheserve.RoleOwner); err != nil {
		return err
	}
	if _, err := d.user.Register(ctx, "user", demoPassword, fheserve.RoleUser); err != nil {
		return err
	}
	_, pendingErr := d.user.Login(ctx, "user", demoPassword)
	if _, err := admin.Login(ctx, "admin", demoPassword); err != nil {
		return err
	}
	pending, err := admin.Pending(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "ADMIN (the service provider)\n")
	fmt.Fprintf(out, "  created the administrator offline ('fheserve admin init')\n")
	for _, a := range pending {
		if _, err := admin.Approve(ctx, a.Username); err != nil {
			return err
		}
		fmt.Fprintf(out, "  approved the registration of %q as a model %s\n", a.Username, a.Role)
	}
	fmt.Fprintf(out, "  (before approval, the user's login was refused: %s)\n\n", fheserve.ErrorMessage(pendingErr))
	return nil
}

// deploy: the owner deploys the bundled model with its calibration data.
func (d *demo) deploy() error {
	ctx, out, w := d.ctx, d.out, d.w
	if _, err := d.owner.Login(ctx, "owner", demoPassword); err != nil {
		return err
	}
	onnxData, err := bundled.Model(d.opts.Model)
	if err != nil {
		return err
	}
	var calib bytes.Buffer
	if err := npy.Write(&calib, &npy.Array{Shape: []int{len(w.calib) / w.graph.Input.Size(), w.graph.Input.Size()}, Data: w.calib}); err != nil {
		return err
	}
	t0 := time.Now()
	m, err := d.owner.Deploy(ctx, &fheserve.DeployRequest{Name: d.opts.Model, ONNX: onnxData, Calibration: calib.Bytes(), Allow: []string{"user"}})
	if err != nil {
		return err
	}
	d.model = m
	fmt.Fprintf(out, "OWNER (deploys the model; sees usage, never inputs or predictions)\n")
	fmt.Fprintf(out, "  deployed %q (%s of ONNX, %s of calibration data) in %.0f ms: model %s\n",
		m.Name, fmtBytes(len(onnxData)), fmtBytes(calib.Len()), millis(time.Since(t0)), m.ID)
	fmt.Fprintf(out, "  the server compiled it to a %s plan: N = 2^%d, %d rotation keys, precision %.1e; weights stored encrypted (AES-256-GCM)\n",
		m.Packing, m.LogN, m.Rotations, m.OutputError)
	if len(m.Labels) > 0 {
		fmt.Fprintf(out, "  output labels, from the ONNX file's metadata: %s\n", strings.Join(m.Labels, ", "))
	}
	fmt.Fprintf(out, "  access: only %q\n\n", "user")
	return nil
}

// userKeys: the user makes keys on the device and uploads the public part.
func (d *demo) userKeys() error {
	ctx, out, m := d.ctx, d.out, d.model
	if _, err := d.user.Login(ctx, "user", demoPassword); err != nil {
		return err
	}
	t0 := time.Now()
	keys, err := d.user.GenerateKeys(ctx, m.ID)
	if err != nil {
		return err
	}
	keygen := time.Since(t0)
	d.keys = keys
	t0 = time.Now()
	ks, err := d.user.UploadKeys(ctx, keys, "")
	if err != nil {
		return err
	}
	upload := time.Since(t0)
	fmt.Fprintf(out, "USER'S DEVICE (the only holder of the secret key)\n")
	fmt.Fprintf(out, "  fetched the public plan of %s (fingerprint %s...) and generated keys in %.0f ms\n", m.ID, keys.Plan.Fingerprint[:16], millis(keygen))
	fmt.Fprintf(out, "    secret key                  kept on the device, never sent\n")
	fmt.Fprintf(out, "    public and evaluation keys  %s, uploaded in %.0f ms as key set %s\n", fmtBytes(int(ks.Size)), millis(upload), ks.ID)
	return nil
}

// userPredict: the user encrypts each sample, submits it as a job,
// follows the jobs and decrypts their results.
func (d *demo) userPredict() error {
	ctx, out, w, keys := d.ctx, d.out, d.w, d.keys
	in := keys.Plan.InputSize()
	var encrypt time.Duration
	var sent int
	for i := 0; i < w.n; i++ {
		t0 := time.Now()
		ct, err := keys.Encrypt(w.x[i*in:(i+1)*in], 1)
		if err != nil {
			return err
		}
		encrypt += time.Since(t0)
		sent += len(ct)
		j, err := d.user.Submit(ctx, keys, ct, 1)
		if err != nil {
			return err
		}
		d.jobs = append(d.jobs, j)
	}
	fmt.Fprintf(out, "  encrypted %d sample%s of %d values in %.0f ms and submitted %d job%s (%s of ciphertexts)\n",
		w.n, plural(w.n), in, millis(encrypt), len(d.jobs), plural(len(d.jobs)), fmtBytes(sent))
	var decrypt time.Duration
	for i, j := range d.jobs {
		done, err := d.user.Wait(ctx, j.ID, nil)
		if err != nil {
			return err
		}
		d.jobs[i] = done
		t0 := time.Now()
		y, err := d.user.Fetch(ctx, keys, j.ID, 1)
		if err != nil {
			return err
		}
		decrypt += time.Since(t0)
		d.got = append(d.got, y...)
	}
	fmt.Fprintf(out, "  followed each job's progress, downloaded the encrypted results and decrypted them in %.0f ms\n\n", millis(decrypt))
	return nil
}

// serverView prints what the server recorded: sizes, timings and an
// audit trail.
func (d *demo) serverView() error {
	ctx, out := d.ctx, d.out
	fmt.Fprintf(out, "SERVER (sees the model, evaluation keys and ciphertexts; no value in the clear)\n")
	for _, j := range d.jobs {
		fmt.Fprintf(out, "  job %s: %s in, waited %.0f ms, evaluated %d steps in %.0f ms, %s of sanitized result out\n",
			j.ID, fmtBytes(int(j.InputBytes)), millis(j.StartedAt.Sub(j.CreatedAt)), j.Total,
			millis(j.FinishedAt.Sub(*j.StartedAt)), fmtBytes(int(j.ResultBytes)))
	}
	var records []*audit.Record
	err := (&audit.Client{URL: d.url + audit.PathPrefix, Token: d.admin.Token()}).EachRecord(ctx, audit.Query{Limit: audit.MaxLimit},
		func(it *audit.Item) error {
			r, err := audit.DecodeRecord(it.Record)
			records = append(records, r)
			return err
		})
	if err != nil {
		return err
	}
	records = records[max(0, len(records)-12):]
	fmt.Fprintf(out, "  audit trail (newest %d records of the signed log the administrator sees):\n", len(records))
	for _, r := range records {
		actor := r.Actor
		if actor == "" {
			actor = "(server)"
		}
		objs := make([]string, len(r.Objects))
		for i, o := range r.Objects {
			objs[i] = o.Kind + ":" + o.ID
		}
		fmt.Fprintf(out, "    %-8s %-16s %s\n", cell(actor), cell(r.Action), cell(strings.Join(objs, " ")))
	}
	u, err := d.owner.Usage(ctx, d.model.ID)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  the owner's usage report: %d requests by %d user, %d failed, latency p50 %.0f ms\n\n",
		u.Requests, len(u.ByUser), u.Failures, u.Latency.P50)
	return nil
}

// showPredictions prints the decrypted predictions next to the plaintext
// model's.
func showPredictions(out io.Writer, p *plan.Plan, w *workload, names []string, got, want []float64) {
	size := p.OutputSize()
	fmt.Fprintf(out, "USER (reads the decrypted predictions; the plan expects errors below %.1e per value)\n", p.Precision.OutputError)
	agree, correct := 0, 0
	for i := 0; i < w.n; i++ {
		g, t := got[i*size:(i+1)*size], want[i*size:(i+1)*size]
		cg, ct := classOf(g, p.Head), classOf(t, p.Head)
		fmt.Fprintf(out, "  sample %d", i)
		if w.labels != nil {
			fmt.Fprintf(out, " (true class %s)", className(names, int(w.labels[i])))
		}
		fmt.Fprintf(out, "\n    encrypted  %s\n    plaintext  %s\n", fmtVector(g), fmtVector(t))
		var diff float64
		for j := range g {
			diff = max(diff, abs(g[j]-t[j]))
		}
		fmt.Fprintf(out, "    predicted class %s (plaintext: %s), max |difference| %.1e\n",
			className(names, cg), className(names, ct), diff)
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

// classesOf names the classes of a deployed bundled workload: the
// model's labels (the Fashion-MNIST models carry theirs in their ONNX
// metadata), or for logreg, whose one output is P(benign), scikit-learn's
// breast cancer targets.
func classesOf(name string, m *fheserve.Model) []string {
	if len(m.Labels) > 0 {
		return m.Labels
	}
	if name == "logreg" {
		return []string{"malignant", "benign"}
	}
	return nil
}

func className(names []string, c int) string {
	if c >= 0 && c < len(names) {
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
