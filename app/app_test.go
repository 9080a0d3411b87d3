package app

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/audit"
	"github.com/fheserve/fheserve/blob"
	"github.com/fheserve/fheserve/inproc"
	"github.com/fheserve/fheserve/sqlite"
	"github.com/fheserve/fheserve/storetest"
)

// clock is a settable time for tests.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// mustApp returns an App on a fresh SQLite store and blob folder, not
// started, with a settable clock.
func mustApp(t *testing.T) (*App, *clock) {
	t.Helper()
	dir := t.TempDir()
	store, err := sqlite.Open(context.Background(), filepath.Join(dir, "db"))
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := blob.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{now: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)}
	a, err := New(Config{Store: store, Blobs: blobs, Queue: inproc.NewQueue(), MasterKey: make([]byte, 32), Audit: mustLog(t), Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a, c
}

// mustLog returns a signed log in memory.
func mustLog(tb testing.TB) *audit.Log {
	tb.Helper()
	key, err := audit.GenerateKey("")
	if err != nil {
		tb.Fatal(err)
	}
	l, err := audit.New(context.Background(), audit.NewMemStore(), key)
	if err != nil {
		tb.Fatal(err)
	}
	return l
}

// mustKeySet stores an owner "olivia" with a model mdl_1, and a user
// "ulrich" with a key set key_1 for it.
func mustKeySet(t *testing.T, a *App) (*fheserve.Account, *fheserve.Model, *fheserve.KeySet) {
	t.Helper()
	owner := storetest.MustAccount(t, a.store, "olivia", fheserve.RoleOwner)
	user := storetest.MustAccount(t, a.store, "ulrich", fheserve.RoleUser)
	m := storetest.MustModel(t, a.store, owner, "mdl_1", "m")
	return user, m, storetest.MustKeySet(t, a.store, user, m, "key_1")
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := fheserve.ErrorCode(err); got != code {
		t.Fatalf("error %v: code %q, want %q", err, got, code)
	}
}

func TestPassword(t *testing.T) {
	h := hashPassword("a long password")
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("hash %q is not argon2id in PHC format", h)
	}
	if h == hashPassword("a long password") {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	if !checkPassword(h, "a long password") || checkPassword(h, "a long passwore") {
		t.Fatal("checkPassword accepts a wrong password or refuses the right one")
	}
	for _, bad := range []string{"", "$argon2id$", "$bcrypt$v=19$m=1,t=1,p=1$AA$AA", "$argon2id$v=19$m=999999999,t=1,p=1$AA$AA"} {
		if checkPassword(bad, "x") {
			t.Errorf("checkPassword(%q) succeeded", bad)
		}
	}
}

func TestMasterKey(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(MasterKeyEnv, "")
	k1, err := LoadMasterKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, MasterKeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("master key file: %v, mode %v", err, st.Mode().Perm())
	}
	k2, err := LoadMasterKey(dir)
	if err != nil || string(k1) != string(k2) {
		t.Fatal("the master key changed between loads")
	}
	t.Setenv(MasterKeyEnv, strings.Repeat("ab", 32))
	k3, err := LoadMasterKey(dir)
	if err != nil || k3[0] != 0xab {
		t.Fatalf("$%s was not used: %v", MasterKeyEnv, err)
	}
	t.Setenv(MasterKeyEnv, "short")
	if _, err := LoadMasterKey(dir); err == nil {
		t.Fatal("a short master key was accepted")
	}

	kr, _ := newKeyring(k1)
	key, wrapped := kr.newDataKey("mdl_1")
	got, err := kr.unwrap(wrapped, "mdl_1")
	if err != nil || string(got) != string(key) {
		t.Fatalf("unwrap: %v", err)
	}
	if _, err := kr.unwrap(wrapped, "mdl_2"); err == nil {
		t.Fatal("a data key unwrapped for another model")
	}
	other, _ := newKeyring(k3)
	if _, err := other.unwrap(wrapped, "mdl_1"); err == nil {
		t.Fatal("a data key unwrapped with another master key")
	}
}

