package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/audit"
	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/nn/onnx"
	"github.com/fheserve/fheserve/plan"
	"github.com/fheserve/fheserve/sdk"
	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"
)

// sealedFile is what 'model deploy --sealed' keeps on the owner's machine
// for 'model seal': the compiled plan and the program with its weights.
// It never goes to the server.
type sealedFile struct {
	ModelID string        `json:"model_id"`
	Plan    *plan.Plan    `json:"plan"`
	Program *plan.Program `json:"program"`
}

// defaultSealedFile is where deploy --sealed keeps the weights by default.
func defaultSealedFile(name string) string { return name + ".sealed.json" }

// sealedLabels are the labels of a sealed deployment of outputs values:
// --labels's, or else the ONNX file's metadata labels, checked here as
// the server would.
func sealedLabels(opts *modelDeployOptions, outputs int) ([]string, error) {
	var labels []string
	var err error
	from := "--labels"
	if opts.Labels != "" {
		labels, err = readLabelsFile(opts.Labels)
	} else {
		var data []byte
		if data, err = readInputFile(opts.File, "model"); err == nil {
			labels, err = onnx.Labels(data)
		}
		from = "the ONNX file's metadata labels"
	}
	if err != nil || labels == nil {
		return nil, err
	}
	if err := fheserve.ValidLabels(labels, outputs); err != nil {
		return nil, fheserve.Errorf(fheserve.EINVALID, "%s: %s", from, fheserve.ErrorMessage(err))
	}
	return labels, nil
}

// deploySealed compiles the model here, deploys the plan and the program
// without weights, and keeps the weights in opts.Weights for sealing.
func deploySealed(opts *modelDeployOptions, c *sdk.Client) (*fheserve.Model, error) {
	g, err := loadModel(opts.File)
	if err != nil {
		return nil, err
	}
	g.Name = opts.Name
	ef := engineFlags{Calibration: opts.Calibration, CompileSettings: opts.CompileSettings}
	copts, err := ef.compilerOptions(g, opts.Packing)
	if err != nil {
		return nil, err
	}
	copts.Sealed = true
	res, err := compiler.Compile(g, copts)
	if err != nil {
		return nil, err
	}
	labels, err := sealedLabels(opts, res.Plan.OutputSize())
	if err != nil {
		return nil, err
	}
	path := opts.Weights
	if path == "" {
		path = defaultSealedFile(opts.Name)
	}
	// The weights stay here: written before the deployment so that a
	// deployed model can always be sealed.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fheserve.Errorf(fheserve.EINVALID, "cannot write the sealed model's weights to %q (choose another --weights file): %v", path, err)
	}
	m, err := c.DeploySealed(opts.Ctx, fheserve.SealedDeployRequest{Name: opts.Name, Allow: opts.Allow, MaxSealedKeySets: opts.MaxSealed, Labels: labels}, res.Plan, res.Program)
	if err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	err = json.NewEncoder(f).Encode(&sealedFile{ModelID: m.ID, Plan: res.Plan, Program: res.Program})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("model %s is deployed but its weights could not be kept in %q: %w", m.ID, path, err)
	}
	fmt.Fprintf(opts.IO.ErrOut, "sealed: the server holds no weight of %s; they stay in %s (keep it private), "+
		"%s per key set once sealed; seal them for your users' keys with 'fheserve model seal %s --weights %s [--watch]'\n",
		m.ID, path, fmtBytes(res.Plan.Sizes.SealedWeights), m.ID, path)
	return m, nil
}

type modelSealOptions struct {
	IO  *IOStreams
	Ctx context.Context

	ID       string
	Weights  string
	Watch    bool
	Interval time.Duration
	remote
}

func newModelSealCmd(f *Factory, runF func(*modelSealOptions) error) *cobra.Command {
	opts := &modelSealOptions{IO: f.IO, remote: newRemote(f)}
	cmd := leaf(&cobra.Command{
		Use:   "seal ID --weights F [--watch]",
		Short: "Seal a sealed model's weights for the key sets waiting for them",
		Long: `Encrypt a sealed model's weights, kept on this machine by 'model deploy
--sealed', under the public key of every user's key set that waits for them,
and upload them: the server never sees a weight. The size of the sealed
weights per key set is shown first. With --watch, keep doing so as users
create keys, until interrupted.

A key set is sealed only for the public key that the server's signed audit
log records as uploaded by its user, in a checkpoint signed by the audit key
pinned for the server ('fheserve audit verify'; pinned here on first use
otherwise) and consistent with the checkpoint seen last: a server that hands
a key of its own under a user's name gets nothing sealed.`,
		Args: exactlyOne("model ID"),
	}, opts, &opts.Ctx, runF, withSession(&opts.remote, modelSealRun), arg(&opts.ID), required("weights"))
	fs := cmd.Flags()
	fs.StringVar(&opts.Weights, "weights", "", "the `file` 'model deploy --sealed' kept the weights in (required)")
	fs.BoolVar(&opts.Watch, "watch", false, "keep sealing for new key sets until interrupted")
	fs.DurationVar(&opts.Interval, "interval", 5*time.Second, "with --watch, how often to look for new key sets")
	opts.register(fs)
	return cmd
}

