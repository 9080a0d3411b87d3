package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/app"
	"github.com/fheserve/fheserve/internal/clustertest"
	"github.com/fheserve/fheserve/natsjs"
	"github.com/fheserve/fheserve/natsjs/natstest"
	"github.com/fheserve/fheserve/nn"
	"github.com/fheserve/fheserve/nn/onnx"
	"github.com/fheserve/fheserve/node"
	"github.com/fheserve/fheserve/npy"
	"github.com/fheserve/fheserve/sdk"
)

// lastNATS is the NATS server newCluster started last, for its statistics.
var lastNATS *natstest.Server

// cluster is a cluster (clustertest) with an API node (with no workers of
// its own unless its Config says so), and the accounts of a model owner
// and a user on it.
type cluster struct {
	*clustertest.Cluster
	api         *node.Node
	owner, user *sdk.Client
}

func newCluster(t *testing.T, ctx context.Context, apiCfg app.Config) *cluster {
	return newClusterWith(t, ctx, apiCfg, func(*node.Engines) {})
}

// newClusterWith is newCluster on the Engines that tweak changes.
func newClusterWith(t *testing.T, ctx context.Context, apiCfg app.Config, tweak func(*node.Engines)) *cluster {
	c := &cluster{Cluster: clustertest.New(t)}
	lastNATS = c.NATS
	tweak(&c.Engines)
	c.api = c.API(t, apiCfg)
	must(c.api.App.InitAdmin(ctx, "root", "root-password"))(t)
	c.owner, c.user = sdk.New(c.api.URL()), sdk.New(c.api.URL())
	admin := sdk.New(c.api.URL())
	must(c.owner.Register(ctx, "olivia", "owner-password", fheserve.RoleOwner))(t)
	must(c.user.Register(ctx, "ulrich", "user-password", fheserve.RoleUser))(t)
	must(admin.Login(ctx, "root", "root-password"))(t)
	for _, p := range must(admin.Pending(ctx))(t) {
		must(admin.Approve(ctx, p.Username))(t)
	}
	must(c.owner.Login(ctx, "olivia", "owner-password"))(t)
	must(c.user.Login(ctx, "ulrich", "user-password"))(t)
	return c
}

// worker starts a separate worker evaluating one job at a time on one
// thread (clustertest's Worker, with its kill).
func (c *cluster) worker(t *testing.T, ctx context.Context, cfg app.Config) (a *app.App, kill func()) {
	cfg.Workers, cfg.EvalThreads = 1, 1
	return c.Worker(t, cfg)
}

// deploy deploys a model of the repository's files and makes the user's
// keys for it; it returns the keys and the model's graph.
func (c *cluster) deploy(t *testing.T, ctx context.Context, name, onnxFile, calibFile string) (*sdk.Keys, *nn.Graph) {
	data := must(os.ReadFile(onnxFile))(t)
	req := &fheserve.DeployRequest{Name: name, ONNX: data, Allow: []string{"ulrich"}}
	if calibFile != "" {
		req.Calibration = must(os.ReadFile(calibFile))(t)
	}
	m := must(c.owner.Deploy(ctx, req))(t)
	keys := must(c.user.GenerateKeys(ctx, m.ID))(t)
	must(c.user.UploadKeys(ctx, keys, ""))(t)
	return keys, must(onnx.Import(data, onnx.Options{}))(t)
}

// checkOutputs compares decrypted outputs with the plaintext reference
// evaluator's, within the plan's stated precision.
func checkOutputs(t *testing.T, keys *sdk.Keys, g *nn.Graph, x, got []float64, n int) {
	t.Helper()
	want := must(g.EvalBatch(x, n, nil))(t)
	if len(got) != len(want) {
		t.Fatalf("%d outputs, want %d", len(got), len(want))
	}
	for i := range want {
		if d := math.Abs(got[i] - want[i]); d > keys.Plan.Precision.OutputError {
			t.Fatalf("output %d: |encrypted - plaintext| = %.3g, above the plan's precision %.3g", i, d, keys.Plan.Precision.OutputError)
		}
	}
}

