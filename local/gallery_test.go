package local

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/internal/unitvec"
	"github.com/fheserve/fheserve/plan"
)

// galleryAround enrols n unit templates of dimension d whose cosine with
// probe is placed: a quarter just above threshold+margin, a quarter just
// below threshold-margin, a quarter anywhere in [-1, 1] and a quarter
// inside the margin.
func galleryAround(rng *rand.Rand, probe []float64, n, d int, tau, margin float64) *compiler.Gallery {
	g := &compiler.Gallery{Name: "faces", Dim: d, Metric: compiler.MetricCosine, Threshold: tau}
	for i := 0; i < n; i++ {
		var s float64
		switch i % 4 {
		case 0:
			s = tau + margin*1.001
		case 1:
			s = tau - margin*1.001
		case 2:
			s = rng.Float64()*2 - 1
		case 3:
			s = tau + (rng.Float64()*2-1)*margin
		}
		g.Templates = append(g.Templates, unitvec.AtCosine(rng, probe, s)...)
		g.Labels = append(g.Labels, "person-"+strconv.Itoa(i))
	}
	return g
}

// scores is the plaintext oracle: each template's cosine with the probe.
func scores(g *compiler.Gallery, probe []float64) []float64 {
	s := make([]float64, len(g.Labels))
	for i := range s {
		for j, v := range g.Templates[i*g.Dim : (i+1)*g.Dim] {
			s[i] += v * probe[j]
		}
	}
	return s
}

// checkDecisions compares decrypted decisions with the plaintext ones:
// equal outside the margin (and within the stated error of the step),
// between 0 and 1 up to the encryption error inside it.
func checkDecisions(t *testing.T, p *plan.Plan, out, score []float64) {
	t.Helper()
	d := p.Decision
	got := d.Decisions(out)
	outside := 0
	for i, s := range score {
		want := s >= d.Threshold
		if d.IsRandomized() {
			// r x with x the scaled score minus the threshold and r in
			// [1/Spread, 1], up to the stated error.
			x := (s - d.Threshold) / d.Range
			if math.Abs(out[i]) > math.Abs(x)+d.Error {
				t.Fatalf("template %d: score %.4f decrypts to %.4g, larger than (score - threshold)/range %.4g", i, s, out[i], x)
			}
			if math.Abs(s-d.Threshold) < d.Margin {
				continue
			}
			outside++
			if got[i] != want || math.Abs(out[i]) < math.Abs(x)/d.Spread-d.Error {
				t.Fatalf("template %d: score %.4f (threshold %g, margin %.4g) decrypts to %.4g, want the sign of %.4g and at least %.4g", i, s, d.Threshold, d.Margin, out[i], x, math.Abs(x)/d.Spread-d.Error)
			}
			continue
		}
		if math.Abs(s-d.Threshold) >= d.Margin {
			outside++
			step := 0.0
			if want {
				step = 1
			}
			if got[i] != want || math.Abs(out[i]-step) > d.Error {
				t.Fatalf("template %d: score %.4f (threshold %g, margin %.4g) decrypts to %.4f, want %g within %.3g", i, s, d.Threshold, d.Margin, out[i], step, d.Error)
			}
			continue
		}
		if e := p.Precision.OutputError; out[i] < -e || out[i] > 1+e {
			t.Fatalf("template %d: score %.4f inside the margin decrypts to %.4f, outside [0, 1]", i, s, out[i])
		}
	}
	if outside == 0 {
		t.Fatal("no score outside the margin")
	}
}

// runGallery enrols n templates of dimension dim around a probe (scores
// just outside the stated margin on both sides, at random, and inside),
// runs the probe encrypted and checks the decisions. It returns the
// runner and the gallery.
func runGallery(t *testing.T, seed uint64, mode string, n, dim int, margin float64) (*Runner, *compiler.Gallery, []float64) {
	t.Helper()
	const tau = 0.4
	rng := rand.New(rand.NewPCG(seed, 1))
	probe := unitvec.Random(rng, dim)
	opts := compiler.GalleryOptions{Mode: mode, Margin: margin}
	// The margin the plan states comes from the options alone; a first
	// gallery finds it, the second places scores around it.
	g := galleryAround(rng, probe, n, dim, tau, margin)
	if mode == plan.Verify {
		opts.Claim = g.Labels[0]
	}
	res, err := compiler.CompileGallery(g, opts)
	if err != nil {
		t.Fatal(err)
	}
	g = galleryAround(rng, probe, n, dim, tau, res.Plan.Decision.Margin)
	r, err := NewGallery(g, opts, 2)
	if err != nil {
		t.Fatal(err)
	}
	p := r.Plan
	out, err := r.Predict(context.Background(), probe, 1)
	if err != nil {
		t.Fatal(err)
	}
	score := scores(g, probe)
	if mode == plan.Verify {
		score = score[:1]
	}
	checkDecisions(t, p, out, score)
	t.Logf("%s, %d templates of %d: logN %d depth %d margin %.4g error %.3g, %d Galois keys (%d B with relin), upload %d B, result %d B, evaluate %v",
		mode, n, dim, p.Params.LogN, p.Depth, p.Decision.Margin, p.Decision.Error, p.Sizes.GaloisKeys, r.Stats.EvalKeyByte, r.Stats.UploadBytes, r.Stats.ResultBytes, r.Stats.Evaluate)
	return r, g, probe
}

