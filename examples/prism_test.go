package examples

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/nn"
	"github.com/fheserve/fheserve/nn/onnx"
)

// The PRISM-shaped network (prism-cifar/build.py, random weights) imports
// and the plaintext reference evaluator reproduces the outputs PyTorch
// recorded for its fixture images.
func TestPrismImports(t *testing.T) {
	dir := "prism-cifar"
	g, err := onnx.ImportFile(filepath.Join(dir, "model.onnx"), onnx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := g.Input; len(got) != 3 || got[0] != 3 || got[1] != 32 || got[2] != 32 {
		t.Fatalf("input shape %v, want [3 32 32]", got)
	}
	softplus := 0
	for _, n := range g.Nodes {
		if a, ok := n.Op.(*nn.Activation); ok && a.Func == nn.ActSoftplus {
			softplus++
		}
	}
	if softplus != 3 {
		t.Errorf("%d Softplus activations, want 3", softplus)
	}
	x := mustRead(t, filepath.Join(dir, "test.x.npy"))
	want := mustRead(t, filepath.Join(dir, "test.out.npy"))
	n := x.Shape[0]
	got, err := g.EvalBatch(x.Data, n, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want.Data) {
		t.Fatalf("%d outputs, PyTorch recorded %d", len(got), len(want.Data))
	}
	var worst float64
	for i := range got {
		worst = math.Max(worst, math.Abs(got[i]-want.Data[i]))
	}
	t.Logf("largest difference from PyTorch over %d images: %.2g", n, worst)
	if worst > 1e-4 {
		t.Errorf("reference evaluator differs from PyTorch by %.3g (limit 1e-4)", worst)
	}
}

// It compiles with PRISM's degree-4 approximations: three minutes and 8 GB
// at N=2^16 on 2 cores, so only with -long (BENCHMARKS.md has the plan's
// figures; the prepared diagonals do not fit this machine, so it does not
// run encrypted).
func TestPrismCompiles(t *testing.T) {
	if !*long {
		t.Skip("minutes and 8 GB to compile: run with -long")
	}
	dir := "prism-cifar"
	g, err := onnx.ImportFile(filepath.Join(dir, "model.onnx"), onnx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	calib := mustRead(t, filepath.Join(dir, "calib.npy"))
	res, err := compiler.Compile(g, compiler.Options{Calibration: calib.Data, Degree: 4})
	if err != nil {
		t.Fatal(err)
	}
	p := res.Plan
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if p.LogQP > float64(p.SecurityBound) {
		t.Errorf("logQP %.0f above the 128-bit bound %d", p.LogQP, p.SecurityBound)
	}
	t.Logf("N=2^%d depth %d, %d rotation keys (%.2f GB), %d diagonals, %d rotations per call",
		p.Params.LogN, p.Depth, p.Sizes.GaloisKeys, float64(p.Sizes.EvalKeys)/1e9, p.Ops.Diagonals, p.Ops.Rotations)
}
