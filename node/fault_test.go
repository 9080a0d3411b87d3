package node_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/app"
	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/internal/pgtest"
	"github.com/fheserve/fheserve/local"
	"github.com/fheserve/fheserve/natsjs"
	"github.com/fheserve/fheserve/natsjs/natstest"
	"github.com/fheserve/fheserve/nn/onnx"
	"github.com/fheserve/fheserve/node"
	"github.com/fheserve/fheserve/npy"
	"github.com/fheserve/fheserve/sdk"
)

// faultNode is an API node on PostgreSQL and NATS with a user whose key
// set is uploaded for mlp_square, for the fault tests.
type faultNode struct {
	node *node.Node
	nats *natstest.Server
	user *sdk.Client
	keys *sdk.Keys
	x    []float64 // one sample
	want []float64 // what predict --local computes for it
}

func startFaultNode(t *testing.T) *faultNode {
	t.Helper()
	ctx := context.Background()
	t.Setenv(app.MasterKeyEnv, strings.Repeat("5a", 32))
	f := &faultNode{nats: natstest.Start(t)}
	e := node.Engines{Store: pgtest.NewDB(t), Blobs: f.nats.URL()}
	f.node = must(node.StartOn(ctx, t.TempDir(), e, "127.0.0.1:0", app.Config{Workers: 1}))(t)
	t.Cleanup(func() { f.node.Close() })
	must(f.node.App.InitAdmin(ctx, "root", "root-password"))(t)

	url := f.node.URL()
	owner, admin := sdk.New(url), sdk.New(url)
	f.user = sdk.New(url)
	must(owner.Register(ctx, "olivia", "owner-password", fheserve.RoleOwner))(t)
	must(f.user.Register(ctx, "ulrich", "user-password", fheserve.RoleUser))(t)
	must(admin.Login(ctx, "root", "root-password"))(t)
	for _, p := range must(admin.Pending(ctx))(t) {
		must(admin.Approve(ctx, p.Username))(t)
	}
	must(owner.Login(ctx, "olivia", "owner-password"))(t)
	must(f.user.Login(ctx, "ulrich", "user-password"))(t)

	data := must(os.ReadFile(filepath.Join("..", "testdata", "onnx", "mlp_square.onnx")))(t)
	m := must(owner.Deploy(ctx, &fheserve.DeployRequest{Name: "mlp", ONNX: data, Allow: []string{"ulrich"}}))(t)
	f.keys = must(f.user.GenerateKeys(ctx, m.ID))(t)
	must(f.user.UploadKeys(ctx, f.keys, ""))(t)

	x := must(npy.ReadFile(filepath.Join("..", "testdata", "onnx", "mlp_square.x.npy")))(t)
	f.x = x.Data[:f.keys.Plan.InputSize()]
	g := must(onnx.Import(data, onnx.Options{}))(t)
	r := must(local.New(g, compiler.Options{}, 0))(t)
	f.want = must(r.Predict(ctx, f.x, 1))(t)
	return f
}

// predict runs one job through the node and checks its result against
// predict --local's.
func (f *faultNode) predict(ctx context.Context, t *testing.T) {
	t.Helper()
	ct := must(f.keys.Encrypt(f.x, 1))(t)
	j := must(f.user.Submit(ctx, f.keys, ct, 1))(t)
	must(f.user.Wait(ctx, j.ID, nil))(t)
	got := must(f.user.Fetch(ctx, f.keys, j.ID, 1))(t)
	for i := range f.want {
		if d := math.Abs(got[i] - f.want[i]); d > f.keys.Plan.Precision.OutputError {
			t.Fatalf("output %d: |node - local| = %.3g, above the plan's precision %.3g", i, d, f.keys.Plan.Precision.OutputError)
		}
	}
}

