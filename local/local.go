// Package local runs both halves of an encrypted prediction in one
// process, through the same wire format a remote client and server use:
// key generation, encryption, evaluation, sanitization, decryption. It
// backs `fheserve predict --local`, `fheserve bench` and the engine's
// end-to-end tests.
package local

import (
	"bytes"
	"context"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/he"
	"github.com/fheserve/fheserve/he/client"
	"github.com/fheserve/fheserve/he/server"
	"github.com/fheserve/fheserve/nn"
	"github.com/fheserve/fheserve/plan"
)

// Stats are the measurements of a run. Times are wall-clock.
type Stats struct {
	Compile time.Duration `json:"-"`
	Keygen  time.Duration `json:"-"`
	// Decode is the server's decoding of the key set; for a derived plan
	// (plan.KeysDerived) it includes the derivation of the Galois keys.
	Decode      time.Duration `json:"-"`
	Encrypt     time.Duration `json:"-"`
	Evaluate    time.Duration `json:"-"` // server evaluation and sanitization
	ServerIO    time.Duration `json:"-"` // server decoding of inputs and encoding of results
	Decrypt     time.Duration `json:"-"`
	Calls       int           `json:"calls"`
	Samples     int           `json:"samples"`
	UploadBytes int           `json:"upload_bytes"` // all calls' encrypted inputs
	ResultBytes int           `json:"result_bytes"` // all calls' encrypted results
	EvalKeyByte int           `json:"eval_key_bytes"`
	PublicKey   int           `json:"public_key_bytes"`
	SecretKey   int           `json:"-"`
}

// Runner holds a compiled model, a user's keys and a server evaluator.
type Runner struct {
	Plan    *plan.Plan
	Program *plan.Program
	Graph   *nn.Graph
	Model   *server.Model // the server's side: weights encoded for the plan
	params  he.Parameters
	keys    *client.Keys
	evk     *he.EvalKeys // the evaluation keys as the server read them
	eval    *server.Evaluator
	workers int // the evaluator's, for PrepareWithin
	Stats   Stats
	// OutOfBound lists the samples, numbered across Predict calls, whose
	// decrypted output exceeded the plan's output bound
	// (plan.Plan.OutOfBound): results not to be trusted.
	OutOfBound []int
}

// New compiles g, generates keys for its plan, and prepares the server
// side with the keys as they arrive over the wire.
func New(g *nn.Graph, opts compiler.Options, workers int) (*Runner, error) {
	t0 := time.Now()
	res, err := compiler.Compile(g, opts)
	if err != nil {
		return nil, err
	}
	return newRunner(res, g, time.Since(t0), workers)
}

