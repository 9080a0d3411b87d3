package sdk_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/app"
	"github.com/fheserve/fheserve/internal/clustertest"
	"github.com/fheserve/fheserve/nn/onnx"
	"github.com/fheserve/fheserve/npy"
	"github.com/fheserve/fheserve/plan"
	"github.com/fheserve/fheserve/sdk"
)

// pacedSetup starts a server in mode with one worker and the default
// cap of 16 jobs queued per user, deploys the gemm fixture
// (Linear(16,4)) with packing and limits, and returns a user's client
// with uploaded keys.
func pacedSetup(t *testing.T, mode, packing string, limits fheserve.ModelLimits) (*sdk.Client, *sdk.Keys, []byte) {
	t.Helper()
	ctx := context.Background()
	d := mustDaemonIn(t, mode, app.Config{Workers: 1, Bounds: app.Bounds{QueuedPerUser: 16}})
	owner, user, _ := mustParties(t, d.URL())
	data := fixture("gemm.onnx")
	m := must(owner.Deploy(ctx, &fheserve.DeployRequest{Name: "gemm", Packing: packing, ONNX: data}))(t)
	must(owner.API.SetLimits(ctx, m.ID, &limits))(t)
	keys := must(user.GenerateKeys(ctx, m.ID))(t)
	must(user.UploadKeys(ctx, keys, ""))(t)
	return user, keys, data
}

// samples returns n samples of the gemm fixture's inputs (its 4, repeated
// and scaled so that every sample differs).
func samples(t *testing.T, n, in int) []float64 {
	x := must(npy.ReadFile("../testdata/onnx/gemm.x.npy"))(t)
	out := make([]float64, n*in)
	for s := 0; s < n; s++ {
		for i := 0; i < in; i++ {
			out[s*in+i] = x.Data[(s%4)*in+i] * (1 + float64(s)/float64(n))
		}
	}
	return out
}

// checkOutputs compares got with the plaintext model within the plan's
// stated precision.
func checkOutputs(t *testing.T, data []byte, p *plan.Plan, x, got []float64, n int) {
	t.Helper()
	g := must(onnx.Import(data, onnx.Options{}))(t)
	want := must(g.EvalBatch(x, n, nil))(t)
	if len(got) != len(want) {
		t.Fatalf("%d outputs, want %d", len(got), len(want))
	}
	tol := p.Precision.OutputError + p.Precision.ApproximationError
	var worst float64
	for i := range want {
		worst = math.Max(worst, math.Abs(got[i]-want[i]))
	}
	if worst > tol {
		t.Fatalf("max |encrypted - plaintext| = %.3g over %d samples, above the plan's precision %.3g", worst, n, tol)
	}
}