// TestGalleryDecisionsEncrypted runs small galleries (64 templates of 32,
// a margin of 0.25: depth 8) through verification and identification,
// and decrypts every slot of the results: the declared
// outputs are the decisions, and every other slot is flood noise alone,
// the same for two galleries with other templates and scores.
func TestGalleryDecisionsEncrypted(t *testing.T) {
	onlyFlood := func(m int, r *Runner, probe []float64) []float64 {
		p := r.Plan
		vecs, err := p.EncodeInput(probe, 1)
		if err != nil {
			t.Fatal(err)
		}
		z := zeroedSlots(p, rawCall(t, r, vecs, 1), 1)
		checkFlood(t, m, p, z)
		return z
	}
	r, _, probe := runGallery(t, 1, plan.Verify, 64, 32, 0.25)
	onlyFlood(2, r, probe) // "model 2" in messages: the verification result
	var zeroed [][]float64
	for m := range 2 {
		r, _, probe := runGallery(t, uint64(10+m), plan.Identify, 64, 32, 0.25)
		zeroed = append(zeroed, onlyFlood(m, r, probe))
	}
	if d := ks2(zeroed[0], zeroed[1]); d > ksLimit(len(zeroed[0]), len(zeroed[1])) {
		t.Errorf("slots outside the decisions of the two galleries differ (KS distance %.4f, limit %.4f)", d, ksLimit(len(zeroed[0]), len(zeroed[1])))
	}
}

// TestGalleryLong: 1,000 templates of 128 at the default margin.
func TestGalleryLong(t *testing.T) {
	if !*long {
		t.Skip("-long: 1,000 templates at N=2^15 (about a minute and 1 GB)")
	}
	for i, mode := range []string{plan.Identify, plan.Verify} {
		t.Run(mode, func(t *testing.T) { runGallery(t, uint64(20+i), mode, 1000, 128, 0) })
	}
}

// TestGalleryPlanQueries compiles one gallery plan of capacity 16, makes
// keys for it, then enrols templates and runs verifications and an
// identification with those keys: decisions match the plaintext oracle
// outside the margin, and every slot besides the declared decisions is
// flood noise alone.
func TestGalleryPlanQueries(t *testing.T) {
	t.Run(plan.Polynomial, func(t *testing.T) {
		if !*long {
			// TestGalleryDecisionsEncrypted checks polynomial decisions and
			// their flood by default.
			t.Skip("-long: polynomial decisions with one plan's keys (depth 8, 15 s)")
		}
		galleryPlanQueries(t, compiler.GalleryOptions{Margin: 0.25})
	})
	t.Run(plan.Randomized, func(t *testing.T) { galleryPlanQueries(t, compiler.GalleryOptions{Decision: plan.Randomized}) })
}

func galleryPlanQueries(t *testing.T, opts compiler.GalleryOptions) {
	const dim, capacity = 32, 16
	rng := rand.New(rand.NewPCG(5, 1))
	probe := unitvec.Random(rng, dim)
	spec := &compiler.Gallery{Name: "faces", Dim: dim, Metric: compiler.MetricCosine, Threshold: 0.4}
	r, err := NewGalleryPlan(spec, capacity, opts, 2)
	if err != nil {
		t.Fatal(err)
	}
	d := r.Plan.Decision
	g := galleryAround(rng, probe, 11, dim, d.Threshold, d.Margin)
	g.Name = spec.Name
	score := scores(g, probe)
	for _, claim := range []string{g.Labels[0], g.Labels[1], ""} {
		q, err := r.Query(g, claim, 2)
		if err != nil {
			t.Fatal(err)
		}
		out, err := q.Predict(context.Background(), probe, 1)
		if err != nil {
			t.Fatal(err)
		}
		want := score
		if claim != "" {
			i := slices.Index(g.Labels, claim)
			want = score[i : i+1]
		}
		if len(out) != len(want) {
			t.Fatalf("claim %q: %d outputs, want %d", claim, len(out), len(want))
		}
		checkDecisions(t, q.Plan, out, want)
		vecs, err := q.Plan.EncodeInput(probe, 1)
		if err != nil {
			t.Fatal(err)
		}
		checkFlood(t, 0, q.Plan, zeroedSlots(q.Plan, rawCall(t, q, vecs, 1), 1))
		if d.IsRandomized() && claim == "" {
			again, err := q.Predict(context.Background(), probe, 1)
			if err != nil {
				t.Fatal(err)
			}
			checkFresh(t, q.Plan, out, again)
		}
	}
	t.Logf("%s: logN %d depth %d margin %.4g error %.3g spread %g", d.Method, r.Plan.Params.LogN, r.Plan.Depth, d.Margin, d.Error, d.Spread)
}

// checkFresh checks that two randomized identifications of the same probe
// carry factors of their own, per call and per slot: the ratios of their
// outputs (away from the threshold, where the error does not dominate)
// are not one number, as they would be were the factors fixed per slot
// (ratio 1) or drawn once per call.
func checkFresh(t *testing.T, p *plan.Plan, a, b []float64) {
	t.Helper()
	d := p.Decision
	lo, hi := math.Inf(1), math.Inf(-1)
	for i := range a {
		if math.Min(math.Abs(a[i]), math.Abs(b[i])) < 20*d.Error {
			continue
		}
		r := a[i] / b[i]
		if r <= 0 || r < 1/d.Spread || r > d.Spread {
			t.Fatalf("output %d: %.4g then %.4g for the same probe, not one sign within the spread %g", i, a[i], b[i], d.Spread)
		}
		lo, hi = math.Min(lo, r), math.Max(hi, r)
	}
	if !(hi > lo*1.01) {
		t.Fatalf("the same probe twice gives outputs in one ratio (%.4g..%.4g): the factors are not drawn per call and slot", lo, hi)
	}
}

// TestGallerySplit runs a randomized gallery of more templates than a
// ciphertext has slots (8,200 of 8 dimensions at N=2^14: two result
// ciphertexts): an identification decides every template as float64
// does outside the margin, and every slot of both ciphertexts besides
// the declared decisions is flood noise alone; a verification of a
// template in the second ciphertext's block returns one ciphertext.
func TestGallerySplit(t *testing.T) {
	splitGallery(t, 8200, 8, true)
}

// TestGalleryScaleLong: randomized galleries of 10,000 and 65,536
// templates of 128 dimensions (2 and 8 result ciphertexts at N=2^14)
// identify and verify as float64 decides outside the margin.
func TestGalleryScaleLong(t *testing.T) {
	if !*long {
		t.Skip("-long: 10,000 and 65,536 templates (a minute and 2 GB)")
	}
	for _, n := range []int{10000, 65536} {
		t.Run(strconv.Itoa(n), func(t *testing.T) { splitGallery(t, n, 128, false) })
	}
}

// splitGallery enrols n templates of dimension dim around a probe in a
// randomized gallery plan of capacity n, verifies the third last template
// (just below the threshold, outside the margin) and
// identifies all, checking the decisions, the number of result
// ciphertexts and, with flood, that every undeclared slot is flood noise.
func splitGallery(t *testing.T, n, dim int, flood bool) {
	rng := rand.New(rand.NewPCG(uint64(n), 3))
	probe := unitvec.Random(rng, dim)
	spec := &compiler.Gallery{Name: "faces", Dim: dim, Metric: compiler.MetricCosine, Threshold: 0.4}
	r, err := NewGalleryPlan(spec, n, compiler.GalleryOptions{Decision: plan.Randomized}, 2)
	if err != nil {
		t.Fatal(err)
	}
	p := r.Plan
	if k := (n + p.Slots() - 1) / p.Slots(); p.Output.Ciphertexts != k || p.Output.PerCiphertext != p.Slots() {
		t.Fatalf("plan of %d templates: %d result ciphertexts of %d, want %d of %d", n, p.Output.Ciphertexts, p.Output.PerCiphertext, k, p.Slots())
	}
	d := p.Decision
	g := galleryAround(rng, probe, n, dim, d.Threshold, d.Margin)
	g.Name = spec.Name
	score := scores(g, probe)
	for _, claim := range []string{g.Labels[n-3], ""} {
		q, err := r.Query(g, claim, 2)
		if err != nil {
			t.Fatal(err)
		}
		want, cts := score, p.Output.Ciphertexts
		if claim != "" {
			want, cts = score[n-3:n-2], 1
		}
		if q.Plan.Output.Ciphertexts != cts {
			t.Fatalf("claim %q: %d result ciphertexts, want %d", claim, q.Plan.Output.Ciphertexts, cts)
		}
		out, err := q.Predict(context.Background(), probe, 1)
		if err != nil {
			t.Fatal(err)
		}
		checkDecisions(t, q.Plan, out, want)
		if flood {
			vecs, err := q.Plan.EncodeInput(probe, 1)
			if err != nil {
				t.Fatal(err)
			}
			checkFlood(t, 0, q.Plan, zeroedSlots(q.Plan, rawCall(t, q, vecs, 1), 1))
		}
		t.Logf("%d templates, claim %q: %d result ciphertexts, %d B; evaluate %v", n, claim, q.Plan.Output.Ciphertexts, q.Stats.ResultBytes, q.Stats.Evaluate)
	}
	t.Logf("%d templates: logN %d, margin %.4g, spread %g, privacy %.1f bits over %d identifications", n, p.Params.LogN, d.Margin, d.Spread, p.Precision.PrivacyBits, p.Precision.QueryBudget)
}