// get returns the status and body of an operator's endpoint.
func (f *faultNode) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(f.node.URL() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// up returns fheserve_dependency_up for dep, as /metrics reports it.
func (f *faultNode) up(t *testing.T, dep string) string {
	t.Helper()
	_, body := f.get(t, "/metrics")
	prefix := fmt.Sprintf("fheserve_dependency_up{dependency=%q} ", dep)
	for line := range strings.Lines(body) {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("/metrics has no %s", prefix)
	return ""
}

// waitReady polls /readyz until it answers 200.
func (f *faultNode) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, body := f.get(t, "/readyz")
		if code == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still answers %d after 30 s: %s", code, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestPostgresOutage stops PostgreSQL under a running API node: while it
// is down, /readyz answers 503 naming the store, the store's up metric is
// 0, /healthz still answers, and requests fail with 503 (EUNAVAILABLE,
// retry later) rather than an internal error; when it is back, the node
// is ready again by itself and a job runs to the plaintext model's
// result.
func TestPostgresOutage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f := startFaultNode(t)
	if code, body := f.get(t, "/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz before the outage: %d %s", code, body)
	}
	if v := f.up(t, "store"); v != "1" {
		t.Fatalf("store up before the outage: %s", v)
	}

	start := pgtest.Down(t)
	code, body := f.get(t, "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "the store does not answer") {
		t.Errorf("/readyz during the outage: %d %s, want 503 naming the store", code, body)
	}
	if v := f.up(t, "store"); v != "0" {
		t.Errorf("store up during the outage: %s", v)
	}
	if v := f.up(t, "blobs"); v != "1" {
		t.Errorf("blobs up during PostgreSQL's outage: %s", v)
	}
	if code, _ := f.get(t, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz during the outage: %d, want 200 (liveness only)", code)
	}
	_, err := f.user.Models(ctx)
	if fheserve.ErrorCode(err) != fheserve.EUNAVAILABLE || !strings.Contains(err.Error(), "database") {
		t.Errorf("a request during the outage: %v (code %s), want EUNAVAILABLE naming the database", err, fheserve.ErrorCode(err))
	}
	ct := must(f.keys.Encrypt(f.x, 1))(t)
	if _, err := f.user.Submit(ctx, f.keys, ct, 1); fheserve.ErrorCode(err) != fheserve.EUNAVAILABLE {
		t.Errorf("a job submitted during the outage: %v (code %s), want EUNAVAILABLE", err, fheserve.ErrorCode(err))
	}

	start()
	t0 := time.Now()
	f.waitReady(t)
	t.Logf("ready %v after PostgreSQL started again", time.Since(t0).Round(time.Millisecond))
	if v := f.up(t, "store"); v != "1" {
		t.Errorf("store up after the outage: %s", v)
	}
	f.predict(ctx, t)
}

