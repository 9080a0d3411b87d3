package compiler

import (
	"math"
	"math/bits"

	"github.com/fheserve/fheserve/he"
	"github.com/fheserve/fheserve/plan"
)

// Noise model (slot domain, in units of the encoded values). A polynomial
// whose coefficients have independent errors of std sigma decodes to slot
// errors of std about sigma*sqrt(N)/scale. Fresh encryption adds sigma =
// 3.2; rescaling adds rounding with std sqrt((1+h)/12) for a ternary secret
// of Hamming weight h ~ 2N/3. Linear maps amplify input errors by their
// largest row norm, products by the magnitude of the other factor.

// evalNoise is the modelled std of the evaluation noise of an output
// value (slot domain, value units) under the given parameters; for a
// coefficient-encoded program, of an output coefficient.
func (c *compilation) evalNoise(ps *paramChoice) float64 {
	n := float64(ps.params.N())
	scale := math.Exp2(float64(ps.spec.LogDefaultScale))
	outScale := math.Exp2(float64(ps.outLogScale))
	h := 2 * n / 3
	if s := &c.prog.Steps[0]; s.Coeffs {
		return c.coeffNoise(ps, s, scale, outScale, h) + c.sealedNoise(ps, s, outScale)
	}
	last := c.prog.LastCompute()
	eFresh := 3.2 * math.Sqrt(n) / scale
	eRescale := math.Sqrt((1+h)/12) * math.Sqrt(n) / scale
	// Rescaling a degree-2 ciphertext: the third component's rounding r
	// decrypts as r*s^2, whose coefficients have std h/sqrt(12).
	eRescale2 := math.Sqrt((1+h+h*h)/12) * math.Sqrt(n) / scale
	bounds := c.calib.bounds
	err := make([]float64, len(c.prog.Steps)+1)
	err[0] = eFresh
	for i := range c.prog.Steps {
		s := &c.prog.Steps[i]
		x := err[s.In[0]]
		eRescale := eRescale
		if i+1 >= last {
			eRescale *= scale / outScale
		}
		switch s.Kind {
		case plan.StepLinear:
			err[i+1] = s.M.MaxRowNorm()*x + eRescale + c.derivedNoise(ps, s)
			if i+1 >= last {
				err[i+1] += c.sealedNoise(ps, s, outScale)
			} else {
				err[i+1] += c.sealedNoise(ps, s, scale)
			}
			if s.MaskOutput {
				err[i+1] += c.maskLeak(ps, s)
			}
		case plan.StepSquare, plan.StepMul:
			y, by := x, bounds[s.In[0]]
			if s.Kind == plan.StepMul {
				y, by = err[s.In[1]], bounds[s.In[1]]
			}
			r := eRescale
			if s.LazyRelin {
				r = eRescale2
			}
			err[i+1] = bounds[s.In[0]]*y + by*x + x*y + r
		case plan.StepAdd:
			err[i+1] = x + err[s.In[1]]
		case plan.StepSum:
			err[i+1] = s.M.MaxRowNorm()*x + c.derivedNoise(ps, s)
		case plan.StepPoly:
			lip, sum := polyLipschitz(s.Basis, s.Poly)
			err[i+1] = lip*x + float64(plan.PolyDepth(len(s.Poly)-1))*sum*eRescale
		case plan.StepMask:
			err[i+1] = x + eRescale + c.maskLeak(ps, s)
		}
	}
	return err[c.prog.Output]
}

