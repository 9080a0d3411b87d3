package http_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/nn/onnx"
	"github.com/fheserve/fheserve/sdk"
	"github.com/fheserve/fheserve/sdk/api"
)

// TestModelLimits sets each kind of limit on a fresh model used by two
// users, submits jobs as the first until one is refused with 429, a
// Retry-After and a message saying when to retry, and checks whether the
// second user is affected: not by per-user limits, yes by model-wide ones.
func TestModelLimits(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	ursula := sdk.New(w.url)
	ursula.SetToken(w.tokens[user2])
	endOfDay := func() time.Duration {
		now := time.Now().UTC()
		return now.Truncate(24 * time.Hour).Add(24 * time.Hour).Sub(now)
	}
	tests := []struct {
		name         string
		limits       fheserve.ModelLimits
		allowed      int // jobs of the first user that pass
		retryMin     time.Duration
		retryMax     func() time.Duration
		message      string
		otherLimited bool
	}{
		{"user rate", fheserve.ModelLimits{RatePerMinute: 1, Burst: 2}, 2, 50 * time.Second, func() time.Duration { return time.Minute },
			"your rate limit is 1 samples a minute (bursts of 2); try again in", false},
		{"user rate, default burst", fheserve.ModelLimits{RatePerMinute: 0.5}, 1, 110 * time.Second, func() time.Duration { return 2 * time.Minute },
			"your rate limit is 0.5 samples a minute (bursts of 1)", false},
		{"user daily quota", fheserve.ModelLimits{Daily: 2}, 2, 0, endOfDay,
			"your daily quota of 2 samples is used up until 00:00 UTC; try again in", false},
		{"model rate", fheserve.ModelLimits{ModelRatePerMinute: 2, ModelBurst: 2}, 2, 20 * time.Second, func() time.Duration { return 30 * time.Second },
			"the rate limit of all users is 2 samples a minute", true},
		{"model daily quota", fheserve.ModelLimits{ModelDaily: 1, Daily: 5}, 1, 0, endOfDay,
			"the daily quota of all users of 1 samples is used up", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w.t = t
			m, err := w.owner.API.SetAccess(ctx, w.deployCheap().ID, &fheserve.AccessRequest{Allow: []string{"ulrich", "ursula"}})
			check(t, err)
			m, err = w.owner.API.SetLimits(ctx, m.ID, &tt.limits)
			check(t, err)
			if m.Limits != tt.limits {
				t.Fatalf("limits = %+v, want %+v", m.Limits, tt.limits)
			}
			keys, path, input := w.keysFor(t, w.user, m.ID)
			for i := range tt.allowed {
				if status, body := w.do(user, "POST", path, input, "application/octet-stream"); status != http.StatusAccepted {
					t.Fatalf("job %d: %d %s, want 202", i+1, status, body)
				}
			}
			req, _ := http.NewRequest("POST", w.url+path, strings.NewReader(string(input)))
			req.Header.Set("Authorization", "Bearer "+w.tokens[user])
			resp, err := http.DefaultClient.Do(req)
			check(t, err)
			var e api.ErrorResponse
			json.NewDecoder(resp.Body).Decode(&e)
			resp.Body.Close()
			secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
			retry := time.Duration(secs) * time.Second
			if resp.StatusCode != http.StatusTooManyRequests || e.Code != fheserve.ERATELIMIT || !strings.Contains(e.Message, tt.message) {
				t.Fatalf("job %d: %d %+v, want 429 saying %q", tt.allowed+1, resp.StatusCode, e, tt.message)
			}
			if retry < max(tt.retryMin, time.Second) || retry > tt.retryMax()+time.Second {
				t.Fatalf("Retry-After: %q, want between %v and %v", resp.Header.Get("Retry-After"), tt.retryMin, tt.retryMax())
			}

			// The SDK's error carries the time to retry too.
			_, err = w.user.Submit(ctx, keys, input, 1)
			if fheserve.ErrorCode(err) != fheserve.ERATELIMIT || fheserve.RetryAfter(err) <= 0 {
				t.Fatalf("SDK submit: %v (retry after %v), want rate_limited with a time", err, fheserve.RetryAfter(err))
			}

			_, otherPath, otherInput := w.keysFor(t, ursula, m.ID)
			status, body := w.do(user2, "POST", otherPath, otherInput, "application/octet-stream")
			if tt.otherLimited && status != http.StatusTooManyRequests {
				t.Fatalf("other user: %d %s, want 429 under a model-wide limit", status, body)
			}
			if !tt.otherLimited && status != http.StatusAccepted {
				t.Fatalf("other user: %d %s, want 202: a per-user limit must not affect others", status, body)
			}
		})
	}
}

