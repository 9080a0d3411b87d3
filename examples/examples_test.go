package examples

import (
	"context"
	"flag"
	"math"
	"path/filepath"
	"testing"

	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/local"
	"github.com/fheserve/fheserve/npy"
	"github.com/fheserve/fheserve/plan"
)

// runs lists the examples the test runs encrypted (the settings are
// Zoo's), the packing, and how many fixture rows: latency packing for the
// large models, whose batch calls cost minutes whatever the number of
// samples.
var runs = []struct {
	name    string
	packing string
	samples int
	long    bool // N=2^15, or a minute of masking 4,096 outputs: run with -long
}{
	{"cancer-logreg", plan.Batch, 143, false},
	{"cancer-logreg", plan.Latency, 4, false},
	{"digits-mlp", plan.Batch, 200, true},
	{"face-match", plan.Batch, 128, true},
	{"face-match", plan.Latency, 3, false},
	{"fmnist-mlp", plan.Latency, 3, false},
	{"fmnist-cnn", plan.Latency, 1, true},
	{"fmnist-cnn-poly", plan.Latency, 2, true},
	{"fmnist-resnet", plan.Latency, 2, true},
	{"tenseal-tutorial", plan.Latency, 2, false},
}

var long = flag.Bool("long", false, "also run the examples that need N=2^15 (minutes and gigabytes of keys each)")

func mustRead(t *testing.T, path string) *npy.Array {
	t.Helper()
	a, err := npy.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestEncrypted runs fixture rows of each example encrypted through the
// wire format and checks, per sample, that the predicted class is the
// plaintext model's and that the outputs are within the plan's stated
// precision of the plaintext model with the plan's activation
// approximations (the HE error alone); the approximations' own effect,
// the distance between that model and the exact one, is logged.
func TestEncrypted(t *testing.T) {
	for _, run := range runs {
		t.Run(run.name+"/"+run.packing, func(t *testing.T) {
			if run.long && !*long {
				t.Skip("minutes at default privacy: run with -long")
			}
			ex, err := Find(run.name)
			if err != nil {
				t.Fatal(err)
			}
			g, calib, x, rows, err := ex.Load(".")
			if err != nil {
				t.Fatal(err)
			}
			labels := mustRead(t, filepath.Join(run.name, "test.y.npy"))
			n := min(run.samples, rows)
			xs := x[:n*g.Input.Size()]

			opts := ex.Options
			opts.Packing, opts.Calibration = run.packing, calib
			r, err := local.New(g, opts, 0)
			if err != nil {
				t.Fatal(err)
			}
			p := r.Plan
			if len(p.Warnings) > 0 {
				t.Errorf("plan warnings: %v", p.Warnings)
			}
			got, err := r.Predict(context.Background(), xs, n)
			if err != nil {
				t.Fatal(err)
			}
			exact, err := g.EvalBatch(xs, n, nil)
			if err != nil {
				t.Fatal(err)
			}
			approx, err := g.EvalBatch(xs, n, compiler.Approximated(g, p))
			if err != nil {
				t.Fatal(err)
			}
			size := p.OutputSize()
			var heErr, approxEffect float64
			correct := 0
			for s := 0; s < n; s++ {
				e, a, w := got[s*size:(s+1)*size], approx[s*size:(s+1)*size], exact[s*size:(s+1)*size]
				if class(e) != class(w) {
					t.Errorf("sample %d: encrypted class %d, plaintext %d (outputs %.4g vs %.4g)", s, class(e), class(w), e, w)
				}
				if class(e) == int(labels.Data[s]) {
					correct++
				}
				for i := range e {
					heErr = math.Max(heErr, math.Abs(e[i]-a[i]))
					approxEffect = math.Max(approxEffect, math.Abs(a[i]-w[i]))
				}
			}
			if heErr > p.Precision.OutputError {
				t.Errorf("largest error %.3g against the approximated plaintext model, above the plan's output error %.3g", heErr, p.Precision.OutputError)
			}
			if len(r.OutOfBound) > 0 {
				t.Errorf("samples %v decrypted beyond the output bound %g", r.OutOfBound, p.Precision.OutputBound)
			}
			t.Logf("N=2^%d depth %d scale 2^%d: %d/%d correct encrypted; HE error %.2e (stated %.2e); approximation effect %.2e (activation error %.2e, end to end %.2e); privacy %.1f bits over %d samples; keys %.1f MB; evaluate %.0f ms per call",
				p.Params.LogN, p.Depth, p.Params.LogDefaultScale, correct, n, heErr, p.Precision.OutputError, approxEffect, p.Precision.ApproximationError, p.Precision.ApproxOutputError,
				p.Precision.PrivacyBits, p.Precision.QueryBudget, float64(r.Stats.EvalKeyByte)/1e6, float64(r.Stats.Evaluate.Milliseconds())/float64(r.Stats.Calls))
		})
	}
}

// class is the predicted class of one output vector: its arg max, or for
// a single output (a probability after the sigmoid head) whether it is
// above 0.5.
func class(v []float64) int {
	if len(v) == 1 {
		if v[0] > 0.5 {
			return 1
		}
		return 0
	}
	best := 0
	for i := range v {
		if v[i] > v[best] {
			best = i
		}
	}
	return best
}
