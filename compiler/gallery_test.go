package compiler

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/internal/unitvec"
	"github.com/fheserve/fheserve/plan"
)

// syntheticGallery makes n unit templates of dimension d at random.
func syntheticGallery(rng *rand.Rand, n, d int, tau float64) *Gallery {
	g := &Gallery{Name: "faces", Dim: d, Metric: MetricCosine, Threshold: tau}
	for i := 0; i < n; i++ {
		g.Labels = append(g.Labels, "person-"+strconv.Itoa(i))
		g.Templates = append(g.Templates, unitvec.Random(rng, d)...)
	}
	return g
}

func TestGalleryRefusesBadInput(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	good := func() *Gallery { return syntheticGallery(rng, 4, 8, 0.5) }
	tests := []struct {
		name  string
		edit  func(g *Gallery, o *GalleryOptions)
		wants string
	}{
		{"wrong dimension", func(g *Gallery, o *GalleryOptions) { g.Templates = g.Templates[:len(g.Templates)-3] }, "dimension 8"},
		{"NaN", func(g *Gallery, o *GalleryOptions) { g.Templates[9] = math.NaN() }, "non-finite"},
		{"Inf", func(g *Gallery, o *GalleryOptions) { g.Templates[0] = math.Inf(1) }, "non-finite"},
		{"not unit norm", func(g *Gallery, o *GalleryOptions) {
			for i := 0; i < g.Dim; i++ {
				g.Templates[i] *= 1.1
			}
		}, "normalize"},
		{"duplicate label", func(g *Gallery, o *GalleryOptions) { g.Labels[2] = g.Labels[0] }, "unique"},
		{"empty label", func(g *Gallery, o *GalleryOptions) { g.Labels[1] = " " }, "empty"},
		{"labels and templates", func(g *Gallery, o *GalleryOptions) { g.Labels = g.Labels[:3] }, "one label per template"},
		{"no templates", func(g *Gallery, o *GalleryOptions) { g.Labels, g.Templates = nil, nil }, "enrol at least one"},
		{"over capacity", func(g *Gallery, o *GalleryOptions) { o.LogN = 1 }, "capacity of 1"},
		{"threshold", func(g *Gallery, o *GalleryOptions) { g.Threshold = 1.5 }, "threshold"},
		{"metric", func(g *Gallery, o *GalleryOptions) { g.Metric = "euclidean" }, "not supported"},
		{"unknown claim", func(g *Gallery, o *GalleryOptions) { o.Mode, o.Claim = plan.Verify, "nobody" }, "claim an enrolled label"},
		{"claim with identify", func(g *Gallery, o *GalleryOptions) { o.Claim = g.Labels[0] }, "verification only"},
		{"mode", func(g *Gallery, o *GalleryOptions) { o.Mode = "top1" }, "unknown gallery mode"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := good()
			o := GalleryOptions{Mode: plan.Identify}
			tc.edit(g, &o)
			_, err := CompileGallery(g, o)
			var fe *fheserve.Error
			if !errors.As(err, &fe) || fe.Code != fheserve.EINVALID || !strings.Contains(err.Error(), tc.wants) {
				t.Fatalf("got %v, want EINVALID saying %q", err, tc.wants)
			}
		})
	}
}

// TestSignMargin checks the stated margin against the composite sign on
// a finer grid than the one it was found on: outside the margin the
// decision is within signError/2 of the step, inside it lies in [0, 1].
func TestSignMargin(t *testing.T) {
	for k := 0; k <= maxSignStages; k++ {
		s := signStages(k)
		m := signMargin(s)
		for x := -1.0; x <= 1; x += 1e-6 {
			y := 0.5 + 0.5*evalStages(s, x)
			switch {
			case math.Abs(x) >= m && math.Abs(y-step(x)) > signError/2:
				t.Fatalf("%d stages: decision %.4f at %.6f outside the margin %.4f", k, y, x, m)
			case y < -1e-9 || y > 1+1e-9:
				t.Fatalf("%d stages: decision %.4f at %.6f outside [0, 1]", k, y, x)
			}
		}
		t.Logf("%d g3 stages + f3: depth %d, margin %.4f (in units of the range)", k, 3*(k+1), m)
	}
}

func step(x float64) float64 {
	if x >= 0 {
		return 1
	}
	return 0
}

