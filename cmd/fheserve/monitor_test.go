package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/app"
	"github.com/fheserve/fheserve/audit"
	fhttp "github.com/fheserve/fheserve/http"
	"github.com/fheserve/fheserve/node"
	"github.com/fheserve/fheserve/npy"
	"github.com/fheserve/fheserve/sdk"
)

// TestMonitoring runs the service flow through the SDK with jobs that
// succeed and one that fails, then checks what the owner, the user and
// the operator see: usage figures that match the jobs run, audit logs
// that verify from outside and offline and show each party its own
// records, and metrics and probes.
func TestMonitoring(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	a, err := node.OpenApp(ctx, dir, app.Config{Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	srv := fhttp.NewServer(a, nil)
	if err := srv.Listen("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		a.Close()
	})
	url := srv.URL()
	get := func(path string, header ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", url+path, nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	// The workers start later, so that a job can wait for them.
	if resp, _ := get("/readyz"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/readyz without workers: %d", resp.StatusCode)
	}

	must(a.InitAdmin(ctx, "root", "root-password"))(t)
	admin, owner, user, other := sdk.New(url), sdk.New(url), sdk.New(url), sdk.New(url)
	must(admin.Login(ctx, "root", "root-password"))(t)
	for _, p := range []struct {
		c          *sdk.Client
		name, role string
	}{{owner, "olivia", fheserve.RoleOwner}, {user, "ulrich", fheserve.RoleUser}, {other, "otto", fheserve.RoleUser}} {
		must(p.c.Register(ctx, p.name, p.name+"-password", p.role))(t)
		must(admin.Approve(ctx, p.name))(t)
		must(p.c.Login(ctx, p.name, p.name+"-password"))(t)
	}
	if _, err := user.Login(ctx, "ulrich", "wrong-password"); fheserve.ErrorCode(err) != fheserve.EUNAUTHORIZED {
		t.Fatalf("wrong password: %v", err)
	}
	onnxBytes := must(os.ReadFile(fixture("mlp_square.onnx")))(t)
	m := must(owner.Deploy(ctx, &fheserve.DeployRequest{Name: "mlp_square", ONNX: onnxBytes, Allow: []string{"ulrich"}}))(t)
	x := must(npy.ReadFile(fixture("mlp_square.x.npy")))(t)

	// A job whose key set is revoked before a worker takes it fails.
	keys := must(user.GenerateKeys(ctx, m.ID))(t)
	must(user.UploadKeys(ctx, keys, ""))(t)
	in := keys.Plan.InputSize()
	ct := must(keys.Encrypt(x.Data[:in], 1))(t)
	doomed := must(user.Submit(ctx, keys, ct, 1))(t)
	must(user.API.RevokeKeySet(ctx, keys.KeySetID))(t)
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := user.Wait(ctx, doomed.ID, nil); fheserve.ErrorCode(err) != fheserve.ECONFLICT {
		t.Fatalf("job on revoked keys: %v", err)
	}

	const ok = 3
	keys = must(user.GenerateKeys(ctx, m.ID))(t)
	must(user.UploadKeys(ctx, keys, ""))(t)
	var last string
	for range ok {
		ct := must(keys.Encrypt(x.Data[:in], 1))(t)
		j := must(user.Submit(ctx, keys, ct, 1))(t)
		must(user.Wait(ctx, j.ID, nil))(t)
		last = j.ID
	}
	must(user.Fetch(ctx, keys, last, 1))(t)

	// The owner's figures match the jobs run.
	u := must(owner.Usage(ctx, m.ID))(t)
	sum := func(lines []fheserve.UsageLine) (req, fail int) {
		for _, l := range lines {
			if l.User == "ulrich" {
				req, fail = req+l.Requests, fail+l.Failures
			}
		}
		return req, fail
	}
	hourReq, hourFail := sum(u.ByUserHour)
	dayReq, dayFail := sum(u.ByUserDay)
	if u.Requests != ok+1 || u.Failures != 1 || u.FailuresByCause[fheserve.ECONFLICT] != 1 || len(u.FailuresByCause) != 1 ||
		hourReq != ok+1 || hourFail != 1 || dayReq != ok+1 || dayFail != 1 ||
		len(u.ByUser) != 1 || u.ByUser[0].Requests != ok+1 {
		t.Fatalf("owner's usage: %+v", u)
	}
	if len(u.KeySets) != 1 || u.KeySets[0].ID != keys.KeySetID || u.KeySets[0].Jobs != ok || u.KeySets[0].User != "ulrich" {
		t.Errorf("key sets in use: %+v", u.KeySets)
	}
	if u.Evaluation.Max <= 0 || u.Evaluation.P50 > u.Evaluation.P99 || u.QueueWait.Max < 0 || u.Latency.Max <= 0 {
		t.Errorf("latency: total %+v, queue wait %+v, evaluation %+v", u.Latency, u.QueueWait, u.Evaluation)
	}
	if u.Quota.Set || u.Quota.Summary != "no quota set" {
		t.Errorf("quota: %+v", u.Quota)
	}
	oc := must(a.Authenticate(ctx, owner.Token()))(t)
	must(a.SetLimits(ctx, oc.Account, m.ID, &fheserve.ModelLimits{Daily: 100}))(t)
	if u := must(user.Usage(ctx, m.ID))(t); u.Requests != ok+1 || !u.Quota.Set || u.Quota.Summary != "100 samples/day per user" || u.Quota.Today != ok+1 || u.Quota.TodaySamples != ok+1 {
		t.Errorf("the user's usage: %+v", u)
	}
	if _, err := other.Usage(ctx, m.ID); fheserve.ErrorCode(err) != fheserve.EFORBIDDEN {
		t.Errorf("otto's usage of a model he may not use: %v", err)
	}

	// A request id sent is echoed and names the audit record; one is
	// made up for requests that send none.
	req, _ := http.NewRequest("POST", url+"/v1/sessions", strings.NewReader(`{"username":"ulrich","password":"ulrich-password"}`))
	req.Header.Set(fhttp.RequestIDHeader, "e2e-login-1")
	resp := must(http.DefaultClient.Do(req))(t)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK || resp.Header.Get(fhttp.RequestIDHeader) != "e2e-login-1" {
		t.Fatalf("login with a request id: %d, id %q", resp.StatusCode, resp.Header.Get(fhttp.RequestIDHeader))
	}
	if resp, _ := get("/healthz"); resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get(fhttp.RequestIDHeader), "req_") {
		t.Fatalf("/healthz: %d, request id %q", resp.StatusCode, resp.Header.Get(fhttp.RequestIDHeader))
	}
	if resp, body := get("/readyz"); resp.StatusCode != 200 {
		t.Fatalf("/readyz: %d %s", resp.StatusCode, body)
	}

	// Each party verifies the log from outside and sees its own records.
	records := func(c *sdk.Client) []*audit.Record {
		t.Helper()
		p := newParty(t, "")
		r := p.run("", "audit", "verify", "--server", url, "--token", c.Token())
		mustSucceed(t, r)
		if !strings.Contains(r.stdout, "records are in it") {
			t.Fatalf("audit verify: %s", r.stdout)
		}
		r = p.run("", "audit", "log", "--server", url, "--token", c.Token(), "--json")
		mustSucceed(t, r)
		var out []*audit.Record
		sc := bufio.NewScanner(strings.NewReader(r.stdout))
		for sc.Scan() {
			var it audit.Item
			if err := json.Unmarshal(sc.Bytes(), &it); err != nil {
				t.Fatal(err)
			}
			out = append(out, must(audit.DecodeRecord(it.Record))(t))
		}
		return out
	}
	count := func(rs []*audit.Record, action, outcome, actor string) int {
		n := 0
		for _, r := range rs {
			if r.Action == action && r.Outcome == outcome && (actor == "*" || r.Actor == actor) {
				n++
			}
		}
		return n
	}
	ur, or, xr := records(user), records(owner), records(other)
	for _, c := range []struct {
		name                   string
		rs                     []*audit.Record
		action, outcome, actor string
		want                   int
	}{
		{"user: logins", ur, "auth.login", audit.OutcomeOK, "ulrich", 2},
		{"user: failed login", ur, "auth.login", fheserve.EUNAUTHORIZED, "", 1},
		{"user: submissions", ur, "job.submit", audit.OutcomeOK, "ulrich", ok + 1},
		{"user: completions", ur, "job.complete", audit.OutcomeOK, "", ok},
		{"user: failure", ur, "job.fail", fheserve.ECONFLICT, "", 1},
		{"user: key sets", ur, "keyset.upload", audit.OutcomeOK, "ulrich", 2},
		{"user: revocation", ur, "keyset.revoke", audit.OutcomeOK, "ulrich", 1},
		{"owner: deploy", or, "model.deploy", audit.OutcomeOK, "olivia", 1},
		{"owner: limits", or, "model.limits", audit.OutcomeOK, "olivia", 1},
		{"owner: submissions", or, "job.submit", audit.OutcomeOK, "ulrich", ok + 1},
		{"owner: failure", or, "job.fail", fheserve.ECONFLICT, "", 1},
		{"owner: not the user's logins", or, "auth.login", audit.OutcomeOK, "ulrich", 0},
		{"otto: his login", xr, "auth.login", audit.OutcomeOK, "otto", 1},
		{"otto: not ulrich's jobs", xr, "job.submit", audit.OutcomeOK, "*", 0},
		{"otto: not the model", xr, "model.deploy", audit.OutcomeOK, "*", 0},
	} {
		if got := count(c.rs, c.action, c.outcome, c.actor); got != c.want {
			t.Errorf("%s: %d records %s/%s by %q, want %d", c.name, got, c.action, c.outcome, c.actor, c.want)
		}
	}
	found := false
	for _, r := range ur {
		found = found || r.RequestID == "e2e-login-1" && r.Action == "auth.login"
	}
	if !found {
		t.Errorf("no login record with the request id sent")
	}
	mustSucceed(t, runCLI(t, "audit", "verify", "--data-dir", dir))
	db := must(os.ReadFile(filepath.Join(dir, audit.DBFile)))(t)
	for _, secret := range []string{"ulrich-password", "olivia-password", user.Token(), owner.Token()} {
		if strings.Contains(string(db), secret) {
			t.Errorf("audit.db holds a secret")
		}
	}

	// The metrics count the flow.
	_, text := get("/metrics")
	metric := func(name string, labels ...string) float64 {
		var v float64
		for _, line := range strings.Split(text, "\n") {
			rest, ok := strings.CutPrefix(line, name)
			if !ok || rest == "" || rest[0] != '{' && rest[0] != ' ' {
				continue
			}
			all := true
			for _, l := range labels {
				all = all && strings.Contains(rest, l)
			}
			if all {
				f, err := strconv.ParseFloat(rest[strings.LastIndexByte(rest, ' ')+1:], 64)
				if err != nil {
					t.Fatalf("%q: %v", line, err)
				}
				v += f
			}
		}
		return v
	}
	jobsRoute := `route="POST /v1/models/{id}/jobs"`
	model := `model="` + m.ID + `"`
	for _, c := range []struct {
		name     string
		got, min float64
		max      float64
	}{
		{"job submissions", metric("fheserve_http_requests_total", jobsRoute), ok + 1, ok + 1},
		{"failed logins", metric("fheserve_http_requests_total", `route="POST /v1/sessions"`, `code="401"`), 1, 1},
		{"bytes in of submissions", metric("fheserve_http_request_bytes_total", jobsRoute), float64((ok + 1) * len(ct)), float64((ok + 1) * len(ct))},
		{"bytes out of results", metric("fheserve_http_response_bytes_total", `route="GET /v1/jobs/{id}/result"`), 1, 1e9},
		{"evaluations", metric("fheserve_job_evaluation_seconds_count", model), ok + 1, ok + 1},
		{"evaluation seconds", metric("fheserve_job_evaluation_seconds_sum", model), 1e-6, 600},
		{"queue waits", metric("fheserve_job_queue_wait_seconds_count", model), ok + 1, ok + 1},
		{"jobs ok", metric("fheserve_jobs_finished_total", model, `outcome="ok"`), ok, ok},
		{"jobs failed", metric("fheserve_jobs_finished_total", model, `outcome="conflict"`), 1, 1},
		{"queue depth", metric("fheserve_job_queue_depth"), 0, 0},
		{"active key sets", metric("fheserve_keysets_active"), 1, 1},
	} {
		if c.got < c.min || c.got > c.max {
			t.Errorf("%s: %v, want %v to %v", c.name, c.got, c.min, c.max)
		}
	}
}

// must(f())(t) returns f's value or fails the test with f's error.
func must[T any](v T, err error) func(testing.TB) T {
	return func(tb testing.TB) T {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
		return v
	}
}
