package http_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/app"
	"github.com/fheserve/fheserve/audit"
	"github.com/fheserve/fheserve/blob"
	fhttp "github.com/fheserve/fheserve/http"
	"github.com/fheserve/fheserve/inproc"
	"github.com/fheserve/fheserve/plan"
	"github.com/fheserve/fheserve/sdk"
	"github.com/fheserve/fheserve/sqlite"
)

// world is a running server with an administrator, two owners, two
// users and a pending account, a model of the first owner allowed to the
// first user, that user's key set and a finished job.
type world struct {
	t      *testing.T
	url    string
	store  fheserve.Store
	app    *app.App
	tokens map[string]string // role -> bearer token
	creds  map[string][2]string
	admin  *sdk.Client
	owner  *sdk.Client // olivia
	user   *sdk.Client // ulrich

	onnx     []byte
	model    *fheserve.Model // olivia's, allowed to ulrich
	keys     *sdk.Keys       // ulrich's, uploaded
	keyBytes []byte          // a valid key set upload for model
	input    []byte          // a valid encrypted input for model under keys
	job      *fheserve.Job   // ulrich's, done
	cheap    *fheserve.Model // see cheapModel
}

// Roles of the permission matrix.
const (
	anonymous = "anonymous"
	pending   = "pending"
	user      = "user"
	user2     = "another user"
	owner     = "owner"
	owner2    = "another owner"
	admin     = "admin"
)

var roles = []string{anonymous, pending, user, user2, owner, owner2, admin}

func check(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// MustServer starts an App on SQLite, local blobs and an in-process queue
// behind a server on 127.0.0.1:0.
func MustServer(t testing.TB) (url string, store fheserve.Store, a *app.App) {
	t.Helper()
	return MustServerIn(t, t.TempDir(), func(c *app.Config) {
		// The tests upload fresh key sets for one model freely.
		c.Bounds.KeySetsPerModel, c.Bounds.KeySetsPerUser = 1000, 1000
	})
}

// MustServerIn is MustServer with its data under dir and its
// configuration changed by each of configure.
func MustServerIn(t testing.TB, dir string, configure ...func(*app.Config)) (url string, store fheserve.Store, a *app.App) {
	t.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(dir, "db"))
	check(t, err)
	blobs, err := blob.Open(filepath.Join(dir, "blobs"))
	check(t, err)
	key := make([]byte, 32)
	rand.Read(key)
	akey, err := audit.GenerateKey("")
	check(t, err)
	alog, err := audit.New(context.Background(), audit.NewMemStore(), akey)
	check(t, err)
	cfg := app.Config{Store: store, Blobs: blobs, Queue: inproc.NewQueue(), MasterKey: key, Workers: 2, Audit: alog}
	for _, f := range configure {
		f(&cfg)
	}
	a, err = app.New(cfg)
	check(t, err)
	check(t, a.Start(context.Background()))
	s := fhttp.NewServer(a, nil)
	check(t, s.Listen("127.0.0.1:0"))
	go s.Serve()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		a.Close()
	})
	return s.URL(), store, a
}

// signup creates the administrator root on a and returns a function that
// registers an account, has root approve it and logs it in.
func signup(t testing.TB, url string, a *app.App) func(name, role string) *sdk.Client {
	ctx := context.Background()
	_, err := a.InitAdmin(ctx, "root", "root-password")
	check(t, err)
	admin := sdk.New(url)
	_, err = admin.Login(ctx, "root", "root-password")
	check(t, err)
	return func(name, role string) *sdk.Client {
		c := sdk.New(url)
		_, err := c.Register(ctx, name, name+"-password", role)
		check(t, err)
		_, err = admin.Approve(ctx, name)
		check(t, err)
		_, err = c.Login(ctx, name, name+"-password")
		check(t, err)
		return c
	}
}

func newWorld(t *testing.T) *world {
	ctx := context.Background()
	w := &world{t: t, tokens: map[string]string{}, creds: map[string][2]string{}}
	w.url, w.store, w.app = MustServer(t)
	_, err := w.app.InitAdmin(ctx, "root", "root-password")
	check(t, err)
	w.admin = sdk.New(w.url)
	_, err = w.admin.Login(ctx, "root", "root-password")
	check(t, err)
	w.tokens[admin] = w.admin.Token()
	w.creds[admin] = [2]string{"root", "root-password"}
	for _, a := range []struct{ role, name, kind string }{
		{owner, "olivia", fheserve.RoleOwner}, {owner2, "oscar", fheserve.RoleOwner},
		{user, "ulrich", fheserve.RoleUser}, {user2, "ursula", fheserve.RoleUser},
		{pending, "pat", fheserve.RoleUser},
	} {
		c := sdk.New(w.url)
		acct, err := c.Register(ctx, a.name, a.name+"-password", a.kind)
		check(t, err)
		w.creds[a.role] = [2]string{a.name, a.name + "-password"}
		if a.role == pending {
			// A token of an account that is not active must not work:
			// every request checks the account.
			w.tokens[pending] = w.injectToken(acct)
			continue
		}
		_, err = w.admin.Approve(ctx, a.name)
		check(t, err)
		_, err = c.Login(ctx, a.name, a.name+"-password")
		check(t, err)
		w.tokens[a.role] = c.Token()
		switch a.role {
		case owner:
			w.owner = c
		case user:
			w.user = c
		}
	}
	w.onnx, err = os.ReadFile(filepath.Join("..", "testdata", "onnx", "mlp_square.onnx"))
	check(t, err)
	w.model = w.deploy()
	w.keys = keysOf(t, w.user, w.model.ID)
	w.keyBytes = w.keyUpload(w.keys)
	w.input, err = w.keys.Encrypt(make([]float64, w.keys.Plan.InputSize()), 1)
	check(t, err)
	j, err := w.user.Submit(ctx, w.keys, w.input, 1)
	check(t, err)
	w.job, err = w.user.Wait(ctx, j.ID, nil)
	check(t, err)
	return w
}