func modelSealRun(opts *modelSealOptions, c *sdk.Client) error {
	sf, err := readSealedFile(opts.Weights)
	if err != nil {
		return err
	}
	m, err := c.API.Model(opts.Ctx, opts.ID)
	if err != nil {
		return err
	}
	if m.PlanFingerprint != sf.Plan.Fingerprint {
		return fheserve.Errorf(fheserve.EINVALID, "%s holds the weights of another model (plan %s), not of %s (plan %s)", opts.Weights, sf.Plan.Fingerprint, m.ID, m.PlanFingerprint)
	}
	out := opts.IO.ErrOut
	audited, err := opts.sealAudit(c)
	if err != nil {
		return err
	}
	total, shown := 0, false
	for {
		tasks, err := c.SealTasks(opts.Ctx, m.ID)
		if err != nil {
			return err
		}
		if !shown || len(tasks.Tasks) > 0 {
			printSealTasks(out, m.ID, tasks)
			shown = true
		}
		if len(tasks.Tasks) > 0 {
			audited.opts.Progress = sealProgress(out)
			n, err := c.SealWith(opts.Ctx, m.ID, sf.Plan, sf.Program, &audited.opts)
			if werr := audited.keep(); werr != nil {
				return werr
			}
			total += n
			if err != nil && !opts.Watch {
				return err
			}
		}
		if !opts.Watch {
			break
		}
		select {
		case <-opts.Ctx.Done():
			fmt.Fprintf(out, "sealed %d key set%s\n", total, plural(total))
			return nil
		case <-time.After(opts.Interval):
		}
	}
	fmt.Fprintf(out, "sealed %d key set%s\n", total, plural(total))
	return nil
}

// printSealTasks writes one line on the key sets of model id waiting to
// be sealed: how many wait, how many are sealed, the bound on more, and
// the size of the sealed weights per key set and for those waiting.
func printSealTasks(out io.Writer, id string, tasks *fheserve.SealTasks) {
	bound := "no bound"
	if tasks.Remaining >= 0 {
		bound = fmt.Sprintf("%d more allowed", tasks.Remaining)
	}
	fmt.Fprintf(out, "%s: %d key set%s waiting, %d sealed (%s); sealed weights take %s per key set, %s for these\n",
		id, len(tasks.Tasks), plural(len(tasks.Tasks)), tasks.Sealed, bound, fmtBytes(int(tasks.SealedBytes)),
		fmtBytes(int(tasks.SealedBytes)*len(tasks.Tasks)))
}

// sealProgress returns a progress callback that writes one line to out
// per key set: sealed, with its size and time, or not sealed, with why.
func sealProgress(out io.Writer) func(sdk.SealProgress) {
	return func(pr sdk.SealProgress) {
		if pr.Err != nil {
			fmt.Fprintf(out, "  %s (%s): not sealed: %s\n", pr.Task.KeySetID, pr.Task.User, fheserve.ErrorMessage(pr.Err))
			return
		}
		fmt.Fprintf(out, "  %s (%s): sealed, %s in %s\n", pr.Task.KeySetID, pr.Task.User, fmtBytes(int(pr.KeySet.SealedBytes)), pr.Duration.Round(time.Millisecond))
	}
}

func readSealedFile(path string) (*sealedFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fheserve.Errorf(fheserve.ENOTFOUND, "cannot read the sealed weights file %q: %v", path, err)
	}
	var sf sealedFile
	if err := json.Unmarshal(data, &sf); err != nil || sf.Plan == nil || sf.Program == nil {
		return nil, fheserve.Errorf(fheserve.EINVALID, "%q is not a sealed model's weights file from 'model deploy --sealed'", path)
	}
	return &sf, nil
}

// keyStatus is a key set's status for 'keys list': a key set of a sealed
// model says whether it waits for its owner.
func keyStatus(k *fheserve.KeySet) string {
	switch k.Seal {
	case fheserve.SealWaiting:
		return k.Status + ", " + fheserve.WaitingForSealMessage
	case fheserve.SealDone:
		return k.Status + ", sealed"
	}
	return k.Status
}

// waitingForSeal reports, for a sealed model, whether the key set waits
// for its owner's sealed weights, and says so: a status, not an error.
func waitingForSeal(opts *predictOptions, c *sdk.Client, m *fheserve.Model, keySetID string) (bool, error) {
	if !m.Sealed {
		return false, nil
	}
	ks, err := c.API.KeySet(opts.Ctx, keySetID)
	if err != nil {
		return false, err
	}
	if ks.Seal != fheserve.SealWaiting {
		return false, nil
	}
	return true, sealStatus(opts, m, keySetID)
}

// sealStatus prints that a prediction waits for the owner's sealing.
func sealStatus(opts *predictOptions, m *fheserve.Model, keySetID string) error {
	if opts.JSON {
		return printJSON(opts.IO.Out, map[string]string{"model": m.ID, "keyset": keySetID, "status": fheserve.SealWaiting, "message": fheserve.WaitingForSealMessage})
	}
	fmt.Fprintf(opts.IO.ErrOut, "fheserve: %s (model %s, key set %s); nothing was sent: run predict again once %s has sealed it\n",
		fheserve.WaitingForSealMessage, m.ID, keySetID, m.Owner)
	return nil
}

