package http_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/he"
	"github.com/fheserve/fheserve/he/client"
	"github.com/fheserve/fheserve/internal/clustertest"
	"github.com/fheserve/fheserve/nn"
	"github.com/fheserve/fheserve/plan"
	"github.com/fheserve/fheserve/sdk"
)

// sealedMLP is a dense layer, a square and a dense layer on 16 inputs.
func sealedMLP(rng *rand.Rand) *nn.Graph {
	dense := func(in, out int) *nn.Dense {
		d := &nn.Dense{In: in, Out: out, W: make([]float64, in*out), B: make([]float64, out)}
		for i := range d.W {
			d.W[i] = rng.NormFloat64() / math.Sqrt(float64(in))
		}
		for i := range d.B {
			d.B[i] = rng.NormFloat64() * 0.1
		}
		return d
	}
	return &nn.Graph{Name: "mlp", Input: nn.Shape{16}, Output: 3, Nodes: []*nn.Node{
		{Name: "fc1", OpType: "Gemm", Op: dense(16, 8), Inputs: []int{0}, Shape: nn.Shape{8}},
		{Name: "sq", OpType: "Mul", Op: &nn.Mul{}, Inputs: []int{1, 1}, Shape: nn.Shape{8}},
		{Name: "fc2", OpType: "Gemm", Op: dense(8, 4), Inputs: []int{2}, Shape: nn.Shape{4}},
	}}
}

// recorder keeps every request body a client sends.
type recorder struct {
	mu     sync.Mutex
	bodies [][]byte
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		r.mu.Lock()
		r.bodies = append(r.bodies, b)
		r.mu.Unlock()
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	return http.DefaultTransport.RoundTrip(req)
}

// weightFinder finds any of a set of byte patterns of at least 8 bytes:
// they are indexed by their first 8 bytes, so that a scan costs a map
// lookup per byte whatever the number of patterns.
type weightFinder struct {
	byPrefix map[uint64][][]byte
	n        int
}

func (f *weightFinder) add(p []byte) {
	if f.byPrefix == nil {
		f.byPrefix = map[uint64][][]byte{}
	}
	k := binary.LittleEndian.Uint64(p)
	f.byPrefix[k] = append(f.byPrefix[k], p)
	f.n++
}

// find returns a pattern data holds, or nil.
func (f *weightFinder) find(data []byte) []byte {
	for i := 0; i+8 <= len(data); i++ {
		for _, p := range f.byPrefix[binary.LittleEndian.Uint64(data[i:])] {
			if bytes.HasPrefix(data[i:], p) {
				return p
			}
		}
	}
	return nil
}

// weightPatterns are byte strings that only a copy of the model's weights
// would hold: each weight as float64 (little and big endian) and as its
// shortest decimal text, each pair of consecutive weights as float32 (a
// single float32 is 4 bytes, which random ciphertext bytes hold by
// chance), and the fixed-point encodings of the weights that the engine
// encrypts (encodingPatterns).
func weightPatterns(t *testing.T, g *nn.Graph, p *plan.Plan, prog *plan.Program) *weightFinder {
	var lists [][]float64
	for _, n := range g.Nodes {
		if d, ok := n.Op.(*nn.Dense); ok {
			lists = append(lists, d.W, d.B)
		}
	}
	for _, s := range prog.Steps {
		if s.Kind == plan.StepLinear && s.M != nil {
			lists = append(lists, s.M.Val, s.Bias)
		}
	}
	f := &weightFinder{}
	for _, l := range lists {
		for i, v := range l {
			if v == 0 || math.Abs(v) == 1 {
				continue
			}
			f.add(binary.LittleEndian.AppendUint64(nil, math.Float64bits(v)))
			f.add(binary.BigEndian.AppendUint64(nil, math.Float64bits(v)))
			if s := strconv.FormatFloat(v, 'g', -1, 64); len(s) >= 8 {
				f.add([]byte(s))
			}
			if s := strconv.FormatFloat(float64(float32(v)), 'g', -1, 32); len(s) >= 8 {
				f.add([]byte(s))
			}
			if i+1 < len(l) {
				b := binary.LittleEndian.AppendUint32(nil, math.Float32bits(float32(v)))
				f.add(binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(l[i+1]))))
			}
		}
	}
	encodingPatterns(t, f, p, prog)
	return f
}

