package compiler

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/internal/unitvec"
	"github.com/fheserve/fheserve/nn"
	"github.com/fheserve/fheserve/plan"
)

// Gallery metrics.
const MetricCosine = "cosine"

// UnitNormTolerance is how far from 1 a cosine template's norm may be.
const UnitNormTolerance = 0.01

// DefaultGalleryMargin is the margin a gallery plan aims at when the
// owner sets none: the fewest sign stages whose margin is at most this
// many score units.
const DefaultGalleryMargin = 0.08

// signError is the largest error of the composite sign polynomial
// outside the margin, in sign units ([-1, 1]); the decision output
// 0.5 + 0.5 sign carries half of it.
const signError = 0.05

// decisionPrecisionBits is the default precision of decision plans,
// relative to their output bound.
const decisionPrecisionBits = 4

// DefaultRandomizedMargin is the widest margin of a randomized decision
// plan when the owner sets none, in score units: at the default 12 bits
// of precision it leaves the factors a spread of 16 to 32 (a factor the
// user cannot resolve in one query), a third of the polynomial default
// (0.0676 at the demo faces' threshold). A plan whose precision must drop
// for privacy widens it to keep the spread at minSpread.
const DefaultRandomizedMargin = 0.02

// randomizedPrecisionBits is the default precision of randomized decision
// plans, relative to their output bound: the spread is the margin over
// the encryption error, so every bit here doubles it.
const randomizedPrecisionBits = 12

// minRandomizedPrecisionBits is the least precision a randomized plan
// trades down to for privacy (randomizedPrecisionBits).
const minRandomizedPrecisionBits = 9

// minSpread is the smallest spread a randomized plan accepts: below it a
// result is nearly the scaled score itself.
const minSpread = 16

// maxSignStages bounds the g3 stages before the final f3 (depth 3 each).
const maxSignStages = 4

// The odd degree-7 polynomials composed into a sign: g3 (Cheon, Kim and
// Kim, "Efficient homomorphic comparison methods with optimal
// complexity", Asiacrypt 2020) widens the region near 1 fast, f3 (Cheon
// et al. 2019, 2^-4 (35x - 35x^3 + 21x^5 - 5x^7)) flattens it onto 1.
// Both map [-1, 1] into [-1, 1] and are monotone near 0, with small
// monomial coefficients, so the monomial evaluation stays accurate.
var (
	signG3 = []float64{0, 4589.0 / 1024, 0, -16577.0 / 1024, 0, 25614.0 / 1024, 0, -12860.0 / 1024}
	signF3 = []float64{0, 35.0 / 16, 0, -35.0 / 16, 0, 21.0 / 16, 0, -5.0 / 16}
)

// Gallery is an owner's enrolled templates: one row of Dim values per
// label. Decisions compare the similarity of a probe with each template
// to Threshold.
type Gallery struct {
	Name      string
	Dim       int
	Metric    string // MetricCosine: templates and probes of unit norm
	Threshold float64
	Labels    []string
	Templates []float64 // len(Labels) rows of Dim, row-major
}

// GalleryOptions steer CompileGallery.
type GalleryOptions struct {
	// Options are the usual compile options (ring, privacy, precision);
	// packing is latency, and Calibration is made from the gallery.
	Options
	Mode  string // plan.Verify, plan.Identify or plan.Scores
	Claim string // plan.Verify: the claimed label (public: it is in the request)
	// Margin is the largest decision margin the owner accepts, in score
	// units (DefaultGalleryMargin when 0): the compiler composes the
	// fewest sign stages that reach it; each costs 3 levels.
	Margin float64
	// Decision is how decisions are made: plan.Polynomial (also when
	// empty) or plan.Randomized, whose Margin is the widest margin the
	// owner accepts (DefaultRandomizedMargin when 0): the wider, the
	// larger the spread of the random factors and the less a result says
	// of a score (docs/security.md).
	Decision string
	// defaultMargin: Margin was 0, the compiler's default (a randomized
	// plan widens it to keep the spread at least minSpread).
	defaultMargin bool
	// anyTemplates compiles for any templates of the gallery's shape (its
	// rows are stand-ins): see CompileGalleryPlan.
	anyTemplates bool
}

