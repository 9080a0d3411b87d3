package compiler_test

import (
	"context"
	"math"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/bundled"
	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/local"
	"github.com/fheserve/fheserve/nn"
)

// withoutHead returns g without a final Sigmoid or Softmax, so that
// encrypted outputs are compared with the reference before the head the
// client applies (the plan's precision is stated there).
func withoutHead(g *nn.Graph) *nn.Graph {
	last := g.Nodes[len(g.Nodes)-1]
	switch op := last.Op.(type) {
	case *nn.Softmax:
	case *nn.Activation:
		if op.Func != nn.ActSigmoid {
			return g
		}
	default:
		return g
	}
	h := *g
	h.Nodes = g.Nodes[:len(g.Nodes)-1]
	h.Output = last.Inputs[0]
	return &h
}

// tanhMLP is a small network with a non-polynomial activation, and
// calibration rows for it: 12 rows, too few for the activation search, so
// the compiler starts from the default degree.
func tanhMLP() (*nn.Graph, []float64) {
	rng := rand.New(rand.NewPCG(7, 8))
	const in, hidden, out, rows = 4, 8, 2, 12
	dense := func(i, o int) *nn.Dense {
		d := &nn.Dense{In: i, Out: o, W: make([]float64, i*o), B: make([]float64, o)}
		for k := range d.W {
			d.W[k] = rng.NormFloat64() * 1.5 / math.Sqrt(float64(i))
		}
		return d
	}
	g := &nn.Graph{Name: "tanh-mlp", Input: nn.Shape{in}, Nodes: []*nn.Node{
		{Name: "fc1", OpType: "Gemm", Op: dense(in, hidden), Inputs: []int{0}, Shape: nn.Shape{hidden}},
		{Name: "act", OpType: "Tanh", Op: &nn.Activation{Func: nn.ActTanh}, Inputs: []int{1}, Shape: nn.Shape{hidden}},
		{Name: "fc2", OpType: "Gemm", Op: dense(hidden, out), Inputs: []int{2}, Shape: nn.Shape{out}},
	}, Output: 3}
	calib := make([]float64, rows*in)
	for i := range calib {
		calib[i] = rng.NormFloat64()
	}
	return g, calib
}