// sealAuditState is the audit log's pinned key and the checkpoint last
// verified, which model seal checks every key set against.
type sealAuditState struct {
	opts     sdk.SealOptions
	seenFile string
	kept     []byte
}

// sealAudit loads the audit key pinned for the server ('audit verify'),
// pinning the server's on first use with a warning, and the checkpoint
// seen last.
func (o *modelSealOptions) sealAudit(c *sdk.Client) (*sealAuditState, error) {
	dir, err := o.auditStateDir(c.API.URL)
	if err != nil {
		return nil, err
	}
	keyFile := filepath.Join(dir, "key")
	st := &sealAuditState{seenFile: filepath.Join(dir, "checkpoint")}
	pinned, err := readState(keyFile)
	if err != nil {
		return nil, err
	}
	vkey := strings.TrimSpace(string(pinned))
	if vkey == "" {
		ac := &audit.Client{URL: c.API.URL + audit.PathPrefix, Token: c.Token(), HTTPClient: c.API.HTTP}
		if vkey, err = ac.VerifierKey(o.Ctx); err != nil {
			return nil, err
		}
		if _, err := note.NewVerifier(vkey); err != nil {
			return nil, fheserve.Errorf(fheserve.EINVALID, "the server's audit key %q is not a verifier key", vkey)
		}
		if err := writePrivate(keyFile, []byte(vkey+"\n")); err != nil {
			return nil, err
		}
		fmt.Fprintf(o.IO.ErrOut, "fheserve: warning: pinning the audit key %s on first use: compare it with the key the operator publishes\n", vkey)
	}
	if st.kept, err = readState(st.seenFile); err != nil {
		return nil, err
	}
	st.opts = sdk.SealOptions{AuditKey: vkey, Seen: st.kept}
	return st, nil
}

// keep stores the checkpoint verified, if it is new.
func (st *sealAuditState) keep() error {
	if st.opts.Seen == nil || string(st.opts.Seen) == string(st.kept) {
		return nil
	}
	if err := writePrivate(st.seenFile, st.opts.Seen); err != nil {
		return err
	}
	st.kept = st.opts.Seen
	return nil
}

// foreignKeys returns the key sets of sealed models that the signed audit
// log records under c's account name and that were not made here (no local key
// record holds their public key), once an audit key is pinned for the
// server ('fheserve audit verify'; nothing pinned: none); the checkpoint
// verified is kept. A server may upload a key of its own under a user's
// name to read the weights an owner seals for it: 'keys list' warns of
// each such key set and 'audit verify' fails naming them.
func (r *remote) foreignKeys(ctx context.Context, c *sdk.Client) ([]sdk.LoggedKey, error) {
	dir, err := r.auditStateDir(c.API.URL)
	if err != nil {
		return nil, err
	}
	keyFile, seenFile := filepath.Join(dir, "key"), filepath.Join(dir, "checkpoint")
	pinned, err := readState(keyFile)
	if err != nil || len(pinned) == 0 {
		return nil, err
	}
	seen, err := readState(seenFile)
	if err != nil {
		return nil, err
	}
	me, err := c.Me(ctx)
	if err != nil {
		return nil, err
	}
	logged, note, err := c.LoggedKeys(ctx, strings.TrimSpace(string(pinned)), seen, me.Username)
	if err != nil {
		return nil, err
	}
	if err := writePrivate(seenFile, note); err != nil {
		return nil, err
	}
	recs, err := r.localKeys()
	if err != nil {
		return nil, err
	}
	mine := map[string]bool{}
	for _, r := range recs {
		if r.PublicKey != "" {
			mine[r.PublicKey] = true
		}
	}
	var out []sdk.LoggedKey
	for _, k := range logged {
		if !mine[k.PublicKey] {
			out = append(out, k)
		}
	}
	return out, nil
}

// foreignKeyAdvice is what to do about a key set not made here.
const foreignKeyAdvice = "if you did not make it on another machine, the server may use it to read the weights the owner seals for you: revoke it and tell the owner and the operator"

// describeLoggedKey names a logged key set for a warning.
func describeLoggedKey(k sdk.LoggedKey) string {
	return fmt.Sprintf("%s for model %s, uploaded under your name at %s with public key %s", k.KeySetID, k.ModelID, k.Time.Local().Format(time.DateTime), k.PublicKey[:16])
}

// checkLoggedKeys warns loudly of each key set the audit log records under
// the user's name that was not made here (foreignKeys).
func checkLoggedKeys(opts *keysListOptions, c *sdk.Client) error {
	foreign, err := opts.foreignKeys(opts.Ctx, c)
	for _, k := range foreign {
		fmt.Fprintf(opts.IO.ErrOut, "fheserve: warning: THE AUDIT LOG RECORDS A KEY SET YOU DID NOT MAKE HERE: %s; %s\n", describeLoggedKey(k), foreignKeyAdvice)
	}
	return err
}
