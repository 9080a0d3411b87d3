package examples

import (
	"context"
	"flag"
	"math"
	"path/filepath"
	"testing"

	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/local"
	"github.com/fheserve/fheserve/nn/onnx"
	"github.com/fheserve/fheserve/npy"
	"github.com/fheserve/fheserve/plan"
)

// zoo lists the examples with the compilation settings their READMEs
// quote (packing and calibration aside), and how many fixture rows the
// test runs encrypted: latency packing for the large models, whose batch
// calls cost minutes whatever the number of samples.
var zoo = []struct {
	name    string
	opts    compiler.Options
	samples int
	long    bool // N=2^15, or a minute of masking 4,096 outputs: run with -long
}{
	{"cancer-logreg", compiler.Options{Packing: plan.Batch}, 143, false},
	{"cancer-logreg", compiler.Options{Packing: plan.Latency}, 4, false},
	{"digits-mlp", compiler.Options{Packing: plan.Batch, Degree: 15}, 200, true},
	{"face-match", compiler.Options{Packing: plan.Batch}, 128, true},
	{"face-match", compiler.Options{Packing: plan.Latency}, 3, false},
	{"fmnist-mlp", compiler.Options{Packing: plan.Latency}, 3, false},
	{"fmnist-cnn", compiler.Options{Packing: plan.Latency, Fit: compiler.FitLeastSquares, Margin: 0.25,
		Degrees: map[string]int{"/3/Relu": 31, "/7/Relu": 15}}, 1, true},
	{"fmnist-cnn-poly", compiler.Options{Packing: plan.Latency}, 2, true},
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
	for _, ex := range zoo {
		t.Run(ex.name+"/"+ex.opts.Packing, func(t *testing.T) {
			if ex.long && !*long {
				t.Skip("minutes at default privacy: run with -long")
			}
			dir := ex.name
			g, err := onnx.ImportFile(filepath.Join(dir, "model.onnx"), onnx.Options{})
			if err != nil {
				t.Fatal(err)
			}
			g.Name = ex.name
			calib := mustRead(t, filepath.Join(dir, "calib.npy"))
			x := mustRead(t, filepath.Join(dir, "test.x.npy"))
			labels := mustRead(t, filepath.Join(dir, "test.y.npy"))
			n := min(ex.samples, x.Shape[0])
			in := g.Input.Size()
			xs := x.Data[:n*in]

			opts := ex.opts
			opts.Calibration = calib.Data
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