// TestWorkersOnNATS runs an API node with no workers and two separate
// workers, each with its own connections, on PostgreSQL and NATS: the
// user's predictions through the SDK on the bundled logistic regression
// are evaluated by the workers and decrypt to what the plaintext model
// computes.
func TestWorkersOnNATS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := newCluster(t, ctx, app.Config{})
	var mu sync.Mutex
	ran := map[int]int{}
	var ops []http.Handler
	for i := range 2 {
		w, _ := c.worker(t, ctx, app.Config{})
		ops = append(ops, node.WorkerHandler(w))
		w.OnJobFinished(func(j *fheserve.Job) {
			mu.Lock()
			defer mu.Unlock()
			ran[i]++
		})
	}
	keys, g := c.deploy(t, ctx, "logreg", "../bundled/logreg.onnx", "../bundled/logreg.calib.npy")
	x := must(npy.ReadFile("../bundled/logreg.x.npy"))(t)
	n := 12
	in := x.Data[:n*keys.Plan.InputSize()]
	got := must(c.user.Predict(ctx, keys, in, n, nil))(t)
	checkOutputs(t, keys, g, in, got, n)
	// A worker counts a job once the store has its end, which the client
	// may see first.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		mu.Lock()
		all := ran[0]+ran[1] >= n
		mu.Unlock()
		if all {
			break
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if ran[0]+ran[1] != n {
		t.Errorf("the workers finished %d + %d jobs, want %d", ran[0], ran[1], n)
	}
	t.Logf("jobs per worker: %d and %d", ran[0], ran[1])

	// Each worker's metrics count its jobs and its key cache's use.
	var jobs, lookups int
	for i, h := range ops {
		metrics := get(t, h, "/metrics", http.StatusOK)
		for _, name := range []string{"fheserve_worker_jobs_finished_total{", "fheserve_worker_key_cache_hits_total", "fheserve_worker_key_cache_misses_total"} {
			sum := metricSum(metrics, name)
			if name[len(name)-1] == '{' {
				if sum != ran[i] {
					t.Errorf("worker %d: %s counts %d jobs, it finished %d", i, name, sum, ran[i])
				}
				jobs += sum
			} else {
				lookups += sum
			}
		}
		get(t, h, "/readyz", http.StatusOK)
	}
	if jobs != n || lookups != n {
		t.Errorf("the workers' metrics count %d jobs and %d key look-ups, want %d each", jobs, lookups, n)
	}

	// Readiness reflects NATS.
	if err := c.api.App.Ready(ctx); err != nil {
		t.Fatalf("the API node is not ready: %v", err)
	}
	lastNATS.Shutdown()
	get(t, ops[0], "/readyz", http.StatusServiceUnavailable)
	rctx, rcancel := context.WithTimeout(ctx, time.Second)
	defer rcancel()
	if err := c.api.App.Ready(rctx); fheserve.ErrorCode(err) != fheserve.EUNAVAILABLE || !strings.Contains(err.Error(), "does not answer") {
		t.Fatalf("with NATS stopped, the API node's readiness says %v", err)
	} else {
		t.Logf("with NATS stopped: %v", err)
	}
}

// get serves a GET of path by h and checks its status.
func get(t *testing.T, h http.Handler, path string, want int) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodGet, path, nil))
	if rec.Code != want {
		t.Fatalf("GET %s: %d %s, want %d", path, rec.Code, rec.Body, want)
	}
	return rec.Body.String()
}

// metricSum sums the values of the samples whose line starts with name
// in a Prometheus text exposition.
func metricSum(text, name string) int {
	sum := 0.0
	for line := range strings.Lines(text) {
		if strings.HasPrefix(line, name) {
			f := strings.Fields(line)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += v
		}
	}
	return int(sum)
}

