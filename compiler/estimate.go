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

// floodPrecisionBits is the precision, relative to the output range, that
// flooding noise may take away: it is sized to use that budget, so that it
// drowns the weight-dependent evaluation noise as far as it can.
const floodPrecisionBits = 12

// evalNoise is the modelled std of the evaluation noise of an output
// value (slot domain, value units) under the given parameters.
func (c *compilation) evalNoise(ps *paramChoice) float64 {
	n := float64(ps.params.N())
	scale := math.Exp2(float64(ps.spec.LogDefaultScale))
	h := 2 * n / 3
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
		switch s.Kind {
		case plan.StepLinear:
			err[i+1] = s.M.MaxRowNorm()*x + eRescale
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
		case plan.StepPoly:
			lip, sum := polyLipschitz(s.Basis, s.Poly)
			err[i+1] = lip*x + float64(plan.PolyDepth(len(s.Poly)-1))*sum*eRescale
		}
	}
	return err[c.prog.Output]
}

// chooseLazyRelin marks the batch-mode products read only by linear maps
// for lazy relinearization (plan.Step.LazyRelin) when the noise model
// says the output error grows by at most 10% (and the demanded flooding
// margin holds): it saves a relinearization per input of the next linear
// map, but the rescaling of an unrelinearized product is noisier.
func (c *compilation) chooseLazyRelin(bound float64, ps *paramChoice) {
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
	total := func(e float64) float64 { t := floodTarget(bound, e); return math.Sqrt(e*e + t*t) }
	eager := c.evalNoise(ps)
	for _, i := range eligible {
		prog.Steps[i].LazyRelin = true
	}
	lazy := c.evalNoise(ps)
	ok := total(lazy) <= 1.1*total(eager)
	if !ok {
		for _, i := range eligible {
			prog.Steps[i].LazyRelin = false
		}
	}
}

// floodTarget is the slot-domain std of the flooding noise: the precision
// budget, but at least twice the evaluation noise.
func floodTarget(bound, eEval float64) float64 {
	return math.Max(bound*math.Exp2(-floodPrecisionBits)/5, 2*eEval)
}

func (c *compilation) precision(p *plan.Plan, ps *paramChoice) {
	n := float64(ps.params.N())
	scale := math.Exp2(float64(ps.spec.LogDefaultScale))
	eEval := c.evalNoise(ps)
	// Coefficient-domain std of the evaluation noise, and flooding sized to
	// the precision budget but at least twice the evaluation noise.
	target := floodTarget(p.Precision.OutputBound, eEval)
	toCoeff := scale / math.Sqrt(n)
	p.Precision.FloodStd = math.Floor(target * toCoeff)
	p.Precision.FloodBits = math.Log2(target / eEval)
	// Result compression: the fewest bits whose rounding error stays below
	// the flooding noise.
	maxBits := bits.Len64(ps.params.Q()[0] - 1)
	nbits := maxBits
	for b := 16; b < maxBits; b++ {
		if he.ResultErrorStd(ps.params, b) <= target {
			nbits = b
			break
		}
	}
	p.ResultBits = nbits
	rErr := he.ResultErrorStd(ps.params, nbits)
	p.Precision.OutputError = tailFactor(p) * math.Sqrt(eEval*eEval+target*target+rErr*rErr)
}

// tailFactor is how many modelled standard deviations the stated output
// error is: the largest of M Gaussian values stays below
// sqrt(2 ln(2000 M)) of them with probability 0.999, for the M output
// values of a call (all slots in batch packing); times 1.6 for what the
// model leaves out (key switching, re-randomization, encoding rounding:
// the measured error of a full batch of the bundled matcher, 4 million
// values, was 1.6 times the modelled); and at least 8.
func tailFactor(p *plan.Plan) float64 {
	m := float64(p.OutputSize())
	if p.Packing == plan.Batch {
		m *= float64(p.BatchSize)
	}
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
	p.Sizes.PublicKey = he.EvalKeysSize(ps.params, nil, false)
	p.Sizes.EvalKeys = he.EvalKeysSize(ps.params, p.GaloisElements, p.Relin)
	p.Sizes.GaloisKeys = len(p.GaloisElements)
	return nil
}