// TestLimitsCountSamples deploys a batch-packed model and checks that
// jobs declare their samples, that the declaration is checked against the
// plan, and that quotas, rates and usage count samples, not jobs.
func TestLimitsCountSamples(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	// The gemm fixture: one linear layer, microseconds a batch job (a
	// batch job of mlp_square took seconds on a loaded machine).
	gemm := mustONNX(t, "gemm")
	m, err := w.owner.Deploy(ctx, &fheserve.DeployRequest{Name: "batch", Packing: fheserve.PackingBatch, ONNX: gemm})
	check(t, err)
	keys := keysOf(t, w.user, m.ID)
	x := make([]float64, 8*keys.Plan.InputSize())
	for i := range x {
		x[i] = float64(i%7)/7 - 0.5
	}
	g, err := onnx.Import(gemm, onnx.Options{})
	check(t, err)
	want, err := g.EvalBatch(x, 8, nil)
	check(t, err)
	// One job of n samples (sdk.Predict paces itself to the limits; this
	// probes them).
	predict := func(n int) error {
		t.Helper()
		in, err := keys.Encrypt(x[:n*keys.Plan.InputSize()], n)
		check(t, err)
		j, err := w.user.Submit(ctx, keys, in, n)
		if err != nil {
			return err
		}
		if _, err := w.user.Wait(ctx, j.ID, nil); err != nil {
			return err
		}
		y, err := w.user.Fetch(ctx, keys, j.ID, n)
		check(t, err)
		for i := range y {
			if d := math.Abs(y[i] - want[i]); d > keys.Plan.Precision.OutputError {
				t.Fatalf("output %d of %d samples: off by %.3g", i, n, d)
			}
		}
		return nil
	}

	// A declaration the plan does not allow is refused before anything
	// counts.
	input, err := keys.Encrypt(x[:2*keys.Plan.InputSize()], 2)
	check(t, err)
	path := "/v1/models/" + m.ID + "/jobs?keyset=" + keys.KeySetID
	status, body := w.do(user, "POST", fmt.Sprintf("%s&samples=%d", path, keys.Plan.BatchSize+1), input, "application/octet-stream")
	if status != http.StatusBadRequest || !strings.Contains(string(body), fmt.Sprintf("holds 1 to %d samples, not %d", keys.Plan.BatchSize, keys.Plan.BatchSize+1)) {
		t.Fatalf("more samples than the batch size: %d %s, want 400 naming the range", status, body)
	}

	// Daily quota of 10 samples: 8 pass, 8 more do not, 2 do.
	_, err = w.owner.API.SetLimits(ctx, m.ID, &fheserve.ModelLimits{Daily: 10})
	check(t, err)
	check(t, predict(8))
	err = predict(8)
	if fheserve.ErrorCode(err) != fheserve.ERATELIMIT || !strings.Contains(err.Error(), "your daily quota of 10 samples has 2 left") {
		t.Fatalf("second job of 8 samples: %v, want rate_limited saying 2 are left", err)
	}
	check(t, predict(2))
	if err := predict(1); fheserve.ErrorCode(err) != fheserve.ERATELIMIT || !strings.Contains(err.Error(), "used up") {
		t.Fatalf("a sample past the quota: %v, want rate_limited", err)
	}
	u, err := w.owner.Usage(ctx, m.ID)
	check(t, err)
	if u.Requests != 2 || u.Samples != 10 || u.ByUser[0].Samples != 10 || u.Quota.TodaySamples != 10 || u.KeySets[0].Samples != 10 {
		t.Errorf("usage: %d requests, %d samples, by user %+v, quota %+v, key sets %+v; want 2 jobs of 10 samples",
			u.Requests, u.Samples, u.ByUser, u.Quota, u.KeySets)
	}

	// A rate of 1 sample a minute in bursts of 5: a job of 8 can never
	// pass; 5 pass at once, then not 1 more (a slow rate, so that no token
	// comes back while a loaded machine runs the job of 5).
	_, err = w.owner.API.SetLimits(ctx, m.ID, &fheserve.ModelLimits{RatePerMinute: 1, Burst: 5})
	check(t, err)
	err = predict(8)
	if fheserve.ErrorCode(err) != fheserve.EINVALID || !strings.Contains(err.Error(), "more than the bursts of 5 samples") {
		t.Fatalf("a job larger than the burst: %v, want invalid naming the burst", err)
	}
	check(t, predict(5))
	if err := predict(1); fheserve.ErrorCode(err) != fheserve.ERATELIMIT {
		t.Fatalf("a sample past the burst: %v, want rate_limited", err)
	}
}

// keysFor uploads c's keys for model id (keysOf) and returns them, the
// path to submit a job to and a valid encrypted input.
func (w *world) keysFor(t *testing.T, c *sdk.Client, id string) (keys *sdk.Keys, path string, input []byte) {
	t.Helper()
	keys = keysOf(t, c, id)
	input, err := keys.Encrypt(make([]float64, keys.Plan.InputSize()), 1)
	check(t, err)
	return keys, "/v1/models/" + id + "/jobs?keyset=" + keys.KeySetID, input
}

// TestSetLimitsInvalid checks that bad limits are refused with a message
// naming the field, and that no one but the owner and an administrator
// may set them (see also the permission matrix).
func TestSetLimitsInvalid(t *testing.T) {
	w := newWorld(t)
	tests := []struct {
		name string
		body string
		want string
	}{
		{"negative rate", `{"rate_per_minute": -1}`, "rate_per_minute must be between 0"},
		{"huge daily", `{"daily": 1e9}`, "daily"},
		{"burst without rate", `{"burst": 5}`, "burst needs a rate_per_minute"},
		{"model burst without rate", `{"model_burst": 5}`, "model_burst needs a model_rate_per_minute"},
		{"unknown field", `{"per_hour": 5}`, "per_hour"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w.t = t
			status, body := w.do(owner, "PUT", "/v1/models/"+w.model.ID+"/limits", []byte(tt.body), "application/json")
			if status != http.StatusBadRequest || !strings.Contains(string(body), tt.want) {
				t.Fatalf("%s: %d %s, want 400 naming %q", tt.body, status, body, tt.want)
			}
		})
	}
}