// derivedNoise is the error that derived rotation keys (KeysDerived) add
// to a step in slots, beyond directly generated keys', each rotation
// adding a derived key's error of std delta (he.DerivedKeyErrorStd, for
// the longest derivation behind the step's keys, ps.deriv; the longest of
// any rotation before it is known). The key-switching errors of distinct
// rotations are uncorrelated (each is the key's error times the
// ciphertext's digits permuted by its own automorphism), so they add in
// quadrature. In a linear map a baby step's error reaches an output
// through the diagonals' values at that slot, one entry of the output's
// row each: at most the largest row norm times delta in all; a giant
// step's or a fold's reaches it once. Counting every rotation as a giant
// step bounds the rest: delta sqrt(rownorm^2 + rotations). A pooling's
// rotations add theirs to partial sums weighted by at most its row norm.
func (c *compilation) derivedNoise(ps *paramChoice, s *plan.Step) float64 {
	if c.opts.Keys != KeysDerived || s.Coeffs || c.opts.Packing != plan.Latency {
		return 0 // batch plans do not rotate
	}
	rots := stepRotations(s, ps.params.MaxSlots())
	hops := he.MaxDerivationSteps(ps.params)
	if ps.deriv != nil {
		hops = 0
		for _, r := range rots {
			hops = max(hops, ps.deriv.Steps(ps.params.GaloisElement(r)))
		}
	}
	delta := he.DerivedKeyErrorStd(ps.params, s.LevelIn, hops)
	norm := s.M.MaxRowNorm()
	if s.Kind == plan.StepSum {
		return max(norm, 1) * math.Sqrt(float64(len(rots))) * delta
	}
	return math.Sqrt(norm*norm+float64(len(rots))) * delta
}

// coeffNoise is evalNoise for a linear map s in coefficient encoding:
// the input's encryption error times the weight polynomial (every weight
// reaches an output coefficient through the negacyclic product), the
// weights' encoding rounding times the input, and the rescale's rounding
// (h the secret's Hamming weight).
func (c *compilation) coeffNoise(ps *paramChoice, s *plan.Step, scale, outScale, h float64) float64 {
	var w2 float64
	for _, v := range s.M.Val {
		w2 += v * v
	}
	q := float64(ps.params.Q()[s.LevelIn])
	in := c.calib.bounds[0] * math.Sqrt(float64(s.M.Cols))
	return 3.2*math.Sqrt(w2)/scale + in*math.Sqrt(float64(s.M.NNZ())/12)/q + math.Sqrt((1+h)/12)/outScale
}

// sealedNoise is the error a sealed linear step adds (0 unless sealed),
// for a result at scale target. A sealed diagonal or weight polynomial is
// a public-key encryption: after its division by the key-switching
// primes, its error is a rounding of std sqrt((1+h)/12) per coefficient,
// at the weights' scale q*target/inScale (about q*target/scale; larger
// when the result feeds a product, so the estimate is conservative), and
// the product multiplies it by the input values: in slots, by at most the
// input bound in each of the step's diagonals; in coefficients, by each
// input coefficient. The sealed bias carries the same rounding at the
// result's scale, and each giant step's relinearization a key switch's
// rounding at the product's scale q*target, which the rescale divides
// by q.
func (c *compilation) sealedNoise(ps *paramChoice, s *plan.Step, target float64) float64 {
	if !c.opts.Sealed {
		return 0
	}
	n := float64(ps.params.N())
	round := math.Sqrt((1 + 2*n/3) / 12)
	// The weights' scale holds the primes the step's rescales divide by
	// (two with headroom).
	q := 1.0
	for l := s.Level + 1; l <= s.LevelIn; l++ {
		q *= float64(ps.params.Q()[l])
	}
	scale := math.Exp2(float64(ps.spec.LogDefaultScale))
	ptScale := q * target / scale
	in := c.calib.bounds[s.In[0]]
	if s.Coeffs {
		return math.Sqrt(float64(s.M.Cols))*in*round/ptScale + round/target + round/(q*target)
	}
	_, giants := he.SealedBSGS(s, ps.params.MaxSlots())
	diags := float64(len(s.DiagonalIndices()))
	slot := round * math.Sqrt(n)
	return math.Sqrt(diags)*in*slot/ptScale + slot/target + math.Sqrt(float64(len(giants)))*slot/(q*target)
}

