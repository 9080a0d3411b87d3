package local

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/bundled"
	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/he"
	"github.com/fheserve/fheserve/he/client"
	"github.com/fheserve/fheserve/he/server"
	"github.com/fheserve/fheserve/nn"
	"github.com/fheserve/fheserve/plan"
	"github.com/tuneinsight/lattigo/v6/circuits/common/lintrans"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
)

// smallCNN is a convolution, a square and a dense layer on a 1x6x6 image.
func smallCNN(rng *rand.Rand) *nn.Graph {
	conv := &nn.Conv{InC: 1, OutC: 2, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadT: 1, PadL: 1, PadB: 1, PadR: 1,
		W: make([]float64, 2*9), B: []float64{0.1, -0.2}}
	for i := range conv.W {
		conv.W[i] = rng.NormFloat64() / 3
	}
	return &nn.Graph{
		Name:  "cnn",
		Input: nn.Shape{1, 6, 6},
		Nodes: []*nn.Node{
			{Name: "conv", OpType: "Conv", Op: conv, Inputs: []int{0}, Shape: nn.Shape{2, 6, 6}},
			{Name: "sq", OpType: "Mul", Op: &nn.Mul{}, Inputs: []int{1, 1}, Shape: nn.Shape{2, 6, 6}},
			{Name: "fc", OpType: "Gemm", Op: randDense(rng, 72, 4, 1), Inputs: []int{2}, Shape: nn.Shape{4}},
		},
		Output: 3,
	}
}

// TestSealedEncrypted compiles small models for sealed weights, seals them
// under a user's public key on the owner's side, evaluates them on the
// server's side from the stripped program and the sealed weights, and
// checks the user's decrypted outputs against the plaintext reference
// within the plan's stated error.
func TestSealedEncrypted(t *testing.T) {
	dense := func(rng *rand.Rand) *nn.Graph { // one linear map: coefficient encoding
		return &nn.Graph{Name: "dense", Input: nn.Shape{16}, Output: 1, Nodes: []*nn.Node{
			{Name: "fc", OpType: "Gemm", Op: randDense(rng, 16, 4, 1), Inputs: []int{0}, Shape: nn.Shape{4}}}}
	}
	for _, tt := range []struct {
		name     string
		graph    func(*rand.Rand) *nn.Graph
		headroom bool
		long     bool
	}{
		{"mlp", mlp, false, false},
		{"cnn", smallCNN, false, false},
		{"dense", dense, false, false},
		// TestSealedHeadroomChosen evaluates slot-encoded maps with
		// headroom (the small CNN's convolution and dense map).
		{"mlp headroom", mlp, true, true},
		{"dense headroom", dense, true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.long && !*long {
				t.Skip("the headroom of TestSealedHeadroomChosen's plan: run with -long")
			}
			rng := rand.New(rand.NewPCG(3, 4))
			g := tt.graph(rng)
			const n = 3
			x := uniform(rng, n*g.Input.Size())
			r, st, err := NewSealed(g, compiler.Options{Calibration: x, SealedHeadroom: tt.headroom}, 2)
			if err != nil {
				t.Fatal(err)
			}
			p := r.Plan
			if !p.Sealed || !p.Relin || p.Ops.SealedMuls == 0 || p.Sizes.SealedWeights != st.SealedBytes {
				t.Fatalf("plan: sealed %v relin %v sealed products %d, sealed weights %d bytes (sealed %d)", p.Sealed, p.Relin, p.Ops.SealedMuls, p.Sizes.SealedWeights, st.SealedBytes)
			}
			t.Logf("plan: %s, %d sealed products, %d relinearizations, sealed weights %d bytes, precision %+v", p, p.Ops.SealedMuls, p.Ops.SealedRelins, p.Sizes.SealedWeights, p.Precision)
			maxErr := checkEncrypted(t, r, g, x, n)
			t.Logf("max error %.3g (stated %.3g)", maxErr, p.Precision.OutputError)
		})
	}
}