// Capacity is the number of templates a gallery plan takes with the
// compile options: one decision per slot of the largest ring allowed,
// or for randomized decisions MaxSplitTemplates over several ciphertexts.
func (o *GalleryOptions) Capacity() int {
	logN := maxLogN
	if o.LogN != 0 {
		logN = o.LogN
	}
	if o.Decision == plan.Randomized {
		return max(MaxSplitTemplates, 1<<(logN-1))
	}
	return 1 << (logN - 1)
}

// MaxSplitTemplates bounds a randomized gallery split over ciphertexts.
const MaxSplitTemplates = 65536

// splitLogN is the ring of a randomized gallery plan of more templates
// than its slots: the ring its depth needs (2^13 is too small for the
// scale its precision and privacy take), the score map's blocks one
// ciphertext each. Two ciphertexts at 2^14 cost fewer rotations, each a
// quarter of one at 2^15, than one ciphertext at 2^15 (BENCHMARKS.md).
const splitLogN = 14

// Validate checks a gallery against the options: refused galleries say
// what to fix.
func (g *Gallery) Validate(opts *GalleryOptions) error {
	invalid := func(format string, args ...any) error {
		return fheserve.Errorf(fheserve.EINVALID, "gallery %q: "+format, append([]any{g.Name}, args...)...)
	}
	switch {
	case g.Metric != MetricCosine:
		return invalid("metric %q is not supported: use %q (unit-norm embeddings)", g.Metric, MetricCosine)
	case g.Dim < 1:
		return invalid("embedding dimension %d: give the dimension of the embeddings (for example 128)", g.Dim)
	case math.IsNaN(g.Threshold) || g.Threshold <= -1 || g.Threshold >= 1:
		return invalid("threshold %g is outside (-1, 1): a cosine similarity threshold lies strictly between -1 and 1", g.Threshold)
	case len(g.Labels) == 0:
		return invalid("no templates: enrol at least one")
	case len(g.Templates) != len(g.Labels)*g.Dim:
		if len(g.Templates)%g.Dim != 0 {
			return invalid("%d template values are not rows of dimension %d: every embedding must have %d values", len(g.Templates), g.Dim, g.Dim)
		}
		return invalid("%d templates for %d labels: give one label per template", len(g.Templates)/g.Dim, len(g.Labels))
	case len(g.Labels) > opts.Capacity():
		return invalid("%d templates exceed the plan's capacity of %d: split the gallery", len(g.Labels), opts.Capacity())
	}
	seen := make(map[string]int, len(g.Labels))
	for i, l := range g.Labels {
		if strings.TrimSpace(l) == "" {
			return invalid("label %d is empty: give every template a label", i)
		}
		if j, ok := seen[l]; ok {
			return invalid("label %q is given to templates %d and %d: labels must be unique", clipLabel(l), j, i)
		}
		seen[l] = i
	}
	for i := range g.Labels {
		row := g.Templates[i*g.Dim : (i+1)*g.Dim]
		var s float64
		for j, v := range row {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return invalid("template %q has a non-finite value at %d: re-extract its embedding", clipLabel(g.Labels[i]), j)
			}
			s += v * v
		}
		if n := math.Sqrt(s); math.Abs(n-1) > UnitNormTolerance {
			return invalid("template %q has norm %.4g, not 1 (within %g): normalize embeddings to unit length for a cosine gallery", clipLabel(g.Labels[i]), n, UnitNormTolerance)
		}
	}
	return nil
}