// runningJob waits until the store shows job id running its attempt-th
// run, with at least one step done: its worker is mid-evaluation.
func runningJob(t *testing.T, ctx context.Context, user *sdk.Client, id string, attempt int) {
	t.Helper()
	for {
		j := must(user.API.Job(ctx, id))(t)
		if j.Status == fheserve.JobRunning && j.Attempts == attempt && j.Done >= 1 {
			return
		}
		if j.Status != fheserve.JobQueued && j.Status != fheserve.JobRunning {
			t.Fatalf("job %s is %s before its worker was killed", id, j.Status)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("job %s never ran its attempt %d", id, attempt)
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// TestWorkerKilled kills a worker mid-evaluation (its queue connection
// closed, nothing acknowledged or given back): another worker takes the
// job once the lease lapses and finishes it with the right result. A job
// interrupted MaxAttempts times fails with that cause.
func TestWorkerKilled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := newCluster(t, ctx, app.Config{})
	keys, g := c.deploy(t, ctx, "mlp", "../testdata/onnx/mlp_square.onnx", "")
	x := must(npy.ReadFile("../testdata/onnx/mlp_square.x.npy"))(t)
	in := x.Data[:keys.Plan.InputSize()]
	submit := func() string {
		ct := must(keys.Encrypt(in, 1))(t)
		return must(c.user.Submit(ctx, keys, ct, 1))(t).ID
	}
	cfg := app.Config{MaxAttempts: 2}

	t.Run("finished by another", func(t *testing.T) {
		id := submit()
		_, kill := c.worker(t, ctx, cfg)
		runningJob(t, ctx, c.user, id, 1)
		kill()
		c.worker(t, ctx, cfg)
		j := must(c.user.Wait(ctx, id, nil))(t)
		if j.Status != fheserve.JobDone || j.Attempts != 2 {
			t.Fatalf("job %s after a killed worker: %s in %d attempts (%s), want done in 2", id, j.Status, j.Attempts, j.Error)
		}
		checkOutputs(t, keys, g, in, must(c.user.Fetch(ctx, keys, id, 1))(t), 1)
	})
	t.Run("interrupted too often", func(t *testing.T) {
		id := submit()
		for attempt := 1; attempt <= cfg.MaxAttempts; attempt++ {
			_, kill := c.worker(t, ctx, cfg)
			runningJob(t, ctx, c.user, id, attempt)
			kill()
		}
		c.worker(t, ctx, cfg)
		j, err := c.user.Wait(ctx, id, nil)
		if err == nil && j.Status == fheserve.JobDone {
			t.Fatalf("job %s interrupted %d times ran again", id, cfg.MaxAttempts)
		}
		j = must(c.user.API.Job(ctx, id))(t)
		if j.Status != fheserve.JobFailed || !strings.Contains(j.Error, "interrupted 2 times") {
			t.Fatalf("job %s interrupted twice: %s (%q), want failed for its interruptions", id, j.Status, j.Error)
		}
		t.Logf("the job failed: %s", j.Error)
	})
}

// workerProcessEnv, when set in the environment of this test binary,
// makes it a worker process instead: StartWorker with the Engines JSON of
// the variable's value in the data directory of workerDirEnv, until it
// is killed (TestWorkerSIGKILL).
const (
	workerProcessEnv = "FHESERVE_NODE_TEST_WORKER"
	workerDirEnv     = "FHESERVE_NODE_TEST_WORKER_DIR"
	// workerCacheEnv, if set, bounds the worker's evaluator cache (bytes).
	workerCacheEnv = "FHESERVE_NODE_TEST_WORKER_CACHE"
)

func init() {
	spec := os.Getenv(workerProcessEnv)
	if spec == "" {
		return
	}
	var e node.Engines
	if err := json.Unmarshal([]byte(spec), &e); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	cfg := app.Config{Workers: 1, EvalThreads: 1}
	if v := os.Getenv(workerCacheEnv); v != "" {
		var err error
		if cfg.EvaluatorCacheBytes, err = strconv.ParseInt(v, 10, 64); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	a, err := node.StartWorker(context.Background(), os.Getenv(workerDirEnv), e, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	// Its metrics, for the throughput test.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	go http.Serve(ln, node.WorkerHandler(a))
	fmt.Printf("worker running, metrics on http://%s/metrics\n", ln.Addr())
	select {} // until killed
}

// workerProcess starts a worker in its own process (this test binary,
// see init), one job at a time on one evaluation thread; it is killed
// when the test ends. out collects what it prints.
func (c *cluster) workerProcess(t *testing.T) (*exec.Cmd, *syncBuffer) {
	spec := must(json.Marshal(c.Engines))(t)
	cmd := exec.Command(must(os.Executable())(t), "-test.run=^$")
	cmd.Env = append(os.Environ(), workerProcessEnv+"="+string(spec), workerDirEnv+"="+c.Dir)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, out
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
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

// TestWorkerSIGKILL runs a worker in its own process (this test binary),
// kills it with SIGKILL mid-evaluation, and checks that a worker started
// afterwards finishes the job with the right result. -long only.
func TestWorkerSIGKILL(t *testing.T) {
	if !*long {
		t.Skip("run with -long")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := newCluster(t, ctx, app.Config{})
	keys, g := c.deploy(t, ctx, "mlp", "../testdata/onnx/mlp_square.onnx", "")
	x := must(npy.ReadFile("../testdata/onnx/mlp_square.x.npy"))(t)
	in := x.Data[:keys.Plan.InputSize()]
	id := must(c.user.Submit(ctx, keys, must(keys.Encrypt(in, 1))(t), 1))(t).ID

	cmd, out := c.workerProcess(t)
	runningJob(t, ctx, c.user, id, 1)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	t.Logf("worker process killed mid-evaluation; its output:\n%s", out.String())

	c.worker(t, ctx, app.Config{})
	j := must(c.user.Wait(ctx, id, nil))(t)
	if j.Status != fheserve.JobDone || j.Attempts != 2 {
		t.Fatalf("job %s after a SIGKILLed worker: %s in %d attempts (%s), want done in 2", id, j.Status, j.Attempts, j.Error)
	}
	checkOutputs(t, keys, g, in, must(c.user.Fetch(ctx, keys, id, 1))(t), 1)
}

// TestWorkerNATSRestart stops NATS for two seconds while a worker
// evaluates a job: the worker cannot store the result, renew its lease or
// acknowledge, and the job is neither lost nor failed: it ends done, with
// the right result, once NATS is back.
func TestWorkerNATSRestart(t *testing.T) {
	// The bound is generous: under another job's load a worker may take
	// a minute to start the job.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := newCluster(t, ctx, app.Config{})
	keys, g := c.deploy(t, ctx, "mlp", "../testdata/onnx/mlp_square.onnx", "")
	x := must(npy.ReadFile("../testdata/onnx/mlp_square.x.npy"))(t)
	in := x.Data[:keys.Plan.InputSize()]
	id := must(c.user.Submit(ctx, keys, must(keys.Encrypt(in, 1))(t), 1))(t).ID
	c.worker(t, ctx, app.Config{})
	runningJob(t, ctx, c.user, id, 1)
	lastNATS.Restart(t, 2*time.Second)
	var j *fheserve.Job
	for {
		j = must(c.user.API.Job(ctx, id))(t)
		if j.Terminal() {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("job %s is still %s after NATS came back", id, j.Status)
		case <-time.After(50 * time.Millisecond):
		}
	}
	if j.Status != fheserve.JobDone {
		t.Fatalf("job %s across a NATS restart: %s after %d attempts (%s)", id, j.Status, j.Attempts, j.Error)
	}
	t.Logf("job %s done in %d attempts across a NATS restart", id, j.Attempts)
	checkOutputs(t, keys, g, in, must(c.user.Fetch(ctx, keys, id, 1))(t), 1)
}

// TestServeOnNATSQueue runs one API node with its own worker on the NATS
// queue (serve --queue without --workers 0): its worker leases the jobs,
// and the predictions decrypt to the plaintext model's outputs.
func TestServeOnNATSQueue(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := newCluster(t, ctx, app.Config{Workers: 1})
	keys, g := c.deploy(t, ctx, "logreg", "../bundled/logreg.onnx", "../bundled/logreg.calib.npy")
	x := must(npy.ReadFile("../bundled/logreg.x.npy"))(t)
	n := 3
	in := x.Data[:n*keys.Plan.InputSize()]
	checkOutputs(t, keys, g, in, must(c.user.Predict(ctx, keys, in, n, nil))(t), n)
	if h, m := c.api.App.KeyCacheStats(); h+m != int64(n) {
		t.Errorf("the API node's worker looked up keys %d times, want %d (one per job)", h+m, n)
	}
}

// TestWorkerAffinity queues the jobs of 4 users (a key set each, in
// distinct shards of the queue), round robin, then starts 2 workers
// whose evaluator caches hold one key set each: preferring the jobs of
// the key set they hold, they read fewer key sets than workers taking
// the jobs first in, first out (the queue without shards), and every
// job, those of the key sets no worker held when they were queued
// included, ends done with the plaintext model's result.
func TestWorkerAffinity(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var hits, misses [2]int64
	for i, noAffinity := range []bool{true, false} {
		hits[i], misses[i] = affinityRun(t, ctx, noAffinity)
		t.Logf("without shards %v: key cache %d hits, %d misses", noAffinity, hits[i], misses[i])
	}
	if hits[1] <= hits[0] {
		t.Fatalf("key cache hits: %d with affinity, %d without; want more with", hits[1], hits[0])
	}
}

func affinityRun(t *testing.T, ctx context.Context, noAffinity bool) (hits, misses int64) {
	const users, perUser = 4, 6
	c := newClusterWith(t, ctx, app.Config{}, func(e *node.Engines) { node.SetNoAffinity(e, noAffinity) })
	clients := c.users(t, ctx, users)
	sets, g := c.keySets(t, ctx, clients, "logreg", "../bundled/logreg.onnx", "../bundled/logreg.calib.npy")
	// Distinct shards: a key set sharing its shard with another is
	// replaced.
	nc, js := must2(natsjs.Dial(c.Engines.Queue, t.Name()))(t)
	defer nc.Close()
	q := must(natsjs.OpenQueue(ctx, js, natsjs.QueueConfig{}))(t)
	used := map[int]bool{}
	for i, k := range sets {
		for used[q.Shard(k.KeySetID)] {
			old := k.KeySetID
			k = must(clients[i].GenerateKeys(ctx, k.ModelID))(t)
			must(clients[i].UploadKeys(ctx, k, old))(t)
			sets[i] = k
		}
		used[q.Shard(k.KeySetID)] = true
	}
	x := must(npy.ReadFile("../bundled/logreg.x.npy"))(t)
	size := sets[0].Plan.InputSize()
	type job struct {
		id, user int
		jobID    string
	}
	var jobs []job
	for n := range users * perUser {
		u := n % users
		ct := must(sets[u].Encrypt(x.Data[n*size:(n+1)*size], 1))(t)
		jobs = append(jobs, job{n, u, must(clients[u].Submit(ctx, sets[u], ct, 1))(t).ID})
	}
	var workers []*app.App
	for range 2 {
		w, _ := c.worker(t, ctx, app.Config{EvaluatorCacheBytes: int64(2 * sets[0].EvalKeysSize())})
		workers = append(workers, w)
	}
	for _, j := range jobs {
		done := must(clients[j.user].Wait(ctx, j.jobID, nil))(t)
		if done.Status != fheserve.JobDone {
			t.Fatalf("job %s is %s: %s", j.jobID, done.Status, done.Error)
		}
		got := must(clients[j.user].Fetch(ctx, sets[j.user], j.jobID, 1))(t)
		checkOutputs(t, sets[j.user], g, x.Data[j.id*size:(j.id+1)*size], got, 1)
	}
	for _, w := range workers {
		h, m := w.KeyCacheStats()
		hits, misses = hits+h, misses+m
		w.Close()
	}
	return hits, misses
}
