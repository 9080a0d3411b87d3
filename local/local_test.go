package local

import (
	"bytes"
	"context"
	"flag"
	"math"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"slices"
	"testing"
	"time"

	"github.com/fheserve/fheserve/bundled"
	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/examples"
	"github.com/fheserve/fheserve/he"
	"github.com/fheserve/fheserve/nn"
	"github.com/fheserve/fheserve/plan"
)

var long = flag.Bool("long", false, "run the long tests (full batches of the bundled models at N=2^14)")

func randDense(rng *rand.Rand, in, out int, scale float64) *nn.Dense {
	d := &nn.Dense{In: in, Out: out, W: make([]float64, in*out), B: make([]float64, out)}
	for i := range d.W {
		d.W[i] = rng.NormFloat64() * scale / math.Sqrt(float64(in))
	}
	for i := range d.B {
		d.B[i] = rng.NormFloat64() * 0.1
	}
	return d
}

// uniform returns n values drawn from rng uniformly in [-1, 1).
func uniform(rng *rand.Rand, n int) []float64 {
	x := make([]float64, n)
	for i := range x {
		x[i] = rng.Float64()*2 - 1
	}
	return x
}

// checkEncrypted runs n samples of x encrypted through r and compares
// them with the float64 reference within the plan's stated precision. It
// returns the largest error.
func checkEncrypted(t *testing.T, r *Runner, g *nn.Graph, x []float64, n int) float64 {
	t.Helper()
	got, want, maxErr, err := r.CompareReference(context.Background(), g, x, n)
	if err != nil {
		t.Fatal(err)
	}
	if stated := r.Plan.Precision.OutputError; maxErr > stated {
		if len(got) > 64 {
			got, want = got[:64], want[:64]
		}
		t.Fatalf("%s: max error %g above the plan's stated %g\ngot  %v\nwant %v", r.Plan.Packing, maxErr, stated, got, want)
	}
	// The stated error must also be tight: flooding fills the precision
	// budget, so the largest of many errors is a few of the flood's
	// deviations and the stated error (8 to 11 of them) is within
	// precisionBand of it. With 40 values or more, all of them below 11/16
	// of a deviation has a probability under 2^-40.
	if stated := r.Plan.Precision.OutputError; r.Plan.Precision.FloodStd > 0 && len(want) >= 40 && maxErr*precisionBand < stated {
		t.Errorf("%s: the stated error %g is more than %gx the measured %g", r.Plan.Packing, stated, precisionBand, maxErr)
	}
	return maxErr
}

// precisionBand is how far above the measured largest error the stated
// one may be (measured: 4x to 10x on this package's models).
const precisionBand = 16.0

// bundledRunner compiles a bundled model with its calibration data and
// returns the runner, the graph and the bundled test inputs.
func bundledRunner(t *testing.T, name, packing string) (*Runner, *nn.Graph, []float64) {
	t.Helper()
	return bundledRunnerOpts(t, name, compiler.Options{Packing: packing})
}

// bundledRunnerOpts is bundledRunner with compilation options.
func bundledRunnerOpts(t *testing.T, name string, opts compiler.Options) (*Runner, *nn.Graph, []float64) {
	t.Helper()
	g, calib, inputs, _, err := bundled.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	opts.Calibration = calib
	r, err := New(g, opts, 2)
	if err != nil {
		t.Fatal(err)
	}
	return r, g, inputs
}

// fullBatch cycles inputs to fill the plan's batch.
func fullBatch(r *Runner, g *nn.Graph, inputs []float64) []float64 {
	n := r.Plan.BatchSize * g.Input.Size()
	x := make([]float64, 0, n)
	for len(x) < n {
		x = append(x, inputs[:min(len(inputs), n-len(x))]...)
	}
	return x
}

func mlp(rng *rand.Rand) *nn.Graph {
	return &nn.Graph{
		Name:  "mlp",
		Input: nn.Shape{16},
		Nodes: []*nn.Node{
			{Name: "fc1", OpType: "Gemm", Op: randDense(rng, 16, 8, 1), Inputs: []int{0}, Shape: nn.Shape{8}},
			{Name: "sq", OpType: "Mul", Op: &nn.Mul{}, Inputs: []int{1, 1}, Shape: nn.Shape{8}},
			{Name: "fc2", OpType: "Gemm", Op: randDense(rng, 8, 4, 1), Inputs: []int{2}, Shape: nn.Shape{4}},
		},
		Output: 3,
	}
}