// newRunner generates keys for a compiled plan and prepares the server
// side with the keys as they arrive over the wire.
func newRunner(res *compiler.Result, g *nn.Graph, compile time.Duration, workers int) (*Runner, error) {
	r := &Runner{Plan: res.Plan, Program: res.Program, Graph: g}
	r.Stats.Compile = compile
	model, err := server.Prepare(res.Plan, res.Program)
	if err != nil {
		return nil, err
	}
	r.params = model.Params()
	r.Model = model

	r.evk, err = r.userKeys()
	if err != nil {
		return nil, err
	}
	r.workers = workers
	r.eval, err = model.NewEvaluator(r.evk, workers)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// PrepareWithin prepares the server side again, holding at most held
// bytes of plaintexts (server.PrepareWithin), with the same keys.
func (r *Runner) PrepareWithin(held int64) error {
	model, err := server.PrepareWithin(r.Plan, r.Program, held)
	if err != nil {
		return err
	}
	eval, err := model.NewEvaluator(r.evk, r.workers)
	if err != nil {
		return err
	}
	r.Model, r.eval = model, eval
	return nil
}

// userKeys generates the user's keys for r.Plan under r.params, keeps
// the secret half, and returns the evaluation keys as the server reads
// them from the wire, with the keygen and key-size stats.
func (r *Runner) userKeys() (*he.EvalKeys, error) {
	t0 := time.Now()
	keys, evk, err := client.GenerateKeys(r.params, he.PlanKeys(r.Plan))
	if err != nil {
		return nil, err
	}
	r.keys = keys
	var buf bytes.Buffer
	if err := he.MarshalEvalKeys(&buf, r.params, evk); err != nil {
		return nil, err
	}
	r.Stats.Keygen = time.Since(t0)
	r.Stats.EvalKeyByte = buf.Len()
	r.Stats.PublicKey = he.EvalKeysSize(r.params, he.KeySpec{})
	t0 = time.Now()
	defer func() { r.Stats.Decode = time.Since(t0) }()
	return he.UnmarshalEvalKeys(&buf, r.params, he.KeyLimits{Keys: new(he.PlanKeys(r.Plan))})
}

// Predict runs x (n samples, row-major) encrypted and returns the decoded
// outputs, n*OutputSize values with the head applied. It splits the
// samples into calls of at most the plan's batch size.
func (r *Runner) Predict(ctx context.Context, x []float64, n int) ([]float64, error) {
	p := r.Plan
	in, out := p.InputSize(), p.OutputSize()
	if len(x) != n*in {
		return nil, fheserve.Errorf(fheserve.EINVALID, "input has %d values, want %d samples of %d", len(x), n, in)
	}
	res := make([]float64, 0, n*out)
	for start := 0; start < n; start += p.BatchSize {
		k := min(p.BatchSize, n-start)
		y, err := r.call(ctx, x[start*in:(start+k)*in], k)
		if err != nil {
			return nil, err
		}
		res = append(res, y...)
	}
	return res, nil
}

func (r *Runner) call(ctx context.Context, x []float64, n int) ([]float64, error) {
	up, err := r.upload(x, n)
	if err != nil {
		return nil, err
	}
	down, err := r.serve(ctx, up, n)
	if err != nil {
		return nil, err
	}
	y, err := r.download(down, n)
	if err != nil {
		return nil, err
	}
	r.Stats.Calls++
	r.Stats.Samples += n
	return y, nil
}

// upload is the client's first half of a call: encode, encrypt, serialize.
func (r *Runner) upload(x []float64, n int) (*bytes.Buffer, error) {
	p := r.Plan
	t0 := time.Now()
	vecs, err := p.EncodeInput(x, n)
	if err != nil {
		return nil, err
	}
	up, err := r.keys.EncryptSeeded(vecs, p.Input.Level, r.params.DefaultScale(), p.Input.Encoding != plan.Coeffs)
	if err != nil {
		return nil, err
	}
	r.Stats.Encrypt += time.Since(t0)
	r.Stats.UploadBytes += len(up)
	return bytes.NewBuffer(up), nil
}

// serve is the server's part of a call: decode, evaluate, sanitize,
// serialize compactly.
func (r *Runner) serve(ctx context.Context, up *bytes.Buffer, n int) (*bytes.Buffer, error) {
	p := r.Plan
	t0 := time.Now()
	in, err := he.UnmarshalCiphertexts(up, r.params, he.Limits{MaxCount: p.Input.Ciphertexts, MinLevel: p.Input.Level, MaxLevel: p.Input.Level})
	if err != nil {
		return nil, err
	}
	*up = bytes.Buffer{} // decoded: its bytes (a batch upload: gigabytes) are not needed
	t1 := time.Now()
	outCts, err := r.eval.EvaluateOwned(ctx, in, n, nil)
	if err != nil {
		return nil, err
	}
	t2 := time.Now()
	r.Stats.Evaluate += t2.Sub(t1)
	var down bytes.Buffer
	if err := he.MarshalResult(&down, r.params, outCts, p.ResultBits); err != nil {
		return nil, err
	}
	r.Stats.ServerIO += t1.Sub(t0) + time.Since(t2)
	r.Stats.ResultBytes += down.Len()
	return &down, nil
}

// download is the client's second half of a call: decode, decrypt, check
// the bound and apply the head.
func (r *Runner) download(down *bytes.Buffer, n int) ([]float64, error) {
	p := r.Plan
	t0 := time.Now()
	got, err := he.UnmarshalResult(down, r.params, he.Limits{MaxCount: p.Output.Ciphertexts, MinLevel: 0, MaxLevel: 0})
	if err != nil {
		return nil, err
	}
	var vals [][]float64
	if p.Output.Encoding == plan.Coeffs {
		vals, err = r.keys.DecryptCoeffs(got)
	} else {
		vals, err = r.keys.Decrypt(got)
	}
	if err != nil {
		return nil, err
	}
	y, err := p.DecodeRaw(vals, n)
	if err != nil {
		return nil, err
	}
	for _, s := range p.OutOfBound(y) {
		r.OutOfBound = append(r.OutOfBound, r.Stats.Samples+s)
	}
	plan.ApplyHead(p.Head, y, p.OutputSize())
	r.Stats.Decrypt += time.Since(t0)
	return y, nil
}
