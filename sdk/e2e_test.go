package sdk_test

import (
	"context"
	"errors"
	"flag"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/app"
	"github.com/fheserve/fheserve/audit"
	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/internal/clustertest"
	"github.com/fheserve/fheserve/local"
	"github.com/fheserve/fheserve/nn/onnx"
	"github.com/fheserve/fheserve/node"
	"github.com/fheserve/fheserve/npy"
	"github.com/fheserve/fheserve/sdk"
)

// MustDaemon starts a server on 127.0.0.1:0 with a fresh data directory
// and an administrator "root", embedded.
func MustDaemon(tb testing.TB) *node.Node {
	return mustDaemonIn(tb, clustertest.Embedded, app.Config{Workers: 2})
}

// mustDaemonIn is MustDaemon in mode with cfg: in a cluster, cfg's
// workers are a separate worker's.
func mustDaemonIn(tb testing.TB, mode string, cfg app.Config) *node.Node {
	tb.Helper()
	var d *node.Node
	if mode == clustertest.Clustered {
		_, d = clustertest.Start(tb, cfg)
	} else {
		var err error
		if d, err = node.Start(context.Background(), tb.TempDir(), "127.0.0.1:0", cfg); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { d.Close() })
	}
	if _, err := d.App.InitAdmin(context.Background(), "root", rootPassword); err != nil {
		tb.Fatal(err)
	}
	return d
}

const rootPassword = "correct horse battery staple"

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

func wantCode(tb testing.TB, err error, code string) {
	tb.Helper()
	if got := fheserve.ErrorCode(err); got != code {
		tb.Fatalf("error %v: code %q, want %q", err, got, code)
	}
}

var long = flag.Bool("long", false, "also run TestEndToEnd on cnn_square")

// TestEndToEnd runs the whole flow through the SDK against a real server:
// registration, approval, login, deployment, keys, an encrypted
// prediction, and checks the result against predict --local's engine.
// The flow is the same for every model; cnn_square (9 rotation keys,
// generated twice, two thirds of the test's time) runs with -long, and
// local.TestOpsEncrypted runs it encrypted by default.
func TestEndToEnd(t *testing.T) {
	for _, model := range []string{"mlp_square", "cnn_square"} {
		t.Run(model, func(t *testing.T) {
			if model != "mlp_square" && !*long {
				t.Skip("the same flow as mlp_square: run with -long")
			}
			clustertest.InModes(t, func(t *testing.T, mode string) { testEndToEnd(t, model, mode) })
		})
	}
}

func testEndToEnd(t *testing.T, model, mode string) {
	ctx := context.Background()
	d := mustDaemonIn(t, mode, app.Config{Workers: 2})

	// Registration lands as pending: no login until approved.
	owner, user, admin := sdk.New(d.URL()), sdk.New(d.URL()), sdk.New(d.URL())
	acct := must(owner.Register(ctx, "olivia", "owner-password", fheserve.RoleOwner))(t)
	if acct.Status != fheserve.AccountPending {
		t.Fatalf("new account is %s, want pending", acct.Status)
	}
	must(user.Register(ctx, "ulrich", "user-password", fheserve.RoleUser))(t)
	_, err := user.Login(ctx, "ulrich", "user-password")
	wantCode(t, err, fheserve.EFORBIDDEN)

	must(admin.Login(ctx, "root", rootPassword))(t)
	pending := must(admin.Pending(ctx))(t)
	if len(pending) != 2 {
		t.Fatalf("%d pending accounts, want 2", len(pending))
	}
	for _, a := range pending {
		must(admin.Approve(ctx, a.Username))(t)
	}
	_, err = user.Login(ctx, "ulrich", "wrong password")
	wantCode(t, err, fheserve.EUNAUTHORIZED)
	must(owner.Login(ctx, "olivia", "owner-password"))(t)
	must(user.Login(ctx, "ulrich", "user-password"))(t)

	// The owner deploys a model for this user alone.
	data := must(os.ReadFile(filepath.Join("..", "testdata", "onnx", model+".onnx")))(t)
	m := must(owner.Deploy(ctx, &fheserve.DeployRequest{Name: model, ONNX: data, Allow: []string{"ulrich"}}))(t)
	if m.Version != 1 || m.Owner != "olivia" || m.Status != fheserve.ModelActive {
		t.Fatalf("deployed model: %+v", m)
	}

	// The user finds it, makes keys locally and uploads the public part.
	models := must(user.Models(ctx))(t)
	if len(models) != 1 || models[0].ID != m.ID {
		t.Fatalf("user sees %v, want just %s", models, m.ID)
	}
	keys := must(user.GenerateKeys(ctx, m.ID))(t)
	ks := must(user.UploadKeys(ctx, keys, ""))(t)
	if ks.ModelID != m.ID || ks.Size != int64(keys.EvalKeysSize()) || keys.KeySetID != ks.ID {
		t.Fatalf("key set: %+v", ks)
	}

	// An encrypted prediction of every fixture sample.
	x := must(npy.ReadFile(filepath.Join("..", "testdata", "onnx", model+".x.npy")))(t)
	n := x.Shape[0]
	var updates int
	got := must(user.Predict(ctx, keys, x.Data, n, func(p sdk.Progress) { updates++ }))(t)
	if updates < n {
		t.Errorf("%d progress updates for %d calls", updates, n)
	}

	// The same input through predict --local's engine.
	g := must(onnx.Import(data, onnx.Options{}))(t)
	g.Name = model
	r := must(local.New(g, compiler.Options{}, 0))(t)
	want := must(r.Predict(ctx, x.Data, n))(t)
	if r.Plan.Fingerprint != keys.Plan.Fingerprint {
		t.Fatalf("the server compiled plan %s, predict --local compiles %s", keys.Plan.Fingerprint, r.Plan.Fingerprint)
	}
	tol := keys.Plan.Precision.OutputError
	var worst float64
	for i := range want {
		worst = math.Max(worst, math.Abs(got[i]-want[i]))
	}
	if worst > tol {
		t.Fatalf("max |server - local| = %.3g, above the plan's precision %.3g", worst, tol)
	}
	t.Logf("%s: %d samples, max |server - local| = %.2e (precision %.2e)", model, n, worst, tol)

	// The owner sees usage of their model, not the values.
	u := must(owner.Usage(ctx, m.ID))(t)
	calls := (n + keys.Plan.BatchSize - 1) / keys.Plan.BatchSize
	if u.Requests != calls || u.Samples != n || u.Failures != 0 || len(u.ByUser) != 1 || u.ByUser[0].Key != "ulrich" {
		t.Fatalf("usage: %+v", u)
	}
	// The secret key never went to the server: the upload was exactly
	// the public and evaluation keys.
	// The administrator finds the upload in the signed log, once.
	uploads := 0
	q := audit.Query{Object: audit.Object{Kind: audit.KindKeySet, ID: ks.ID}, Limit: audit.MaxLimit}
	page := must((&audit.Client{URL: d.URL() + audit.PathPrefix, Token: admin.Token()}).Records(ctx, q))(t)
	for _, it := range page.Records {
		if r := must(audit.DecodeRecord(it.Record))(t); r.Action == "keyset.upload" {
			uploads++
		}
	}
	if uploads != 1 {
		t.Fatalf("the signed log holds %d uploads of key set %s, want 1", uploads, ks.ID)
	}

	if err := user.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	_, err = user.Models(ctx)
	wantCode(t, err, fheserve.EUNAUTHORIZED)
}

