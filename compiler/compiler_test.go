package compiler

import (
	"math"
	"strings"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/bundled"
	"github.com/fheserve/fheserve/he"
	"github.com/fheserve/fheserve/he/server"
	"github.com/fheserve/fheserve/nn"
	"github.com/fheserve/fheserve/nn/onnx"
	"github.com/fheserve/fheserve/plan"
)

func mustBundled(t *testing.T, name string) (*nn.Graph, []float64) {
	t.Helper()
	g, err := bundled.Graph(name)
	if err != nil {
		t.Fatal(err)
	}
	c, err := bundled.Calibration(name)
	if err != nil {
		t.Fatal(err)
	}
	return g, c.Data
}

// The plan's parameters are within the 128-bit bound, the rotation set is
// exactly what the linear steps use, and the conv output is laid out next
// to its receptive fields (25 taps x 5 channels diagonals, not ~1024).
func TestCompileCNN(t *testing.T) {
	g, calib := mustBundled(t, "cnn")
	res, err := Compile(g, Options{Calibration: calib})
	if err != nil {
		t.Fatal(err)
	}
	p := res.Plan
	if p.LogQP > float64(p.SecurityBound) {
		t.Fatalf("logQP %.1f above bound %d", p.LogQP, p.SecurityBound)
	}
	if _, err := he.NewParameters(p.Params); err != nil {
		t.Fatal(err)
	}
	// Depth 5 (the last Gemm masks its own outputs, no mask step); the
	// 128-bit bound of 2^13 leaves no room for the scale that default
	// privacy needs.
	if p.Depth != 5 || p.Params.LogN != 14 {
		t.Errorf("depth %d logN %d, want 5 and 14", p.Depth, p.Params.LogN)
	}
	conv := p.Steps[0]
	if conv.Kind != plan.StepLinear || conv.Diagonals > 5*25 {
		t.Errorf("first step %+v: want a linear step with at most 125 diagonals", conv)
	}
	// Every rotation of every linear step is in the plan, and nothing else.
	want := map[int]bool{}
	for i := range res.Program.Steps {
		s := &res.Program.Steps[i]
		if s.Kind != plan.StepLinear {
			continue
		}
		b, gs := server.BSGS(s.DiagonalIndices(), p.Slots(), s.LogBSGSRatio)
		if s.Horner > 0 {
			b, gs = server.Horner(s.DiagonalIndices(), p.Slots(), s.Horner, s.HornerSeq).Rotations(p.Slots()), nil
		}
		for _, r := range append(append(b, gs...), s.FoldRotations()...) {
			want[r] = true
		}
	}
	if len(want) != len(p.Rotations) {
		t.Errorf("plan has %d rotations, steps use %d", len(p.Rotations), len(want))
	}
	for _, r := range p.Rotations {
		if !want[r] {
			t.Errorf("rotation %d in the plan but unused", r)
		}
	}
	if p.Fingerprint != p.ComputeFingerprint() {
		t.Error("fingerprint mismatch")
	}
	if err := p.Validate(); err != nil {
		t.Error(err)
	}
}

func TestCompileLogregUsesCoefficients(t *testing.T) {
	g, calib := mustBundled(t, "logreg")
	res, err := Compile(g, Options{Calibration: calib})
	if err != nil {
		t.Fatal(err)
	}
	p := res.Plan
	if p.Input.Encoding != plan.Coeffs || len(p.Rotations) != 0 || p.Relin || p.Head != "sigmoid" {
		t.Errorf("logreg plan: encoding %s, %d rotations, relin %v, head %q; want coefficients, none, false, sigmoid",
			p.Input.Encoding, len(p.Rotations), p.Relin, p.Head)
	}
}

func TestInsecureParametersRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec plan.Params
	}{
		{"logN13 over 218", plan.Params{LogN: 13, LogQ: []int{60, 50, 50, 50}, LogP: []int{60}, LogDefaultScale: 40}},
		{"logN12 over 109", plan.Params{LogN: 12, LogQ: []int{50, 40}, LogP: []int{40}, LogDefaultScale: 30}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := he.NewParameters(tc.spec)
			if fheserve.ErrorCode(err) != fheserve.EINSECURE {
				t.Fatalf("got %v, want an insecure-parameters error", err)
			}
		})
	}
	// A forced ring too small for the depth is refused, not weakened.
	g, calib := mustBundled(t, "cnn")
	_, err := Compile(g, Options{Calibration: calib, LogN: 12})
	if err == nil || !strings.Contains(err.Error(), "128-bit") {
		t.Fatalf("compiling depth 5 at logN 12: got %v, want a refusal naming 128-bit security", err)
	}
}

func TestUnsupportedOpRefused(t *testing.T) {
	_, err := onnx.ImportFile("../testdata/onnx/maxpool.onnx", onnx.Options{})
	if fheserve.ErrorCode(err) != fheserve.EUNSUPPORTED || !strings.Contains(err.Error(), "AveragePool") || !strings.Contains(err.Error(), "MaxPool") {
		t.Fatalf("got %v, want an unsupported-op error naming MaxPool and suggesting AveragePool", err)
	}
	// Softmax in the middle of a model cannot be evaluated.
	g := &nn.Graph{Name: "mid-softmax", Input: nn.Shape{4}, Nodes: []*nn.Node{
		{Name: "sm", OpType: "Softmax", Op: &nn.Softmax{}, Inputs: []int{0}, Shape: nn.Shape{4}},
		{Name: "sq", OpType: "Mul", Op: &nn.Mul{}, Inputs: []int{1, 1}, Shape: nn.Shape{4}},
	}, Output: 2}
	_, err = Compile(g, Options{})
	if fheserve.ErrorCode(err) != fheserve.EUNSUPPORTED || !strings.Contains(err.Error(), `"sm"`) {
		t.Fatalf("got %v, want an unsupported error naming node sm", err)
	}
}