func clipLabel(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

func (o *GalleryOptions) validate(g *Gallery) error {
	switch o.Mode {
	case plan.Verify:
		if !slices.Contains(g.Labels, o.Claim) {
			return fheserve.Errorf(fheserve.EINVALID, "gallery %q has no template labelled %q: claim an enrolled label", g.Name, clipLabel(o.Claim))
		}
	case plan.Identify, plan.Scores:
		if o.Claim != "" {
			return fheserve.Errorf(fheserve.EINVALID, "a claim (%q) goes with verification only, not %s", clipLabel(o.Claim), o.Mode)
		}
	default:
		return fheserve.Errorf(fheserve.EINVALID, "unknown gallery mode %q (want %q, %q or %q)", o.Mode, plan.Verify, plan.Identify, plan.Scores)
	}
	if o.Packing != "" && o.Packing != plan.Latency {
		return fheserve.Errorf(fheserve.EINVALID, "a gallery plan packs one probe per call: use latency packing")
	}
	if o.Decision != "" && o.Decision != plan.Polynomial && o.Decision != plan.Randomized {
		return fheserve.Errorf(fheserve.EINVALID, "unknown decision method %q (want %q or %q)", o.Decision, plan.Randomized, plan.Polynomial)
	}
	if o.Margin < 0 || math.IsNaN(o.Margin) || o.Margin >= 1 {
		return fheserve.Errorf(fheserve.EINVALID, "decision margin %g is outside (0, 1)", o.Margin)
	}
	return nil
}

// signStages are the sign approximations a gallery plan composes: k g3
// stages and a final f3, innermost first.
func signStages(k int) [][]float64 {
	s := make([][]float64, 0, k+1)
	for range k {
		s = append(s, signG3)
	}
	return append(s, signF3)
}

func stageNames(k int) []string {
	n := make([]string, 0, k+1)
	for range k {
		n = append(n, "g3")
	}
	return append(n, "f3")
}

// evalStages composes the stages at x.
func evalStages(stages [][]float64, x float64) float64 {
	for _, c := range stages {
		x = plan.EvalPoly(plan.Monomial, c, x)
	}
	return x
}

// signMargin is the smallest x in (0, 1] with |F(t) - 1| <= signError
// for every t in [x, 1] (F odd, so the same holds below -x), found on a
// grid of step 1e-4 plus the grid's spacing times F's slope bound: the
// margin is stated, so it is rounded up, never down.
func signMargin(stages [][]float64) float64 {
	const step = 1e-4
	x := 1.0
	for t := 1.0; t > 0; t -= step {
		if math.Abs(evalStages(stages, t)-1) > signError {
			break
		}
		x = t
	}
	return math.Min(1, x+step)
}

// CompileGallery compiles a gallery into a decision plan: the scores are
// one linear map (the templates times the probe, scaled with the
// threshold subtracted), and a composite of odd polynomials approximates
// their sign under encryption, so that a user decrypts a decision per
// template (plan.Identify) or for the claimed one (plan.Verify) and not
// the scores. plan.Scores returns every raw score, as the match workload
// does, with a warning in the plan.
//
// It builds an nn graph (Dense, then Poly nodes) and compiles it with
// Compile, so that the decision plans get the same parameter search,
// output masking and flooding as every model; the gallery only adds the
// graph and the public Decision.
func CompileGallery(g *Gallery, opts GalleryOptions) (*Result, error) {
	if err := opts.validate(g); err != nil {
		return nil, err
	}
	if err := g.Validate(&opts); err != nil {
		return nil, err
	}
	randomized := opts.Decision == plan.Randomized && opts.Mode != plan.Scores
	opts.defaultMargin = opts.Margin == 0
	switch {
	case opts.Margin != 0:
	case randomized:
		opts.Margin = DefaultRandomizedMargin
	default:
		opts.Margin = DefaultGalleryMargin
	}
	n := len(g.Labels)
	if opts.Mode == plan.Verify {
		n = 1
	}
	// Scores lie in [-1, 1]; (score - threshold) / r lies in [-1, 1].
	r := 1 + math.Abs(g.Threshold)
	dec := &plan.Decision{Mode: opts.Mode, Metric: g.Metric, Threshold: g.Threshold}
	if opts.Mode != plan.Scores {
		dec.Method = plan.Polynomial
		if randomized {
			dec.Method = plan.Randomized
		}
	}
	if opts.Mode != plan.Verify {
		dec.Labels = append([]string(nil), g.Labels...)
	}
	dense, calibration := galleryScoreMap(g, opts.Mode == plan.Verify || opts.anyTemplates, n)
	graph := galleryGraph(g, &opts, dense, n, r, dec)

	co := opts.Options
	co.Packing = plan.Latency
	co.Calibration = calibration
	co.NoTiles = co.NoTiles || opts.anyTemplates
	co.maskStep = randomized
	if randomized && co.Keys == "" {
		// The score map is the whole evaluation: its hoisted baby-step
		// giant-step keys (22 at 128 dimensions, 27 MB at N=2^14) make a
		// query 2 to 3 times faster than Horner's 2 keys (BENCHMARKS.md).
		co.Keys = KeysFast
	}
	switch {
	case co.PrecisionBits != 0 || co.Precision != 0 || opts.Mode == plan.Scores:
	case randomized:
		co.PrecisionBits = randomizedPrecisionBits
	default:
		// Decisions are read at 1/2: an encryption error of OutputBound/16
		// (under 0.1) leaves them right, and every bit less is two bits
		// of privacy or a smaller ring.
		co.PrecisionBits = decisionPrecisionBits
	}
	res, err := Compile(graph, co)
	if randomized && opts.PrecisionBits == 0 && opts.Precision == 0 {
		// Every output's evaluation error counts against the privacy
		// (compiler.Options.PrivacyBits): a plan of many outputs trades
		// precision bits, two privacy bits each, down to
		// minRandomizedPrecisionBits, and the spread shrinks with them.
		for err != nil && co.PrecisionBits > minRandomizedPrecisionBits {
			co.PrecisionBits--
			res, err = Compile(graph, co)
		}
	}
	if err != nil {
		return nil, err
	}
	if err := finishGalleryPlan(res, g, &opts, dec); err != nil {
		return nil, err
	}
	return res, nil
}

// galleryScoreMap returns the unscaled score map of n outputs for a
// gallery in the given mode (the templates as rows, or for verification a
// dense unit row standing in for any claim) and the calibration inputs
// the plan is compiled for.
func galleryScoreMap(g *Gallery, anyRows bool, n int) (*nn.Dense, []float64) {
	dense := &nn.Dense{In: g.Dim, Out: n, W: make([]float64, n*g.Dim), B: make([]float64, n)}
	calibration := galleryCalibration(g)
	if anyRows {
		// The plan must not depend on the claim or the enrolled templates
		// (a user's keys serve every claim and survive enrolments): it is
		// compiled for dense unit rows of the same shape, calibrated at
		// scores of 1 and -1, the extremes of any unit row, and the real
		// rows replace them in the private program.
		for j := range dense.W {
			dense.W[j] = 1 / math.Sqrt(float64(g.Dim))
		}
		row := dense.W[:g.Dim]
		calibration = append(slices.Clone(row), row...)
		for j := g.Dim; j < len(calibration); j++ {
			calibration[j] = -calibration[j]
		}
	} else {
		copy(dense.W, g.Templates)
	}
	return dense, calibration
}

// galleryGraph builds the nn graph of a gallery plan: the score map alone
// for plan.Scores, otherwise the score map scaled by 1/r with the
// threshold subtracted, followed by the fewest sign stages that meet
// opts.Margin (the last folded into a 0.5 + 0.5 sign step). It scales
// dense in place and records the stages, range and margin in dec.
func galleryGraph(g *Gallery, opts *GalleryOptions, dense *nn.Dense, n int, r float64, dec *plan.Decision) *nn.Graph {
	graph := &nn.Graph{Name: g.Name, Input: nn.Shape{g.Dim}}
	add := func(name, opType string, op nn.Op) {
		graph.Nodes = append(graph.Nodes, &nn.Node{Name: name, OpType: opType, Op: op, Inputs: []int{len(graph.Nodes)}, Shape: nn.Shape{n}})
	}
	if opts.Mode == plan.Scores {
		add("scores", "MatMul", dense)
		graph.Output = len(graph.Nodes)
		return graph
	}
	if dec.IsRandomized() {
		// The scaled score minus the threshold alone; the mask step
		// multiplies it by the random factors (finishGalleryPlan).
		dec.Range = r
		for i := range dense.W {
			dense.W[i] /= r
		}
		for i := range dense.B {
			dense.B[i] = -g.Threshold / r
		}
		add("scores", "MatMul", dense)
		graph.Output = len(graph.Nodes)
		return graph
	}
	k := 0
	for ; k < maxSignStages && signMargin(signStages(k))*r > opts.Margin; k++ {
	}
	stages := signStages(k)
	dec.Stages, dec.Range = stageNames(k), r
	dec.Margin = roundMargin(signMargin(stages) * r)
	for i := range dense.W {
		dense.W[i] /= r
	}
	for i := range dense.B {
		dense.B[i] = -g.Threshold / r
	}
	add("scores", "MatMul", dense)
	for i, c := range stages {
		if i == len(stages)-1 {
			// The step 0.5 + 0.5 sign, folded into the last stage.
			c = slices.Clone(c)
			for j := range c {
				c[j] *= 0.5
			}
			c[0] += 0.5
		}
		add(fmt.Sprintf("sign%d", i), "Poly", &nn.Poly{Coeffs: c})
	}
	graph.Output = len(graph.Nodes)
	return graph
}

// finishGalleryPlan completes a compiled gallery plan: it adds the
// raw-score warning (plan.Scores) or the decision's error bound, attaches
// dec, recomputes the fingerprint and, for verification, puts the
// claimed template's row into the program.
func finishGalleryPlan(res *Result, g *Gallery, opts *GalleryOptions, dec *plan.Decision) error {
	p := res.Plan
	switch {
	case opts.Mode == plan.Scores:
		p.Warnings = append(p.Warnings, fmt.Sprintf("this plan reveals every raw similarity score: %d unit-vector queries recover the whole gallery; prefer --mode identify, whose results hold only match decisions", g.Dim))
	case dec.IsRandomized():
		margin := opts.Margin
		if opts.defaultMargin {
			margin = math.Max(margin, minSpread*dec.Range*p.Precision.OutputError)
		}
		if err := randomizeDecisions(res, dec, margin); err != nil {
			return err
		}
	default:
		dec.Error = signError/2 + p.Precision.OutputError
	}
	p.Decision = dec
	p.Fingerprint = p.ComputeFingerprint()
	if opts.Mode == plan.Verify {
		prog, err := ClaimProgram(res.Program, p, g, opts.Claim)
		if err != nil {
			return err
		}
		res.Program = prog
	}
	return nil
}

// randomizeDecisions sets the spread of a randomized decision plan's
// factors from the margin the owner accepts: an output r x, x the scaled
// score minus the threshold and r >= 1/Spread, decrypts to the sign of x
// when |x| / Spread exceeds the stated encryption error, so Spread is the
// margin (in x's units) over that error, rounded down to a power of two.
// The mask step, which randomizes, gets the same spread.
func randomizeDecisions(res *Result, dec *plan.Decision, margin float64) error {
	p, prog := res.Plan, res.Program
	e := p.Precision.OutputError
	spread := math.Exp2(math.Floor(math.Log2(margin / dec.Range / e)))
	spread = math.Min(spread, plan.MaxSpread)
	if !(spread >= minSpread) {
		return fheserve.Errorf(fheserve.EINVALID, "a randomized decision margin of %g leaves the random factors a spread of %g (at an encryption error of %.3g): accept a margin of at least %.3g, or ask for more precision", margin, spread, e, minSpread*dec.Range*e)
	}
	mask := &prog.Steps[prog.Output-1]
	if mask.Kind != plan.StepMask {
		return fheserve.Errorf(fheserve.EINTERNAL, "randomized decision plan %q ends in a %s step, not a mask", p.Model, mask.Kind)
	}
	mask.Spread = spread
	dec.Spread = spread
	dec.Margin = roundMargin(spread * dec.Range * e)
	dec.Error = e
	return nil
}

// ClaimProgram returns the program of a verification plan for a claim:
// prog (compiled for any claim of gallery g) with the claimed template's
// row in its score map. The plan is the same for every claim, so the
// service compiles it once per gallery and a user's keys serve every
// claim; the program is made per request, from the enrolled templates,
// and never leaves the server.
func ClaimProgram(prog *plan.Program, p *plan.Plan, g *Gallery, claim string) (*plan.Program, error) {
	d := p.Decision
	if d == nil || d.Mode != plan.Verify {
		return nil, fheserve.Errorf(fheserve.EINVALID, "plan %q is not a verification plan", p.Model)
	}
	i := slices.Index(g.Labels, claim)
	if i < 0 {
		return nil, fheserve.Errorf(fheserve.EINVALID, "gallery %q has no template labelled %q: claim an enrolled label", g.Name, clipLabel(claim))
	}
	if s := &prog.Steps[0]; s.Kind != plan.StepLinear || s.In[0] != 0 || s.M.Rows != 1 || s.M.Cols != g.Dim {
		return nil, fheserve.Errorf(fheserve.EINVALID, "program of plan %q does not start with a score row of dimension %d", p.Model, g.Dim)
	}
	// Every column is stored, zeros too, so that the row has the
	// diagonals (and needs the rotation keys) the plan was compiled for.
	m := &plan.Sparse{Rows: 1, Cols: g.Dim, RowPtr: []int{0, g.Dim}, ColIdx: make([]int, g.Dim), Val: make([]float64, g.Dim)}
	for j, v := range g.Templates[i*g.Dim : (i+1)*g.Dim] {
		m.ColIdx[j], m.Val[j] = j, v/d.Range
	}
	out := &plan.Program{Packing: prog.Packing, Steps: slices.Clone(prog.Steps), Output: prog.Output}
	out.Steps[0].M = m
	return out, nil
}

// CompileGalleryPlan compiles the plan of every query on a gallery of
// up to capacity templates with g's name, dimension, metric and
// threshold (g's templates and labels are not used): an identification
// plan of capacity outputs, compiled for stand-in rows, one probe per
// call. Its queries are views of it (plan.DecisionView) evaluated with
// GalleryProgram, so that the plan, and a user's keys for it, do not
// change when templates are enrolled or removed or a claim is made.
func CompileGalleryPlan(g *Gallery, capacity int, opts GalleryOptions) (*Result, error) {
	if capacity < 1 || capacity > opts.Capacity() {
		return nil, fheserve.Errorf(fheserve.EINVALID, "gallery %q: capacity %d is outside 1..%d: give the most templates the gallery will hold", g.Name, capacity, opts.Capacity())
	}
	if g.Dim < 1 || g.Dim > maxGalleryDim {
		return nil, fheserve.Errorf(fheserve.EINVALID, "gallery %q: embedding dimension %d is outside 1..%d: give the dimension of the embeddings (for example 128)", g.Name, g.Dim, maxGalleryDim)
	}
	total, k := capacity, 1
	if opts.Decision == plan.Randomized {
		logN := splitLogN
		if opts.LogN != 0 {
			logN = opts.LogN
		}
		if slots := 1 << (logN - 1); capacity > slots {
			k = (capacity + slots - 1) / slots
			capacity, opts.LogN = slots, logN
		}
	}
	stand := &Gallery{Name: g.Name, Dim: g.Dim, Metric: g.Metric, Threshold: g.Threshold,
		Labels: make([]string, capacity), Templates: make([]float64, capacity*g.Dim)}
	for i := range stand.Labels {
		stand.Labels[i] = fmt.Sprintf("#%d", i)
	}
	for j := range stand.Templates {
		stand.Templates[j] = 1 / math.Sqrt(float64(g.Dim))
	}
	opts.Mode, opts.Claim, opts.anyTemplates = plan.Identify, "", true
	res, err := CompileGallery(stand, opts)
	if err != nil || k == 1 {
		return res, err
	}
	return splitGalleryPlan(res, total, k)
}

// splitGalleryPlan widens the plan of one ciphertext of decisions to
// total decisions over k ciphertexts (plan.Layout.PerCiphertext): the
// program's score map becomes k groups of the same diagonals sharing
// the probe's baby-step rotations (plan.Step.Groups), and the mask step
// masks, and randomizes, each ciphertext. Keys, levels and precision are
// the one ciphertext's; the costs that grow with k are scaled.
func splitGalleryPlan(res *Result, total, k int) (*Result, error) {
	p, prog := res.Plan, res.Program
	per := p.Output.Length
	lin := &prog.Steps[0]
	if lin.Kind != plan.StepLinear || lin.MaskOutput || lin.Tile > 0 || prog.Steps[prog.Output-1].Kind != plan.StepMask {
		return nil, fheserve.Errorf(fheserve.EINTERNAL, "gallery plan %q does not split: want a score map and a mask", p.Model)
	}
	lin.Groups = k
	p.Output.Length, p.Output.Ciphertexts, p.Output.PerCiphertext = total, k, per
	if p.Output.Positions != nil && len(p.Output.Positions) != per {
		return nil, fheserve.Errorf(fheserve.EINTERNAL, "gallery plan %q has %d output positions for %d outputs", p.Model, len(p.Output.Positions), per)
	}
	p.OutputShape = []int{total}
	labels := make([]string, total)
	for i := range labels {
		labels[i] = fmt.Sprintf("#%d", i)
	}
	p.Decision.Labels = labels
	p.Sizes.Result *= k
	o := &p.Ops
	o.Rotations += (k - 1) * (o.GiantSteps + o.FoldRotations)
	o.GiantSteps *= k
	o.FoldRotations *= k
	o.PtMuls *= k
	o.Diagonals *= k
	o.Rescales += (k - 1) * 2
	o.Additions *= k
	o.ResultCts = k
	for i := range p.Steps {
		p.Steps[i].OutLength = total
	}
	// The flooding is sized for the budget in ciphertexts, and a full
	// identification returns k: the guarantee holds over k times fewer
	// calls.
	budget := p.Precision.QueryBudget
	p.Precision.QueryBudget = max(1, budget/k)
	p.Warnings = append(p.Warnings, fmt.Sprintf("an identification over more than %d templates returns up to %d ciphertexts, each counted as a sample: the circuit-privacy level holds over %d identifications of the full gallery (%d result ciphertexts)", per, k, p.Precision.QueryBudget, budget))
	p.Fingerprint = p.ComputeFingerprint()
	return res, nil
}

// maxGalleryDim bounds a gallery's embedding dimension.
const maxGalleryDim = 4096

// GalleryProgram returns the program of one query on g, a view v of a
// gallery plan compiled by CompileGalleryPlan with program prog: for a
// verification (claim not empty) the claimed template's row in row 0,
// for an identification the enrolled templates in order; every other
// row zero. Every entry is stored, zeros too, so that the map has the
// diagonals (and needs the rotation keys) the plan was compiled for. The
// program is made per query from the enrolled templates and never
// leaves the server.
func GalleryProgram(prog *plan.Program, v *plan.Plan, g *Gallery, claim string) (*plan.Program, error) {
	d := v.Decision
	if d == nil || d.Range <= 0 {
		return nil, fheserve.Errorf(fheserve.EINVALID, "plan %q is not a decision plan", v.Model)
	}
	s := &prog.Steps[0]
	if s.Kind != plan.StepLinear || s.In[0] != 0 || s.M.Cols != g.Dim || s.M.Rows*max(1, s.Groups) < len(g.Labels) {
		return nil, fheserve.Errorf(fheserve.EINVALID, "program of plan %q does not start with %d score rows of dimension %d", v.Model, len(g.Labels), g.Dim)
	}
	var rows []float64 // the rows that are not zero, from row 0
	switch {
	case claim != "":
		i := slices.Index(g.Labels, claim)
		if i < 0 {
			return nil, fheserve.Errorf(fheserve.ENOTFOUND, "gallery %q has no template labelled %q: claim an enrolled label ('fheserve gallery list')", g.Name, clipLabel(claim))
		}
		rows = g.Templates[i*g.Dim : (i+1)*g.Dim]
	default:
		rows = g.Templates
	}
	// The rows that are zero are left out: their diagonals need no
	// encoding or multiplication, and the ones left use a subset of the
	// plan's rotations. Every entry of the others is stored, zeros too.
	// A split plan's map has a group of s.M.Rows rows per result
	// ciphertext of the query (v.Output.Ciphertexts).
	n, cols := len(rows)/g.Dim, s.M.Cols
	groups := 0
	if s.Groups > 0 {
		groups = v.Output.Ciphertexts
	}
	nr := s.M.Rows * max(1, groups)
	m := &plan.Sparse{Rows: nr, Cols: cols, RowPtr: make([]int, nr+1), ColIdx: make([]int, len(rows)), Val: make([]float64, len(rows))}
	for i := range nr {
		m.RowPtr[i+1] = min(i+1, n) * cols
	}
	for j := range rows {
		m.ColIdx[j], m.Val[j] = j%cols, rows[j]/d.Range
	}
	out := &plan.Program{Packing: prog.Packing, Steps: slices.Clone(prog.Steps), Output: prog.Output}
	out.Steps[0].M, out.Steps[0].Groups = m, groups
	if out.Steps[0].Bias != nil && groups > 1 {
		out.Steps[0].Bias = slices.Repeat(out.Steps[0].Bias, groups)
	}
	return out, nil
}

// roundMargin rounds a margin up to 3 significant digits.
func roundMargin(m float64) float64 {
	e := math.Pow(10, math.Floor(math.Log10(m))-2)
	return math.Ceil(m/e) * e
}

// galleryCalibration is what the compiler sizes the values from: unit
// probes at random and the templates themselves (a probe equal to a
// template scores 1), at most 64 of each.
func galleryCalibration(g *Gallery) []float64 {
	rng := rand.New(rand.NewPCG(17, uint64(g.Dim)))
	var rows []float64
	for i := 0; i < 64; i++ {
		rows = append(rows, unitvec.Random(rng, g.Dim)...)
	}
	return append(rows, g.Templates[:min(64, len(g.Labels))*g.Dim]...)
}

// Enroll returns the gallery with the given templates (rows of Dim
// values, one per label) added, checked as a whole against opts: on any
// error the gallery is unchanged, so an enrolment that fails half way
// leaves nothing behind.
func (g *Gallery) Enroll(labels []string, templates []float64, opts *GalleryOptions) (*Gallery, error) {
	next := &Gallery{Name: g.Name, Dim: g.Dim, Metric: g.Metric, Threshold: g.Threshold,
		Labels:    append(slices.Clone(g.Labels), labels...),
		Templates: append(slices.Clone(g.Templates), templates...)}
	if len(templates) != len(labels)*g.Dim {
		return nil, fheserve.Errorf(fheserve.EINVALID, "gallery %q: %d values for %d labels: give one embedding of %d values per label", g.Name, len(templates), len(labels), g.Dim)
	}
	if err := next.Validate(opts); err != nil {
		return nil, err
	}
	return next, nil
}

// Remove returns the gallery without the templates of the given labels;
// an unknown label is refused and the gallery is unchanged.
func (g *Gallery) Remove(labels ...string) (*Gallery, error) {
	drop := make(map[string]bool, len(labels))
	for _, l := range labels {
		if !slices.Contains(g.Labels, l) {
			return nil, fheserve.Errorf(fheserve.ENOTFOUND, "gallery %q has no template labelled %q", g.Name, clipLabel(l))
		}
		drop[l] = true
	}
	next := &Gallery{Name: g.Name, Dim: g.Dim, Metric: g.Metric, Threshold: g.Threshold}
	for i, l := range g.Labels {
		if !drop[l] {
			next.Labels = append(next.Labels, l)
			next.Templates = append(next.Templates, g.Templates[i*g.Dim:(i+1)*g.Dim]...)
		}
	}
	return next, nil
}
