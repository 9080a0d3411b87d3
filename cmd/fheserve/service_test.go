package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/internal/clustertest"
	"github.com/fheserve/fheserve/internal/pgtest"
	"github.com/fheserve/fheserve/nn/onnx"
	"github.com/fheserve/fheserve/npy"
	"github.com/fheserve/fheserve/plan"
	"github.com/fheserve/fheserve/sdk"
)

// TestServiceCLI runs the server and every client command in the test's
// process. The tests that kill a server (TestRestart, TestCrash, TestLoad)
// run it as a separate process: the test binary itself, which runs main
// instead of the tests when asMainEnv is set (no 'go build' of the
// command, which took seconds); their clients run in the test's process.

// asMainEnv, set to 1 in a process of the test binary, makes it run
// 'fheserve' with its arguments instead of the tests.
const asMainEnv = "FHESERVE_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMainEnv) == "1" {
		main()
		return
	}
	// The cluster tests' PostgreSQL stops with the tests.
	os.Exit(pgtest.Main(m))
}

// binary returns the path of a program that runs as the fheserve command
// when its environment holds asMainEnv=1: this test binary.
func binary(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// server is a 'fheserve serve' process.
type server struct {
	cmd *exec.Cmd
	url string
	log *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServer runs 'fheserve serve' on a free port of 127.0.0.1 with
// dataDir and waits until it listens.
func startServer(t *testing.T, dataDir string, args ...string) *server {
	t.Helper()
	cmd := exec.Command(binary(t), append([]string{"serve", "--data-dir", dataDir, "--addr", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), "FHESERVE_MASTER_KEY=", asMainEnv+"=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, log: &syncBuffer{}}
	t.Cleanup(func() { s.kill() })
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(s.log, line)
			if u, ok := strings.CutPrefix(line, "fheserve: serving on "); ok {
				urls <- u
			}
		}
	}()
	select {
	case s.url = <-urls:
	case <-time.After(30 * time.Second):
		t.Fatalf("the server did not start:\n%s", s.log)
	}
	return s
}

// kill stops the server with SIGKILL: no chance to clean up.
func (s *server) kill() {
	if s.cmd.ProcessState == nil {
		s.cmd.Process.Signal(syscall.SIGKILL)
		s.cmd.Wait()
	}
}

// serveWithAdmin initializes the data directory data with the
// administrator root (password root-password), serves it in mode in the
// test's process and returns the administrator's party, pointed at the
// server (and, in a cluster, with its database as $FHESERVE_STORE, for
// the operator's offline commands), and its URL.
func serveWithAdmin(t *testing.T, data, mode string) (*party, string) {
	t.Helper()
	admin := newParty(t, "")
	var engines, serve []string
	if mode == clustertest.Clustered {
		c := clustertest.New(t)
		engines, serve = c.Args(), append(c.Args(), "--workers", "0")
		admin.env[storeEnv] = c.Engines.Store
	}
	admin.ok("root-password\n", "admin", "init", "--data-dir", data, "--username", "root", "--password-stdin")
	url := serveInProcess(t, data, serve...)
	if mode == clustertest.Clustered {
		runInProcess(t, "fheserve: worker running", append([]string{"worker", "--data-dir", data}, engines...)...)
	}
	admin.env[serverEnv] = url
	return admin, url
}

// serveInProcess runs 'fheserve serve' in the test's process on a free
// port of 127.0.0.1 with dataDir and args, waits until it listens and
// returns its URL. The server stops when the test ends.
func serveInProcess(t *testing.T, dataDir string, args ...string) string {
	t.Helper()
	return runInProcess(t, "fheserve: serving on ", append([]string{"serve", "--data-dir", dataDir, "--addr", "127.0.0.1:0"}, args...)...)
}

// runInProcess runs the fheserve command line args in the test's
// process until the test ends, waits until it prints a line starting
// with ready on its standard error and returns the rest of that line.
func runInProcess(t *testing.T, ready string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	log := &syncBuffer{}
	f := &Factory{IO: &IOStreams{In: strings.NewReader(""), Out: log, ErrOut: pw}, Getenv: func(string) string { return "" }}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, f, args)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("%s exited with %d:\n%s", args[0], code, log)
		}
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(log, line)
			if rest, ok := strings.CutPrefix(line, ready); ok {
				lines <- rest
			}
		}
		close(lines)
	}()
	rest, ok := <-lines
	if !ok {
		t.Fatalf("%s did not start:\n%s", args[0], log)
	}
	return rest
}

// lastLine is the id a creating verb prints alone on its last line.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func decodeJSON[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%v in:\n%s", err, s)
	}
	return v
}

