package sdk_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/app"
	"github.com/fheserve/fheserve/internal/pgtest"
	"github.com/fheserve/fheserve/nn/onnx"
	"github.com/fheserve/fheserve/node"
	"github.com/fheserve/fheserve/npy"
	"github.com/fheserve/fheserve/sdk"
)

// serverURL is a server the examples share, with an administrator "root".
var serverURL string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fheserve-sdk-")
	if err != nil {
		panic(err)
	}
	d, err := node.Start(context.Background(), dir, "127.0.0.1:0", app.Config{})
	if err != nil {
		panic(err)
	}
	if _, err := d.App.InitAdmin(context.Background(), "root", rootPassword); err != nil {
		panic(err)
	}
	serverURL = d.URL()
	// The cluster mode's PostgreSQL stops with the tests.
	code := pgtest.Main(m)
	d.Close()
	os.RemoveAll(dir)
	os.Exit(code)
}

// fixture reads a file of testdata/onnx.
func fixture(name string) []byte {
	b, err := os.ReadFile(filepath.Join("..", "testdata", "onnx", name))
	if err != nil {
		panic(err)
	}
	return b
}

// approved registers an account, has root approve it and logs it in.
func approved(username, role string) *sdk.Client {
	ctx := context.Background()
	c := sdk.New(serverURL)
	if _, err := c.Register(ctx, username, username+"-password", role); err != nil {
		panic(err)
	}
	admin := sdk.New(serverURL)
	if _, err := admin.Login(ctx, "root", rootPassword); err != nil {
		panic(err)
	}
	if _, err := admin.Approve(ctx, username); err != nil {
		panic(err)
	}
	if _, err := c.Login(ctx, username, username+"-password"); err != nil {
		panic(err)
	}
	return c
}

// The whole flow: registration and approval, deployment, keys made on the
// user's device, an encrypted prediction.
func Example() {
	ctx := context.Background()

	// An owner and a user register; their accounts wait for approval.
	owner, user := sdk.New(serverURL), sdk.New(serverURL)
	owner.Register(ctx, "olga", "owner-password", fheserve.RoleOwner)
	acct, err := user.Register(ctx, "uma", "user-password", fheserve.RoleUser)
	if err != nil {
		panic(err)
	}
	fmt.Println("uma is", acct.Status)

	// An administrator approves both.
	admin := sdk.New(serverURL)
	admin.Login(ctx, "root", rootPassword)
	admin.Approve(ctx, "olga")
	admin.Approve(ctx, "uma")

	// The owner deploys a model for uma; the server compiles it.
	owner.Login(ctx, "olga", "owner-password")
	model := fixture("mlp_square.onnx")
	m, err := owner.Deploy(ctx, &fheserve.DeployRequest{Name: "mlp_square", ONNX: model, Allow: []string{"uma"}})
	if err != nil {
		panic(err)
	}
	fmt.Printf("deployed %s v%d: input %v, output %v\n", m.Name, m.Version, m.InputShape, m.OutputShape)

	// uma generates keys on her device and uploads only the public part.
	user.Login(ctx, "uma", "user-password")
	keys, err := user.GenerateKeys(ctx, m.ID)
	if err != nil {
		panic(err)
	}
	if _, err := user.UploadKeys(ctx, keys, ""); err != nil {
		panic(err)
	}

	// She predicts four samples under encryption.
	x, _ := npy.Read(bytesReader(fixture("mlp_square.x.npy")), 1<<20)
	y, err := user.Predict(ctx, keys, x.Data, 4, nil)
	if err != nil {
		panic(err)
	}

	// The decrypted outputs match the plaintext model within the plan's precision.
	g, _ := onnx.Import(model, onnx.Options{})
	want, _ := g.EvalBatch(x.Data, 4, nil)
	fmt.Printf("%d outputs, all within the plan's precision of the plaintext model: %v\n", len(y), within(y, want, keys.Plan.Precision.OutputError))
	// Output:
	// uma is pending
	// deployed mlp_square v1: input [16], output [4]
	// 16 outputs, all within the plan's precision of the plaintext model: true
}