func TestMLPEncrypted(t *testing.T) {
	for _, packing := range []string{plan.Latency, plan.Batch} {
		t.Run(packing, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			g := mlp(rng)
			x := uniform(rng, 3*16)
			r, err := New(g, compiler.Options{Packing: packing, Calibration: x}, 2)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("plan: %s precision %+v", r.Plan, r.Plan.Precision)
			maxErr := checkEncrypted(t, r, g, x, 3)
			t.Logf("max error %.3g (stated %.3g)", maxErr, r.Plan.Precision.OutputError)
		})
	}
}

// TestDerivedKeysEncrypted: a plan compiled with --keys derived runs on
// Galois keys the server derived from the user's master keys (through
// the wire, as the server reads them), and its outputs match the
// plaintext model within the plan's stated error. Derived keys' error
// (he.DerivedKeyErrorStd, per rotation's derivation steps) takes flooding
// room; this model keeps the default 30 bits of circuit privacy with
// them, on the fast choice's ring.
func TestDerivedKeysEncrypted(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	g := mlp(rng)
	x := uniform(rng, 3*16)
	r, err := New(g, compiler.Options{Packing: plan.Latency, Calibration: x, Keys: compiler.KeysDerived, NoTiles: true}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if r.Plan.Keys != plan.KeysDerived || r.Plan.Derivation == nil || len(r.evk.Masters) == 0 || len(r.evk.Galois) != len(r.Plan.GaloisElements) {
		t.Fatalf("plan keys %q, derivation %+v, %d masters and %d Galois keys for %d elements", r.Plan.Keys, r.Plan.Derivation, len(r.evk.Masters), len(r.evk.Galois), len(r.Plan.GaloisElements))
	}
	t.Logf("plan: %s, %d bytes of keys, derivation %+v in %v", r.Plan, r.Stats.EvalKeyByte, *r.Plan.Derivation, r.Stats.Decode)
	fast, err := compiler.Compile(g, compiler.Options{Packing: plan.Latency, Calibration: x, Keys: compiler.KeysFast, NoTiles: true})
	if err != nil {
		t.Fatal(err)
	}
	if fast.Plan.Params.LogN != r.Plan.Params.LogN || r.Plan.Precision.PrivacyBits < compiler.DefaultPrivacyBits {
		t.Errorf("derived: N=2^%d and %.1f bits of privacy; fast: N=2^%d", r.Plan.Params.LogN, r.Plan.Precision.PrivacyBits, fast.Plan.Params.LogN)
	}
	maxErr := checkEncrypted(t, r, g, x, 3)
	t.Logf("max error %.3g (stated %.3g)", maxErr, r.Plan.Precision.OutputError)
}

// A lone linear map runs in coefficient encoding, where the error of an
// output coefficient is not that of a slot: its stated error is within the
// band too (before it was modelled in the coefficient domain, a gemm
// fixture stated 1.1e-3 for 6.2e-6 measured).
func TestCoefficientPrecision(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	g := &nn.Graph{Name: "linear", Input: nn.Shape{30}, Nodes: []*nn.Node{
		{Name: "fc", OpType: "Gemm", Op: randDense(rng, 30, 4, 1), Inputs: []int{0}, Shape: nn.Shape{4}},
	}, Output: 1}
	x := make([]float64, 16*30)
	for i := range x {
		x[i] = rng.NormFloat64()
	}
	r, err := New(g, compiler.Options{Calibration: x}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if r.Plan.Output.Encoding != plan.Coeffs {
		t.Fatalf("output in %s, want coefficients", r.Plan.Output.Encoding)
	}
	worst := checkEncrypted(t, r, g, x, 16)
	t.Logf("64 outputs: largest error %.3g, stated %.3g", worst, r.Plan.Precision.OutputError)
}

func TestExpandingDense(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	g := &nn.Graph{Name: "expand", Input: nn.Shape{4}, Nodes: []*nn.Node{
		{Name: "fc", OpType: "Gemm", Op: randDense(rng, 4, 12, 1), Inputs: []int{0}, Shape: nn.Shape{12}},
		{Name: "sq", OpType: "Mul", Op: &nn.Mul{}, Inputs: []int{1, 1}, Shape: nn.Shape{12}},
	}, Output: 2}
	x := []float64{0.5, -0.25, 1, 0.75}
	r, err := New(g, compiler.Options{Calibration: x}, 2)
	if err != nil {
		t.Fatal(err)
	}
	checkEncrypted(t, r, g, x, 1)
}

// Two computed branches combined by Sub (Combine with B=-1) and by an
// elementwise product of different values.
func TestBranchesEncrypted(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	g := &nn.Graph{Name: "branches", Input: nn.Shape{8}, Nodes: []*nn.Node{
		{Name: "a", OpType: "Gemm", Op: randDense(rng, 8, 8, 1), Inputs: []int{0}, Shape: nn.Shape{8}},
		{Name: "b", OpType: "Gemm", Op: randDense(rng, 8, 8, 1), Inputs: []int{0}, Shape: nn.Shape{8}},
		{Name: "sub", OpType: "Sub", Op: &nn.Combine{A: 1, B: -1}, Inputs: []int{1, 2}, Shape: nn.Shape{8}},
		{Name: "prod", OpType: "Mul", Op: &nn.Mul{}, Inputs: []int{3, 1}, Shape: nn.Shape{8}},
		{Name: "out", OpType: "Gemm", Op: randDense(rng, 8, 3, 1), Inputs: []int{4}, Shape: nn.Shape{3}},
	}, Output: 5}
	x := uniform(rng, 2*8)
	for _, packing := range []string{plan.Latency, plan.Batch} {
		r, err := New(g, compiler.Options{Packing: packing, Calibration: x}, 2)
		if err != nil {
			t.Fatal(err)
		}
		checkEncrypted(t, r, g, x, 2)
	}
}

// TestOutOfIntervalFlagged runs inputs that drive a ReLU far beyond its
// calibrated interval, where the polynomial explodes: the decrypted
// outputs exceed the plan's output bound, and the runner reports those
// samples instead of returning them silently. In latency packing each
// sample is its own call and in-range samples stay within the stated
// precision. In batch packing the samples of a call share ciphertexts, and
// a value past the modulus headroom wraps every coefficient, so the whole
// call is garbage; the flagged samples then include the in-range ones.
func TestOutOfIntervalFlagged(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	g := &nn.Graph{Name: "relu-mlp", Input: nn.Shape{16}, Nodes: []*nn.Node{
		{Name: "fc1", OpType: "Gemm", Op: randDense(rng, 16, 8, 1), Inputs: []int{0}, Shape: nn.Shape{8}},
		{Name: "relu", OpType: "Relu", Op: &nn.Activation{Func: nn.ActReLU}, Inputs: []int{1}, Shape: nn.Shape{8}},
		{Name: "fc2", OpType: "Gemm", Op: randDense(rng, 8, 4, 1), Inputs: []int{2}, Shape: nn.Shape{4}},
	}, Output: 3}
	calib := uniform(rng, 64*16)
	// Samples 0-2 are calibration rows; 3 and 4 are rows scaled by 4.
	const n = 5
	x := append([]float64(nil), calib[:n*16]...)
	for i := 3 * 16; i < n*16; i++ {
		x[i] *= 4
	}
	want, err := g.EvalBatch(x, n, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A sample far out of the interval overflows the result's modulus,
	// which spoils every slot: in batch packing, and in latency packing
	// with tiles, the other samples of its call are wrong and flagged too.
	for _, packing := range []string{plan.Latency, "tiles", plan.Batch} {
		t.Run(packing, func(t *testing.T) {
			// Degree 7 keeps both packings on N=2^14 (15 needed 2^15 in
			// batch packing); 4 times the interval still takes the
			// outputs 40 times past the bound.
			opts := compiler.Options{Packing: packing, Calibration: calib, Degree: 7, NoTiles: packing == plan.Latency}
			if packing == "tiles" {
				opts.Packing = plan.Latency
			}
			r, err := New(g, opts, 2)
			if err != nil {
				t.Fatal(err)
			}
			if (packing == "tiles") != (r.Plan.Input.Tile > 0) {
				t.Fatalf("%s plan with tile %d", packing, r.Plan.Input.Tile)
			}
			got, err := r.Predict(context.Background(), x, n)
			if err != nil {
				t.Fatal(err)
			}
			p := r.Plan
			// The approximation error is amplified by fc2's rows.
			tol := p.Precision.OutputError + 8*p.Precision.ApproximationError
			for s := 0; s < n; s++ {
				var e float64
				for i := s * 4; i < s*4+4; i++ {
					e = math.Max(e, math.Abs(got[i]-want[i]))
				}
				t.Logf("sample %d: max error %.3g (output bound %.3g)", s, e, p.Precision.OutputBound)
				if packing == plan.Latency && s < 3 && e > tol {
					t.Errorf("in-range sample %d: error %g above %g", s, e, tol)
				}
			}
			flagged := r.OutOfBound
			if packing != plan.Latency {
				flagged = slices.DeleteFunc(slices.Clone(flagged), func(s int) bool { return s < 3 })
			}
			if !slices.Equal(flagged, []int{3, 4}) {
				t.Errorf("flagged samples %v, want 3 and 4", r.OutOfBound)
			}
		})
	}
}

func TestStrongPrivacyEncrypted(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	g := mlp(rng)
	x := uniform(rng, 2*16)
	r, err := New(g, compiler.Options{Calibration: x, PrivacyBits: 40}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if r.Plan.Precision.PrivacyBits < 40 {
		t.Fatalf("privacy %.1f bits", r.Plan.Precision.PrivacyBits)
	}
	checkEncrypted(t, r, g, x, 2)
}

// TestBatchTailWithinPrecision fills a whole batch (8,192 slots, 81,920
// output values) of the bundled x*x CNN and checks every value against the
// plaintext model within the plan's stated output error: the bound must
// hold in the tail, not only on a few samples. Rescaling unrelinearized
// products (lazy relinearization) once broke it by 2x here, with rare
// errors of 15 standard deviations, because the noise model left out
// that rescaling; it now counts it, and the compiler chooses lazy
// relinearization only where that costs little precision. 26 bits of
// privacy keep it on N=2^14 (the default 30 needs 2^15, twice the time).
func TestBatchTailWithinPrecision(t *testing.T) {
	if !*long {
		t.Skip("a full batch of the CNN at N=2^14 takes minutes: run with -long")
	}
	r, g, inputs := bundledRunnerOpts(t, "cnn", compiler.Options{Packing: plan.Batch, PrivacyBits: 26})
	worst := checkEncrypted(t, r, g, fullBatch(r, g, inputs), r.Plan.BatchSize)
	t.Logf("%d values, largest error %.3g, stated output error %.3g", r.Plan.BatchSize*r.Plan.OutputSize(), worst, r.Plan.Precision.OutputError)
}

// TestMemoryEstimate compares server.Model.MemoryEstimate, which the
// service uses to decide how many evaluations may run at once under its
// memory limit, with the heap an evaluation actually adds (sampled every
// millisecond with the garbage collector made eager): the estimate must
// cover it and not exceed it by more than 4x.
func TestMemoryEstimate(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	defer debug.SetGCPercent(debug.SetGCPercent(5))
	for _, tt := range []struct {
		model, packing string
		long           string // why it runs only with -long
	}{
		{model: "mlp", packing: plan.Latency},
		{model: "cnn", packing: plan.Latency, long: "37 rotation keys at N=2^14 take 7 s to generate"},
		{model: "mlp", packing: plan.Batch, long: "a full batch at N=2^14 takes a minute"},
	} {
		t.Run(tt.model+"/"+tt.packing, func(t *testing.T) {
			if tt.long != "" && !*long {
				t.Skip(tt.long + ": run with -long")
			}
			r, g, inputs := bundledRunner(t, tt.model, tt.packing)
			n := r.Plan.BatchSize
			x := fullBatch(r, g, inputs)
			// The input ciphertexts are counted in the estimate; here
			// they are made before the baseline, so subtract them.
			cts := encryptInput(t, r, x, n)
			// A full call, and in a tiled plan a call of one sample,
			// which prepares the last map again (its first time).
			calls := []int{n}
			if r.Plan.Input.Tile > 0 {
				calls = append(calls, 1)
			}
			for _, samples := range calls {
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				base, peak := ms.HeapAlloc, ms.HeapAlloc
				done := make(chan struct{})
				go func() {
					for {
						select {
						case <-done:
							return
						case <-time.After(time.Millisecond):
						}
						var ms runtime.MemStats
						runtime.ReadMemStats(&ms)
						peak = max(peak, ms.HeapAlloc)
					}
				}()
				_, err := r.eval.Evaluate(context.Background(), cts, samples, nil)
				close(done)
				if err != nil {
					t.Fatal(err)
				}
				input := int64(len(cts)) * int64(2*(r.Plan.Input.Level+1)*r.params.N()*8)
				est := r.Model.MemoryEstimate(2) - input*3/2
				used := int64(peak - base)
				t.Logf("%d samples: estimate %d MiB (beyond the input), measured peak %d MiB", samples, est>>20, used>>20)
				if est < used || est > 4*used {
					t.Errorf("%d samples: estimate %d bytes, measured %d: not within 1x to 4x", samples, est, used)
				}
			}
		})
	}
}

// derivedPrivacyBits is the circuit privacy TestDerivedKeysBundled asks
// for on the bundled cnn (the default 30 is out of reach of its derived
// keys).
const derivedPrivacyBits = 20

// TestDerivedKeysBundled (-long) runs the bundled mlp and cnn with fast
// and derived keys (and small), one sample per call, the mlp at the
// default privacy and the cnn at derivedPrivacyBits, and logs what BENCHMARKS.md
// quotes: key bytes, keygen, the server's decoding (with the derivation),
// evaluation per call and the error against the plaintext model.
func TestDerivedKeysBundled(t *testing.T) {
	if !*long {
		t.Skip("-long: the bundled models at N=2^14 with derived keys")
	}
	for _, name := range []string{"mlp", "cnn"} {
		for _, keys := range []string{compiler.KeysFast, compiler.KeysDerived, compiler.KeysSmall} {
			t.Run(name+"/"+keys, func(t *testing.T) {
				opts := compiler.Options{Packing: plan.Latency, Keys: keys, NoTiles: true}
				if name == "cnn" {
					opts.PrivacyBits = derivedPrivacyBits
				}
				r, g, inputs := bundledRunnerOpts(t, name, opts)
				const calls = 4
				maxErr := checkEncrypted(t, r, g, inputs[:calls*g.Input.Size()], calls)
				st := r.Stats
				t.Logf("%s %s: N=2^%d, keys %d bytes, keygen %v, server decode %v, evaluate %v per call (%d calls), max error %.3g (stated %.3g), privacy %.1f bits, derivation %+v",
					name, keys, r.Plan.Params.LogN, st.EvalKeyByte, st.Keygen, st.Decode, st.Evaluate/time.Duration(st.Calls), st.Calls, maxErr, r.Plan.Precision.OutputError, r.Plan.Precision.PrivacyBits, r.Plan.Derivation)
				if keys == compiler.KeysDerived {
					// What a load of a key set costs once its derived
					// keys are stored (app: derive).
					var buf bytes.Buffer
					start := time.Now()
					if err := he.MarshalDerivedKeys(&buf, r.params, r.evk.Galois); err != nil {
						t.Fatal(err)
					}
					wrote, size := time.Since(start), buf.Len()
					start = time.Now()
					if _, err := he.UnmarshalDerivedKeys(&buf, r.params, he.PlanKeys(r.Plan)); err != nil {
						t.Fatal(err)
					}
					t.Logf("%s derived keys at rest: %d bytes, written in %v, read in %v", name, size, wrote, time.Since(start))
				}
			})
		}
	}
}

// TestDerivedNoiseModel: a dense layer without flooding (no privacy, so
// that the evaluation noise is what the user sees) evaluated with fast
// keys and with derived keys on the same inputs. The variance the derived
// keys add (derived minus fast, against the plaintext model) is within
// the compiler's model of it: per output, each rotation's error
// (he.DerivedKeyErrorStd, for the longest derivation behind the plan's
// keys) through the row's norm for the baby steps and once for every
// other rotation, sqrt(rownorm^2 + rotations) times it. A square after the
// layer keeps it in slots (a lone dense layer runs in coefficients).
func TestDerivedNoiseModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	d := randDense(rng, 64, 16, 1)
	g := &nn.Graph{Name: "dense", Input: nn.Shape{64}, Nodes: []*nn.Node{
		{Name: "fc", OpType: "Gemm", Op: d, Inputs: []int{0}, Shape: nn.Shape{16}},
		{Name: "sq", OpType: "Mul", Op: &nn.Mul{}, Inputs: []int{1, 1}, Shape: nn.Shape{16}},
	}, Output: 2}
	const calls = 8
	x := uniform(rng, calls*64)
	var meanOut float64 // the squares' mean: the layer's outputs' mean square
	errVar := func(keys string) (float64, *Runner) {
		r, err := New(g, compiler.Options{Packing: plan.Latency, Calibration: x, Keys: keys, NoTiles: true, PrivacyBits: compiler.NoPrivacy, LogN: 13}, 2)
		if err != nil {
			t.Fatal(err)
		}
		got, want, _, err := r.CompareReference(context.Background(), g, x, calls)
		if err != nil {
			t.Fatal(err)
		}
		var v float64
		meanOut = 0
		for i := range want {
			v += (got[i] - want[i]) * (got[i] - want[i])
			meanOut += want[i] / float64(len(want))
		}
		return v / float64(len(want)), r
	}
	fast, rf := errVar(compiler.KeysFast)
	derived, r := errVar(compiler.KeysDerived)
	if rf.Plan.Params.LogN != r.Plan.Params.LogN || !slices.Equal(rf.Plan.Params.LogQ, r.Plan.Params.LogQ) {
		t.Skipf("fast and derived plans differ: %v and %v", rf.Plan.Params, r.Plan.Params)
	}
	params := r.params
	der, err := he.PlanDerivation(params, he.PlanKeys(r.Plan))
	if err != nil {
		t.Fatal(err)
	}
	hops := 0
	for _, g := range r.Plan.GaloisElements {
		hops = max(hops, der.Steps(g))
	}
	var norm float64
	for o := range d.Out {
		var s float64
		for i := range d.In {
			s += d.W[o*d.In+i] * d.W[o*d.In+i]
		}
		norm = max(norm, math.Sqrt(s))
	}
	// The layer's output y goes through the square, which turns an
	// error e into about 2 y e: the error's std times 2 rms(y).
	step := r.Plan.Steps[0]
	delta := he.DerivedKeyErrorStd(params, step.LevelIn, hops) * math.Sqrt(norm*norm+float64(step.Rotations))
	model := delta * 2 * math.Sqrt(meanOut)
	added := math.Sqrt(max(derived-fast, 0))
	t.Logf("N=2^%d, %d rotations, %d derivation steps at most: error std %.3g fast, %.3g derived; added %.3g, model %.3g (%.2f of it)",
		params.LogN(), step.Rotations, hops, math.Sqrt(fast), math.Sqrt(derived), added, model, added/model)
	if added > model {
		t.Errorf("derived keys added an error of std %.3g, above the model's %.3g", added, model)
	}
}

var foldsModel = flag.String("folds-model", "cnn", "BenchmarkFoldStages's workload: a bundled model or an example of ../examples")

// BenchmarkFoldStages evaluates a workload (-folds-model; one sample,
// tiles off, fast keys, one worker) alternately with the folds its plan
// chose (plan.Step.FoldWidth: hoisted stages) and with one rotation a
// stage, the same keys and input, call by call, so that both see the
// same load: medians of the calls' evaluation and of the folding maps'
// steps.
func BenchmarkFoldStages(b *testing.B) {
	g, calib, x, _, err := bundled.Load(*foldsModel)
	opts := compiler.Options{}
	if ex, exErr := examples.Find(*foldsModel); exErr == nil {
		g, calib, x, _, err = ex.Load("../examples")
		opts = ex.Options
	}
	if err != nil {
		b.Fatal(err)
	}
	opts.Calibration, opts.NoTiles, opts.Keys = calib, true, compiler.KeysFast
	r, err := New(g, opts, 1)
	if err != nil {
		b.Fatal(err)
	}
	steps := r.Program.Steps
	widths := make([]int, len(steps))
	folding := 0
	for i := range steps {
		widths[i] = steps[i].FoldWidth
		if widths[i] > 2 {
			folding++
		}
	}
	if folding == 0 {
		b.Fatal("no map folds in hoisted stages")
	}
	in := encryptInput(b, r, x[:g.Input.Size()], 1)
	var total, folds [2][]float64 // [0] staged, [1] a rotation a stage
	b.ResetTimer()
	for i := 0; i < 2*b.N; i++ {
		v := i % 2
		for j := range steps {
			steps[j].FoldWidth = widths[j] * (1 - v)
		}
		var inFolds float64
		t0, last := time.Now(), time.Now()
		_, err := r.eval.Evaluate(context.Background(), in, 1, func(done, _ int) {
			now := time.Now()
			if done <= len(steps) && steps[done-1].Kind == plan.StepLinear && widths[done-1] > 2 {
				inFolds += ms(now.Sub(last))
			}
			last = now
		})
		if err != nil {
			b.Fatal(err)
		}
		total[v] = append(total[v], ms(time.Since(t0)))
		folds[v] = append(folds[v], inFolds)
	}
	for j := range steps {
		steps[j].FoldWidth = widths[j]
	}
	b.ReportMetric(median(total[0]), "staged-ms/op")
	b.ReportMetric(median(total[1]), "inturn-ms/op")
	b.ReportMetric(median(folds[0]), "staged-maps-ms/op")
	b.ReportMetric(median(folds[1]), "inturn-maps-ms/op")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