// TestPredictPaced predicts 1,000 samples (batch packing) and 100
// (latency packing, a job each) through a server that holds at most 16
// jobs of a user, under an owner's rate limit that a job of all the
// samples, or all the jobs at once, would exceed: Predict keeps at most
// 16 jobs in flight, sizes its jobs to the burst, spaces them to the
// rate, and every output comes back right, with progress over all
// samples.
func TestPredictPaced(t *testing.T) {
	for _, c := range []struct {
		name    string
		packing string
		limits  fheserve.ModelLimits
		n       int
	}{
		// Jobs of at most 50 samples (the burst), 20 of them; 60,000
		// samples a minute is 1,000 a second.
		{"batch", fheserve.PackingBatch, fheserve.ModelLimits{RatePerMinute: 60000, Burst: 50}, 1000},
		// One job per sample, encrypted and submitted faster than the
		// server's one worker evaluates them, so that jobs pile up, and
		// without a bound on the jobs in flight the 17th would be
		// refused.
		{"latency", fheserve.PackingLatency, fheserve.ModelLimits{RatePerMinute: 60000, Burst: 100}, 100},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel() // each on its server, paced by its rate
			ctx := context.Background()
			user, keys, data := pacedSetup(t, clustertest.Embedded, c.packing, c.limits)
			x := samples(t, c.n, keys.Plan.InputSize())
			var last sdk.Progress
			var stats sdk.PredictStats
			inFlight, most := map[string]bool{}, 0
			got, err := user.PredictWith(ctx, keys, x, c.n, &sdk.PredictOptions{
				Stats: &stats,
				Progress: func(p sdk.Progress) {
					last = p
					if p.Job == nil {
						return
					}
					if p.Job.Terminal() {
						delete(inFlight, p.Job.ID)
					} else {
						inFlight[p.Job.ID] = true
					}
					most = max(most, len(inFlight))
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			checkOutputs(t, data, keys.Plan, x, got, c.n)
			if last.Predicted != c.n || last.Samples != c.n {
				t.Errorf("last progress: %d of %d samples predicted, want %d", last.Predicted, last.Samples, c.n)
			}
			if most > sdk.DefaultInFlight {
				t.Errorf("%d jobs in flight at once, above %d", most, sdk.DefaultInFlight)
			}
			t.Logf("%d samples in %d jobs, %d retries (waited %s), at most %d jobs in flight", c.n, len(stats.Jobs), stats.Retries, stats.Waited, most)
		})
	}
}

// TestPredictRetryAfter: another program of the same user has just used
// the owner's burst, which Predict cannot know: the server refuses its
// first submission with 429 and Retry-After, and Predict waits, submits
// again and finishes with the right outputs. In a cluster the buckets are PostgreSQL's, shared by the API nodes.
func TestPredictRetryAfter(t *testing.T) { clustertest.InModes(t, testPredictRetryAfter) }

func testPredictRetryAfter(t *testing.T, mode string) {
	ctx := context.Background()
	// A sample a second, in bursts of 4: the bucket takes 4 seconds to
	// refill after the other program's job, so that Predict's first
	// submission finds it short even on a loaded machine (with a second,
	// it did not, under a load average of 20).
	user, keys, data := pacedSetup(t, mode, fheserve.PackingBatch, fheserve.ModelLimits{RatePerMinute: 60, Burst: 4})
	const n = 8
	x := samples(t, n, keys.Plan.InputSize())
	ct := must(keys.Encrypt(x[:4*keys.Plan.InputSize()], 4))(t)
	must(user.Submit(ctx, keys, ct, 4))(t)

	var stats sdk.PredictStats
	var waits []sdk.Progress
	y, err := user.PredictWith(ctx, keys, x, n, &sdk.PredictOptions{Stats: &stats, Progress: func(p sdk.Progress) {
		if p.Wait > 0 {
			waits = append(waits, p)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	checkOutputs(t, data, keys.Plan, x, y, n)
	if stats.Retries == 0 || len(waits) != stats.Retries || waits[0].Wait < time.Second || !strings.Contains(waits[0].Reason, "rate limit") {
		t.Fatalf("%d retries, waits %+v: want the first submission refused for its rate limit and waited for", stats.Retries, waits)
	}
	t.Logf("%d retries, waited %s: %s", stats.Retries, stats.Waited, waits[0].Reason)
}

// TestPredictIncomplete: when the server refuses for good (a daily quota
// smaller than the prediction, which asks to wait until tomorrow), Predict
// stops, fetches the results of the jobs it sent, and returns the
// outputs of the samples predicted with an *IncompleteError.
func TestPredictIncomplete(t *testing.T) { clustertest.InModes(t, testPredictIncomplete) }

func testPredictIncomplete(t *testing.T, mode string) {
	ctx := context.Background()
	user, keys, data := pacedSetup(t, mode, fheserve.PackingBatch, fheserve.ModelLimits{Daily: 8})
	const n = 20
	x := samples(t, n, keys.Plan.InputSize())
	y, err := user.PredictWith(ctx, keys, x, n, &sdk.PredictOptions{MaxWait: 500 * time.Millisecond})
	var inc *sdk.IncompleteError
	if !errors.As(err, &inc) {
		t.Fatalf("Predict: %v, want an *IncompleteError", err)
	}
	if inc.Predicted != 8 || inc.Total != n || len(y) != 8*keys.Plan.OutputSize() || fheserve.ErrorCode(err) != fheserve.ERATELIMIT {
		t.Fatalf("%v (code %s), %d outputs; want 8 of %d samples predicted", err, fheserve.ErrorCode(err), len(y), n)
	}
	checkOutputs(t, data, keys.Plan, x[:8*keys.Plan.InputSize()], y, 8)
	jobs := must(user.API.Jobs(ctx))(t)
	for _, j := range jobs {
		if !j.Terminal() {
			t.Errorf("job %s left %s", j.ID, j.Status)
		}
	}
	t.Log(err)
}
