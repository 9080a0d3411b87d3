package node_test

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/app"
	"github.com/fheserve/fheserve/audit"
	auditpostgres "github.com/fheserve/fheserve/audit/postgres"
	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/internal/pgtest"
	"github.com/fheserve/fheserve/local"
	"github.com/fheserve/fheserve/natsjs/natstest"
	"github.com/fheserve/fheserve/nn/onnx"
	"github.com/fheserve/fheserve/node"
	"github.com/fheserve/fheserve/npy"
	"github.com/fheserve/fheserve/sdk"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

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

// TestNodesOnPostgres runs two API nodes (HTTP servers) on one
// PostgreSQL: sharing one data directory (its keys and blob folder), and
// each with its own, the blobs in a NATS JetStream object store and the
// master and audit keys given to both. Accounts registered through one
// are approved through the other, a model deployed through one is used
// through the other, a job submitted to one is fetched from the other
// and decrypts to what predict --local computes, and the audit log both
// appended to verifies as one sequence.
func TestNodesOnPostgres(t *testing.T) {
	t.Run("shared data directory", func(t *testing.T) {
		t.Setenv(app.MasterKeyEnv, "")
		dir := t.TempDir()
		testNodes(t, [2]string{dir, dir}, node.Engines{Store: pgtest.NewDB(t)})
	})
	t.Run("blobs on NATS", func(t *testing.T) {
		t.Setenv(app.MasterKeyEnv, strings.Repeat("5a", 32))
		testNodes(t, [2]string{t.TempDir(), t.TempDir()}, node.Engines{Store: pgtest.NewDB(t), Blobs: natstest.Start(t).URL()})
	})
}

func testNodes(t *testing.T, dirs [2]string, e node.Engines) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var nodes [2]*node.Node
	for i := range nodes {
		if i == 1 && dirs[1] != dirs[0] {
			// The log's one signing key, as an operator would copy it.
			key := must(os.ReadFile(filepath.Join(dirs[0], audit.KeyFile)))(t)
			if err := os.WriteFile(filepath.Join(dirs[1], audit.KeyFile), key, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		nodes[i] = must(node.StartOn(ctx, dirs[i], e, "127.0.0.1:0", app.Config{Workers: 1}))(t)
		t.Cleanup(func() { nodes[i].Close() })
	}
	a, b := nodes[0], nodes[1]
	must(a.App.InitAdmin(ctx, "root", "root-password"))(t)

	owner, user, admin := sdk.New(a.URL()), sdk.New(b.URL()), sdk.New(b.URL())
	must(owner.Register(ctx, "olivia", "owner-password", fheserve.RoleOwner))(t)
	must(user.Register(ctx, "ulrich", "user-password", fheserve.RoleUser))(t)
	must(admin.Login(ctx, "root", "root-password"))(t)
	for _, p := range must(admin.Pending(ctx))(t) {
		must(admin.Approve(ctx, p.Username))(t)
	}
	must(owner.Login(ctx, "olivia", "owner-password"))(t)
	must(user.Login(ctx, "ulrich", "user-password"))(t)

	data := must(os.ReadFile(filepath.Join("..", "testdata", "onnx", "mlp_square.onnx")))(t)
	m := must(owner.Deploy(ctx, &fheserve.DeployRequest{Name: "mlp", ONNX: data, Allow: []string{"ulrich"}}))(t)
	keys := must(user.GenerateKeys(ctx, m.ID))(t)
	must(user.UploadKeys(ctx, keys, ""))(t)

	// The job goes to node a, which evaluates it; node b serves it.
	onA := sdk.New(a.URL())
	onA.SetToken(user.Token())
	x := must(npy.ReadFile(filepath.Join("..", "testdata", "onnx", "mlp_square.x.npy")))(t)
	ct := must(keys.Encrypt(x.Data[:keys.Plan.InputSize()], 1))(t)
	j := must(onA.Submit(ctx, keys, ct, 1))(t)
	must(onA.Wait(ctx, j.ID, nil))(t)
	if got := must(user.API.Job(ctx, j.ID))(t); got.Status != fheserve.JobDone {
		t.Fatalf("node b sees the job %s", got.Status)
	}
	got := must(user.Fetch(ctx, keys, j.ID, 1))(t)

	g := must(onnx.Import(data, onnx.Options{}))(t)
	g.Name = "mlp_square"
	r := must(local.New(g, compiler.Options{}, 0))(t)
	want := must(r.Predict(ctx, x.Data[:keys.Plan.InputSize()], 1))(t)
	for i := range want {
		if d := math.Abs(got[i] - want[i]); d > keys.Plan.Precision.OutputError {
			t.Fatalf("output %d: |node - local| = %.3g, above the plan's precision %.3g", i, d, keys.Plan.Precision.OutputError)
		}
	}

	key := must(audit.LoadOrCreateKey(filepath.Join(dirs[0], audit.KeyFile), ""))(t)
	st := must(auditpostgres.Open(ctx, e.Store))(t)
	defer st.Close()
	v := must(audit.Verify(ctx, st, key.VerifierKey()))(t)
	t.Logf("the log of both nodes: %d records in %d checkpoints, verified", v.Records, v.Checkpoints)
	if v.Records < 8 {
		t.Errorf("the log of both nodes holds %d records, want registrations, approvals, logins, the deployment, the upload and the job", v.Records)
	}
}