// encodingPatterns adds the weights in fixed point as the engine encodes
// them (client.SealPlaintexts: each diagonal, weight polynomial and bias
// scaled, rounded and reduced modulo each prime of its level, before
// encryption): windows of two consecutive coefficients, as 64-bit words
// in either byte order, in the encoder's NTT form, in coefficient form
// and in NTT-Montgomery form, for every prime. A window holds two words
// that are neither small nor small negatives, so that it cannot match
// zeros or lengths by chance.
func encodingPatterns(t *testing.T, f *weightFinder, p *plan.Plan, prog *plan.Program) {
	params, err := he.NewParameters(p.Params)
	check(t, err)
	pts, err := client.SealPlaintexts(params, p, prog)
	check(t, err)
	const windows = 4 // per prime and form, one in each quarter of the polynomial
	for _, pt := range pts {
		r := params.RingQ().AtLevel(pt.Level())
		coeff, mont := r.NewPoly(), r.NewPoly()
		r.INTT(pt.Value, coeff)
		r.MForm(pt.Value, mont)
		for _, poly := range [][][]uint64{pt.Value.Coeffs, coeff.Coeffs, mont.Coeffs} {
			for i, c := range poly {
				q := params.Q()[i]
				large := func(v uint64) bool { return v > 1<<20 && v < q-1<<20 }
				for w := range windows {
					for j := w * len(c) / windows; j+1 < (w+1)*len(c)/windows; j++ {
						if large(c[j]) && large(c[j+1]) {
							f.add(binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, c[j]), c[j+1]))
							f.add(binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, c[j]), c[j+1]))
							break
						}
					}
				}
			}
		}
	}
}

// TestSealedFlow runs a sealed model through the service over HTTP: the
// owner compiles and deploys it sealed, a user creates keys and is told
// to wait, the owner seals, and the user's predictions match the
// plaintext model within the plan's stated error. No request body of the
// owner's and no file of the server holds a weight of the model.
func TestSealedFlow(t *testing.T) { clustertest.InModes(t, testSealedFlow) }

