package http_test

import (
	"bytes"
	"context"
	"flag"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/app"
	"github.com/fheserve/fheserve/bundled"
	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/nn"
	"github.com/fheserve/fheserve/nn/onnx"
	"github.com/fheserve/fheserve/npy"
	"github.com/fheserve/fheserve/plan"
	"github.com/fheserve/fheserve/sdk"
)

var long = flag.Bool("long", false, "also run the sealed service flow on the bundled workloads and the examples' mlp (minutes, gigabytes)")

// sealedWorkload is a model for the sealed service flow: its graph, ONNX
// file, calibration rows and the first n of its test inputs.
type sealedWorkload struct {
	g     *nn.Graph
	onnx  []byte
	calib *npy.Array
	x     []float64
	n     int
}

// bundledWorkload loads a bundled workload with its first n inputs.
func bundledWorkload(t *testing.T, name string, n int) *sealedWorkload {
	g, err := bundled.Graph(name)
	check(t, err)
	calib, err := bundled.Calibration(name)
	check(t, err)
	inputs, err := bundled.Inputs(name)
	check(t, err)
	data, err := bundled.Model(name)
	check(t, err)
	return &sealedWorkload{g: g, onnx: data, calib: calib, x: inputs.Data[:n*g.Input.Size()], n: n}
}

// exampleWorkload loads an example of examples/ (its model.onnx,
// calib.npy and test.x.npy) with its first n fixture rows.
func exampleWorkload(t *testing.T, name string, n int) *sealedWorkload {
	dir := filepath.Join("..", "examples", name)
	data, err := os.ReadFile(filepath.Join(dir, "model.onnx"))
	check(t, err)
	g, err := onnx.Import(data, onnx.Options{})
	check(t, err)
	g.Name = name
	calib, err := npy.ReadFile(filepath.Join(dir, "calib.npy"))
	check(t, err)
	x, err := npy.ReadFile(filepath.Join(dir, "test.x.npy"))
	check(t, err)
	n = min(n, x.Shape[0])
	return &sealedWorkload{g: g, onnx: data, calib: calib, x: x.Data[:n*g.Input.Size()], n: n}
}

// TestSealedFlowBundled runs the bundled workloads through the service
// plain and sealed (latency packing, default settings, the bundled
// calibration data), as sealedVsPlain says.
func TestSealedFlowBundled(t *testing.T) {
	if !*long {
		t.Skip("run with -long")
	}
	for _, name := range []string{"logreg", "match", "mlp", "cnn"} {
		t.Run(name, func(t *testing.T) { sealedVsPlain(t, bundledWorkload(t, name, 4)) })
	}
}

// TestSealedFlowExamples runs the MLP of examples/ through the service
// plain and sealed, with the settings its README states (latency packing,
// defaults), as sealedVsPlain says. The CNN is the bundled one
// (TestSealedFlowBundled, bundled-cnn in examples/README.md): the
// examples' CNNs do not fit a test's 10 GB sealed. fmnist-cnn-poly's sealed
// plan is N=2^15, depth 12, with 2.7 GB of evaluation keys and 11.4 GB of
// sealed weights per key set (7.3 GB at 24 bits of privacy and 5 of
// precision, without headroom), which the owner's client, the upload and
// the server's copy each hold whole; fmnist-cnn is deeper.
func TestSealedFlowExamples(t *testing.T) {
	if !*long {
		t.Skip("run with -long")
	}
	sealedVsPlain(t, exampleWorkload(t, "fmnist-mlp", 3))
}