// TestSealedResultCarriesOnlyOutputs is TestSlotResultCarriesOnlyOutputs
// for sealed weights: with a different sample in every copy of the input,
// the slots of a sealed model's result other than the declared outputs hold
// the flood's Gaussian noise alone, alike for two models with the same
// function and other weights. The last linear map's sealed diagonals are
// encryptions of zero outside the first window: their encryption noise,
// times the other copies, is fresh randomness, not the weights.
func TestSealedResultCarriesOnlyOutputs(t *testing.T) {
	gs, in, calib := permutedMLPs(rand.New(rand.NewPCG(5, 6)))
	checkOnlyOutputs(t, gs, in, calib, func(g *nn.Graph) (*Runner, error) {
		r, _, err := NewSealed(g, compiler.Options{Calibration: calib}, 2)
		return r, err
	})
}

// TestSealedRefusals: a sealed plan is not prepared without its sealed
// weights, a sealed program with a plaintext weight is refused, batch
// packing is not sealed, and sealed weights for another plan or cut short
// are refused with the cause.
func TestSealedRefusals(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	g := mlp(rng)
	x := uniform(rng, 3*16)
	if _, err := compiler.Compile(g, compiler.Options{Packing: plan.Batch, Sealed: true, Calibration: x}); fheserve.ErrorCode(err) != fheserve.EUNSUPPORTED || !strings.Contains(err.Error(), "one ciphertext per weight") {
		t.Errorf("batch packing sealed: got %v, want EUNSUPPORTED naming one ciphertext per weight", err)
	}
	r, _, err := NewSealed(g, compiler.Options{Calibration: x}, 1)
	if err != nil {
		t.Fatal(err)
	}
	p, params := r.Plan, r.params
	if _, err := server.Prepare(p, r.Program); fheserve.ErrorCode(err) != fheserve.EINVALID {
		t.Errorf("Prepare of a sealed plan: got %v, want EINVALID", err)
	}
	_, owner, err := client.GenerateKeys(params, he.PlanKeys(p))
	if err != nil {
		t.Fatal(err)
	}
	var blob bytes.Buffer
	if err := client.Seal(&blob, params, p, r.Program, owner.Public); err != nil {
		t.Fatal(err)
	}
	stripped := he.StripWeights(r.Program)
	items, err := he.SealedLayout(params, p, stripped)
	if err != nil {
		t.Fatal(err)
	}
	levels := he.SealedLevels(items)
	cts, err := he.UnmarshalSealed(bytes.NewReader(blob.Bytes()), params, levels)
	if err != nil {
		t.Fatal(err)
	}
	// The full program (the owner's) holds weights: refused.
	if _, err := server.PrepareSealed(p, r.Program, cts); fheserve.ErrorCode(err) != fheserve.EINVALID || !strings.Contains(err.Error(), "plaintext weights") {
		t.Errorf("PrepareSealed with the weights: got %v, want EINVALID", err)
	}
	// One bias value left in: refused too.
	leaky := he.StripWeights(r.Program)
	leaky.Steps[0].Bias = []float64{0.5}
	if _, err := server.PrepareSealed(p, leaky, cts); fheserve.ErrorCode(err) != fheserve.EINVALID {
		t.Errorf("PrepareSealed with a bias: got %v, want EINVALID", err)
	}
	// Ciphertexts out of order: a scale or encoding that is not the plan's.
	swapped := slices.Clone(cts)
	last := len(swapped) - 1
	swapped[0], swapped[last] = swapped[last], swapped[0]
	if _, err := server.PrepareSealed(p, stripped, swapped); fheserve.ErrorCode(err) != fheserve.EINVALID {
		t.Errorf("PrepareSealed with misplaced ciphertexts: got %v, want EINVALID", err)
	}
	for _, tt := range []struct {
		name   string
		data   []byte
		levels []int
		want   string
	}{
		{"truncated", blob.Bytes()[:blob.Len()-100], levels, "truncated"},
		{"one more", blob.Bytes(), append(slices.Clone(levels), levels[0]), "the plan seals"},
		{"other levels", blob.Bytes(), slices.Repeat([]int{0}, len(levels)), "level"},
		{"trailing bytes", append(slices.Clone(blob.Bytes()), 0), levels, "trailing"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := he.UnmarshalSealed(bytes.NewReader(tt.data), params, tt.levels)
			if fheserve.ErrorCode(err) != fheserve.EINVALID || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want EINVALID naming %q", err, tt.want)
			}
		})
	}
}