func testSealedFlow(t *testing.T, mode string) {
	ctx := context.Background()
	url, _, a, rest := mustServerIn(t, mode, t.TempDir())
	newAccount := signup(t, url, a)
	owner, user, other := newAccount("olivia", fheserve.RoleOwner), newAccount("ulrich", fheserve.RoleUser), newAccount("oscar", fheserve.RoleOwner)
	rec := &recorder{}
	owner.API.HTTP = &http.Client{Transport: rec}

	rng := rand.New(rand.NewPCG(7, 8))
	g := sealedMLP(rng)
	const n = 3
	x := make([]float64, n*16)
	for i := range x {
		x[i] = rng.Float64()*2 - 1
	}
	res, err := compiler.Compile(g, compiler.Options{Sealed: true, Calibration: x})
	check(t, err)
	p := res.Plan
	patterns := weightPatterns(t, g, p, res.Program)
	// The oracle finds the weights where they are: in the program's JSON,
	// and in an encoded weight as Lattigo writes it.
	if patterns.find(mustJSON(t, res.Program)) == nil {
		t.Fatalf("none of %d weight patterns found in the program with its weights", patterns.n)
	}
	params, err := he.NewParameters(p.Params)
	check(t, err)
	pts, err := client.SealPlaintexts(params, p, res.Program)
	check(t, err)
	for _, pt := range pts {
		if b, err := pt.MarshalBinary(); err != nil || patterns.find(b) == nil {
			t.Fatalf("no weight pattern found in an encoded weight of %d bytes (%v)", len(b), err)
		}
	}

	// A program with its weights is refused: none is stored.
	if _, err := other.API.DeploySealed(ctx, &fheserve.SealedDeployRequest{Name: "leaky", Plan: mustJSON(t, p), Program: mustJSON(t, res.Program)}); fheserve.ErrorCode(err) != fheserve.EINVALID ||
		!strings.Contains(fheserve.ErrorMessage(err), "holds weights") {
		t.Fatalf("deploying a program with weights: %v", err)
	}

	m, err := owner.DeploySealed(ctx, fheserve.SealedDeployRequest{Name: "sealed-mlp", Allow: []string{"ulrich"}}, p, res.Program)
	check(t, err)
	if !m.Sealed {
		t.Fatalf("deployed model %+v is not sealed", m)
	}
	tasks, err := owner.SealTasks(ctx, m.ID)
	check(t, err)
	if len(tasks.Tasks) != 0 || tasks.SealedBytes != int64(p.Sizes.SealedWeights) {
		t.Fatalf("before any key: %d tasks, sealed size %d (plan %d)", len(tasks.Tasks), tasks.SealedBytes, p.Sizes.SealedWeights)
	}

	keys, err := user.GenerateKeys(ctx, m.ID)
	check(t, err)
	_, err = user.UploadKeys(ctx, keys, "")
	check(t, err)
	ks, err := user.API.KeySet(ctx, keys.KeySetID)
	check(t, err)
	if ks.Seal != fheserve.SealWaiting {
		t.Fatalf("key set before sealing: seal %q, want %q", ks.Seal, fheserve.SealWaiting)
	}
	if _, err := user.Predict(ctx, keys, x, n, nil); !fheserve.IsWaitingForSeal(err) {
		t.Fatalf("predict before sealing: %v, want the waiting status", err)
	}

	// The bad uploads, before and after the key set is sealed: each is
	// refused naming its cause, and the key set keeps its state.
	badUploads := func(want string) {
		t.Helper()
		good := make([]byte, p.Sizes.SealedWeights)
		for _, c := range []struct {
			name, code, says string
			body             []byte
		}{
			{"truncated", fheserve.EINVALID, "truncated", good[:len(good)/2]},
			{"too long", fheserve.ETOOLARGE, "larger", append(good, 0)},
			{"garbage", fheserve.EINVALID, "sealed weights", bytes.Repeat([]byte{0xff}, len(good))},
		} {
			_, err := owner.API.UploadSealed(ctx, keys.KeySetID, c.body)
			if fheserve.ErrorCode(err) != c.code || !strings.Contains(fheserve.ErrorMessage(err), c.says) {
				t.Errorf("%s upload: %v, want %s naming %q", c.name, err, c.code, c.says)
			}
		}
		// Another owner's upload for this key set.
		if _, err := other.API.UploadSealed(ctx, keys.KeySetID, good); fheserve.ErrorCode(err) != fheserve.EFORBIDDEN {
			t.Errorf("foreign owner's upload: %v, want forbidden", err)
		}
		ks, err := user.API.KeySet(ctx, keys.KeySetID)
		check(t, err)
		if ks.Seal != want {
			t.Errorf("after bad uploads the key set's seal is %q, want %q", ks.Seal, want)
		}
	}
	badUploads(fheserve.SealWaiting)

	var progress []sdk.SealProgress
	sealed, err := owner.Seal(ctx, m.ID, p, res.Program, func(pr sdk.SealProgress) { progress = append(progress, pr) })
	check(t, err)
	if sealed != 1 || len(progress) != 1 || progress[0].KeySet.Seal != fheserve.SealDone {
		t.Fatalf("sealed %d key sets, progress %+v", sealed, progress)
	}
	badUploads(fheserve.SealDone)

	got, err := user.Predict(ctx, keys, x, n, nil)
	check(t, err)
	want, err := g.EvalBatch(x, n, nil)
	check(t, err)
	var maxErr float64
	for i := range want {
		maxErr = math.Max(maxErr, math.Abs(got[i]-want[i]))
	}
	if maxErr > p.Precision.OutputError {
		t.Errorf("sealed outputs differ from the plaintext model's by %.3g, more than the plan's %.3g", maxErr, p.Precision.OutputError)
	}
	t.Logf("sealed weights %d bytes, max error %.3g (stated %.3g)", p.Sizes.SealedWeights, maxErr, p.Precision.OutputError)

	// Nothing the owner sent, and nothing the server stored, holds a weight.
	var sent int
	for i, b := range rec.bodies {
		sent += len(b)
		if w := patterns.find(b); w != nil {
			t.Errorf("request body %d of the owner (%d bytes) holds a weight: % x", i, len(b), w)
		}
	}
	if sent < p.Sizes.SealedWeights {
		t.Fatalf("recorded %d bytes of the owner's requests, fewer than the sealed weights (%d)", sent, p.Sizes.SealedWeights)
	}
	var stored int
	files := rest.eachFile(t, func(path string, data []byte) {
		stored += len(data)
		if w := patterns.find(data); w != nil {
			t.Errorf("server file %s holds a weight: % x", path, w)
		}
	})
	wrapped := 0
	rows, _ := rest.eachRow(t, func(table, col string, b []byte) {
		if w := patterns.find(b); w != nil {
			t.Errorf("table %s, column %s holds a weight: % x", table, col, w)
		}
		if table == "models" && col == "wrapped_key" && len(b) > 0 {
			wrapped++
		}
	})
	if files < 3 || rows < 10 {
		t.Fatalf("walked %d server files and %d rows", files, rows)
	}
	// With the master key: it wraps the data keys that encrypt a model's
	// weights at rest (app/crypt.go), the one thing on the server it
	// opens. A sealed model has none, so the files and rows scanned above,
	// read as they are, are all that the master key would reveal.
	if wrapped != 0 {
		t.Errorf("%d models hold a data key wrapped by the master key: the scan did not read what it opens", wrapped)
	}
	t.Logf("%d weight patterns: none in %d request bodies of the owner (%d bytes), %d server files (%d bytes) or %d rows", patterns.n, len(rec.bodies), sent, files, stored, rows)

	// Revoking the key set deletes its sealed weights and the public key
	// kept for sealing.
	for _, d := range []string{"sealed", "pubkeys"} {
		if !rest.hasBlob(t, d+"/"+keys.KeySetID) {
			t.Errorf("no %s blob of a sealed key set", d)
		}
	}
	_, err = user.API.RevokeKeySet(ctx, keys.KeySetID)
	check(t, err)
	for _, d := range []string{"sealed", "pubkeys"} {
		if rest.hasBlob(t, d+"/"+keys.KeySetID) {
			t.Errorf("the %s blob of a revoked key set is still stored", d)
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	check(t, err)
	return b
}

// sealedDense is a dense layer of 16 inputs and 4 outputs compiled for
// sealed weights: the permission matrix's sealed model, cheap to seal.
var sealedDense = sync.OnceValues(func() (*compiler.Result, error) {
	rng := rand.New(rand.NewPCG(9, 10))
	d := &nn.Dense{In: 16, Out: 4, W: make([]float64, 64), B: make([]float64, 4)}
	for i := range d.W {
		d.W[i] = rng.NormFloat64() / 4
	}
	g := &nn.Graph{Name: "dense", Input: nn.Shape{16}, Output: 1, Nodes: []*nn.Node{
		{Name: "fc", OpType: "Gemm", Op: d, Inputs: []int{0}, Shape: nn.Shape{4}}}}
	return compiler.Compile(g, compiler.Options{Sealed: true})
})

// sealedModels holds each world's sealed model, deployed on first use.
var sealedModels sync.Map // *world -> *fheserve.Model

// sealedDeployCall is a sealed deployment of sealedDense.
func (w *world) sealedDeployCall() call {
	res, err := sealedDense()
	check(w.t, err)
	return jsonCall("POST", "/v1/models/sealed", fheserve.SealedDeployRequest{Name: "sealed-dense",
		Plan: mustJSON(w.t, res.Plan), Program: mustJSON(w.t, he.StripWeights(res.Program))})
}

// sealedModel is olivia's sealed deployment of sealedDense, allowed to
// ulrich.
func (w *world) sealedModel() *fheserve.Model {
	if m, ok := sealedModels.Load(w); ok {
		return m.(*fheserve.Model)
	}
	res, err := sealedDense()
	check(w.t, err)
	m, err := w.owner.DeploySealed(context.Background(), fheserve.SealedDeployRequest{Name: "sealed-dense", Allow: []string{"ulrich"}}, res.Plan, res.Program)
	check(w.t, err)
	sealedModels.Store(w, m)
	return m
}

// sealedUploadCall makes a fresh key set of ulrich's for the sealed model
// and returns the upload of its weights sealed under its public key.
func (w *world) sealedUploadCall() call {
	ctx := context.Background()
	res, err := sealedDense()
	check(w.t, err)
	k := keysOf(w.t, w.user, w.sealedModel().ID)
	tasks, err := w.owner.SealTasks(ctx, k.ModelID)
	check(w.t, err)
	params, err := he.NewParameters(res.Plan.Params)
	check(w.t, err)
	for _, task := range tasks.Tasks {
		if task.KeySetID != k.KeySetID {
			continue
		}
		pk, err := he.UnmarshalEvalKeys(bytes.NewReader(task.PublicKey), params, he.KeyLimits{Keys: &he.KeySpec{}})
		check(w.t, err)
		var buf bytes.Buffer
		check(w.t, client.Seal(&buf, params, res.Plan, res.Program, pk.Public))
		return call{"PUT", "/v1/keysets/" + k.KeySetID + "/sealed", buf.Bytes(), "application/octet-stream"}
	}
	w.t.Fatalf("key set %s is not waiting for sealed weights", k.KeySetID)
	return call{}
}

// TestSealedQuota checks the bound on the key sets a sealed model is
// sealed for: past it the owner sees no more waiting key sets and an
// upload is refused; a revoked key set frees its place.
func TestSealedQuota(t *testing.T) {
	ctx := context.Background()
	url, _, a := MustServer(t)
	newAccount := signup(t, url, a)
	owner, user := newAccount("olivia", fheserve.RoleOwner), newAccount("ulrich", fheserve.RoleUser)
	res, err := sealedDense()
	check(t, err)
	m, err := owner.DeploySealed(ctx, fheserve.SealedDeployRequest{Name: "bounded", MaxSealedKeySets: 1}, res.Plan, res.Program)
	check(t, err)
	if m.MaxSealedKeySets != 1 {
		t.Fatalf("deployed with max_sealed_keysets %d", m.MaxSealedKeySets)
	}
	var keys []*sdk.Keys
	for range 2 {
		k, err := user.GenerateKeys(ctx, m.ID)
		check(t, err)
		_, err = user.UploadKeys(ctx, k, "")
		check(t, err)
		keys = append(keys, k)
	}
	tasks, err := owner.SealTasks(ctx, m.ID)
	check(t, err)
	if len(tasks.Tasks) != 1 || tasks.Remaining != 1 {
		t.Fatalf("bound 1, 2 key sets waiting: %d tasks offered, %d remaining", len(tasks.Tasks), tasks.Remaining)
	}
	n, err := owner.Seal(ctx, m.ID, res.Plan, res.Program, nil)
	check(t, err)
	tasks, err = owner.SealTasks(ctx, m.ID)
	check(t, err)
	if n != 1 || len(tasks.Tasks) != 0 || tasks.Remaining != 0 || tasks.Sealed != 1 {
		t.Fatalf("after sealing %d: %d tasks, %d remaining, %d sealed", n, len(tasks.Tasks), tasks.Remaining, tasks.Sealed)
	}
	// An upload for the other key set is refused, naming the bound.
	sealedID := keys[0].KeySetID
	waiting := keys[1].KeySetID
	if ks, err := user.API.KeySet(ctx, sealedID); err != nil || ks.Seal != fheserve.SealDone {
		sealedID, waiting = waiting, sealedID
	}
	_, err = owner.API.UploadSealed(ctx, waiting, make([]byte, res.Plan.Sizes.SealedWeights))
	if fheserve.ErrorCode(err) != fheserve.ECONFLICT || !strings.Contains(fheserve.ErrorMessage(err), "max_sealed_keysets") {
		t.Fatalf("upload past the bound: %v", err)
	}
	_, err = user.API.RevokeKeySet(ctx, sealedID)
	check(t, err)
	n, err = owner.Seal(ctx, m.ID, res.Plan, res.Program, nil)
	check(t, err)
	if ks, err := user.API.KeySet(ctx, waiting); n != 1 || err != nil || ks.Seal != fheserve.SealDone {
		t.Fatalf("after a revocation, sealed %d; the other key set: %+v, %v", n, ks, err)
	}
}

// swapKeys is a server that hands the owner one user's public key under
// another's key set: it swaps the public keys of the first two seal tasks.
type swapKeys struct{}

func (swapKeys) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil || req.Method != "GET" || !strings.HasSuffix(req.URL.Path, "/seal") || resp.StatusCode != 200 {
		return resp, err
	}
	var tasks fheserve.SealTasks
	err = json.NewDecoder(resp.Body).Decode(&tasks)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if len(tasks.Tasks) >= 2 {
		tasks.Tasks[0].PublicKey, tasks.Tasks[1].PublicKey = tasks.Tasks[1].PublicKey, tasks.Tasks[0].PublicKey
	}
	b, _ := json.Marshal(&tasks)
	resp.Body, resp.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
	resp.Header.Del("Content-Length")
	return resp, nil
}

// TestSealedKeyTransparency: the owner's client seals a key set only for
// the public key the signed audit log records under its user's name. A
// server that hands it another key for a key set gets nothing sealed.
func TestSealedKeyTransparency(t *testing.T) {
	ctx := context.Background()
	url, _, a := MustServer(t)
	newAccount := signup(t, url, a)
	owner := newAccount("olivia", fheserve.RoleOwner)
	res, err := sealedDense()
	check(t, err)
	m, err := owner.DeploySealed(ctx, fheserve.SealedDeployRequest{Name: "transparent"}, res.Plan, res.Program)
	check(t, err)
	var ids []string
	var users []*sdk.Client
	for _, name := range []string{"ulrich", "ursula"} {
		u := newAccount(name, fheserve.RoleUser)
		users = append(users, u)
		k, err := u.GenerateKeys(ctx, m.ID)
		check(t, err)
		_, err = u.UploadKeys(ctx, k, "")
		check(t, err)
		ids = append(ids, k.KeySetID)
	}
	vkey := a.AuditLog().VerifierKey()

	lying := sdk.New(url)
	lying.SetToken(owner.Token())
	lying.API.HTTP = &http.Client{Transport: swapKeys{}}
	var refused []error
	n, err := lying.SealWith(ctx, m.ID, res.Plan, res.Program, &sdk.SealOptions{AuditKey: vkey, Progress: func(p sdk.SealProgress) { refused = append(refused, p.Err) }})
	if n != 0 || fheserve.ErrorCode(err) != fheserve.EFORBIDDEN || len(refused) != 2 {
		t.Fatalf("with swapped keys: sealed %d, %v, progress %v", n, err, refused)
	}
	for _, e := range refused {
		if !strings.Contains(fheserve.ErrorMessage(e), "records no upload of this public key") {
			t.Errorf("refusal %v does not name the cause", e)
		}
	}
	tasks, err := owner.SealTasks(ctx, m.ID)
	check(t, err)
	if len(tasks.Tasks) != 2 || tasks.Sealed != 0 {
		t.Fatalf("after the refusals: %d waiting, %d sealed", len(tasks.Tasks), tasks.Sealed)
	}
	// The honest server's key sets are sealed, and the checkpoint verified
	// is kept for the next check.
	opts := &sdk.SealOptions{AuditKey: vkey}
	n, err = owner.SealWith(ctx, m.ID, res.Plan, res.Program, opts)
	check(t, err)
	if n != 2 || opts.Seen == nil {
		t.Fatalf("the honest server's key sets: sealed %d, checkpoint kept %v", n, opts.Seen != nil)
	}
	for i, id := range ids {
		if ks, err := users[i].API.KeySet(ctx, id); err != nil || ks.Seal != fheserve.SealDone {
			t.Errorf("key set %s: %+v, %v", id, ks, err)
		}
	}
}
