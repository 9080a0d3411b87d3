package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/bundled"
	"github.com/fheserve/fheserve/npy"
	"github.com/fheserve/fheserve/plan"
	"github.com/fheserve/fheserve/sdk"
)

var (
	loadTime    = flag.Duration("loadtime", 0, "TestLoad's duration (default 6s, 3m with -long)")
	loadClients = flag.Int("loadclients", 50, "TestLoad's concurrent clients")
)

// TestLoad's server runs as an operator would run it in a container of
// loadMemLimit: with GOMEMLIMIT set to it, so that it sizes its workers
// and its cache of evaluation keys to fit. Its resident memory must stay
// below loadMaxRSS (GOMEMLIMIT is a soft limit on the Go heap; the rest
// is the runtime, the binary and SQLite's cache).
// With circuit privacy by default the mlp runs on N=2^14 (59 MB of keys,
// 2.6 times what it had at 2^13), so the container is 1 GiB.
const (
	loadMemLimit = "1GiB"
	loadMaxRSS   = 1536 << 20
)

// TestLoad runs a server process on 127.0.0.1 and 50 concurrent clients
// (-loadclients), each its own user account, for 6 seconds (3 minutes
// with -long, or -loadtime), each client at least one round. Each client
// loops over a random mix of logins (a new session, the old one logged
// out), plan fetches (the
// model list and a plan), key uploads (a new key set replacing the
// previous one) and encrypted predictions (encrypt, submit, follow the
// progress stream, fetch, decrypt, compare with the plaintext model). The
// bundled logreg model serves most predictions; every tenth client also
// uses the mlp model (59 MB of keys at N=2^14).
// Refusals with a time to retry (429, or 503 after waiting for an upload
// place) are retried after that time and counted.
//
// It checks: no response with a 5xx status, every acknowledged job done
// with the plaintext model's result within the plan's precision, and the
// server's resident memory (sampled every 100 ms, and its peak VmHWM)
// below loadMaxRSS. It logs per operation the count and the latency
// percentiles, as the client sees them (retries included).
func TestLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	duration := 6 * time.Second
	if *long {
		duration = 3 * time.Minute
	}
	if *loadTime > 0 {
		duration = *loadTime
	}
	nclients := *loadClients

	ctx := context.Background()
	data := t.TempDir()
	admin := newParty(t, "")
	admin.ok("root-password\n", "admin", "init", "--data-dir", data, "--username", "root", "--password-stdin")
	t.Setenv("GOMEMLIMIT", loadMemLimit)
	var args []string
	if addr := os.Getenv("FHESERVE_LOAD_DEBUG"); addr != "" {
		args = append(args, "--debug-addr", addr) // to profile the server under load
	}
	s := startServer(t, data, args...)
	mem := watchMemory(t, s.cmd.Process.Pid)

	// One transport for every client, counting statuses.
	stats := &httpStats{}
	tr := &http.Transport{MaxIdleConnsPerHost: 2 * nclients, MaxConnsPerHost: 4 * nclients}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: &countingTransport{base: tr, stats: stats}}
	newClient := func() *sdk.Client {
		c := sdk.New(s.url)
		c.API.HTTP = hc
		return c
	}

	// Setup: an owner deploys logreg and mlp; the users register and are
	// approved.
	root, owner := newClient(), newClient()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := root.Login(ctx, "root", "root-password")
	must(err)
	_, err = owner.Register(ctx, "olivia", "owner-password", fheserve.RoleOwner)
	must(err)
	_, err = root.Approve(ctx, "olivia")
	must(err)
	_, err = owner.Login(ctx, "olivia", "owner-password")
	must(err)
	models := map[string]*loadTarget{}
	for _, name := range []string{"logreg", "mlp"} {
		w, err := loadWorkload(name, 64)
		must(err)
		onnxBytes, err := bundled.Model(name)
		must(err)
		var calib bytes.Buffer
		size := w.graph.Input.Size()
		must(npy.Write(&calib, &npy.Array{Shape: []int{len(w.calib) / size, size}, Data: w.calib}))
		m, err := owner.Deploy(ctx, &fheserve.DeployRequest{Name: name, ONNX: onnxBytes, Calibration: calib.Bytes()})
		must(err)
		want, err := w.graph.EvalBatch(w.x, w.n, nil)
		must(err)
		// One key pair per model, which every client uploads as its own
		// key set: the server's work is the same, and 5 key generations
		// of the mlp's 25 rotation keys took 7 s of the test's CPU.
		p, err := owner.Plan(ctx, m.ID)
		must(err)
		keys, err := sdk.NewKeys(m.ID, p)
		must(err)
		var eval bytes.Buffer
		must(keys.WriteEvalKeys(&eval))
		secret, err := keys.MarshalSecret()
		must(err)
		models[name] = &loadTarget{id: m.ID, w: w, want: want, plan: p, secret: secret, eval: eval.Bytes()}
	}
	clients := make([]*loadClient, nclients)
	for i := range clients {
		c := &loadClient{id: i, user: "user" + strconv.Itoa(i), password: "password-" + strconv.Itoa(i),
			api: newClient(), rng: rand.New(rand.NewPCG(uint64(i), 7)), heavy: i%10 == 0, stats: stats}
		_, err := c.api.Register(ctx, c.user, c.password, fheserve.RoleUser)
		must(err)
		_, err = root.Approve(ctx, c.user)
		must(err)
		clients[i] = c
	}

	// The run: every client sets up (login, keys), then loops.
	start := time.Now()
	deadline := start.Add(duration)
	var wg sync.WaitGroup
	errs := make(chan error, nclients)
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.run(ctx, models, deadline); err != nil {
				errs <- fmt.Errorf("client %d: %w", c.id, err)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	rss, peak := mem.stop()

	// Every acknowledged job is done, with the right result (checked by
	// the client that submitted it), and the server knows of no other.
	var acked, checked int
	for _, c := range clients {
		acked += c.acked
		checked += c.checked
	}
	if acked != checked {
		t.Errorf("%d jobs acknowledged, %d finished with a checked result", acked, checked)
	}
	jobs, err := root.API.Jobs(ctx)
	must(err)
	byStatus := map[string]int{}
	for _, j := range jobs {
		byStatus[j.Status]++
	}
	if len(jobs) != acked || byStatus[fheserve.JobDone] != acked {
		t.Errorf("the server lists %d jobs (by status %v); the clients had %d acknowledged, all done", len(jobs), byStatus, acked)
	}

	// Report.
	ops := map[string][]time.Duration{}
	for _, c := range clients {
		for op, d := range c.lat {
			ops[op] = append(ops[op], d...)
		}
	}
	total := 0
	var b strings.Builder
	fmt.Fprintf(&b, "%d clients for %s on 127.0.0.1 (server: %s, GOMEMLIMIT=%s)\n", nclients, elapsed.Round(time.Second), s.url, loadMemLimit)
	fmt.Fprintf(&b, "%-16s %8s %10s %10s %10s %10s\n", "operation", "count", "p50", "p90", "p99", "max")
	for _, op := range []string{"login", "plan", "keys.logreg", "keys.mlp", "predict.logreg", "predict.mlp"} {
		ms := make([]float64, len(ops[op]))
		for i, d := range ops[op] {
			ms[i] = float64(d) / float64(time.Millisecond)
		}
		total += len(ms)
		cols := []string{"-", "-", "-", "-"}
		if l := fheserve.LatencyOf(ms); len(ms) > 0 {
			cols = []string{fmtMS(l.P50), fmtMS(l.P90), fmtMS(l.P99), fmtMS(l.Max)}
		}
		fmt.Fprintf(&b, "%-16s %8d %10s %10s %10s %10s\n", op, len(ms), cols[0], cols[1], cols[2], cols[3])
	}
	fmt.Fprintf(&b, "operations %d (%.1f/s); HTTP requests %d, by status %s; retried after 429/503: %d\n",
		total, float64(total)/elapsed.Seconds(), stats.requests.Load(), stats.byStatus(), stats.retries.Load())
	fmt.Fprintf(&b, "jobs acknowledged %d, done and correct %d; server memory: max sampled RSS %.0f MiB, peak (VmHWM) %.0f MiB (bound %d MiB)\n",
		acked, checked, float64(rss)/(1<<20), float64(peak)/(1<<20), loadMaxRSS>>20)
	t.Log("\n" + b.String())
	if path := os.Getenv("FHESERVE_LOAD_REPORT"); path != "" {
		must(os.WriteFile(path, []byte(b.String()), 0o644))
	}

	if n := stats.server5xx.Load(); n > 0 {
		t.Errorf("%d responses with a 5xx status", n)
	}
	if peak > loadMaxRSS {
		t.Errorf("the server's peak resident memory %d MiB is above the bound %d MiB", peak>>20, loadMaxRSS>>20)
	}
	for _, op := range []string{"login", "plan", "keys.logreg", "predict.logreg"} {
		if len(ops[op]) == 0 {
			t.Errorf("no %s operation completed", op)
		}
	}
}