// TestSealedModelHoldsNoWeight walks everything a sealed model prepared on
// the server reaches (its plan, its program, its prepared steps, its
// parameters and sealed ciphertexts) and finds no weight or bias of the
// model as a float64, no plaintext (a fixed-point encoding) but the public
// 0/1 masks, and no encoded linear transformation.
func TestSealedModelHoldsNoWeight(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	g := mlp(rng)
	x := uniform(rng, 2*g.Input.Size())
	r, _, err := NewSealed(g, compiler.Options{Calibration: x}, 1)
	if err != nil {
		t.Fatal(err)
	}
	weights := map[float64]bool{}
	for _, s := range r.Program.Steps {
		if s.Kind != plan.StepLinear {
			continue
		}
		for _, v := range slices.Concat(s.M.Val, s.Bias) {
			weights[v] = v != 0
		}
	}
	w := &walker{weights: weights, seen: map[[2]uintptr]bool{}}
	w.walk(reflect.ValueOf(r.Model), "Model")
	for _, f := range w.found {
		t.Error(f)
	}
	t.Logf("walked %d values, %d sealed ciphertexts", w.values, w.cts)

	// The walk does find the weights of the same model deployed plain.
	plain, err := New(g, compiler.Options{Calibration: x}, 1)
	if err != nil {
		t.Fatal(err)
	}
	w = &walker{weights: weights, seen: map[[2]uintptr]bool{}}
	w.walk(reflect.ValueOf(plain.Model), "Model")
	if len(w.found) == 0 {
		t.Error("the walk finds no weight in the plain model either")
	}
}

type walker struct {
	weights map[float64]bool
	seen    map[[2]uintptr]bool
	found   []string
	values  int
	cts     int
}

var (
	plaintextType = reflect.TypeFor[rlwe.Plaintext]()
	cipherType    = reflect.TypeFor[rlwe.Ciphertext]()
	transformType = reflect.TypeFor[lintrans.LinearTransformation]()
)

func (w *walker) walk(v reflect.Value, path string) {
	w.values++
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return
		}
		key := [2]uintptr{v.Pointer(), uintptr(v.Type().Elem().Size())}
		if w.seen[key] {
			return
		}
		w.seen[key] = true
		switch v.Type().Elem() {
		case plaintextType:
			if !strings.HasSuffix(path, ".mask") {
				w.found = append(w.found, "a plaintext at "+path)
			}
			return
		case cipherType:
			w.cts++
			return // encrypted: nothing to read without the user's key
		}
		w.walk(v.Elem(), path)
	case reflect.Interface:
		if !v.IsNil() {
			w.walk(v.Elem(), path)
		}
	case reflect.Struct:
		if v.Type() == transformType {
			w.found = append(w.found, "a linear transformation at "+path)
			return
		}
		for i := range v.NumField() {
			w.walk(v.Field(i), path+"."+v.Type().Field(i).Name)
		}
	case reflect.Slice, reflect.Array:
		if k := v.Type().Elem().Kind(); k != reflect.Float64 && k <= reflect.Complex128 {
			return // integers: sizes, levels, moduli, ring tables
		}
		for i := range v.Len() {
			w.walk(v.Index(i), path+"[]")
		}
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			w.walk(it.Key(), path+"{}")
			w.walk(it.Value(), path+"{}")
		}
	case reflect.Float64:
		if w.weights[v.Float()] {
			w.found = append(w.found, "a weight at "+path)
		}
	}
}