// sealedVsPlain deploys w plain (the server compiles) and sealed (compiled
// here, deployed without weights); a user creates keys for each, the
// owner seals the sealed one's key set, and the user predicts w's inputs
// on both. Each deployment's outputs are checked against the plaintext
// model with its plan's activation approximations within the plan's
// stated error, and against each other within the sum of both; the sizes
// and times are logged (BENCHMARKS.md).
func sealedVsPlain(t *testing.T, w *sealedWorkload) {
	ctx := context.Background()
	url, _, a := MustServer(t)
	newAccount := signup(t, url, a)
	owner, user := newAccount("olivia", fheserve.RoleOwner), newAccount("ulrich", fheserve.RoleUser)
	name := w.g.Name

	var calibNPY bytes.Buffer
	check(t, npy.WriteFloat64(&calibNPY, w.calib))
	plainModel, err := owner.Deploy(ctx, &fheserve.DeployRequest{Name: name, ONNX: w.onnx, Calibration: calibNPY.Bytes()})
	check(t, err)

	t0 := time.Now()
	opts := app.CompilerOptions(plan.Latency, &fheserve.CompileSettings{}, w.calib.Data)
	opts.Sealed = true
	res, err := compiler.Compile(w.g, opts)
	check(t, err)
	compile := time.Since(t0)
	sealedModel, err := owner.DeploySealed(ctx, fheserve.SealedDeployRequest{Name: name + "-sealed"}, res.Plan, res.Program)
	check(t, err)

	var outputs [][]float64
	var stated []float64
	for _, m := range []*fheserve.Model{plainModel, sealedModel} {
		t0 := time.Now()
		keys, err := user.GenerateKeys(ctx, m.ID)
		check(t, err)
		_, err = user.UploadKeys(ctx, keys, "")
		check(t, err)
		keyTime := time.Since(t0)
		var sealTime time.Duration
		var sealedBytes int64
		if m.Sealed {
			tasks, err := owner.SealTasks(ctx, m.ID)
			check(t, err)
			sealedBytes = tasks.SealedBytes
			t0 = time.Now()
			sealed, err := owner.Seal(ctx, m.ID, res.Plan, res.Program, nil)
			check(t, err)
			sealTime = time.Since(t0)
			if sealed != 1 {
				t.Fatalf("sealed %d key sets", sealed)
			}
		}
		var stats sdk.PredictStats
		got, err := user.PredictWith(ctx, keys, w.x, w.n, &sdk.PredictOptions{Stats: &stats})
		check(t, err)
		p := keys.Plan
		want, err := w.g.EvalBatch(w.x, w.n, compiler.Approximated(w.g, p))
		check(t, err)
		maxErr := maxDiff(got, want)
		if maxErr > p.Precision.OutputError {
			t.Errorf("%s sealed=%v: max error %.3g above the stated %.3g", name, m.Sealed, maxErr, p.Precision.OutputError)
		}
		outputs, stated = append(outputs, got), append(stated, p.Precision.OutputError)
		t.Logf("%s sealed=%v: N=2^%d depth %d, %d jobs, evaluate %.1f ms per sample (server), eval keys %.2f MB (keygen+upload %.0f ms), upload %.0f kB per sample, "+
			"sealed weights %.2f MB per key set, owner's sealing %.0f ms (compile %.0f ms), max error %.3g (stated %.3g), privacy %.1f bits",
			name, m.Sealed, p.Params.LogN, p.Depth, len(stats.Jobs), ms(stats.Evaluate)/float64(w.n), float64(keys.EvalKeysSize())/1e6, ms(keyTime),
			float64(stats.UploadBytes)/float64(w.n)/1e3, float64(sealedBytes)/1e6, ms(sealTime), ms(compile), maxErr, p.Precision.OutputError, p.Precision.PrivacyBits)
	}
	// Sealed against plain directly: the workloads' activations are
	// polynomials (or none), so both plans compute the same function.
	d := maxDiff(outputs[0], outputs[1])
	if d > stated[0]+stated[1] {
		t.Errorf("%s: sealed and plain outputs differ by %.3g, more than their stated errors together (%.3g)", name, d, stated[0]+stated[1])
	}
	t.Logf("%s: sealed and plain outputs differ by at most %.3g (stated errors together %.3g)", name, d, stated[0]+stated[1])
}

// maxDiff is the largest |a[i] - b[i]|.
func maxDiff(a, b []float64) float64 {
	var d float64
	for i := range a {
		d = math.Max(d, math.Abs(a[i]-b[i]))
	}
	return d
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }
