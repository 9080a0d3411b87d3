package local

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/he"
	"github.com/fheserve/fheserve/nn"
	"github.com/fheserve/fheserve/plan"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
)

// These tests decrypt raw results with the user's secret key, every slot
// or coefficient, as a hostile user would, and check that nothing but the
// declared outputs is in them.

// rawCall encrypts the given input vectors (slots or coefficients, as the
// plan lays them out), evaluates them as a call declaring samples samples,
// passes the result through the wire format and returns every decrypted
// slot or coefficient of every result ciphertext.
func rawCall(t *testing.T, r *Runner, vecs [][]float64, samples int) [][]float64 {
	t.Helper()
	p := r.Plan
	var cts []*rlwe.Ciphertext
	var err error
	if p.Input.Encoding == plan.Coeffs {
		cts, err = r.keys.EncryptCoeffs(vecs, p.Input.Level, r.params.DefaultScale())
	} else {
		cts, err = r.keys.Encrypt(vecs, p.Input.Level, r.params.DefaultScale())
	}
	if err != nil {
		t.Fatal(err)
	}
	out, err := r.eval.Evaluate(context.Background(), cts, samples, nil)
	if err != nil {
		t.Fatal(err)
	}
	return decryptRaw(t, r, out)
}

func decryptRaw(t *testing.T, r *Runner, out []*rlwe.Ciphertext) [][]float64 {
	t.Helper()
	p := r.Plan
	var buf bytes.Buffer
	if err := he.MarshalResult(&buf, r.params, out, p.ResultBits); err != nil {
		t.Fatal(err)
	}
	got, err := he.UnmarshalResult(&buf, r.params, he.Limits{MaxCount: len(out), MinLevel: 0, MaxLevel: 0})
	if err != nil {
		t.Fatal(err)
	}
	if p.Output.Encoding == plan.Coeffs {
		v, err := r.keys.DecryptCoeffs(got)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	v, err := r.keys.Decrypt(got)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// ks is the Kolmogorov-Smirnov distance between the empirical
// distribution of a and the distribution function cdf.
func ks(a []float64, cdf func(float64) float64) float64 {
	s := slices.Clone(a)
	sort.Float64s(s)
	n := float64(len(s))
	var d float64
	for i, x := range s {
		f := cdf(x)
		d = math.Max(d, math.Max(math.Abs(float64(i+1)/n-f), math.Abs(f-float64(i)/n)))
	}
	return d
}

// ks2 is the two-sample Kolmogorov-Smirnov distance.
func ks2(a, b []float64) float64 {
	a, b = slices.Clone(a), slices.Clone(b)
	sort.Float64s(a)
	sort.Float64s(b)
	var i, j int
	var d float64
	for i < len(a) && j < len(b) {
		x := math.Min(a[i], b[j])
		for i < len(a) && a[i] <= x {
			i++
		}
		for j < len(b) && b[j] <= x {
			j++
		}
		d = math.Max(d, math.Abs(float64(i)/float64(len(a))-float64(j)/float64(len(b))))
	}
	return d
}

// ksLimit is the distance above which the Kolmogorov-Smirnov test
// rejects at level 1e-4 (samples of sizes n and m; m = 0 for one sample).
func ksLimit(n, m int) float64 {
	c := math.Sqrt(-math.Log(1e-4/2) / 2)
	if m == 0 {
		return c / math.Sqrt(float64(n))
	}
	return c * math.Sqrt(float64(n+m)/float64(n*m))
}

func normalCDF(sigma float64) func(float64) float64 {
	return func(x float64) float64 { return 0.5 * math.Erfc(-x/(sigma*math.Sqrt2)) }
}

// stdDev is the root mean square of v (its mean is 0 for noise).
func stdDev(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x * x
	}
	return math.Sqrt(s / float64(len(v)))
}

// A coefficient-encoded linear model returns its outputs and uniform noise:
// the other coefficients of x(X)*w(X) were partial sums of the weights, and
// one ordinary query recovered every weight from them. Two models with the
// same outputs on the query and different weights give results whose
// other coefficients are uniform mod q_0, indistinguishable; the same test
// rejects the bare product, as results were before.
func TestCoefficientResultCarriesOnlyOutputs(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const in, out = 30, 3
	x := make([]float64, in)
	for i := range x {
		x[i] = rng.NormFloat64()
	}
	a := randDense(rng, in, out, 1)
	b := sameOutputs(rng, a, x)
	r, rawA := linearRaw(t, a, x)
	_, rawB := linearRaw(t, b, x)
	outputs := map[int]bool{}
	for i := 0; i < out; i++ {
		outputs[plan.Pos(r.Plan.Output.Positions, i)] = true
	}
	others := func(v []float64) []float64 {
		var o []float64
		for i, c := range v {
			if !outputs[i] {
				o = append(o, c)
			}
		}
		return o
	}
	// Decoded, a uniform residue mod q_0 is uniform on +-q_0/(2*scale).
	half := float64(r.params.Q()[0]) / 2 / math.Exp2(float64(r.Plan.Output.LogScale))
	uniform := func(v float64) float64 { return math.Min(1, math.Max(0, (v+half)/(2*half))) }
	oa, ob := others(rawA), others(rawB)
	for i, o := range [][]float64{oa, ob} {
		if d := ks(o, uniform); d > ksLimit(len(o), 0) {
			t.Errorf("model %d: non-output coefficients are not uniform mod q_0 (KS distance %.4f, limit %.4f)", i, d, ksLimit(len(o), 0))
		}
	}
	if d := ks2(oa, ob); d > ksLimit(len(oa), len(ob)) {
		t.Errorf("non-output coefficients of the two models differ (KS distance %.4f, limit %.4f)", d, ksLimit(len(oa), len(ob)))
	}
	for i := 0; i < out; i++ {
		pos := plan.Pos(r.Plan.Output.Positions, i)
		if e := math.Abs(rawA[pos] - rawB[pos]); e > 2*r.Plan.Precision.OutputError {
			t.Errorf("output %d: %.5g and %.5g, the same model output", i, rawA[pos], rawB[pos])
		}
	}

	// The bare product, as results were before: the test rejects it.
	leak := others(bareProduct(t, r, x))
	if d := ks(leak, uniform); d <= ksLimit(len(leak), 0) {
		t.Errorf("the test does not tell the bare product's partial sums from uniform noise (KS distance %.4f)", d)
	}
}

// linearRaw runs the one-layer model d on x in coefficient encoding and
// returns its runner and every decrypted coefficient of the result.
func linearRaw(t *testing.T, d *nn.Dense, x []float64) (*Runner, []float64) {
	t.Helper()
	g := &nn.Graph{Name: "linear", Input: nn.Shape{d.In}, Nodes: []*nn.Node{{Name: "fc", OpType: "Gemm", Op: d, Inputs: []int{0}, Shape: nn.Shape{d.Out}}}, Output: 1}
	r, err := New(g, compiler.Options{Calibration: x}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if r.Plan.Output.Encoding != plan.Coeffs {
		t.Fatalf("plan encodes its output in %s, want coefficients", r.Plan.Output.Encoding)
	}
	vecs, err := r.Plan.EncodeInput(x, 1)
	if err != nil {
		t.Fatal(err)
	}
	return r, rawCall(t, r, vecs, 1)[0]
}

// sameOutputs returns a with each row moved orthogonally to x: other
// weights, the same outputs on x.
func sameOutputs(rng *rand.Rand, a *nn.Dense, x []float64) *nn.Dense {
	in, out := a.In, a.Out
	b := &nn.Dense{In: in, Out: out, W: slices.Clone(a.W), B: slices.Clone(a.B)}
	for r := 0; r < out; r++ {
		d := make([]float64, in)
		var dx, xx float64
		for i := range d {
			d[i] = rng.NormFloat64()
			dx += d[i] * x[i]
			xx += x[i] * x[i]
		}
		for i := range d {
			b.W[r*in+i] += d[i] - dx/xx*x[i]
		}
	}
	return b
}

// bareProduct returns every decrypted coefficient of x times the weights
// of r's coefficient-encoded linear map, as results were before they were
// masked and flooded.
func bareProduct(t *testing.T, r *Runner, x []float64) []float64 {
	t.Helper()
	vecs, _ := r.Plan.EncodeInput(x, 1)
	cts, err := r.keys.EncryptCoeffs(vecs, r.Plan.Input.Level, r.params.DefaultScale())
	if err != nil {
		t.Fatal(err)
	}
	s := &r.Program.Steps[0]
	w := make([]float64, r.params.N())
	for row := 0; row < s.M.Rows; row++ {
		cols, vals := s.M.Row(row)
		for j, c := range cols {
			w[row*s.Pin+s.Pin-1-c] = vals[j]
		}
	}
	pt := ckks.NewPlaintext(r.params, s.LevelIn)
	pt.IsBatched = false
	pt.Scale = rlwe.NewScale(r.params.Q()[s.LevelIn])
	if err := ckks.NewEncoder(r.params).Encode(w, pt); err != nil {
		t.Fatal(err)
	}
	ev := ckks.NewEvaluator(r.params, nil)
	bare, err := ev.MulNew(cts[0], pt)
	if err != nil {
		t.Fatal(err)
	}
	if err := ev.Rescale(bare, bare); err != nil {
		t.Fatal(err)
	}
	return decryptRaw(t, r, []*rlwe.Ciphertext{bare})[0]
}

// A slot-encoded result holds the declared output window and flooding
// noise elsewhere. A hostile user who puts a different sample in each copy
// of a latency input, or more samples than the call declares in a batch
// input, gets the declared outputs only: every other slot decrypts to
// noise of the flood's distribution, the same for two models with the same
// outputs and different weights (hidden units permuted), and far below
// what any output would show.
func TestSlotResultCarriesOnlyOutputs(t *testing.T) {
	gs, in, calib := permutedMLPs(rand.New(rand.NewPCG(5, 6)))
	for _, packing := range []string{plan.Latency, plan.Batch} {
		t.Run(packing, func(t *testing.T) {
			checkOnlyOutputs(t, gs, in, calib, func(g *nn.Graph) (*Runner, error) {
				return New(g, compiler.Options{Packing: packing, Calibration: calib}, 2)
			})
		})
	}
}

// permutedMLPs returns two square MLPs (16 inputs, 12 hidden units, 4
// outputs) with the same function and other weights (the hidden units
// permuted), their input size and 64 calibration samples.
func permutedMLPs(rng *rand.Rand) (gs [2]*nn.Graph, in int, calib []float64) {
	const hidden, out = 12, 4
	in = 16
	d1, d2 := randDense(rng, in, hidden, 2), randDense(rng, hidden, out, 2)
	// The same function with its hidden units permuted: other weights.
	p1, p2 := permuteHidden(rng.Perm(hidden), d1, d2)
	graph := func(a, b *nn.Dense) *nn.Graph {
		return &nn.Graph{Name: "mlp", Input: nn.Shape{in}, Nodes: []*nn.Node{
			{Name: "fc1", OpType: "Gemm", Op: a, Inputs: []int{0}, Shape: nn.Shape{hidden}},
			{Name: "sq", OpType: "Mul", Op: &nn.Mul{}, Inputs: []int{1, 1}, Shape: nn.Shape{hidden}},
			{Name: "fc2", OpType: "Gemm", Op: b, Inputs: []int{2}, Shape: nn.Shape{out}},
		}, Output: 3}
	}
	calib = uniform(rng, 64*in)
	return [2]*nn.Graph{graph(d1, d2), graph(p1, p2)}, in, calib
}

// checkOnlyOutputs runs a hostile input through the runner newRunner makes
// for each of the two models gs, checks the declared outputs against the
// plaintext reference and the other slots against the flood's
// distribution, and that those slots are alike for the two models.
func checkOnlyOutputs(t *testing.T, gs [2]*nn.Graph, in int, calib []float64, newRunner func(*nn.Graph) (*Runner, error)) {
	t.Helper()
	var zeroed [][]float64
	for m, g := range gs {
		r, err := newRunner(g)
		if err != nil {
			t.Fatal(err)
		}
		p := r.Plan
		vecs, declared := hostileInput(p, calib, in)
		raw := rawCall(t, r, vecs, declared)
		checkDeclared(t, m, g, p, raw, calib[:declared*in], declared)
		z := zeroedSlots(p, raw, declared)
		checkFlood(t, m, p, z)
		zeroed = append(zeroed, z)
	}
	if d := ks2(zeroed[0], zeroed[1]); d > ksLimit(len(zeroed[0]), len(zeroed[1])) {
		t.Errorf("zeroed slots of the two models differ (KS distance %.4f, limit %.4f)", d, ksLimit(len(zeroed[0]), len(zeroed[1])))
	}
}

// permuteHidden returns the layers d1, d2 with the hidden units between
// them reordered by perm: the same function, other weights.
func permuteHidden(perm []int, d1, d2 *nn.Dense) (p1, p2 *nn.Dense) {
	in, hidden, out := d1.In, d1.Out, d2.Out
	p1 = &nn.Dense{In: in, Out: hidden, W: make([]float64, len(d1.W)), B: make([]float64, hidden)}
	p2 = &nn.Dense{In: hidden, Out: out, W: make([]float64, len(d2.W)), B: slices.Clone(d2.B)}
	for h, ph := range perm {
		copy(p1.W[ph*in:(ph+1)*in], d1.W[h*in:(h+1)*in])
		p1.B[ph] = d1.B[h]
		for o := 0; o < out; o++ {
			p2.W[o*hidden+ph] = d2.W[o*hidden+h]
		}
	}
	return p1, p2
}

// hostileInput lays out a different sample of calib (rows of in values)
// in every copy of a latency input or every slot of a batch input, and
// returns it with the number of samples a call declares (1, or 3 in a
// batch).
func hostileInput(p *plan.Plan, calib []float64, in int) (vecs [][]float64, declared int) {
	slots := p.Slots()
	samples := make([][]float64, slots)
	for i := range samples {
		samples[i] = calib[(i%64)*in : (i%64+1)*in]
	}
	if p.Packing == plan.Latency {
		v := make([]float64, slots)
		for j := 0; j < slots; j += p.Input.Period {
			copy(v[j:], samples[j/p.Input.Period])
		}
		return [][]float64{v}, 1
	}
	for f := 0; f < in; f++ {
		v := make([]float64, slots)
		for j := range v {
			v[j] = samples[j][f]
		}
		vecs = append(vecs, v)
	}
	return vecs, 3
}

// checkDeclared decodes the declared samples' outputs of model m from raw
// and, in a batch, checks them against the model on x.
func checkDeclared(t *testing.T, m int, g *nn.Graph, p *plan.Plan, raw [][]float64, x []float64, declared int) {
	t.Helper()
	want, err := g.EvalBatch(x, declared, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.DecodeRaw(raw, declared)
	if err != nil {
		t.Fatal(err)
	}
	if p.Packing != plan.Batch {
		return
	}
	for i := range want {
		if e := math.Abs(got[i] - want[i]); e > p.Precision.OutputError {
			t.Fatalf("model %d output %d: %.5g, want %.5g", m, i, got[i], want[i])
		}
	}
}

// zeroedSlots returns the slots of raw that hold no declared output.
func zeroedSlots(p *plan.Plan, raw [][]float64, declared int) []float64 {
	keep := map[[2]int]bool{}
	for c := range raw {
		for s := 0; s < declared; s++ {
			if p.Packing == plan.Latency {
				for o := 0; o < p.OutputSize(); o++ {
					ct, slot := p.Output.Slot(o)
					keep[[2]int{ct, s*p.Output.Tile + slot}] = true
				}
				continue
			}
			keep[[2]int{c, s}] = true
		}
	}
	var z []float64
	for c, v := range raw {
		for j, x := range v {
			if !keep[[2]int{c, j}] {
				z = append(z, x)
			}
		}
	}
	return z
}

// checkFlood checks that the zeroed slots z of model m hold Gaussian
// noise of the flood's std (in slot units, real part, with the result's
// rounding), and nothing far beyond it.
func checkFlood(t *testing.T, m int, p *plan.Plan, z []float64) {
	t.Helper()
	slots := p.Slots()
	sigma := p.Precision.FloodStd * math.Sqrt(float64(2*slots)/2) / math.Exp2(float64(p.Output.LogScale))
	sd := stdDev(z)
	if sd > 1.2*sigma || sd < 0.8*sigma {
		t.Errorf("model %d: zeroed slots have std %.3g, the flood alone %.3g", m, sd, sigma)
	}
	if d := ks(z, normalCDF(sd)); d > ksLimit(len(z), 0) {
		t.Errorf("model %d: zeroed slots are not Gaussian noise (KS distance %.4f, limit %.4f)", m, d, ksLimit(len(z), 0))
	}
	var biggest float64
	for _, x := range z {
		biggest = math.Max(biggest, math.Abs(x))
	}
	if biggest > 7*sd {
		t.Errorf("model %d: a zeroed slot holds %.3g, %.1f flood deviations", m, biggest, biggest/sd)
	}
	t.Logf("model %d: %d zeroed slots, std %.3g (flood %.3g), privacy %.1f bits over %d samples", m, len(z), sd, sigma, p.Precision.PrivacyBits, p.Precision.QueryBudget)
}