// measure runs the first n calibration rows encrypted under opts and
// returns the plan's stated error, the largest error of an output against
// the plaintext reference evaluator (the exact model), and the runner.
func measure(t *testing.T, g *nn.Graph, opts compiler.Options, n int) (stated, measured float64, r *local.Runner) {
	t.Helper()
	r, err := local.New(g, opts, 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, measured, err = r.CompareReference(context.Background(), g, opts.Calibration[:n*g.Input.Size()], n); err != nil {
		t.Fatal(err)
	}
	return r.Plan.Precision.OutputError, measured, r
}

// A tighter precision gives a plan that states at most that error, with a
// larger scale, and the error measured under encryption against the
// plaintext reference stays below it.
func TestPrecisionTighter(t *testing.T) {
	g, err := bundled.Graph("logreg")
	if err != nil {
		t.Fatal(err)
	}
	g = withoutHead(g)
	c, err := bundled.Calibration("logreg")
	if err != nil {
		t.Fatal(err)
	}
	scale := 0
	for _, e := range []float64{1e-2, 1e-4} {
		stated, measured, r := measure(t, g, compiler.Options{Calibration: c.Data, Precision: e}, len(c.Data)/g.Input.Size())
		p := r.Plan
		t.Logf("precision %g: N=2^%d, scale 2^%d, stated %.3g, measured %.3g", e, p.Params.LogN, p.Params.LogDefaultScale, stated, measured)
		if stated > e || measured > e || p.Precision.Asked != e {
			t.Errorf("precision %g: stated %.3g, measured %.3g, asked %g in the plan", e, stated, measured, p.Precision.Asked)
		}
		if p.Params.LogDefaultScale <= scale {
			t.Errorf("precision %g: scale 2^%d, not above the looser precision's 2^%d", e, p.Params.LogDefaultScale, scale)
		}
		scale = p.Params.LogDefaultScale
	}
}

// When the approximations alone take the precision asked for, the compiler
// raises the activations' degrees: the plan meets it, approximations
// included, against the exact model (measured on 4 of the calibration
// rows: a call takes most of a second at N=2^14).
func TestPrecisionRaisesDegrees(t *testing.T) {
	g, calib := tanhMLP()
	def, err := compiler.Compile(g, compiler.Options{Calibration: calib})
	if err != nil {
		t.Fatal(err)
	}
	approx := def.Plan.Precision.ApproxOutputError
	e := approx / 4
	stated, measured, r := measure(t, g, compiler.Options{Calibration: calib, Precision: e}, 4)
	p := r.Plan
	t.Logf("default degree %d: approximation error %.3g; precision %.3g: degree %d, N=2^%d, stated %.3g (approximation %.3g), measured %.3g",
		def.Plan.Activations[0].Degree, approx, e, p.Activations[0].Degree, p.Params.LogN, stated, p.Precision.ApproxOutputError, measured)
	if p.Activations[0].Degree <= def.Plan.Activations[0].Degree {
		t.Errorf("degree %d, want above the default's %d", p.Activations[0].Degree, def.Plan.Activations[0].Degree)
	}
	if stated > e || measured > e {
		t.Errorf("precision %.3g: stated %.3g, measured %.3g", e, stated, measured)
	}
	// A degree the owner set is kept: the same precision is refused,
	// naming the approximations.
	_, err = compiler.Compile(g, compiler.Options{Calibration: calib, Precision: e, Degree: 3})
	if fheserve.ErrorCode(err) != fheserve.EUNSUPPORTED || !strings.Contains(err.Error(), "activation approximations' own error") {
		t.Errorf("degree 3 at precision %.3g: got %v, want a refusal naming the approximations", e, err)
	}
}

// An impossible precision is refused in one line saying what the best plan
// states and what to ask for instead; asking for that compiles.
func TestPrecisionRefused(t *testing.T) {
	g, err := bundled.Graph("logreg")
	if err != nil {
		t.Fatal(err)
	}
	c, err := bundled.Calibration("logreg")
	if err != nil {
		t.Fatal(err)
	}
	_, err = compiler.Compile(g, compiler.Options{Calibration: c.Data, Precision: 1e-12})
	msg := fheserve.ErrorMessage(err)
	m := regexp.MustCompile(`^precision 1e-12 needs .*; the best plan here states \S+ .*: ask for (\S+) or less precision`).FindStringSubmatch(msg)
	if fheserve.ErrorCode(err) != fheserve.EUNSUPPORTED || m == nil || strings.Contains(msg, "\n") {
		t.Fatalf("precision 1e-12: got %q, want one line with what the best plan states and what to ask for", msg)
	}
	reach, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	res, err := compiler.Compile(g, compiler.Options{Calibration: c.Data, Precision: reach})
	if err != nil {
		t.Fatalf("asking for the %g the refusal named: %v", reach, err)
	}
	if res.Plan.Precision.OutputError > reach {
		t.Errorf("asking for %g: stated %g", reach, res.Plan.Precision.OutputError)
	}
}

// Settings that cannot be honoured are refused before any work.
func TestPrecisionInvalid(t *testing.T) {
	g, calib := tanhMLP()
	for _, tc := range []struct {
		name string
		opts compiler.Options
		want string
	}{
		{"with bits", compiler.Options{Calibration: calib, Precision: 1e-2, PrecisionBits: 10}, "cannot both"},
		{"negative", compiler.Options{Calibration: calib, Precision: -1}, "not a positive number"},
		{"NaN", compiler.Options{Calibration: calib, Precision: math.NaN()}, "not a positive number"},
		{"no calibration", compiler.Options{Precision: 1e-2}, "calibration"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := compiler.Compile(g, tc.opts)
			if fheserve.ErrorCode(err) != fheserve.EINVALID || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an invalid-setting error containing %q", err, tc.want)
			}
		})
	}
}