// TestNATSOutage stops the NATS server for 3 seconds (then starts it on
// the same port and store) while a client writes blobs to the object
// store the node uses and reads them back: /readyz reports the blob store
// during the outage and recovers by itself, every blob whose Commit
// returned nil reads back whole afterwards, and a job runs through the
// node to the plaintext model's result.
func TestNATSOutage(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f := startFaultNode(t)
	nc, js := must2(natsjs.Dial(f.nats.URL(), "fault-test"))(t)
	defer nc.Close()
	blobs := must(natsjs.OpenBlobs(ctx, js, natsjs.BlobsConfig{ReadTimeout: 5 * time.Second}))(t)

	var (
		mu      sync.Mutex
		acked   = map[string][32]byte{}
		failed  int
		badRead error
	)
	rng := rand.New(rand.NewPCG(1, 2))
	write := func(i int) {
		b := make([]byte, 64<<10+rng.IntN(256<<10))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		key := fmt.Sprintf("fault/b%d", i)
		// Without a deadline, as a request's context: the object store
		// then bounds each chunk's acknowledgement (5 s) instead of
		// waiting for the deadline.
		w, err := blobs.Create(context.Background(), key)
		if err == nil {
			if _, err = w.Write(b); err == nil {
				err = w.Commit()
			} else {
				w.Abort()
			}
		}
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			failed++
			return
		}
		acked[key] = sha256.Sum256(b)
	}
	read := func(key string, want [32]byte) error {
		r, _, err := blobs.Open(context.Background(), key)
		if err != nil {
			return err
		}
		defer r.Close()
		h := sha256.New()
		if _, err := io.Copy(h, r); err != nil {
			return err
		}
		if got := [32]byte(h.Sum(nil)); got != want {
			return fmt.Errorf("blob %s reads back with another content", key)
		}
		return nil
	}

	// Writes and reads, until stop.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			write(i)
			mu.Lock()
			var key string
			var sum [32]byte
			for key, sum = range acked {
				break
			}
			mu.Unlock()
			if key == "" {
				continue
			}
			// A read may fail while NATS is down; it must never return
			// other bytes.
			if err := read(key, sum); err != nil && strings.Contains(err.Error(), "another content") {
				mu.Lock()
				badRead = err
				mu.Unlock()
			}
		}
	})

	time.Sleep(time.Second)
	var seen string // /readyz's answer during the outage
	outage := make(chan struct{})
	wg.Go(func() {
		for {
			select {
			case <-outage:
				return
			default:
			}
			if code, body := f.get(t, "/readyz"); code == http.StatusServiceUnavailable && seen == "" {
				seen = body
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	mu.Lock()
	before := len(acked)
	mu.Unlock()
	f.nats.Restart(t, 3*time.Second)
	t0 := time.Now()
	f.waitReady(t)
	t.Logf("ready %v after NATS started again", time.Since(t0).Round(time.Millisecond))
	close(outage)
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= before+20 {
			break
		}
	}
	close(stop)
	wg.Wait()

	if !strings.Contains(seen, "the blob store does not answer") {
		t.Errorf("/readyz during the outage: %q, want 503 naming the blob store", seen)
	}
	if badRead != nil {
		t.Fatal(badRead)
	}
	t.Logf("%d blobs acknowledged (%d before the outage), %d writes failed", len(acked), before, failed)
	if len(acked) < before+20 {
		t.Errorf("%d blobs acknowledged after the outage in 20 s, want 20", len(acked)-before)
	}
	for key, sum := range acked {
		if err := read(key, sum); err != nil {
			t.Errorf("acknowledged blob lost: %v", err)
		}
	}
	f.predict(ctx, t)
}

func must2[T, U any](v T, w U, err error) func(testing.TB) (T, U) {
	return func(tb testing.TB) (T, U) {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
		return v, w
	}
}

// TestOutagesUnderLoad (-long) submits jobs to a node without pause while
// PostgreSQL restarts, NATS stops for 3 s, and PostgreSQL stops for 3 s,
// one after another: every job the node acknowledged ends done, with the
// plaintext model's result, and the node is ready after each outage.
func TestOutagesUnderLoad(t *testing.T) {
	if !*long {
		t.Skip("-long: jobs through three outages, about a minute")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	f := startFaultNode(t)
	ct := must(f.keys.Encrypt(f.x, 1))(t)

	var (
		mu      sync.Mutex
		acked   []string
		refused = map[string]int{} // error code -> submissions
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			j, err := f.user.Submit(ctx, f.keys, ct, 1)
			mu.Lock()
			if err == nil {
				acked = append(acked, j.ID)
			} else {
				refused[fheserve.ErrorCode(err)]++
			}
			mu.Unlock()
			if err != nil {
				time.Sleep(100 * time.Millisecond)
			}
		}
	})
	outages := []struct {
		name string
		run  func()
	}{
		{"PostgreSQL restarted", func() { pgtest.Restart(t) }},
		{"NATS stopped for 3 s", func() { f.nats.Restart(t, 3*time.Second) }},
		{"PostgreSQL stopped for 3 s", func() { start := pgtest.Down(t); time.Sleep(3 * time.Second); start() }},
	}
	for _, o := range outages {
		time.Sleep(2 * time.Second)
		o.run()
		f.waitReady(t)
		t.Logf("%s: ready again", o.name)
	}
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()

	t.Logf("%d jobs acknowledged, refused by code: %v", len(acked), refused)
	for code := range refused {
		if code != fheserve.EUNAVAILABLE && code != fheserve.ERATELIMIT {
			t.Errorf("submissions refused with %s: want unavailable (or rate limits) only", code)
		}
	}
	for _, id := range acked {
		wctx, wcancel := context.WithTimeout(ctx, time.Minute)
		j, err := f.user.Wait(wctx, id, nil)
		wcancel()
		if err != nil {
			j, _ := f.user.API.Job(ctx, id)
			t.Fatalf("job %s: %v (the store says %+v)", id, err, j)
		}
		if j.Status != fheserve.JobDone {
			t.Errorf("job %s ended %s: %s", id, j.Status, j.Error)
			continue
		}
		got := must(f.user.Fetch(ctx, f.keys, id, 1))(t)
		for i := range f.want {
			if d := math.Abs(got[i] - f.want[i]); d > f.keys.Plan.Precision.OutputError {
				t.Fatalf("job %s output %d: |node - local| = %.3g, above the plan's precision", id, i, d)
			}
		}
	}
}
