package node_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/app"
	"github.com/fheserve/fheserve/nn"
	"github.com/fheserve/fheserve/nn/onnx"
	"github.com/fheserve/fheserve/npy"
	"github.com/fheserve/fheserve/postgres"
	"github.com/fheserve/fheserve/sdk"
)

var (
	long      = flag.Bool("long", false, "also measure the workers' throughput on NATS (TestWorkerThroughput, a minute)")
	keySets   = flag.Int("keysets", 4, "users (a key set each) whose jobs TestWorkerProcessThroughput runs")
	cacheKeys = flag.Int("cachekeys", 2, "key sets a worker's evaluator cache holds in TestWorkerProcessThroughput (0: the default bound)")
)

// TestWorkerThroughput measures separate workers (each one job at a time
// on one core) on PostgreSQL and NATS: jobs queued beforehand, then 1 or
// 2 workers started, timed until all are finished; the bytes through the
// NATS server per job, and the key-cache hit rate. It reports figures
// and checks only that every job ends done.
func TestWorkerThroughput(t *testing.T) {
	if !*long {
		t.Skip("a minute: run with -long")
	}
	for _, w := range []struct {
		name, onnx, calib, x string
		jobs                 int
	}{
		{"logreg", "../bundled/logreg.onnx", "../bundled/logreg.calib.npy", "../bundled/logreg.x.npy", 60},
		{"mlp_square", "../testdata/onnx/mlp_square.onnx", "", "../testdata/onnx/mlp_square.x.npy", 24},
	} {
		t.Run(w.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			c := newCluster(t, ctx, app.Config{Bounds: app.Bounds{QueuedPerUser: 1000}})
			keys, _ := c.deploy(t, ctx, w.name, w.onnx, w.calib)
			x := must(npy.ReadFile(w.x))(t)
			in := x.Data[:keys.Plan.InputSize()]
			ct := must(keys.Encrypt(in, 1))(t)
			for _, workers := range []int{1, 2} {
				ids := make([]string, w.jobs)
				for i := range ids {
					ids[i] = must(c.user.Submit(ctx, keys, ct, 1))(t).ID
				}
				ns := natsServer(t)
				before := ns.varz(t)
				var finished atomic.Int64
				all := make(chan struct{})
				t0 := time.Now()
				var apps []*app.App
				for range workers {
					a, _ := c.worker(t, ctx, app.Config{})
					a.OnJobFinished(func(j *fheserve.Job) {
						if finished.Add(1) == int64(w.jobs) {
							close(all)
						}
					})
					apps = append(apps, a)
				}
				select {
				case <-all:
				case <-ctx.Done():
					t.Fatal("the jobs did not finish")
				}
				elapsed := time.Since(t0)
				after := ns.varz(t)
				var hits, misses int64
				for _, a := range apps {
					h, m := a.KeyCacheStats()
					hits, misses = hits+h, misses+m
					a.Close()
				}
				for _, id := range ids {
					if j := must(c.user.API.Job(ctx, id))(t); j.Status != fheserve.JobDone {
						t.Fatalf("job %s is %s: %s", id, j.Status, j.Error)
					}
				}
				rate := float64(w.jobs) / elapsed.Seconds()
				moved := float64(after.InBytes-before.InBytes+after.OutBytes-before.OutBytes) / float64(w.jobs)
				line := fmt.Sprintf("%s: %d workers (1 core each, %d cores): %d jobs in %.2f s, %.2f jobs/s, %.2f jobs/s per worker; NATS in+out %.0f KB per job; key cache %d hits, %d misses (%.0f%%)",
					w.name, workers, runtime.NumCPU(), w.jobs, elapsed.Seconds(), rate, rate/float64(workers), moved/1e3, hits, misses, 100*float64(hits)/float64(hits+misses))
				t.Log(line)
				fmt.Fprintln(os.Stderr, line)
			}
		})
	}
}

type natsStats struct{ s *server.Server }

// natsServer returns the cluster's NATS server: the test's only one.
func natsServer(t *testing.T) natsStats { return natsStats{lastNATS.Server} }