// Without calibration data, activations use the documented default
// interval and the plan warns.
func TestDefaultIntervalWarns(t *testing.T) {
	g := &nn.Graph{Name: "relu", Input: nn.Shape{4}, Nodes: []*nn.Node{
		{Name: "act", OpType: "Relu", Op: &nn.Activation{Func: nn.ActReLU}, Inputs: []int{0}, Shape: nn.Shape{4}},
	}, Output: 1}
	res, err := Compile(g, Options{})
	if err != nil {
		t.Fatal(err)
	}
	a := res.Plan.Activations[0]
	if a.Source != "default" || a.Interval != [2]float64{-DefaultInterval, DefaultInterval} || len(res.Plan.Warnings) == 0 {
		t.Fatalf("activation %+v, warnings %v", a, res.Plan.Warnings)
	}
}

// The privacy an owner asks for is met, and reported, by a larger scale or
// ring, precision and the query budget trade against it as the accounting
// says (two bits of privacy per bit of precision, one per doubling of the
// budget), and an unreachable level is refused with the trade-off rather
// than silently weakened.
func TestPrivacyBits(t *testing.T) {
	g, calib := mustBundled(t, "mlp")
	for _, tc := range []struct {
		name string
		opts Options
		want float64
	}{
		{"default", Options{}, DefaultPrivacyBits},
		{"20 bits", Options{PrivacyBits: 20}, 20},
		{"36 bits", Options{PrivacyBits: 36}, 36},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Calibration = calib
			res, err := Compile(g, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			p := res.Plan.Precision
			if p.PrivacyBits < tc.want || p.QueryBudget != DefaultQueryBudget {
				t.Fatalf("privacy %.1f bits over %d samples, want %.0f over %d", p.PrivacyBits, p.QueryBudget, tc.want, DefaultQueryBudget)
			}
			if res.Plan.LogQP > float64(res.Plan.SecurityBound) {
				t.Fatalf("logQP %.1f above bound %d", res.Plan.LogQP, res.Plan.SecurityBound)
			}
			if limit := p.OutputBound * math.Exp2(-DefaultPrecisionBits); p.OutputError > limit*1.0001 {
				t.Fatalf("output error %.3g above the precision budget %.3g", p.OutputError, limit)
			}
		})
	}
	// More precision or a larger budget costs scale bits (or a ring).
	cost := func(o Options) int {
		t.Helper()
		o.Calibration = calib
		res, err := Compile(g, o)
		if err != nil {
			t.Fatal(err)
		}
		return 100*res.Plan.Params.LogN + res.Plan.Params.LogDefaultScale
	}
	if small, large := cost(Options{QueryBudget: 1 << 8}), cost(Options{QueryBudget: 1 << 20}); small >= large {
		t.Errorf("budget 2^8 costs %d, 2^20 costs %d: want less", small, large)
	}
	if low, high := cost(Options{PrecisionBits: 5}), cost(Options{PrecisionBits: 11}); low >= high {
		t.Errorf("5 bits of precision cost %d, 11 bits %d: want less", low, high)
	}
	_, err := Compile(g, Options{Calibration: calib, PrivacyBits: 90})
	if fheserve.ErrorCode(err) != fheserve.EUNSUPPORTED || !strings.Contains(err.Error(), "--privacy-bits") {
		t.Fatalf("90 privacy bits: got %v, want an unsupported error naming the trade-off", err)
	}
	none, err := Compile(g, Options{Calibration: calib, PrivacyBits: NoPrivacy})
	if err != nil {
		t.Fatal(err)
	}
	if none.Plan.Precision.FloodStd != 0 || none.Plan.Precision.PrivacyBits != 0 {
		t.Fatalf("no privacy: flood %g, privacy %.1f", none.Plan.Precision.FloodStd, none.Plan.Precision.PrivacyBits)
	}
}

// Where the 128-bit budget leaves room at the privacy asked for, a second
// key-switching prime halves the decomposition rows of every key: the
// bundled mlp's keys shrink by more than a third on the same ring.
func TestTwoSpecialPrimes(t *testing.T) {
	g, calib := mustBundled(t, "mlp")
	res, err := Compile(g, Options{Calibration: calib})
	if err != nil {
		t.Fatal(err)
	}
	p := res.Plan
	if len(p.Params.LogP) != 2 {
		t.Fatalf("key-switching primes %v, want two", p.Params.LogP)
	}
	one := p.Params
	one.LogP = one.LogP[:1]
	params1, err := he.NewParameters(one)
	if err != nil {
		t.Fatal(err)
	}
	params2, err := he.NewParameters(p.Params)
	if err != nil {
		t.Fatal(err)
	}
	k1 := he.EvalKeysSize(params1, he.TopLevelKeys(params1, p.GaloisElements, p.Relin))
	k2 := he.EvalKeysSize(params2, he.TopLevelKeys(params2, p.GaloisElements, p.Relin))
	if k2*3 > k1*2 {
		t.Errorf("keys %d bytes with two primes, %d with one: want at least a third less", k2, k1)
	}
	t.Logf("keys: %.1f MB with two primes, %.1f MB with one", float64(k2)/1e6, float64(k1)/1e6)
}