// maskLeak is the std, in a zeroed slot, of what masking leaves of the
// value it zeroes. A mask step multiplies by a 0/1 plaintext encoded at
// the scale of a prime q, with rounding of std sqrt(1/12) per
// coefficient, so each slot is multiplied by 0 plus an error of std
// sqrt(N/12)/q; the values zeroed are at most the mask input's bound,
// four times over for the partial sums a folding linear map leaves
// outside its outputs. A masked linear map multiplies each of its
// rotated inputs by a diagonal that is 0 there plus its encoding error,
// at the diagonals' scale q * outScale / inScale.
func (c *compilation) maskLeak(ps *paramChoice, s *plan.Step) float64 {
	n := float64(ps.params.N())
	q := float64(ps.params.Q()[s.LevelIn])
	if s.Kind == plan.StepLinear {
		ptScale := q * math.Exp2(float64(ps.outLogScale-ps.spec.LogDefaultScale))
		return math.Sqrt(float64(len(s.DiagonalIndices()))) * c.calib.bounds[s.In[0]] * math.Sqrt(n/12) / ptScale
	}
	return 4 * c.calib.bounds[s.In[0]] * math.Sqrt(n/12) / q
}

// chooseLazyRelin marks the batch-mode products read only by linear maps
// for lazy relinearization (plan.Step.LazyRelin) when the noise model
// says the evaluation noise grows by at most 10%: it saves a
// relinearization per input of the next linear map, but the rescaling of
// an unrelinearized product is noisier.
func (c *compilation) chooseLazyRelin(ps *paramChoice) {
	prog := c.prog
	var eligible []int
	for i := range prog.Steps {
		s := &prog.Steps[i]
		if (s.Kind == plan.StepSquare || s.Kind == plan.StepMul) && prog.OnlyLinearReaders(i+1) {
			eligible = append(eligible, i)
		}
	}
	if len(eligible) == 0 {
		return
	}
	for _, i := range eligible {
		prog.Steps[i].LazyRelin = false
	}
	eager := c.evalNoise(ps)
	for _, i := range eligible {
		prog.Steps[i].LazyRelin = true
	}
	if c.evalNoise(ps) > 1.1*eager {
		for _, i := range eligible {
			prog.Steps[i].LazyRelin = false
		}
	}
}

// privacy is what a parameter choice gives: the flooding noise, the
// privacy level it reaches and the error the user sees.
type privacy struct {
	// eval is the evaluation noise std and flood the flooding std of an
	// output value (value units; slot-domain convention of evalNoise,
	// or per coefficient for a coefficient-encoded result).
	eval, flood float64
	// bits is the privacy level reached (0 without flooding), and
	// heError the stated error of an output from the encryption alone
	// (evaluation, flooding and result compression, tail included).
	bits, heError float64
	resultBits    int
	ok            bool // precision and privacy both met
}

// sizePrivacy sizes the flooding noise for parameters ps: as large as the
// precision budget (heTarget: the encryption's error, tail included)
// allows, and reports the privacy level it reaches.
//
// The accounting: over Q samples a user sees the results' decryptions.
// Whatever in them depends on the weights beyond the declared outputs is
// the deterministic evaluation error d (the server's computation is a
// function of the weights, the user's input and keys, which the user
// knows); the flood is an independent Gaussian of std sigma per value.
// The Kullback-Leibler divergence between the real results and results
// simulated from the outputs alone is then at most Q*|d|^2/(2 sigma'^2)
// summed over every value a result carries (sigma' the std per real
// component), and the statistical distance at most sqrt(KL/2) (Pinsker).
// PrivacyBits = lambda means it is at most 2^(-lambda/2), which by the
// Renyi-divergence argument of Li, Micciancio, Schultz and Sorrell
// (CRYPTO 2022) and Micciancio and Walter's bit security of decision
// problems (EUROCRYPT 2018) is lambda bits of security. |d|^2 per value
// is bounded from the noise model: 1.6 (what the model leaves out,
// measured) times sqrt(2) (a sum of squares over a budget of many
// independent calls stays within twice its mean) times the modelled std.
// Zeroed slots count too: they carry the mask's leak. The last rescale's
// rounding does not count: the masking step re-randomizes the ciphertext
// before it (he.Sanitizer.Rerandomize), so the rounding is a function of
// fresh randomness.
func (c *compilation) sizePrivacy(p *plan.Plan, ps *paramChoice) privacy {
	return c.sizePrivacyFor(p, ps, c.heTarget(p))
}