type loadTarget struct {
	id           string
	w            *workload
	want         []float64
	plan         *plan.Plan
	secret, eval []byte // the key pair every client uploads (MarshalSecret's bytes and the upload)
}

// loadClient is one user's client in TestLoad.
type loadClient struct {
	id             int
	user, password string
	api            *sdk.Client
	rng            *rand.Rand
	heavy          bool // also uses the mlp model
	stats          *httpStats

	keys    map[string]*sdk.Keys
	lat     map[string][]time.Duration
	acked   int
	checked int
}

func (c *loadClient) run(ctx context.Context, models map[string]*loadTarget, deadline time.Time) error {
	c.lat = map[string][]time.Duration{}
	c.keys = map[string]*sdk.Keys{}
	if err := c.timed("login", func() error { return c.login(ctx) }); err != nil {
		return err
	}
	names := []string{"logreg"}
	if c.heavy {
		names = append(names, "mlp")
	}
	for _, name := range names {
		if err := c.timed("keys."+name, func() error { return c.upload(ctx, name, models[name]) }); err != nil {
			return err
		}
	}
	// One round at least, whatever the machine's load made of the setup
	// (the rounds' random choices are seeded: each kind of operation runs).
	for round := 0; round == 0 || time.Now().Before(deadline); round++ {
		name := "logreg"
		if c.heavy && c.rng.IntN(3) == 0 {
			name = "mlp"
		}
		var err error
		switch r := c.rng.IntN(100); {
		case r < 10:
			err = c.timed("login", func() error { return c.login(ctx) })
		case r < 35:
			err = c.timed("plan", func() error { return c.plan(ctx, models[name].id) })
		case r < 45:
			err = c.timed("keys."+name, func() error { return c.upload(ctx, name, models[name]) })
		default:
			err = c.timed("predict."+name, func() error { return c.predict(ctx, name, models[name]) })
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (c *loadClient) timed(op string, f func() error) error {
	start := time.Now()
	if err := f(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	c.lat[op] = append(c.lat[op], time.Since(start))
	return nil
}

// retry runs f until it succeeds or fails with an error that does not
// give a time to retry.
func (c *loadClient) retry(f func() error) error {
	for {
		err := f()
		d := fheserve.RetryAfter(err)
		if err == nil || d <= 0 {
			return err
		}
		c.stats.retries.Add(1)
		time.Sleep(d)
	}
}

// login starts a new session and logs the old one out.
func (c *loadClient) login(ctx context.Context) error {
	old := c.api.Token()
	if err := c.retry(func() error { _, err := c.api.Login(ctx, c.user, c.password); return err }); err != nil {
		return err
	}
	if old == "" {
		return nil
	}
	prev := newSDKClientLike(c.api, old)
	return prev.Logout(ctx)
}

func newSDKClientLike(c *sdk.Client, token string) *sdk.Client {
	n := sdk.New(c.API.URL)
	n.API.HTTP = c.API.HTTP
	n.SetToken(token)
	return n
}

func (c *loadClient) plan(ctx context.Context, modelID string) error {
	ms, err := c.api.Models(ctx)
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(ms, func(m *fheserve.Model) bool { return m.ID == modelID }) {
		return fmt.Errorf("model %s is not in the list of %d models", modelID, len(ms))
	}
	p, err := c.api.Plan(ctx, modelID)
	if err != nil {
		return err
	}
	if p.Fingerprint != c.planOf(modelID) {
		return fmt.Errorf("model %s: the plan's fingerprint changed", modelID)
	}
	return nil
}

func (c *loadClient) planOf(modelID string) string {
	for _, k := range c.keys {
		if k.ModelID == modelID {
			return k.Plan.Fingerprint
		}
	}
	return ""
}

// upload uploads the key pair of model name as the client's key set (a
// new one replacing the current one, if any) and keeps the client's keys
// under it.
func (c *loadClient) upload(ctx context.Context, name string, m *loadTarget) error {
	var old string
	if k := c.keys[name]; k != nil {
		old = k.KeySetID
	}
	var ks *fheserve.KeySet
	if err := c.retry(func() error {
		var err error
		ks, err = c.api.API.UploadKeys(ctx, m.id, bytes.NewReader(m.eval), int64(len(m.eval)), old)
		return err
	}); err != nil {
		return err
	}
	k, err := sdk.LoadKeys(m.id, ks.ID, m.plan, m.secret)
	if err != nil {
		return err
	}
	c.keys[name] = k
	return nil
}

// predict runs one random sample encrypted and checks the result.
func (c *loadClient) predict(ctx context.Context, name string, m *loadTarget) error {
	k := c.keys[name]
	in, out := k.Plan.InputSize(), k.Plan.OutputSize()
	i := c.rng.IntN(m.w.n)
	ct, err := k.Encrypt(m.w.x[i*in:(i+1)*in], 1)
	if err != nil {
		return err
	}
	var job *fheserve.Job
	if err := c.retry(func() error { job, err = c.api.Submit(ctx, k, ct, 1); return err }); err != nil {
		return err
	}
	c.acked++
	if _, err := c.api.Wait(ctx, job.ID, nil); err != nil {
		return err
	}
	got, err := c.api.Fetch(ctx, k, job.ID, 1)
	if err != nil {
		return err
	}
	tol := k.Plan.Precision.OutputError + k.Plan.Precision.ApproximationError
	for j, v := range got {
		if d := math.Abs(v - m.want[i*out+j]); d > tol || math.IsNaN(v) {
			return fmt.Errorf("job %s (%s, sample %d): output %d differs from the plaintext model by %.3g, above %.3g", job.ID, name, i, j, d, tol)
		}
	}
	c.checked++
	return nil
}

// httpStats counts the responses TestLoad's clients get.
type httpStats struct {
	requests  atomic.Int64
	server5xx atomic.Int64
	retries   atomic.Int64
	mu        sync.Mutex
	status    map[int]int
}

func (s *httpStats) byStatus() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var codes []int
	for c := range s.status {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	var parts []string
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%d: %d", c, s.status[c]))
	}
	return strings.Join(parts, ", ")
}

type countingTransport struct {
	base  http.RoundTripper
	stats *httpStats
}

func (t *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(r)
	t.stats.requests.Add(1)
	if err != nil {
		return nil, err
	}
	t.stats.mu.Lock()
	if t.stats.status == nil {
		t.stats.status = map[int]int{}
	}
	t.stats.status[resp.StatusCode]++
	t.stats.mu.Unlock()
	if resp.StatusCode >= 500 {
		t.stats.server5xx.Add(1)
	}
	return resp, nil
}

// fmtMS formats milliseconds for the load report.
func fmtMS(ms float64) string {
	switch {
	case ms < 1:
		return fmt.Sprintf("%.2f ms", ms)
	case ms < 1000:
		return fmt.Sprintf("%.1f ms", ms)
	default:
		return fmt.Sprintf("%.2f s", ms/1000)
	}
}

// memWatch samples a process's resident memory.
type memWatch struct {
	pid  int
	done chan struct{}
	max  atomic.Int64
	wg   sync.WaitGroup
}

func watchMemory(t *testing.T, pid int) *memWatch {
	m := &memWatch{pid: pid, done: make(chan struct{})}
	if _, err := procStatus(pid, "VmRSS"); err != nil {
		t.Fatalf("cannot read the server's memory: %v", err)
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			if v, err := procStatus(m.pid, "VmRSS"); err == nil && v > m.max.Load() {
				m.max.Store(v)
			}
			select {
			case <-m.done:
				return
			case <-tick.C:
			}
		}
	}()
	return m
}

// stop returns the largest sampled RSS and the peak (VmHWM), in bytes.
func (m *memWatch) stop() (rss, peak int64) {
	close(m.done)
	m.wg.Wait()
	peak, _ = procStatus(m.pid, "VmHWM")
	return m.max.Load(), peak
}

// procStatus reads a "kB" field of /proc/PID/status, in bytes.
func procStatus(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New(field + " not in /proc status")
}