func TestLRU(t *testing.T) {
	c := newLRU[int](10)
	c.add("a", 1, 4)
	c.add("b", 2, 4)
	c.get("a") // b is now the least recently used
	c.add("c", 3, 4)
	if _, ok := c.get("b"); ok {
		t.Error("b was not evicted")
	}
	if v, ok := c.get("a"); !ok || v != 1 {
		t.Error("a was evicted")
	}
	c.add("huge", 4, 100) // kept alone, however large
	if c.len() != 1 {
		t.Errorf("%d entries after a huge one, want 1", c.len())
	}
	c.remove("huge")
	if c.len() != 0 || c.cost != 0 {
		t.Errorf("after remove: %d entries, cost %d", c.len(), c.cost)
	}
}

func TestAccounts(t *testing.T) {
	ctx := context.Background()
	a, _ := mustApp(t)
	root, err := a.InitAdmin(ctx, "root", "root-password")
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.Register(ctx, &fheserve.RegisterRequest{Username: "ulrich", Password: "user-password", Role: fheserve.RoleUser})
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.Login(ctx, &fheserve.LoginRequest{Username: "ulrich", Password: "user-password"})
	wantCode(t, err, fheserve.EFORBIDDEN)
	_, err = a.Review(ctx, root, "root", Disable)
	wantCode(t, err, fheserve.ECONFLICT)
	if _, err := a.Review(ctx, root, "ulrich", Approve); err != nil {
		t.Fatal(err)
	}
	s, err := a.Login(ctx, &fheserve.LoginRequest{Username: "ulrich", Password: "user-password"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := a.Authenticate(ctx, s.Token)
	if err != nil || c.Account.Username != "ulrich" {
		t.Fatalf("Authenticate: %v", err)
	}
	_, err = a.Accounts(ctx, c.Account, fheserve.AccountFilter{})
	wantCode(t, err, fheserve.EFORBIDDEN)

	// Disabling stops the token at once, and re-enabling does not revive it.
	if _, err := a.Review(ctx, root, "ulrich", Disable); err != nil {
		t.Fatal(err)
	}
	_, err = a.Authenticate(ctx, s.Token)
	wantCode(t, err, fheserve.EFORBIDDEN)
	if _, err := a.Review(ctx, root, "ulrich", Approve); err != nil {
		t.Fatal(err)
	}
	_, err = a.Authenticate(ctx, s.Token)
	wantCode(t, err, fheserve.EUNAUTHORIZED)

	// Guessing passwords is slowed down.
	var last error
	for range 12 {
		_, last = a.Login(ctx, &fheserve.LoginRequest{Username: "ulrich", Password: "guess-guess"})
	}
	wantCode(t, last, fheserve.ERATELIMIT)
}

func TestSessionExpiry(t *testing.T) {
	ctx := context.Background()
	a, clk := mustApp(t)
	if _, err := a.InitAdmin(ctx, "root", "root-password"); err != nil {
		t.Fatal(err)
	}
	s, err := a.Login(ctx, &fheserve.LoginRequest{Username: "root", Password: "root-password"})
	if err != nil {
		t.Fatal(err)
	}
	clk.add(a.cfg.SessionTTL + time.Second)
	_, err = a.Authenticate(ctx, s.Token)
	wantCode(t, err, fheserve.EUNAUTHORIZED)
}

// TestResultExpiry checks that the janitor deletes results past their
// retention time and that fetching one then says so.
func TestResultExpiry(t *testing.T) {
	ctx := context.Background()
	a, clk := mustApp(t)
	user, m, ks := mustKeySet(t, a)
	w, err := a.blobs.Create(ctx, "jobs/job_1/result")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("result"))
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	now := clk.Now()
	exp := now.Add(time.Hour)
	j := &fheserve.Job{ID: "job_1", AccountID: user.ID, ModelID: m.ID, KeySetID: ks.ID, Status: fheserve.JobDone,
		Total: 2, Done: 2, ResultKey: "jobs/job_1/result", CreatedAt: now, FinishedAt: &now, ExpiresAt: &exp}
	if err := a.store.CreateJob(ctx, j); err != nil {
		t.Fatal(err)
	}
	a.expire(ctx)
	r, _, err := a.Result(ctx, user, "job_1")
	if err != nil {
		t.Fatalf("result before expiry: %v", err)
	}
	r.Close()
	clk.add(time.Hour + time.Second)
	a.expire(ctx)
	_, _, err = a.Result(ctx, user, "job_1")
	wantCode(t, err, fheserve.ENOTFOUND)
	if !strings.Contains(err.Error(), "expired") {
		t.Errorf("message %q does not say the result expired", err)
	}
	if _, _, err := a.blobs.Open(ctx, "jobs/job_1/result"); fheserve.ErrorCode(err) != fheserve.ENOTFOUND {
		t.Errorf("the result blob is still there: %v", err)
	}
}

func TestUsage(t *testing.T) {
	day := time.Date(2026, 11, 22, 23, 0, 0, 0, time.UTC)
	var jobs []*fheserve.Job
	for i := range 10 {
		created := day.Add(time.Duration(i) * 20 * time.Minute)
		fin := created.Add(time.Duration(i+1) * 100 * time.Millisecond)
		start := created.Add(10 * time.Millisecond)
		j := &fheserve.Job{Username: []string{"ann", "bob"}[i%2], Status: fheserve.JobDone, Samples: i%3 + 1, CreatedAt: created, StartedAt: &start, FinishedAt: &fin}
		if i == 9 {
			j.Status, j.ErrorCode = fheserve.JobFailed, fheserve.ECONFLICT
		}
		jobs = append(jobs, j)
	}
	u := usageOf("mdl_1", jobs)
	if u.Requests != 10 || u.Failures != 1 || u.Samples != 19 {
		t.Fatalf("requests %d, failures %d, samples %d", u.Requests, u.Failures, u.Samples)
	}
	if len(u.ByUser) != 2 || u.ByUser[0].Key != "ann" || u.ByUser[0].Requests != 5 || u.ByUser[0].Samples != 10 || u.ByUser[1].Failures != 1 {
		t.Errorf("by user: %+v", u.ByUser)
	}
	if len(u.ByDay) != 2 || u.ByDay[0].Key != "2026-11-22" || u.ByDay[0].Requests != 3 {
		t.Errorf("by day: %+v", u.ByDay)
	}
	if u.Latency.P50 != 500 || u.Latency.Max != 900 || u.Latency.P90 != 900 {
		t.Errorf("latency: %+v", u.Latency)
	}
	if u.QueueWait.P99 != 10 || u.Evaluation.P50 != 490 || u.Evaluation.Max != 990 {
		t.Errorf("queue wait %+v, evaluation %+v", u.QueueWait, u.Evaluation)
	}
	if len(u.FailuresByCause) != 1 || u.FailuresByCause[fheserve.ECONFLICT] != 1 {
		t.Errorf("failures by cause: %v", u.FailuresByCause)
	}
	// Jobs at 23:00, 23:20 and 23:40 on the 22nd, then 00:00 to 02:00.
	hours := map[string]int{}
	for _, l := range u.ByUserHour {
		hours[l.User+" "+l.Key] = l.Requests
	}
	want := map[string]int{"ann 2026-11-22T23": 2, "bob 2026-11-22T23": 1, "ann 2026-11-23T00": 1, "bob 2026-11-23T00": 2,
		"ann 2026-11-23T01": 2, "bob 2026-11-23T01": 1, "bob 2026-11-23T02": 1}
	if fmt.Sprint(hours) != fmt.Sprint(want) {
		t.Errorf("by user and hour: %v, want %v", hours, want)
	}
	if len(u.ByUserDay) != 4 || u.ByUserDay[0] != (fheserve.UsageLine{Key: "2026-11-22", User: "ann", Requests: 2, Samples: 4}) {
		t.Errorf("by user and day: %+v", u.ByUserDay)
	}

	q := quotaState(fheserve.ModelLimits{}, jobs, day.Add(2*time.Hour))
	if q.Set || q.Summary != "no quota set" || q.Today != 7 || q.TodaySamples != 13 {
		t.Errorf("no limits: %+v", q)
	}
	q = quotaState(fheserve.ModelLimits{RatePerMinute: 6, Daily: 100, ModelDaily: 1000}, jobs, day.Add(2*time.Hour))
	if !q.Set || q.Summary != "6 samples/min per user (bursts of 6), 100 samples/day per user, 1000 samples/day for all users" {
		t.Errorf("limits: %+v", q)
	}
}