// sizePrivacyFor is sizePrivacy for a stated encryption error of at most
// target.
func (c *compilation) sizePrivacyFor(p *plan.Plan, ps *paramChoice, target float64) privacy {
	c.planDerivation(p, ps)
	return c.sizePrivacyNoise(p, ps, target, c.evalNoise(ps))
}

// sizePrivacyNoise is sizePrivacyFor with the evaluation noise e
// (evalNoise) given, for callers that try many targets.
func (c *compilation) sizePrivacyNoise(p *plan.Plan, ps *paramChoice, target, e float64) privacy {
	n := float64(ps.params.N())
	coeffs := c.prog.Steps[0].Coeffs
	lambda, q := c.privacyBits(), float64(c.queryBudget())
	k := tailFactor(p)
	budget := target / k
	pr := privacy{eval: e}
	room := budget*budget - e*e
	if budget <= 0 {
		room = -1
	}
	if c.opts.PrivacyBits == NoPrivacy {
		room = math.Min(room, e*e)
	}
	maxBits := bits.Len64(ps.params.Q()[0] - 1)
	pr.resultBits = maxBits
	if room <= 0 {
		pr.heError = k * e
		return pr
	}
	var r float64
	pr.resultBits, r = resultBits(ps, maxBits, room, coeffs)
	if c.opts.PrivacyBits != NoPrivacy {
		// The compression's rounding shares the room: the stated error
		// stays within the budget.
		pr.flood = math.Min(0.95*math.Sqrt(room), math.Sqrt(room-r*r))
	}
	pr.heError = k * math.Sqrt(e*e+pr.flood*pr.flood+r*r)
	pr.ok = c.opts.PrivacyBits == NoPrivacy
	if pr.flood == 0 {
		return pr
	}
	// The bound on the weight-dependent error of an output value.
	outLen := float64(p.Output.Length)
	bound := 1.6 * math.Sqrt2 * e
	var d2, sigma float64
	if coeffs {
		d2 = outLen * bound * bound
		sigma = pr.flood // real coefficients
	} else {
		// A zeroed slot: the mask's leak.
		zeroed := 1.6 * math.Sqrt2 * c.maskLeak(ps, &c.prog.Steps[c.prog.Output-1])
		cts := 1.0
		if p.Packing == plan.Batch {
			cts = outLen
			outLen = 1
		}
		d2 = cts * (outLen*bound*bound + (n/2)*zeroed*zeroed)
		sigma = pr.flood / math.Sqrt2 // per real component
	}
	pr.bits = 2 * math.Log2(sigma*math.Sqrt(2)/math.Sqrt(q*d2))
	pr.ok = pr.bits >= lambda
	return pr
}

// resultBits is the result compression: the fewest bits per coefficient
// (below maxBits) whose rounding stays below a third of the room left for
// noise, with the std of that rounding in output units.
func resultBits(ps *paramChoice, maxBits int, room float64, coeffs bool) (int, float64) {
	// he.ResultErrorStd is in slot units at the default scale.
	toSlot := math.Exp2(float64(ps.outLogScale - ps.spec.LogDefaultScale))
	if coeffs {
		toSlot *= math.Sqrt(float64(ps.params.N()) / 2)
	}
	b := maxBits
	for k := 16; k < maxBits; k++ {
		if he.ResultErrorStd(ps.params, k)/toSlot <= math.Sqrt(room)/3 {
			b = k
			break
		}
	}
	return b, he.ResultErrorStd(ps.params, b) / toSlot
}

func (c *compilation) privacyBits() float64 {
	switch c.opts.PrivacyBits {
	case 0:
		return DefaultPrivacyBits
	case NoPrivacy:
		return 0
	}
	return c.opts.PrivacyBits
}

func (c *compilation) queryBudget() int {
	if c.opts.QueryBudget == 0 {
		return DefaultQueryBudget
	}
	return c.opts.QueryBudget
}