// TestSealedBundled (-long) runs the bundled mlp and cnn sealed and plain
// in latency packing, checks the outputs against the reference within the
// stated error, and logs the figures BENCHMARKS.md reports ("Sealed
// weights: the engine"): one run each. The cnn runs at 27 bits of privacy,
// sealed and plain, and at the default 30, where the sealed plan needs
// headroom (compiler.Options.SealedHeadroom): without, the sealed
// diagonals' encryption noise, times activations up to 90, leaves 27.3.
func TestSealedBundled(t *testing.T) {
	if !*long {
		t.Skip("run with -long")
	}
	for _, tt := range []struct {
		name    string
		privacy float64
	}{{"mlp", 0}, {"cnn", 27}, {"cnn", 0}} {
		t.Run(fmt.Sprintf("%s-%g", tt.name, tt.privacy), func(t *testing.T) {
			// Plain untiled, as sealed plans are: one sample per call.
			opts := compiler.Options{Packing: plan.Latency, PrivacyBits: tt.privacy, NoTiles: true}
			plain, g, inputs := bundledRunnerOpts(t, tt.name, opts)
			calib, err := bundled.Calibration(tt.name)
			if err != nil {
				t.Fatal(err)
			}
			opts.Calibration = calib.Data
			sealed, st, err := NewSealed(g, opts, 2)
			if err != nil {
				t.Fatal(err)
			}
			const n = 4
			x := inputs[:n*g.Input.Size()]
			for _, r := range []*Runner{plain, sealed} {
				maxErr := checkEncrypted(t, r, g, x, n)
				p := r.Plan
				t.Logf("%s sealed=%v headroom=%v: N=2^%d depth %d, evaluate %.2f s/call, max error %.3g (stated %.3g), privacy %.1f bits, eval keys %.1f MB, upload %.0f kB/call, diagonals %d, sealed products %d, relinearizations %d",
					tt.name, p.Sealed, p.Steps[0].LevelIn-p.Steps[0].LevelOut > 1, p.Params.LogN, p.Depth, r.Stats.Evaluate.Seconds()/n, maxErr, p.Precision.OutputError, p.Precision.PrivacyBits,
					float64(r.Stats.EvalKeyByte)/1e6, float64(r.Stats.UploadBytes)/n/1e3, p.Ops.Diagonals, p.Ops.SealedMuls, p.Ops.SealedRelins)
			}
			t.Logf("%s sealed weights: %.1f MB per key set (plan %.1f MB), owner's sealing %.2f s, server's decode and prepare %.2f s",
				tt.name, float64(st.SealedBytes)/1e6, float64(sealed.Plan.Sizes.SealedWeights)/1e6, st.Seal.Seconds(), st.Prepare.Seconds())
		})
	}
}

// TestSealedHeadroomChosen: with activations in the tens, the sealed
// weights' encryption noise keeps a plain sealed plan below the default
// privacy; the compiler gives the linear maps headroom (two levels each)
// by itself, and the plan evaluates within its stated error.
func TestSealedHeadroomChosen(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	g := smallCNN(rng)
	const n = 3
	x := make([]float64, n*g.Input.Size())
	for i := range x {
		x[i] = (rng.Float64()*2 - 1) * 40
	}
	r, _, err := NewSealed(g, compiler.Options{Calibration: x}, 2)
	if err != nil {
		t.Fatal(err)
	}
	p := r.Plan
	for _, s := range r.Program.Steps {
		if s.Kind == plan.StepLinear && s.LevelIn-s.Level != 2 {
			t.Errorf("linear step %q consumes %d levels, want 2 (headroom)", s.Name, s.LevelIn-s.Level)
		}
	}
	if p.Precision.PrivacyBits < compiler.DefaultPrivacyBits {
		t.Errorf("privacy %.1f bits, want at least %d", p.Precision.PrivacyBits, compiler.DefaultPrivacyBits)
	}
	maxErr := checkEncrypted(t, r, g, x, n)
	t.Logf("N=2^%d depth %d, privacy %.1f bits, max error %.3g (stated %.3g)", p.Params.LogN, p.Depth, p.Precision.PrivacyBits, maxErr, p.Precision.OutputError)
}