// TestOutOfBound predicts, through a real server, a sample like the
// calibration data and one ten times larger on a model with an
// approximated ReLU: the larger one drives the polynomial far beyond its
// interval, and Predict (through Fetch and Keys.Decrypt) returns every
// output with an *OutOfBoundError naming that sample, not silently. An
// overflow spoils every slot of the result: with tiles the first sample
// shares the call, and is named too when it was spoiled.
func TestOutOfBound(t *testing.T) {
	ctx := context.Background()
	d := MustDaemon(t)
	owner, user, _ := mustParties(t, d.URL())
	fixture := func(name string) []byte {
		return must(os.ReadFile(filepath.Join("..", "testdata", "onnx", name)))(t)
	}
	// Degree 5: the approximation the compiler chooses from the
	// calibration data needs N=2^15, four times the time.
	m := must(owner.Deploy(ctx, &fheserve.DeployRequest{Name: "relu", ONNX: fixture("relu.onnx"), Calibration: fixture("relu.calib.npy"),
		CompileSettings: fheserve.CompileSettings{Degree: 5}}))(t)
	keys := must(user.GenerateKeys(ctx, m.ID))(t)
	must(user.UploadKeys(ctx, keys, ""))(t)

	x := must(npy.ReadFile(filepath.Join("..", "testdata", "onnx", "relu.x.npy")))(t)
	in := keys.Plan.InputSize()
	xs := append([]float64(nil), x.Data[:2*in]...)
	for i := in; i < 2*in; i++ {
		xs[i] *= 10
	}
	y, err := user.Predict(ctx, keys, xs, 2, nil)
	var oob *sdk.OutOfBoundError
	if !errors.As(err, &oob) {
		t.Fatalf("Predict: %v, want an *OutOfBoundError", err)
	}
	named, want := []int{1}, "1 of 2 samples (sample 1)"
	if keys.Plan.BatchSize >= 2 && len(oob.Samples) == 2 {
		named, want = []int{0, 1}, "2 of 2 samples (samples 0, 1)"
	}
	if !slices.Equal(oob.Samples, named) || oob.Total != 2 || oob.Largest <= oob.Bound || len(y) != 2*keys.Plan.OutputSize() {
		t.Fatalf("out of bound: %+v, %d outputs; want samples %v of 2 and every output", oob, len(y), named)
	}
	wantCode(t, err, fheserve.EINVALID)
	if msg := err.Error(); !strings.Contains(msg, want) || !strings.Contains(msg, "left the calibrated interval") {
		t.Errorf("message %q", msg)
	}
	t.Log(err)
}

// mustParties logs in as the administrator of the server at url, registers
// and approves the owner olivia and the user ulrich, and returns the three
// logged-in clients.
func mustParties(t *testing.T, url string) (owner, user, admin *sdk.Client) {
	t.Helper()
	ctx := context.Background()
	owner, user, admin = sdk.New(url), sdk.New(url), sdk.New(url)
	must(admin.Login(ctx, "root", rootPassword))(t)
	for _, c := range []struct {
		c          *sdk.Client
		name, role string
	}{{owner, "olivia", fheserve.RoleOwner}, {user, "ulrich", fheserve.RoleUser}} {
		must(c.c.Register(ctx, c.name, c.name+"-password", c.role))(t)
		must(admin.Approve(ctx, c.name))(t)
		must(c.c.Login(ctx, c.name, c.name+"-password"))(t)
	}
	return owner, user, admin
}