// TestServiceCLI runs the whole flow: an administrator created offline, a
// server, an owner and users each with their own client state, and checks
// the remote prediction against predict --local.
func TestServiceCLI(t *testing.T) { clustertest.InModes(t, testServiceCLI) }

func testServiceCLI(t *testing.T, mode string) {
	data := t.TempDir()
	admin, url := serveWithAdmin(t, data, mode)
	owner, user, other := newParty(t, url), newParty(t, url), newParty(t, url)

	owner.ok("owner-password\n", "register", "--username", "olivia", "--role", "owner", "--password-stdin")
	user.ok("user-password\n", "register", "--username", "ulrich", "--role", "user", "--password-stdin")
	other.ok("other-password\n", "register", "--username", "otto", "--role", "user", "--password-stdin")
	mustFail(t, user.run("user-password\n", "login", "--username", "ulrich", "--password-stdin"), 1, "pending approval")

	admin.ok("root-password\n", "login", "--username", "root", "--password-stdin")
	pending := decodeJSON[[]fheserve.Account](t, admin.ok("", "admin", "pending", "--json"))
	if len(pending) != 3 {
		t.Fatalf("%d pending accounts, want 3", len(pending))
	}
	for _, u := range []string{"olivia", "ulrich", "otto"} {
		admin.ok("", "admin", "approve", u)
	}
	mustFail(t, user.run("wrong-password\n", "login", "--username", "ulrich", "--password-stdin"), 1, "wrong username or password")
	for _, p := range []struct {
		party    *party
		name, pw string
	}{{owner, "olivia", "owner-password"}, {user, "ulrich", "user-password"}, {other, "otto", "other-password"}} {
		p.party.ok(p.pw+"\n", "login", "--username", p.name, "--password-stdin")
	}

	// The owner deploys a model for ulrich only, without calibration data:
	// deploy warns.
	r := owner.run("", "model", "deploy", "--name", "mlp_square", "--file", fixture("mlp_square.onnx"), "--allow", "ulrich")
	mustSucceed(t, r)
	if !strings.Contains(r.stderr, "fheserve: warning: deployed without --calibration") {
		t.Errorf("deploy without calibration data does not warn:\n%s", r.stderr)
	}
	modelID := lastLine(r.stdout)
	if !strings.HasPrefix(modelID, "mdl_") {
		t.Fatalf("model deploy printed %q last, not a model id", modelID)
	}
	mustFail(t, owner.run("", "model", "deploy", "--name", "bad", "--file", fixture("maxpool.onnx")), 2, "MaxPool", "AveragePool")

	// ulrich sees it, creates keys and predicts; otto may not.
	models := decodeJSON[[]fheserve.Model](t, user.ok("", "model", "list", "--json"))
	if len(models) != 1 || models[0].ID != modelID {
		t.Fatalf("ulrich sees %v", models)
	}
	mustFail(t, other.run("", "keys", "create", "--model", modelID), 1, "not allowed to use model")
	// The owner opens it to otto too, then closes it again.
	owner.ok("", "model", "access", modelID, "--allow", "ulrich,otto")
	if got := other.ok("", "model", "list"); !strings.Contains(got, modelID) {
		t.Fatalf("otto, once allowed, does not see the model:\n%s", got)
	}
	owner.ok("", "model", "access", modelID, "--allow", "ulrich")
	mustFail(t, other.run("", "keys", "create", "--model", modelID), 1, "not allowed to use model")
	mustFail(t, user.run("", "model", "access", modelID, "--everyone"), 1, "only a model owner may do this")
	keyID := lastLine(user.ok("", "keys", "create", "--model", modelID))
	st, err := os.Stat(filepath.Join(user.home, "keys", keyID+".secret"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("secret key file mode %v, want 0600", st.Mode().Perm())
	}
	dir := t.TempDir()
	remote, localOut := filepath.Join(dir, "remote.npy"), filepath.Join(dir, "local.npy")
	user.ok("", "predict", "--model", modelID, "--input", fixture("mlp_square.x.npy"), "--output", remote)
	user.ok("", "predict", "--local", "--model", fixture("mlp_square.onnx"), "--input", fixture("mlp_square.x.npy"), "--output", localOut)

	show := decodeJSON[struct{ Plan plan.Plan }](t, user.ok("", "model", "show", modelID, "--json"))
	got, want, worst := remoteLocalDiff(t, remote, localOut)
	if tol := show.Plan.Precision.OutputError; worst > tol {
		t.Fatalf("max |remote - local| = %.3g, above the plan's precision %.3g", worst, tol)
	}
	t.Logf("max |remote - local| = %.2e (precision %.2e)", worst, show.Plan.Precision.OutputError)

	// The owner sees usage; the user their own; otto none.
	usage := decodeJSON[fheserve.Usage](t, owner.ok("", "usage", "--model", modelID, "--json"))
	calls := (got.Shape[0] + show.Plan.BatchSize - 1) / show.Plan.BatchSize
	if usage.Requests != calls || usage.Samples != got.Shape[0] || usage.ByUser[0].Key != "ulrich" {
		t.Fatalf("usage %+v", usage)
	}
	if out := user.ok("", "usage", "--model", modelID); !strings.Contains(out, fmt.Sprintf("%d requests, 0 failed", calls)) ||
		!strings.Contains(out, "quota: no quota set") {
		t.Errorf("the user's usage:\n%s", out)
	}
	mustFail(t, other.run("", "usage", "--model", modelID), 1, "not allowed to use model")

	// model show finds a model by name as well as by id.
	byName := decodeJSON[struct{ Model fheserve.Model }](t, user.ok("", "model", "show", "mlp_square", "--json"))
	if byName.Model.ID != modelID {
		t.Errorf("model show mlp_square shows %s, want %s", byName.Model.ID, modelID)
	}
	mustFail(t, user.run("", "model", "show", "no_such_model"), 2, `no model with the id or name "no_such_model"`)

	// Under a rate limit of bursts of 2 samples, a prediction of 4 paces
	// itself instead of failing, and --output - writes the .npy to
	// standard output, the summary to standard error.
	owner.ok("", "model", "limits", modelID, "--rate", "600", "--burst", "2")
	r = user.run("", "predict", "--model", modelID, "--input", fixture("mlp_square.x.npy"), "--output", "-")
	mustSucceed(t, r)
	piped, err := npy.Read(strings.NewReader(r.stdout), 1<<20)
	if err != nil {
		t.Fatalf("predict --output - wrote no .npy to standard output: %v", err)
	}
	if fmt.Sprint(piped.Shape) != fmt.Sprint(want.Shape) || !strings.Contains(r.stderr, "wrote standard output") {
		t.Fatalf("predict --output -: shape %v, want %v; standard error:\n%s", piped.Shape, want.Shape, r.stderr)
	}
	for i := range want.Data {
		if d := math.Abs(piped.Data[i] - want.Data[i]); d > show.Plan.Precision.OutputError {
			t.Fatalf("predict --output -: output %d differs from predict --local by %.3g", i, d)
		}
	}
	// A daily quota with 2 samples left (ulrich predicted 8 today): a
	// prediction of 4 in jobs of 2 (the bursts; a tiled plan would take
	// all 4 in one job, refused whole) stops after 2, writes those and
	// says so. (Near midnight UTC the quota would be waited for.)
	if now := time.Now().UTC(); now.Add(sdk.DefaultMaxWait+time.Minute).Day() == now.Day() {
		owner.ok("", "model", "limits", modelID, "--daily", "10", "--rate", "600", "--burst", "2")
		partial := filepath.Join(dir, "partial.npy")
		mustFail(t, user.run("", "predict", "--model", modelID, "--input", fixture("mlp_square.x.npy"), "--output", partial),
			1, "predicted 2 of 4 samples", "daily quota", partial+" holds the predictions of the first 2 samples")
		if got, err := npy.ReadFile(partial); err != nil || fmt.Sprint(got.Shape) != "[2 4]" {
			t.Fatalf("the predictions written after the quota: %v, %v", got, err)
		}
	}
	owner.ok("", "model", "limits", modelID)

	// The user and the owner check the audit log from outside, the
	// operator the data directory while the server runs.
	for _, p := range []*party{user, owner} {
		out := p.ok("", "audit", "verify", "--server", url)
		if !strings.Contains(out, "records are in it") || strings.Contains(out, " 0 of your records") {
			t.Errorf("audit verify --server:\n%s", out)
		}
	}
	admin.ok("", "audit", "verify", "--data-dir", data)
	if out := admin.ok("", "audit", "log", "--data-dir", data, "--object", "keyset:"+keyID); strings.Count(out, "keyset.upload") != 1 {
		t.Errorf("audit log --data-dir of key set %s, want its upload once:\n%s", keyID, out)
	}

	// Revoked keys are gone here and on the server.
	user.ok("", "keys", "revoke", keyID)
	keys := decodeJSON[[]fheserve.KeySet](t, user.ok("", "keys", "list", "--json"))
	if len(keys) != 1 || keys[0].Status != fheserve.KeySetRevoked {
		t.Fatalf("keys after revoke: %+v", keys)
	}
	mustFail(t, user.run("", "predict", "--model", modelID, "--input", fixture("mlp_square.x.npy"), "--output", remote), 2, "no keys for model")

	// A model deployed with compile settings: model show prints the
	// privacy level reached; an input far outside the calibration data
	// comes back with a warning.
	reluID := lastLine(owner.ok("", "model", "deploy", "--name", "relu", "--file", fixture("relu.onnx"), "--calibration", fixture("relu.calib.npy"),
		"--allow", "ulrich", "--privacy-bits", "20", "--query-budget", "1000", "--degree", "5", "--fit", "least-squares"))
	out := user.ok("", "model", "show", reluID)
	for _, want := range []string{"Privacy of the weights", "circuit privacy", "bits over 1,000 samples", "approximation output error", "least-squares  5"} {
		if !strings.Contains(out, want) {
			t.Errorf("model show lacks %q:\n%s", want, out)
		}
	}
	user.ok("", "keys", "create", "--model", reluID)
	x, err := npy.ReadFile(fixture("relu.x.npy"))
	if err != nil {
		t.Fatal(err)
	}
	in := x.Size() / x.Shape[0]
	far := &npy.Array{Shape: []int{2, in}, Data: append([]float64(nil), x.Data[:2*in]...)}
	for i := in; i < 2*in; i++ {
		far.Data[i] *= 10
	}
	farPath := filepath.Join(dir, "far.npy")
	if err := npy.WriteFile(farPath, far); err != nil {
		t.Fatal(err)
	}
	r = user.run("", "predict", "--model", reluID, "--input", farPath, "--output", filepath.Join(dir, "far.y.npy"), "--json")
	mustSucceed(t, r)
	rep := decodeJSON[remoteReport](t, r.stdout)
	// With tiles both samples share a call, and an overflow of the far
	// one may spoil the near one too.
	if oob := fmt.Sprint(rep.OutOfBound); oob != "[1]" && oob != "[0 1]" {
		t.Errorf("out of bound %v, want [1] (or [0 1] in one call)", rep.OutOfBound)
	}
	// The SDK's statistics: the server's time fits in the total.
	if tm := rep.TimesMS; tm.Server <= 0 || tm.Evaluate <= 0 || tm.Server > tm.Total || len(rep.Jobs) < 1 || len(rep.Jobs) > 2 || rep.UploadBytes <= 0 || rep.ResultBytes <= 0 {
		t.Errorf("predict --json: times %+v, jobs %v, sent %d, received %d", tm, rep.Jobs, rep.UploadBytes, rep.ResultBytes)
	}
	if !strings.Contains(r.stderr, "fheserve: warning: 1 of 2 samples (sample 1)") && !strings.Contains(r.stderr, "fheserve: warning: 2 of 2 samples (samples 0, 1)") || !strings.Contains(r.stderr, "left the calibrated interval") {
		t.Errorf("predict does not warn about the far sample:\n%s", r.stderr)
	}

	owner.ok("", "model", "retire", modelID)
	mustFail(t, user.run("", "keys", "create", "--model", modelID), 1, "retired")
	user.ok("", "logout")
	mustFail(t, user.run("", "model", "list"), 1, "not logged in")
}

// TestRestart kills the server with SIGKILL while one job runs and another
// waits in the queue, restarts it on the same data directory, and gets
// both results.
func TestRestart(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	admin := newParty(t, "")
	admin.ok("root-password\n", "admin", "init", "--data-dir", data, "--username", "root", "--password-stdin")
	// One job at a time on one thread, so that the second job waits.
	s := startServer(t, data, "--workers", "1", "--eval-threads", "1")
	w := newRestartWorld(ctx, t, s.url, "cnn_square")

	a := w.submit(ctx, t, 0)
	b := w.submit(ctx, t, 1)
	deadline := time.Now().Add(30 * time.Second)
	for {
		j, err := w.user.API.Job(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		if j.Status == fheserve.JobRunning {
			break
		}
		if j.Status != fheserve.JobQueued || time.Now().After(deadline) {
			t.Fatalf("job %s is %s before it was seen running", a, j.Status)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if j, err := w.user.API.Job(ctx, b); err != nil || j.Status != fheserve.JobQueued || j.QueuePosition == nil || *j.QueuePosition != 0 {
		t.Fatalf("job %s is not next in the queue: %+v, %v", b, j, err)
	}
	s.kill()
	t.Logf("killed the server with job %s running and job %s queued", a, b)

	s = startServer(t, data, "--workers", "1", "--eval-threads", "1")
	w.reconnect(s.url)
	for i, id := range []string{a, b} {
		j, err := w.user.Wait(ctx, id, nil)
		if err != nil {
			t.Fatalf("job %s after the restart: %v\nserver log:\n%s", id, err, s.log)
		}
		if id == a && j.Attempts < 2 {
			t.Errorf("job %s ran %d times, want 2 (killed while running)", id, j.Attempts)
		}
		w.check(ctx, t, id, i)
	}
}

// restartWorld is an owner's model and a user's keys on a server, through
// the SDK. The model is a fixture of testdata/onnx without activations,
// so that the plaintext model is the oracle: mlp_square's keys are 8 MB
// and a sample evaluates in a fraction of a second; cnn_square's 23 MB,
// about twice as long (the bundled cnn had 176 MB of keys, 7 s of key
// generation and over a second per sample).
type restartWorld struct {
	user *sdk.Client
	keys *sdk.Keys
	x    []float64 // the fixture's samples
	want []float64 // the plaintext model's outputs for them
}

func newRestartWorld(ctx context.Context, t *testing.T, url, name string) *restartWorld {
	t.Helper()
	step := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	onnxBytes, err := os.ReadFile(fixture(name + ".onnx"))
	step(err)
	g, err := onnx.Import(onnxBytes, onnx.Options{})
	step(err)
	x, err := npy.ReadFile(fixture(name + ".x.npy"))
	step(err)
	calib, err := os.ReadFile(fixture(name + ".x.npy"))
	step(err)
	admin, owner, user := sdk.New(url), sdk.New(url), sdk.New(url)
	_, err = owner.Register(ctx, "olivia", "owner-password", fheserve.RoleOwner)
	step(err)
	_, err = user.Register(ctx, "ulrich", "user-password", fheserve.RoleUser)
	step(err)
	_, err = admin.Login(ctx, "root", "root-password")
	step(err)
	for _, u := range []string{"olivia", "ulrich"} {
		_, err = admin.Approve(ctx, u)
		step(err)
	}
	_, err = owner.Login(ctx, "olivia", "owner-password")
	step(err)
	_, err = user.Login(ctx, "ulrich", "user-password")
	step(err)
	m, err := owner.Deploy(ctx, &fheserve.DeployRequest{Name: name, ONNX: onnxBytes, Calibration: calib})
	step(err)
	keys, err := user.GenerateKeys(ctx, m.ID)
	step(err)
	_, err = user.UploadKeys(ctx, keys, "")
	step(err)
	want, err := g.EvalBatch(x.Data, x.Shape[0], nil)
	step(err)
	return &restartWorld{user: user, keys: keys, x: x.Data, want: want}
}

func (rw *restartWorld) reconnect(url string) { rw.user.API.URL = url }

// submit encrypts sample i and submits it.
func (rw *restartWorld) submit(ctx context.Context, t *testing.T, i int) string {
	t.Helper()
	in := rw.keys.Plan.InputSize()
	ct, err := rw.keys.Encrypt(rw.x[i*in:(i+1)*in], 1)
	if err != nil {
		t.Fatal(err)
	}
	j, err := rw.user.Submit(ctx, rw.keys, ct, 1)
	if err != nil {
		t.Fatal(err)
	}
	return j.ID
}

// check fetches job id's result and compares it with sample i's plaintext output.
func (rw *restartWorld) check(ctx context.Context, t *testing.T, id string, i int) {
	t.Helper()
	got, err := rw.user.Fetch(ctx, rw.keys, id, 1)
	if err != nil {
		t.Fatal(err)
	}
	p := rw.keys.Plan
	size := p.OutputSize()
	tol := p.Precision.OutputError + p.Precision.ApproximationError
	for k, v := range got {
		if d := math.Abs(v - rw.want[i*size+k]); d > tol {
			t.Fatalf("job %s output %d differs from the plaintext model by %.3g, above %.3g", id, k, d, tol)
		}
	}
}

// remoteLocalDiff reads the outputs a remote and a local predict wrote,
// checks they have the same shape and returns them with the largest
// absolute difference between the two.
func remoteLocalDiff(t *testing.T, remote, local string) (got, want *npy.Array, worst float64) {
	t.Helper()
	var err error
	if got, err = npy.ReadFile(remote); err != nil {
		t.Fatal(err)
	}
	want, err = npy.ReadFile(local)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got.Shape) != fmt.Sprint(want.Shape) {
		t.Fatalf("remote output shape %v, local %v", got.Shape, want.Shape)
	}
	for i := range want.Data {
		worst = math.Max(worst, math.Abs(got.Data[i]-want.Data[i]))
	}
	return got, want, worst
}