// A job's progress arrives as it happens; the result is fetched and
// decrypted on the device.
func ExampleClient_Wait() {
	ctx := context.Background()
	owner, user := approved("oskar", fheserve.RoleOwner), approved("ute", fheserve.RoleUser)
	m, _ := owner.Deploy(ctx, &fheserve.DeployRequest{Name: "cnn_square", ONNX: fixture("cnn_square.onnx")})
	keys, _ := user.GenerateKeys(ctx, m.ID)
	user.UploadKeys(ctx, keys, "")

	ct, err := keys.Encrypt(make([]float64, keys.Plan.InputSize()), 1)
	if err != nil {
		panic(err)
	}
	job, err := user.Submit(ctx, keys, ct, 1)
	if err != nil {
		panic(err)
	}
	last := 0
	job, err = user.Wait(ctx, job.ID, func(j *fheserve.Job) {
		if j.Done < last {
			panic("progress went backwards")
		}
		last = j.Done
	})
	if err != nil {
		panic(err)
	}
	fmt.Printf("job %s, all steps done: %v\n", job.Status, job.Done == job.Total)
	y, err := user.Fetch(ctx, keys, job.ID, 1)
	if err != nil {
		panic(err)
	}
	fmt.Println(len(y), "outputs")
	// Output:
	// job done, all steps done: true
	// 4 outputs
}

// The secret key can be stored on the device and loaded again to encrypt
// and decrypt under the uploaded key set.
func ExampleLoadKeys() {
	ctx := context.Background()
	owner, user := approved("otto", fheserve.RoleOwner), approved("udo", fheserve.RoleUser)
	m, _ := owner.Deploy(ctx, &fheserve.DeployRequest{Name: "gemm", ONNX: fixture("gemm.onnx")})
	keys, _ := user.GenerateKeys(ctx, m.ID)
	ks, _ := user.UploadKeys(ctx, keys, "")
	secret, err := keys.MarshalSecret() // store with mode 0600
	if err != nil {
		panic(err)
	}

	// Later, in another process:
	plan, _ := user.Plan(ctx, m.ID)
	again, err := sdk.LoadKeys(m.ID, ks.ID, plan, secret)
	if err != nil {
		panic(err)
	}
	y, err := user.Predict(ctx, again, make([]float64, plan.InputSize()), 1, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println(len(y), "outputs from key set", again.KeySetID == ks.ID)
	// Output:
	// 4 outputs from key set true
}

// A prediction larger than the owner's limits allow at once paces itself:
// jobs hold at most a burst of samples, are spaced to the rate, and at
// most PredictOptions.InFlight of them wait on the server.
func ExampleClient_PredictWith() {
	ctx := context.Background()
	owner, user := approved("ola", fheserve.RoleOwner), approved("uwe", fheserve.RoleUser)
	m, _ := owner.Deploy(ctx, &fheserve.DeployRequest{Name: "gemm", Packing: fheserve.PackingBatch, ONNX: fixture("gemm.onnx")})
	owner.API.SetLimits(ctx, m.ID, &fheserve.ModelLimits{RatePerMinute: 6000, Burst: 25})
	keys, _ := user.GenerateKeys(ctx, m.ID)
	user.UploadKeys(ctx, keys, "")

	const n = 100
	var stats sdk.PredictStats
	var last sdk.Progress
	y, err := user.PredictWith(ctx, keys, make([]float64, n*keys.Plan.InputSize()), n, &sdk.PredictOptions{
		InFlight: 2,
		Stats:    &stats,
		Progress: func(p sdk.Progress) { last = p },
	})
	if err != nil {
		panic(err)
	}
	fmt.Printf("%d outputs from %d jobs; progress: %d of %d samples\n", len(y), len(stats.Jobs), last.Predicted, last.Samples)
	// Output:
	// 400 outputs from 4 jobs; progress: 100 of 100 samples
}

func within(got, want []float64, tol float64) bool {
	for i := range want {
		if math.Abs(got[i]-want[i]) > tol {
			return false
		}
	}
	return true
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
