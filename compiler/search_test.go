package compiler

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/fheserve/fheserve/nn"
	"github.com/fheserve/fheserve/nn/onnx"
	"github.com/fheserve/fheserve/npy"
)

// unseen loads a network of testdata/unseen (see its train.py): the
// graph, its calibration rows, test rows and PyTorch's outputs on them.
func unseen(t *testing.T, name string) (g *nn.Graph, calib, x, torch []float64, rows int) {
	t.Helper()
	dir := filepath.Join("testdata", "unseen")
	b, err := os.ReadFile(filepath.Join(dir, name+".onnx"))
	if err != nil {
		t.Fatal(err)
	}
	if g, err = onnx.Import(b, onnx.Options{}); err != nil {
		t.Fatal(err)
	}
	read := func(suffix string) *npy.Array {
		a, err := npy.ReadFile(filepath.Join(dir, name+suffix))
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	xa := read(".x.npy")
	return g, read(".calib.npy").Data, xa.Data, read(".y.npy").Data, xa.Shape[0]
}

// TestUnseenNetworksKeepTheirClass compiles networks trained without a
// thought of encryption (ReLU with BatchNorm, stride-2 convolutions with
// global average pooling, GELU), with their calibration rows and no other
// setting, and checks on test rows that the model the plan evaluates
// (activations replaced by the chosen polynomials, in plaintext) gives
// the exact network's class on at least 99% of them. The exact network is
// itself checked against PyTorch's outputs.
func TestUnseenNetworksKeepTheirClass(t *testing.T) {
	for _, name := range []string{"fmnist-relu-bn", "digits-stride2", "digits-gelu"} {
		t.Run(name, func(t *testing.T) {
			g, calib, x, torch, rows := unseen(t, name)
			exact, err := g.EvalBatch(x, rows, nil)
			if err != nil {
				t.Fatal(err)
			}
			out := len(exact) / rows
			for i := range exact {
				if d := math.Abs(exact[i] - torch[i]); d > 1e-4*(1+math.Abs(torch[i])) {
					t.Fatalf("reference evaluator differs from PyTorch at %d: %g vs %g", i, exact[i], torch[i])
				}
			}
			// Privacy does not change the activations; without it the ring is smaller and compiles faster.
			res, err := Compile(g, Options{Calibration: calib, PrivacyBits: NoPrivacy})
			if err != nil {
				t.Fatal(err)
			}
			approx, err := g.EvalBatch(x, rows, Approximated(g, res.Plan))
			if err != nil {
				t.Fatal(err)
			}
			agree, worst := 0, 0.0
			for r := range rows {
				e, a := exact[r*out:(r+1)*out], approx[r*out:(r+1)*out]
				if nn.Argmax(e) == nn.Argmax(a) {
					agree++
				}
				for j := range e {
					worst = math.Max(worst, math.Abs(e[j]-a[j]))
				}
			}
			var degrees []int
			for _, a := range res.Plan.Activations {
				degrees = append(degrees, a.Degree)
			}
			t.Logf("%s: class kept on %d of %d test rows, largest output error %.3g; ring 2^%d, depth %d, degrees %v, fit %q, interval %v; search %+v",
				name, agree, rows, worst, res.Plan.Params.LogN, res.Plan.Depth, degrees, res.Plan.Activations[0].Fit, res.Plan.Activations[0].Interval, res.Plan.ActivationChoice)
			if c := res.Plan.ActivationChoice; c == nil || !c.Met || c.HeldOut != 32 {
				t.Errorf("activation choice %+v, want one met on 32 held-out rows", c)
			}
			if agree*100 < 99*rows {
				t.Errorf("class kept on %d of %d test rows, want at least 99%%", agree, rows)
			}
		})
	}
}