// injectToken stores a session token for acct directly, as if it had
// been issued before the account lost its standing.
func (w *world) injectToken(acct *fheserve.Account) string {
	secret := "fhs_injected_" + acct.Username
	h := sha256.Sum256([]byte(secret))
	now := time.Now().UTC()
	check(w.t, w.store.CreateToken(context.Background(), &fheserve.Token{ID: "tok_" + acct.Username, Hash: hex.EncodeToString(h[:]),
		AccountID: acct.ID, Kind: fheserve.TokenSession, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}))
	return secret
}

// deploy deploys a fresh copy of mlp_square as olivia, allowed to ulrich.
func (w *world) deploy() *fheserve.Model {
	m, err := w.owner.Deploy(context.Background(), &fheserve.DeployRequest{Name: "mlp_square", ONNX: w.onnx, Allow: []string{"ulrich"}})
	check(w.t, err)
	return m
}

// deployCheap deploys the gemm fixture as olivia, allowed to ulrich: one
// linear layer in coefficient encoding on N=2^13, no rotation keys (136
// KB of keys, microseconds a job), for tests that need a fresh model and
// not mlp_square's plan (a deployment of mlp_square compiles and
// prepares a 2^14 plan).
func (w *world) deployCheap() *fheserve.Model {
	m, err := w.owner.Deploy(context.Background(), &fheserve.DeployRequest{Name: "gemm", ONNX: mustONNX(w.t, "gemm"), Allow: []string{"ulrich"}})
	check(w.t, err)
	return m
}

// keyUpload returns the upload bytes of the evaluation keys of k's plan:
// uploaded again, they make another key set for k's model.
func (w *world) keyUpload(k *sdk.Keys) []byte {
	return pairFor(w.t, k.ModelID, k.Plan).eval
}

// keyPair is a user's key pair for a plan: the secret key as
// sdk.Keys.MarshalSecret encodes it and the upload of the public and
// evaluation keys.
type keyPair struct {
	once         sync.Once
	secret, eval []byte
	err          error
}

// keyPairs holds one key pair per plan fingerprint for the whole test
// run: every test's server compiles mlp_square to the same plan, and
// key generation at N=2^14 took a second each time, in most tests more
// than once. The servers are separate; a user's keys are the user's
// business.
var keyPairs sync.Map

// pairFor returns the key pair for plan p (of model id), made on first use.
func pairFor(t testing.TB, id string, p *plan.Plan) *keyPair {
	t.Helper()
	v, _ := keyPairs.LoadOrStore(p.Fingerprint, &keyPair{})
	kp := v.(*keyPair)
	kp.once.Do(func() {
		k, err := sdk.NewKeys(id, p)
		if err != nil {
			kp.err = err
			return
		}
		var buf bytes.Buffer
		if kp.err = k.WriteEvalKeys(&buf); kp.err != nil {
			return
		}
		kp.eval = buf.Bytes()
		kp.secret, kp.err = k.MarshalSecret()
	})
	check(t, kp.err)
	return kp
}

// keysOf uploads the key pair of model id's plan as c's key set and
// returns c's keys under it (sdk.Client.GenerateKeys and UploadKeys,
// with the pair made once per plan).
func keysOf(t testing.TB, c *sdk.Client, id string) *sdk.Keys {
	t.Helper()
	ctx := context.Background()
	p, err := c.Plan(ctx, id)
	check(t, err)
	kp := pairFor(t, id, p)
	ks, err := c.API.UploadKeys(ctx, id, bytes.NewReader(kp.eval), int64(len(kp.eval)), "")
	check(t, err)
	k, err := sdk.LoadKeys(id, ks.ID, p, kp.secret)
	check(t, err)
	return k
}

// do sends a request as role and returns the status and body.
func (w *world) do(role, method, path string, body []byte, contentType string) (int, []byte) {
	w.t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	return w.request(role, method, path, r, contentType)
}

// request sends body (nil: none) as role and returns the status and body.
func (w *world) request(role, method, path string, body io.Reader, contentType string) (int, []byte) {
	w.t.Helper()
	req, err := http.NewRequest(method, w.url+path, body)
	check(w.t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if tok := w.tokens[role]; tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	check(w.t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// multipartDeploy encodes a deployment as the server takes it.
func multipartDeploy(t testing.TB, req *fheserve.DeployRequest) ([]byte, string) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	meta, err := mw.CreateFormField("metadata")
	check(t, err)
	check(t, json.NewEncoder(meta).Encode(req))
	if req.ONNX != nil {
		fw, err := mw.CreateFormFile("model", "model.onnx")
		check(t, err)
		fw.Write(req.ONNX)
	}
	if req.Calibration != nil {
		fw, err := mw.CreateFormFile("calibration", "calibration.npy")
		check(t, err)
		fw.Write(req.Calibration)
	}
	check(t, mw.Close())
	return buf.Bytes(), mw.FormDataContentType()
}