func (c *compilation) precisionBits() float64 {
	if c.opts.PrecisionBits == 0 {
		return DefaultPrecisionBits
	}
	return c.opts.PrecisionBits
}

// precision fills the plan's precision and result size from a sized
// privacy choice.
func (c *compilation) precision(p *plan.Plan, ps *paramChoice, pr privacy) {
	n := float64(ps.params.N())
	scale := math.Exp2(float64(ps.outLogScale))
	toCoeff := scale / math.Sqrt(n)
	if c.prog.Steps[0].Coeffs {
		toCoeff = scale
	}
	p.Precision.FloodStd = math.Floor(pr.flood * toCoeff)
	if pr.flood > 0 {
		p.Precision.FloodBits = math.Log2(pr.flood / pr.eval)
		p.Precision.PrivacyBits = math.Floor(pr.bits*10) / 10
		p.Precision.QueryBudget = c.queryBudget()
	}
	p.ResultBits = pr.resultBits
	p.Precision.OutputError = pr.heError + p.Precision.ApproxOutputError
	p.Precision.Asked = c.opts.Precision
}

// tailFactor is how many modelled standard deviations the stated output
// error is: the largest of M Gaussian values stays below
// sqrt(2 ln(2000 M)) of them with probability 0.999, for the M output
// values of a call (of all its samples); times 1.6 for what the
// model leaves out (key switching, re-randomization, encoding rounding:
// the measured error of a full batch of the bundled matcher, 4 million
// values, was 1.6 times the modelled); and at least 8.
func tailFactor(p *plan.Plan) float64 {
	m := float64(p.OutputSize() * max(p.BatchSize, 1))
	return math.Max(8, 1.6*math.Sqrt(2*math.Log(2000*m)))
}

// polyLipschitz bounds |p'| and sum |c_k| of a polynomial on [-1, 1] by
// sampling.
func polyLipschitz(basis string, c []float64) (lip, sum float64) {
	for _, v := range c {
		sum += math.Abs(v)
	}
	const n = 200
	prev := plan.EvalPoly(basis, c, -1)
	for i := 1; i <= n; i++ {
		t := -1 + 2*float64(i)/n
		y := plan.EvalPoly(basis, c, t)
		lip = math.Max(lip, math.Abs(y-prev)/(2.0/n))
		prev = y
	}
	return lip, sum
}

func (c *compilation) sizes(p *plan.Plan, ps *paramChoice) error {
	p.Sizes.Upload = he.CiphertextsSize(ps.params, p.Input.Level, p.Input.Ciphertexts, true)
	p.Sizes.Result = he.ResultSize(ps.params, p.Output.Ciphertexts, p.ResultBits)
	p.Sizes.PublicKey = he.EvalKeysSize(ps.params, he.KeySpec{})
	p.Sizes.EvalKeys = he.EvalKeysSize(ps.params, he.PlanKeys(p))
	p.Sizes.GaloisKeys = len(p.GaloisElements)
	if c.opts.Sealed {
		items, err := he.SealedLayout(ps.params, p, c.prog)
		if err != nil {
			return err
		}
		p.Sizes.SealedWeights = he.SealedSize(ps.params, he.SealedLevels(items))
	}
	return nil
}

// planDerivation sets ps.deriv, for KeysDerived, to the derivation of the
// keys the program uses on ps's layout (set on p) with the steps' current
// choices, which derivedNoise reads the derivation steps of each
// rotation from.
func (c *compilation) planDerivation(p *plan.Plan, ps *paramChoice) {
	if c.opts.Keys != KeysDerived || ps.deriv != nil || c.prog.Steps[0].Coeffs {
		return
	}
	u := &plan.Plan{Packing: p.Packing, Params: ps.spec, Input: p.Input, Output: p.Output}
	if c.countAndKeys(u, ps) != nil || len(u.GaloisElements) == 0 {
		return
	}
	if d, err := he.PlanDerivation(ps.params, he.PlanKeys(u)); err == nil {
		ps.deriv = d
	}
}