// TestGalleryPlan compiles decision plans and checks their public
// promise in plaintext: the program's outputs, for probes placed just
// outside the margin on both sides of the threshold, are the decisions.
func TestGalleryPlan(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	g := syntheticGallery(rng, 64, 16, 0.4)
	for _, mode := range []string{plan.Identify, plan.Verify, plan.Scores} {
		t.Run(mode, func(t *testing.T) {
			o := GalleryOptions{Mode: mode}
			if mode == plan.Verify {
				o.Claim = g.Labels[5]
			}
			res, err := CompileGallery(g, o)
			if err != nil {
				t.Fatal(err)
			}
			p := res.Plan
			if err := p.Validate(); err != nil {
				t.Fatal(err)
			}
			d := p.Decision
			t.Logf("%s: logN %d depth %d margin %.4g error %.3g stages %v keys %d", mode, p.Params.LogN, p.Depth, d.Margin, d.Error, d.Stages, p.Sizes.GaloisKeys)
			if mode == plan.Scores {
				if len(p.Warnings) == 0 || !strings.Contains(strings.Join(p.Warnings, " "), "reveals every raw similarity score") {
					t.Fatalf("a scores plan must warn: %v", p.Warnings)
				}
				return
			}
			if d.Margin <= 0 || d.Margin > DefaultGalleryMargin || d.Error >= 0.5 {
				t.Fatalf("margin %g, error %g", d.Margin, d.Error)
			}
			for _, side := range []float64{-1, 1} {
				row := 5
				x := probeAt(rng, g, row, g.Threshold+side*d.Margin)
				out := res.Program.EvalPlain(x)
				i := 0
				if mode == plan.Identify {
					i = row
				}
				if want := step(side); math.Abs(out[i]-want) > d.Error {
					t.Fatalf("score at threshold %+g margin: decision %.4f, want %g within %.3g", side, out[i], want, d.Error)
				}
			}
		})
	}
}

// probeAt returns a unit probe whose cosine with template row is s.
func probeAt(rng *rand.Rand, g *Gallery, row int, s float64) []float64 {
	return unitvec.AtCosine(rng, g.Templates[row*g.Dim:(row+1)*g.Dim], s)
}

// TestVerifyPlanIndependentOfClaim: a user's keys serve every claim, so
// the verification plan is the same for any claim, and the program made
// for a claim decides on that claim's template.
func TestVerifyPlanIndependentOfClaim(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	g := syntheticGallery(rng, 8, 16, 0.3)
	// A zero weight keeps its diagonal (the row renormalized).
	row3 := g.Templates[3*16 : 4*16]
	row3[2] = 0
	var n3 float64
	for _, v := range row3 {
		n3 += v * v
	}
	for j := range row3 {
		row3[j] /= math.Sqrt(n3)
	}
	var fp string
	for _, claim := range []string{g.Labels[0], g.Labels[3], g.Labels[7]} {
		res, err := CompileGallery(g, GalleryOptions{Mode: plan.Verify, Claim: claim, Margin: 0.25})
		if err != nil {
			t.Fatal(err)
		}
		if fp != "" && res.Plan.Fingerprint != fp {
			t.Fatalf("claim %s: plan %s differs from the first claim's %s", claim, res.Plan.Fingerprint, fp)
		}
		fp = res.Plan.Fingerprint
		row := 0
		for g.Labels[row] != claim {
			row++
		}
		d := res.Plan.Decision
		for _, side := range []float64{-1, 1} {
			out := res.Program.EvalPlain(probeAt(rng, g, row, g.Threshold+side*d.Margin))
			if math.Abs(out[0]-step(side)) > d.Error {
				t.Fatalf("claim %s, score at threshold %+g margin: decision %.4f", claim, side, out[0])
			}
		}
	}
	res, _ := CompileGallery(g, GalleryOptions{Mode: plan.Identify})
	if _, err := ClaimProgram(res.Program, res.Plan, g, g.Labels[0]); err == nil {
		t.Fatal("ClaimProgram took an identification plan")
	}
}

// TestGalleryEnrollRemove: an enrolment is checked as a whole and a
// failed one leaves the gallery as it was.
func TestGalleryEnrollRemove(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	g := syntheticGallery(rng, 3, 4, 0.5)
	before := slices.Clone(g.Templates)
	o := &GalleryOptions{Mode: plan.Identify}
	bad := append(unitvec.Random(rng, 4), 2, 0, 0, 0) // the second is not unit norm
	if _, err := g.Enroll([]string{"ann", "ben"}, bad, o); err == nil || !strings.Contains(err.Error(), "normalize") {
		t.Fatalf("enrolled a bad template: %v", err)
	}
	if _, err := g.Enroll([]string{"ann"}, unitvec.Random(rng, 5), o); err == nil {
		t.Fatal("enrolled an embedding of the wrong dimension")
	}
	if _, err := g.Enroll([]string{g.Labels[1]}, unitvec.Random(rng, 4), o); err == nil {
		t.Fatal("enrolled a duplicate label")
	}
	if len(g.Labels) != 3 || !slices.Equal(g.Templates, before) {
		t.Fatal("a failed enrolment changed the gallery")
	}
	next, err := g.Enroll([]string{"ann", "ben"}, append(unitvec.Random(rng, 4), unitvec.Random(rng, 4)...), o)
	if err != nil || len(next.Labels) != 5 || len(g.Labels) != 3 {
		t.Fatalf("enrol: %v, %d labels (the original %d)", err, len(next.Labels), len(g.Labels))
	}
	if _, err := next.Remove("ann", "nobody"); err == nil {
		t.Fatal("removed an unknown label")
	}
	after, err := next.Remove("ann", g.Labels[0])
	if err != nil || !slices.Equal(after.Labels, []string{g.Labels[1], g.Labels[2], "ben"}) || !slices.Equal(after.Templates[:8], g.Templates[4:]) {
		t.Fatalf("remove: %v, %v", err, after)
	}
}