func (n natsStats) varz(t *testing.T) *server.Varz {
	v, err := n.s.Varz(nil)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestWorkerProcessThroughput is TestWorkerThroughput with the workers
// in processes of their own (1, 2 and 4, one job at a time on one
// evaluation thread each), timed from their start until every job is
// finished in the store; their key caches are read from their metrics.
// The jobs are several users' (-keysets, a key set each, round robin),
// and each worker's evaluator cache holds -cachekeys of them at most
// (0: the default bound), as when many users share few workers.
func TestWorkerProcessThroughput(t *testing.T) {
	if !*long {
		t.Skip("a minute: run with -long")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := newCluster(t, ctx, app.Config{Bounds: app.Bounds{QueuedPerUser: 1000}})
	// The workers' leases hold 30 s without a heartbeat (the default), not
	// the 1 s of the fault tests: on cores this busy, a heartbeat late by
	// a second would hand a job to a second worker.
	c.Engines.AckWait = 30 * time.Second
	users := c.users(t, ctx, *keySets)
	sets, _ := c.keySets(t, ctx, users, "mlp_square", "../testdata/onnx/mlp_square.onnx", "")
	keys := sets[0]
	x := must(npy.ReadFile("../testdata/onnx/mlp_square.x.npy"))(t)
	in := x.Data[:keys.Plan.InputSize()]
	cts := make([][]byte, len(sets))
	for i, k := range sets {
		cts[i] = must(k.Encrypt(in, 1))(t)
	}
	if *cacheKeys > 0 {
		// Expanded keys take about twice their seeded size (app.newEvaluator).
		size := 2 * keys.EvalKeysSize()
		t.Setenv(workerCacheEnv, fmt.Sprint(*cacheKeys*size))
	}
	st := must(postgres.Open(ctx, c.Engines.Store))(t)
	defer st.Close()
	ended := func() int {
		js := must(st.Jobs(ctx, fheserve.JobFilter{Statuses: []string{fheserve.JobDone, fheserve.JobFailed}}))(t)
		return len(js)
	}
	jobs := 12 * len(sets)
	for _, workers := range []int{1, 2, 4} {
		for i := range jobs {
			must(users[i%len(sets)].Submit(ctx, sets[i%len(sets)], cts[i%len(sets)], 1))(t)
		}
		start := ended()
		ns := natsServer(t)
		before := ns.varz(t)
		t0 := time.Now()
		var procs []*exec.Cmd
		var outs []*syncBuffer
		for range workers {
			cmd, out := c.workerProcess(t)
			procs, outs = append(procs, cmd), append(outs, out)
		}
		for ended()-start < jobs {
			select {
			case <-ctx.Done():
				t.Fatal("the jobs did not finish")
			case <-time.After(20 * time.Millisecond):
			}
		}
		elapsed := time.Since(t0)
		after := ns.varz(t)
		var hits, misses int
		for i, out := range outs {
			m := regexp.MustCompile(`metrics on (http://\S+)`).FindStringSubmatch(out.String())
			if m == nil {
				t.Fatalf("worker %d printed no metrics address:\n%s", i, out)
			}
			resp := must(http.Get(m[1]))(t)
			body := must(io.ReadAll(resp.Body))(t)
			resp.Body.Close()
			hits += metricSum(string(body), "fheserve_worker_key_cache_hits_total")
			misses += metricSum(string(body), "fheserve_worker_key_cache_misses_total")
			procs[i].Process.Kill()
			procs[i].Wait()
		}
		rate := float64(jobs) / elapsed.Seconds()
		moved := float64(after.InBytes-before.InBytes+after.OutBytes-before.OutBytes) / float64(jobs)
		line := fmt.Sprintf("mlp_square, %d key sets, cache of %d: %d worker processes (1 thread each, %d cores): %d jobs in %.2f s from their start, %.2f jobs/s, %.2f jobs/s per core used; NATS in+out %.0f KB per job; key cache %d hits, %d misses (%.0f%%)",
			len(sets), *cacheKeys, workers, runtime.NumCPU(), jobs, elapsed.Seconds(), rate, rate/float64(min(workers, runtime.NumCPU())), moved/1e3, hits, misses, 100*float64(hits)/float64(hits+misses))
		t.Log(line)
		fmt.Fprintln(os.Stderr, line)
	}
}

// users returns n users of c: its user, then new ones (user2, ...),
// registered and approved.
func (c *cluster) users(t *testing.T, ctx context.Context, n int) []*sdk.Client {
	users := []*sdk.Client{c.user}
	admin := sdk.New(c.api.URL())
	must(admin.Login(ctx, "root", "root-password"))(t)
	for i := 2; i <= n; i++ {
		u := sdk.New(c.api.URL())
		name := fmt.Sprint("user", i)
		must(u.Register(ctx, name, "user-password", fheserve.RoleUser))(t)
		must(admin.Approve(ctx, name))(t)
		must(u.Login(ctx, name, "user-password"))(t)
		users = append(users, u)
	}
	return users
}

// keySets deploys a model of the repository's files for users and
// returns a key set of each, uploaded, and the model's graph.
func (c *cluster) keySets(t *testing.T, ctx context.Context, users []*sdk.Client, name, onnxFile, calibFile string) ([]*sdk.Keys, *nn.Graph) {
	allow := []string{"ulrich"}
	for i := 2; i <= len(users); i++ {
		allow = append(allow, fmt.Sprint("user", i))
	}
	data := must(os.ReadFile(onnxFile))(t)
	req := &fheserve.DeployRequest{Name: name, ONNX: data, Allow: allow}
	if calibFile != "" {
		req.Calibration = must(os.ReadFile(calibFile))(t)
	}
	m := must(c.owner.Deploy(ctx, req))(t)
	var sets []*sdk.Keys
	for _, u := range users {
		k := must(u.GenerateKeys(ctx, m.ID))(t)
		must(u.UploadKeys(ctx, k, ""))(t)
		sets = append(sets, k)
	}
	return sets, must(onnx.Import(data, onnx.Options{}))(t)
}
