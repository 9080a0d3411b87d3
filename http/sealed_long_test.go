package http_test

import (
	"bytes"
	"context"
	"flag"
	"math"
	"testing"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/app"
	"github.com/fheserve/fheserve/bundled"
	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/npy"
	"github.com/fheserve/fheserve/plan"
	"github.com/fheserve/fheserve/sdk"
)

var long = flag.Bool("long", false, "also run the sealed service flow on the bundled mlp and cnn (minutes, gigabytes)")

// TestSealedFlowBundled runs the bundled mlp and cnn through the service
// plain and sealed (latency packing, default settings, the bundled
// calibration data): the owner deploys, a user creates keys, the owner
// seals, the user predicts 4 test inputs; both deployments' outputs are
// checked against the float64 model within their plans' stated errors,
// and the sizes and times are logged (BENCHMARKS.md).
func TestSealedFlowBundled(t *testing.T) {
	if !*long {
		t.Skip("run with -long")
	}
	for _, name := range []string{"mlp", "cnn"} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			url, _, a := MustServer(t)
			newAccount := signup(t, url, a)
			owner, user := newAccount("olivia", fheserve.RoleOwner), newAccount("ulrich", fheserve.RoleUser)
			g, err := bundled.Graph(name)
			check(t, err)
			calib, err := bundled.Calibration(name)
			check(t, err)
			inputs, err := bundled.Inputs(name)
			check(t, err)
			onnx, err := bundled.Model(name)
			check(t, err)
			const n = 4
			x := inputs.Data[:n*g.Input.Size()]
			want, err := g.EvalBatch(x, n, nil)
			check(t, err)

			var calibNPY bytes.Buffer
			check(t, npy.WriteFloat64(&calibNPY, calib))
			plainModel, err := owner.Deploy(ctx, &fheserve.DeployRequest{Name: name, ONNX: onnx, Calibration: calibNPY.Bytes()})
			check(t, err)

			t0 := time.Now()
			opts := app.CompilerOptions(plan.Latency, &fheserve.CompileSettings{}, calib.Data)
			opts.Sealed = true
			res, err := compiler.Compile(g, opts)
			check(t, err)
			compile := time.Since(t0)
			sealedModel, err := owner.DeploySealed(ctx, fheserve.SealedDeployRequest{Name: name + "-sealed"}, res.Plan, res.Program)
			check(t, err)

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
				got, err := user.PredictWith(ctx, keys, x, n, &sdk.PredictOptions{Stats: &stats})
				check(t, err)
				var maxErr float64
				for i := range want {
					maxErr = math.Max(maxErr, math.Abs(got[i]-want[i]))
				}
				p := keys.Plan
				if maxErr > p.Precision.OutputError {
					t.Errorf("%s sealed=%v: max error %.3g above the stated %.3g", name, m.Sealed, maxErr, p.Precision.OutputError)
				}
				t.Logf("%s sealed=%v: N=2^%d depth %d, %d jobs, evaluate %.2f s per sample (server), eval keys %.1f MB (keygen+upload %.1f s), upload %.0f kB per sample, "+
					"sealed weights %.1f MB per key set, owner's sealing %.1f s (compile %.1f s), max error %.3g (stated %.3g), privacy %.1f bits",
					name, m.Sealed, p.Params.LogN, p.Depth, len(stats.Jobs), stats.Evaluate.Seconds()/n, float64(keys.EvalKeysSize())/1e6, keyTime.Seconds(),
					float64(stats.UploadBytes)/n/1e3, float64(sealedBytes)/1e6, sealTime.Seconds(), compile.Seconds(), maxErr, p.Precision.OutputError, p.Precision.PrivacyBits)
			}
		})
	}
}