// TestGalleryPlanValidate: a client checks that a decision plan names
// its outputs and states a usable margin.
func TestGalleryPlanValidate(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	g := syntheticGallery(rng, 4, 8, 0.5)
	res, err := CompileGallery(g, GalleryOptions{Mode: plan.Identify, Margin: 0.25})
	if err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string]func(d *plan.Decision){
		"a label missing": func(d *plan.Decision) { d.Labels = d.Labels[1:] },
		"no margin":       func(d *plan.Decision) { d.Margin = 0 },
		"error too large": func(d *plan.Decision) { d.Error = 0.6 },
		"unknown mode":    func(d *plan.Decision) { d.Mode = "top1" },
	} {
		p := *res.Plan
		d := *p.Decision
		d.Labels = slices.Clone(d.Labels)
		edit(&d)
		p.Decision = &d
		p.Fingerprint = p.ComputeFingerprint()
		if err := p.Validate(); err == nil {
			t.Errorf("%s: plan accepted", name)
		}
	}
}

// TestRandomizedGalleryPlan compiles randomized gallery plans of one and
// of three result ciphertexts: depth 2, the mask step randomizes with the
// plan's spread, the margin is the spread times the range times the
// stated error (within the margin asked), and a split plan's views
// return the ciphertexts their decisions need and validate.
func TestRandomizedGalleryPlan(t *testing.T) {
	spec := &Gallery{Name: "faces", Dim: 8, Metric: MetricCosine, Threshold: 0.5}
	for _, capacity := range []int{100, 20000} {
		t.Run(strconv.Itoa(capacity), func(t *testing.T) {
			res, err := CompileGalleryPlan(spec, capacity, GalleryOptions{Decision: plan.Randomized})
			if err != nil {
				t.Fatal(err)
			}
			p, prog := res.Plan, res.Program
			d := p.Decision
			mask := prog.Steps[prog.Output-1]
			switch {
			case p.Depth != 2 || !d.IsRandomized() || mask.Kind != plan.StepMask || mask.Spread != d.Spread || d.Spread < minSpread:
				t.Fatalf("depth %d, method %q, last step %s of spread %g, decision spread %g", p.Depth, d.Method, mask.Kind, mask.Spread, d.Spread)
			case d.Margin > DefaultRandomizedMargin*1.01 && d.Spread > minSpread:
				t.Fatalf("margin %g wider than the default %g", d.Margin, DefaultRandomizedMargin)
			case math.Abs(d.Margin-d.Spread*d.Range*d.Error) > 0.01*d.Margin:
				t.Fatalf("margin %g, want spread %g x range %g x error %g", d.Margin, d.Spread, d.Range, d.Error)
			}
			if err := p.Validate(); err != nil {
				t.Fatal(err)
			}
			k := (capacity + p.Slots() - 1) / p.Slots()
			if p.Output.Ciphertexts != k || len(d.Labels) != capacity || (k > 1) != (prog.Steps[0].Groups == k) {
				t.Fatalf("%d templates: %d result ciphertexts (want %d), %d labels, %d groups", capacity, p.Output.Ciphertexts, k, len(d.Labels), prog.Steps[0].Groups)
			}
			for _, n := range []int{1, p.Slots(), p.Slots() + 1, capacity} {
				if n > capacity {
					continue
				}
				labels := make([]string, n)
				for i := range labels {
					labels[i] = "t" + strconv.Itoa(i)
				}
				v, err := p.DecisionView(plan.Identify, labels)
				if err != nil {
					t.Fatal(err)
				}
				if want := (n + p.Slots() - 1) / p.Slots(); v.Output.Ciphertexts != want {
					t.Fatalf("view of %d: %d ciphertexts, want %d", n, v.Output.Ciphertexts, want)
				}
				if err := v.Validate(); err != nil {
					t.Fatalf("view of %d: %v", n, err)
				}
			}
		})
	}
}
