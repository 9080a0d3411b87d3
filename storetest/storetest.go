// Package storetest holds the conformance suites that every implementation
// of fheserve.Store, fheserve.BlobStore and fheserve.Queue must pass. An
// implementation's test calls Store, Blobs or Queue with a constructor.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fheserve/fheserve"
)

// t0 is a fixed time with sub-second precision, to check round trips.
var t0 = time.Date(2026, 11, 22, 10, 30, 0, 123456789, time.UTC)

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := fheserve.ErrorCode(err); got != code {
		t.Fatalf("error %v: code %q, want %q", err, got, code)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// MustAccount creates an active account with the given username and role.
func MustAccount(tb testing.TB, s fheserve.Store, username, role string) *fheserve.Account {
	tb.Helper()
	a := &fheserve.Account{ID: "acc_" + username, Username: username, Role: role, Status: fheserve.AccountActive,
		PasswordHash: "$argon2id$fake", CreatedAt: t0}
	if err := s.CreateAccount(context.Background(), a); err != nil {
		tb.Fatal(err)
	}
	return a
}

// Store runs the Store suite; open returns a new, empty store.
func Store(t *testing.T, open func(t *testing.T) fheserve.Store) {
	for _, tc := range []struct {
		name string
		f    func(*testing.T, fheserve.Store)
	}{
		{"accounts", testAccounts},
		{"tokens", testTokens},
		{"models", testModels},
		{"keysets", testKeySets},
		{"jobs", testJobs},
		{"galleries", testGalleries},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { s.Close() })
			tc.f(t, s)
		})
	}
}

func testAccounts(t *testing.T, s fheserve.Store) {
	ctx := context.Background()
	a := &fheserve.Account{ID: "acc_1", Username: "alice", Role: fheserve.RoleOwner, Status: fheserve.AccountPending,
		PasswordHash: "$argon2id$x", CreatedAt: t0}
	must(t, s.CreateAccount(ctx, a))
	wantCode(t, s.CreateAccount(ctx, &fheserve.Account{ID: "acc_2", Username: "alice", Role: "user", Status: "pending", CreatedAt: t0}), fheserve.ECONFLICT)
	got, err := s.Account(ctx, "acc_1")
	must(t, err)
	if got.Username != "alice" || got.Role != fheserve.RoleOwner || got.PasswordHash != "$argon2id$x" || !got.CreatedAt.Equal(t0) || got.ReviewedAt != nil {
		t.Fatalf("Account = %+v", got)
	}
	_, err = s.Account(ctx, "acc_nope")
	wantCode(t, err, fheserve.ENOTFOUND)
	_, err = s.AccountByUsername(ctx, "bob")
	wantCode(t, err, fheserve.ENOTFOUND)

	MustAccount(t, s, "bob", fheserve.RoleUser)
	pending, err := s.Accounts(ctx, fheserve.AccountFilter{Status: fheserve.AccountPending})
	must(t, err)
	if len(pending) != 1 || pending[0].Username != "alice" {
		t.Fatalf("pending accounts = %v", pending)
	}
	all, err := s.Accounts(ctx, fheserve.AccountFilter{})
	must(t, err)
	if len(all) != 2 {
		t.Fatalf("%d accounts, want 2", len(all))
	}

	rev := t0.Add(time.Hour)
	a.Status, a.ReviewedAt, a.ReviewedBy = fheserve.AccountActive, &rev, "root"
	must(t, s.UpdateAccount(ctx, a))
	got, err = s.AccountByUsername(ctx, "alice")
	must(t, err)
	if got.Status != fheserve.AccountActive || got.ReviewedAt == nil || !got.ReviewedAt.Equal(rev) || got.ReviewedBy != "root" {
		t.Fatalf("after update: %+v", got)
	}
	wantCode(t, s.UpdateAccount(ctx, &fheserve.Account{ID: "acc_nope"}), fheserve.ENOTFOUND)
}

func testTokens(t *testing.T, s fheserve.Store) {
	ctx := context.Background()
	a := MustAccount(t, s, "alice", fheserve.RoleUser)
	tok := &fheserve.Token{ID: "tok_1", Hash: "h1", AccountID: a.ID, Kind: fheserve.TokenSession, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	must(t, s.CreateToken(ctx, tok))
	must(t, s.CreateToken(ctx, &fheserve.Token{ID: "tok_2", Hash: "h2", AccountID: a.ID, Kind: fheserve.TokenAPI, Name: "ci", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}))
	wantCode(t, s.CreateToken(ctx, &fheserve.Token{ID: "tok_3", Hash: "h1", AccountID: a.ID, Kind: "session", CreatedAt: t0, ExpiresAt: t0}), fheserve.ECONFLICT)
	got, err := s.TokenByHash(ctx, "h1")
	must(t, err)
	if got.ID != "tok_1" || got.AccountID != a.ID || !got.ExpiresAt.Equal(t0.Add(time.Hour)) || !got.Valid(t0) || got.Valid(t0.Add(time.Hour)) {
		t.Fatalf("TokenByHash = %+v", got)
	}
	_, err = s.TokenByHash(ctx, "nope")
	wantCode(t, err, fheserve.ENOTFOUND)

	must(t, s.RevokeToken(ctx, a.ID, "tok_1", t0))
	wantCode(t, s.RevokeToken(ctx, "acc_other", "tok_2", t0), fheserve.ENOTFOUND)
	got, _ = s.TokenByHash(ctx, "h1")
	if got.RevokedAt == nil || got.Valid(t0) {
		t.Fatalf("revoked token = %+v", got)
	}
	must(t, s.RevokeTokens(ctx, a.ID, t0))
	toks, err := s.Tokens(ctx, a.ID)
	must(t, err)
	if len(toks) != 2 || toks[1].RevokedAt == nil || toks[1].Name != "ci" {
		t.Fatalf("Tokens = %v", toks)
	}
}

// MustModel creates an active model of owner.
func MustModel(tb testing.TB, s fheserve.Store, owner *fheserve.Account, id, name string, allow ...string) *fheserve.Model {
	tb.Helper()
	m := &fheserve.Model{ID: id, OwnerID: owner.ID, Name: name, Status: fheserve.ModelActive, Allow: allow,
		Packing: "latency", LogN: 13, InputShape: []int{1, 28, 28}, OutputShape: []int{10}, BatchSize: 1, Rotations: 5,
		OutputError: 0.03, PlanFingerprint: "pf", ParamsFingerprint: "hf", ModelBytes: 1000,
		PlanJSON: []byte(`{"version":1}`), WeightsKey: "models/" + id, WrappedKey: []byte{1, 2, 3}, CreatedAt: t0}
	if err := s.CreateModel(context.Background(), m); err != nil {
		tb.Fatal(err)
	}
	return m
}

func testModels(t *testing.T, s fheserve.Store) {
	ctx := context.Background()
	alice := MustAccount(t, s, "alice", fheserve.RoleOwner)
	bob := MustAccount(t, s, "bob", fheserve.RoleOwner)
	m1 := MustModel(t, s, alice, "mdl_1", "mnist")
	m2 := MustModel(t, s, alice, "mdl_2", "mnist", "carol", "dave")
	m3 := MustModel(t, s, bob, "mdl_3", "mnist")
	if m1.Version != 1 || m2.Version != 2 || m3.Version != 1 {
		t.Fatalf("versions %d %d %d, want 1 2 1", m1.Version, m2.Version, m3.Version)
	}
	got, err := s.Model(ctx, "mdl_2")
	must(t, err)
	if got.Owner != "alice" || got.OwnerID != alice.ID || !slices.Equal(got.Allow, []string{"carol", "dave"}) ||
		!slices.Equal(got.InputShape, []int{1, 28, 28}) || string(got.PlanJSON) != `{"version":1}` ||
		!bytes.Equal(got.WrappedKey, []byte{1, 2, 3}) || got.OutputError != 0.03 || !got.CreatedAt.Equal(t0) {
		t.Fatalf("Model = %+v", got)
	}
	if got.Allows("eve") || !got.Allows("carol") {
		t.Fatal("Allows disagrees with the allow-list")
	}
	if len(got.Labels) != 0 {
		t.Fatalf("a model stored without labels has %q", got.Labels)
	}
	labeled := &fheserve.Model{ID: "mdl_4", OwnerID: bob.ID, Name: "labeled", Status: fheserve.ModelActive,
		Packing: "latency", OutputShape: []int{3}, PlanJSON: []byte(`{}`), WeightsKey: "models/mdl_4", WrappedKey: []byte{1}, CreatedAt: t0,
		Labels: []string{"T-shirt/top", "Ankle boot", "ünï, \"q\""}}
	must(t, s.CreateModel(ctx, labeled))
	if got, _ := s.Model(ctx, "mdl_4"); !slices.Equal(got.Labels, labeled.Labels) {
		t.Fatalf("stored labels %q, want %q", got.Labels, labeled.Labels)
	}
	_, err = s.Model(ctx, "mdl_nope")
	wantCode(t, err, fheserve.ENOTFOUND)
	ms, err := s.Models(ctx, fheserve.ModelFilter{OwnerID: alice.ID})
	must(t, err)
	if len(ms) != 2 {
		t.Fatalf("alice has %d models, want 2", len(ms))
	}
	ret := t0.Add(time.Minute)
	m1.Status, m1.RetiredAt, m1.Allow = fheserve.ModelRetired, &ret, []string{"eve"}
	must(t, s.UpdateModel(ctx, m1))
	ms, err = s.Models(ctx, fheserve.ModelFilter{Status: fheserve.ModelActive})
	must(t, err)
	if len(ms) != 3 || ms[0].ID != "mdl_2" {
		t.Fatalf("active models = %v", ms)
	}
	got, _ = s.Model(ctx, "mdl_1")
	if got.Status != fheserve.ModelRetired || got.RetiredAt == nil || !got.RetiredAt.Equal(ret) || !slices.Equal(got.Allow, []string{"eve"}) {
		t.Fatalf("retired model = %+v", got)
	}
}

// MustKeySet creates an active key set.
func MustKeySet(tb testing.TB, s fheserve.Store, user *fheserve.Account, m *fheserve.Model, id string) *fheserve.KeySet {
	tb.Helper()
	k := &fheserve.KeySet{ID: id, AccountID: user.ID, ModelID: m.ID, Fingerprint: "kf", ParamsFingerprint: m.ParamsFingerprint,
		Size: 12345, Status: fheserve.KeySetActive, BlobKey: "keysets/" + id, CreatedAt: t0}
	if err := s.CreateKeySet(context.Background(), k); err != nil {
		tb.Fatal(err)
	}
	return k
}

func testKeySets(t *testing.T, s fheserve.Store) {
	ctx := context.Background()
	alice := MustAccount(t, s, "alice", fheserve.RoleOwner)
	carol := MustAccount(t, s, "carol", fheserve.RoleUser)
	m := MustModel(t, s, alice, "mdl_1", "mnist")
	k1 := MustKeySet(t, s, carol, m, "key_1")
	MustKeySet(t, s, carol, m, "key_2")
	got, err := s.KeySet(ctx, "key_1")
	must(t, err)
	if got.Username != "carol" || got.ModelID != m.ID || got.Size != 12345 || got.Status != fheserve.KeySetActive {
		t.Fatalf("KeySet = %+v", got)
	}
	_, err = s.KeySet(ctx, "key_nope")
	wantCode(t, err, fheserve.ENOTFOUND)
	now := t0.Add(time.Hour)
	k1.Status, k1.RevokedAt, k1.ReplacedBy = fheserve.KeySetRevoked, &now, "key_2"
	must(t, s.UpdateKeySet(ctx, k1))
	active, err := s.KeySets(ctx, fheserve.KeySetFilter{AccountID: carol.ID, Status: fheserve.KeySetActive})
	must(t, err)
	if len(active) != 1 || active[0].ID != "key_2" {
		t.Fatalf("active key sets = %v", active)
	}
	got, _ = s.KeySet(ctx, "key_1")
	if got.ReplacedBy != "key_2" || got.RevokedAt == nil {
		t.Fatalf("revoked key set = %+v", got)
	}
}

func testJobs(t *testing.T, s fheserve.Store) {
	ctx := context.Background()
	alice := MustAccount(t, s, "alice", fheserve.RoleOwner)
	carol := MustAccount(t, s, "carol", fheserve.RoleUser)
	m := MustModel(t, s, alice, "mdl_1", "mnist")
	k := MustKeySet(t, s, carol, m, "key_1")
	// Jobs of 1, 8 and 3 samples.
	samples := []int{1, 8, 3}
	for i := range 3 {
		j := &fheserve.Job{ID: fmt.Sprintf("job_%d", i), AccountID: carol.ID, ModelID: m.ID, KeySetID: k.ID,
			Status: fheserve.JobQueued, Samples: samples[i], Total: 4, InputBytes: 100, InputKey: "in", CreatedAt: t0}
		must(t, s.CreateJob(ctx, j))
	}
	j, err := s.Job(ctx, "job_1")
	must(t, err)
	if j.Username != "carol" || j.Status != fheserve.JobQueued || j.Samples != 8 || j.Total != 4 || j.StartedAt != nil {
		t.Fatalf("Job = %+v", j)
	}
	_, err = s.Job(ctx, "job_nope")
	wantCode(t, err, fheserve.ENOTFOUND)
	start, end, exp := t0.Add(time.Second), t0.Add(2*time.Second), t0.Add(time.Hour)
	j.Status, j.Done, j.Attempts, j.StartedAt, j.FinishedAt, j.ExpiresAt = fheserve.JobDone, 4, 1, &start, &end, &exp
	j.ResultKey, j.ResultBytes = "out", 50
	must(t, s.UpdateJob(ctx, j))
	got, _ := s.Job(ctx, "job_1")
	if got.Status != fheserve.JobDone || got.Samples != 8 || got.Done != 4 || !got.FinishedAt.Equal(end) || got.ResultKey != "out" || got.ResultBytes != 50 {
		t.Fatalf("updated job = %+v", got)
	}
	testJobLists(t, s, m.ID, exp)
	testJobCounts(t, s, alice.ID, carol.ID, m.ID)
	m.Limits = fheserve.ModelLimits{RatePerMinute: 1.5, Burst: 2, Daily: 10, ModelDaily: 100}
	must(t, s.UpdateModel(ctx, m))
	if got, _ := s.Model(ctx, m.ID); got.Limits != m.Limits {
		t.Fatalf("stored limits = %+v, want %+v", got.Limits, m.Limits)
	}
}

// testJobLists lists testJobs' jobs: job_0 and job_2 queued, job_1 done
// and expiring at exp.
func testJobLists(t *testing.T, s fheserve.Store, modelID string, exp time.Time) {
	ctx := context.Background()
	pending, err := s.Jobs(ctx, fheserve.JobFilter{Statuses: []string{fheserve.JobQueued, fheserve.JobRunning}})
	must(t, err)
	if len(pending) != 2 || pending[0].ID != "job_0" || pending[1].ID != "job_2" {
		t.Fatalf("pending jobs = %v, want job_0 and job_2 in order", pending)
	}
	expired, err := s.Jobs(ctx, fheserve.JobFilter{ExpiresBefore: exp.Add(time.Second)})
	must(t, err)
	if len(expired) != 1 || expired[0].ID != "job_1" {
		t.Fatalf("expiring jobs = %v", expired)
	}
	limited, err := s.Jobs(ctx, fheserve.JobFilter{ModelID: modelID, Limit: 1})
	must(t, err)
	if len(limited) != 1 {
		t.Fatalf("limit 1 gave %d jobs", len(limited))
	}
}

// testJobCounts counts testJobs' jobs, carol's on alice's model: of 1, 8
// and 3 samples, the first and last queued.
func testJobCounts(t *testing.T, s fheserve.Store, aliceID, carolID, modelID string) {
	ctx := context.Background()
	for _, c := range []struct {
		name          string
		f             fheserve.JobFilter
		jobs, samples int
	}{
		{"all", fheserve.JobFilter{}, 3, 12},
		{"user and model today", fheserve.JobFilter{AccountID: carolID, ModelID: modelID, CreatedAfter: t0}, 3, 12},
		{"after the jobs", fheserve.JobFilter{ModelID: modelID, CreatedAfter: t0.Add(time.Nanosecond)}, 0, 0},
		{"other user", fheserve.JobFilter{AccountID: aliceID}, 0, 0},
		{"queued", fheserve.JobFilter{Statuses: []string{fheserve.JobQueued}}, 2, 4},
	} {
		n, err := s.CountJobs(ctx, c.f)
		must(t, err)
		if n != c.jobs {
			t.Errorf("CountJobs(%s) = %d, want %d", c.name, n, c.jobs)
		}
		n, err = s.CountSamples(ctx, c.f)
		must(t, err)
		if n != c.samples {
			t.Errorf("CountSamples(%s) = %d, want %d", c.name, n, c.samples)
		}
	}
}

// Blobs runs the BlobStore suite; open returns a new, empty store.
func Blobs(t *testing.T, open func(t *testing.T) fheserve.BlobStore) {
	ctx := context.Background()
	s := open(t)
	w, err := s.Create(ctx, "jobs/job_1/input")
	must(t, err)
	data := bytes.Repeat([]byte("fhe"), 100000)
	_, err = w.Write(data)
	must(t, err)
	if _, _, err := s.Open(ctx, "jobs/job_1/input"); fheserve.ErrorCode(err) != fheserve.ENOTFOUND {
		t.Fatalf("uncommitted blob is visible (err %v)", err)
	}
	must(t, w.Commit())
	w.Abort() // no effect after Commit
	r, size, err := s.Open(ctx, "jobs/job_1/input")
	must(t, err)
	got, err := io.ReadAll(r)
	r.Close()
	must(t, err)
	if size != int64(len(data)) || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes (size %d), want %d", len(got), size, len(data))
	}

	w, err = s.Create(ctx, "jobs/job_2/input")
	must(t, err)
	w.Write([]byte("partial"))
	w.Abort()
	if _, _, err := s.Open(ctx, "jobs/job_2/input"); fheserve.ErrorCode(err) != fheserve.ENOTFOUND {
		t.Fatalf("aborted blob is visible (err %v)", err)
	}

	// Overwriting replaces atomically.
	w, _ = s.Create(ctx, "jobs/job_1/input")
	w.Write([]byte("new"))
	must(t, w.Commit())
	r, _, err = s.Open(ctx, "jobs/job_1/input")
	must(t, err)
	got, _ = io.ReadAll(r)
	r.Close()
	if string(got) != "new" {
		t.Fatalf("after overwrite: %q", got)
	}

	must(t, s.Delete(ctx, "jobs/job_1/input"))
	must(t, s.Delete(ctx, "jobs/job_1/input"))
	if _, _, err := s.Open(ctx, "jobs/job_1/input"); fheserve.ErrorCode(err) != fheserve.ENOTFOUND {
		t.Fatalf("deleted blob is visible (err %v)", err)
	}
	for _, bad := range []string{"", "../x", "a//b", "/abs", "A", "a/../b"} {
		if _, err := s.Create(ctx, bad); err == nil {
			t.Errorf("Create(%q) succeeded", bad)
		}
	}
}

// Queue runs the Queue suite; open returns a new, empty queue.
func Queue(t *testing.T, open func(t *testing.T) fheserve.Queue) {
	ctx := context.Background()
	q := open(t)
	for _, id := range []string{"a", "b", "c", "b"} {
		must(t, q.Push(ctx, id))
	}
	if p, ok := q.Position("c"); !ok || p != 2 {
		t.Fatalf("Position(c) = %d, %v; want 2, true", p, ok)
	}
	if _, ok := q.Position("z"); ok {
		t.Fatal("Position of an unknown id is ok")
	}
	for _, want := range []string{"a", "b", "c"} {
		got, err := q.Pop(ctx)
		must(t, err)
		if got != want {
			t.Fatalf("Pop = %q, want %q", got, want)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := q.Pop(cctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Pop on an empty queue: %v, want a deadline error", err)
	}
	testConcurrentPops(t, q)
}

// testConcurrentPops checks that concurrent consumers of an empty queue
// each get every id once.
func testConcurrentPops(t *testing.T, q fheserve.Queue) {
	ctx := context.Background()
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	cctx, cancel := context.WithCancel(ctx)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				id, err := q.Pop(cctx)
				if err != nil {
					return
				}
				mu.Lock()
				seen[id]++
				mu.Unlock()
			}
		}()
	}
	for i := range 100 {
		must(t, q.Push(ctx, fmt.Sprint(i)))
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n == 100 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	wg.Wait()
	for i := range 100 {
		if seen[fmt.Sprint(i)] != 1 {
			t.Fatalf("id %d popped %d times", i, seen[fmt.Sprint(i)])
		}
	}
}
