package compiler

import (
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/nn"
	"github.com/fheserve/fheserve/plan"
)

// Precision as an absolute error (Options.Precision): the activation
// approximations take their measured share (ApproxOutputError, on the
// calibration rows) and the encryption gets the rest, which the parameter
// search meets with scale and ring like any precision budget. When nothing
// fits, or the approximations take more than half of it, higher degrees
// are tried, and the cheaper plan wins.

// heTarget is the largest stated error the encryption may add to an
// output: OutputBound * 2^-PrecisionBits, or what the approximations leave
// of Options.Precision.
func (c *compilation) heTarget(p *plan.Plan) float64 {
	if c.opts.Precision > 0 {
		return c.opts.Precision - c.approxOutputError()
	}
	return p.Precision.OutputBound * math.Exp2(-c.precisionBits())
}

// precisionError is the refusal of a precision no plan reaches, with the
// smallest stated error a plan does reach (+Inf when none meets the
// privacy asked for at any precision).
type precisionError struct {
	err   *fheserve.Error
	reach float64
}

func (e *precisionError) Error() string { return e.err.Error() }
func (e *precisionError) Unwrap() error { return e.err }

// reachOf is the smallest stated error a refusal reports (+Inf for other
// errors).
func reachOf(err error) float64 {
	var pe *precisionError
	if errors.As(err, &pe) {
		return pe.reach
	}
	return math.Inf(1)
}

// raiseDegrees tries higher activation degrees (the next of searchDegrees
// for every activation at once, up to the highest) while the plan is
// refused for precision or its approximations take more than half of
// Options.Precision, and keeps the cheapest plan (better), or the refusal
// that reaches the smallest error. Each step costs a level per
// activation, so it stops at the first that is no cheaper.
func raiseDegrees(g *nn.Graph, output int, opts *Options, res *Result, err error, compile func(*Options) (*Result, error)) (*Result, error) {
	best, bestErr := res, err
	for {
		var pe *precisionError
		switch {
		case res != nil && res.Plan.Precision.ApproxOutputError <= opts.Precision/2:
			return best, bestErr
		case res == nil && !errors.As(err, &pe):
			return best, bestErr // refused for something degrees do not fix
		case !raise(g, output, opts):
			return best, bestErr
		}
		res, err = compile(opts)
		switch {
		case res == nil && best != nil:
			return best, nil // deeper does not fit: the plan found stands
		case res != nil && (best == nil || better(res.Plan, best.Plan)):
			best, bestErr = res, nil
		case res != nil:
			return best, bestErr
		case reachOf(err) < reachOf(bestErr):
			bestErr = err
		}
	}
}

// raise sets every activation's degree to the next of searchDegrees above
// it, and reports whether any rose.
func raise(g *nn.Graph, output int, opts *Options) bool {
	degrees := make(map[string]int, len(opts.Degrees))
	for k, v := range opts.Degrees {
		degrees[k] = v
	}
	raised := false
	for _, n := range g.Nodes[:output] {
		if _, ok := n.Op.(*nn.Activation); !ok {
			continue
		}
		cur := opts.Degree
		if d, ok := degrees[n.Name]; ok {
			cur = d
		}
		for _, d := range searchDegrees {
			if d > cur {
				degrees[n.Name], raised = d, true
				break
			}
		}
	}
	opts.Degrees = degrees
	return raised
}

// minHEError is the smallest encryption error that can be asked of a plan
// on parameters ps while it still meets the privacy asked for (+Inf if
// none below the output bound can), found by bisection on the budget:
// more room means more flooding and more privacy.
func (c *compilation) minHEError(p *plan.Plan, ps *paramChoice) float64 {
	e := c.evalNoise(ps)
	ok := func(target float64) bool { return c.sizePrivacyNoise(p, ps, target, e).ok }
	hi := p.Precision.OutputBound
	if !ok(hi) {
		return math.Inf(1)
	}
	lo := hi
	for i := 0; i < 200 && ok(lo); i++ {
		lo /= 2
	}
	for i := 0; i < 40; i++ {
		mid := math.Sqrt(lo * hi)
		if ok(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}

// precisionRefusal says that no parameters tried (cands, the largest scale
// on each ring) meet Options.Precision: what the precision would need, and
// the smallest error the best plan states, rounded up to what to ask for.
func (c *compilation) precisionRefusal(p *plan.Plan, depth int, cands []*paramChoice) error {
	coeffs := c.prog.Steps[0].Coeffs
	approx, asked := c.approxOutputError(), c.opts.Precision
	var top *paramChoice
	he := math.Inf(1)
	for _, ps := range cands {
		c.setLayout(p, ps, coeffs)
		if m := c.minHEError(p, ps); m < he || top == nil {
			top, he = ps, m
		}
	}
	privacyHint := ""
	if c.opts.PrivacyBits != NoPrivacy {
		privacyHint = ", or fewer privacy bits (--privacy-bits)"
	}
	if math.IsInf(he, 1) {
		return &precisionError{reach: he, err: fheserve.Errorf(fheserve.EUNSUPPORTED,
			"precision %.3g: no 128-bit secure ring gives %.0f bits of circuit privacy over %d samples for this model (depth %d) at any precision; ask for fewer privacy bits (--privacy-bits) or a smaller query budget (--query-budget)",
			asked, c.privacyBits(), c.queryBudget(), depth)}
	}
	reach := roundUp(approx + he)
	// The encryption's error scales as 2^-scale: x more bits of scale in
	// every prime, where the outputs' prime q0 (at most 60 bits, with
	// headroom for the output bound above the output scale) and the
	// 128-bit bound on logQP allow them.
	var need string
	x := int(math.Ceil(math.Log2(he / (asked - approx))))
	hb := headroomBits(p.Precision.OutputBound)
	logQP := top.logQP + float64(x*(depth+1+top.pCount))
	switch {
	case approx >= asked:
		need = fmt.Sprintf("precision %.3g is below the activation approximations' own error on the calibration rows (%.3g at %s)", asked, approx, c.degreeText())
	case top.outLogScale+x+hb > maxQBits:
		need = fmt.Sprintf("precision %.3g needs an output scale of about 2^%d, more than a %d-bit prime holds with %d bits above it for outputs up to %.3g", asked, top.outLogScale+x, maxQBits, hb, p.Precision.OutputBound)
	default:
		need = fmt.Sprintf("precision %.3g needs about 2^%d of scale at N=2^%d (logQP about %s > %s allowed)", asked, top.spec.LogDefaultScale+x, top.spec.LogN, thousands(logQP), thousands(float64(top.bound)))
	}
	return &precisionError{reach: approx + he, err: fheserve.Errorf(fheserve.EUNSUPPORTED,
		"%s; the best plan here states %s (approximations %.2g, encryption %.2g at %.0f bits of privacy): ask for %s or less precision (--precision)%s",
		need, reach, approx, he, c.privacyBits(), reach, privacyHint)}
}

// degreeText names the activations' degrees, "degree 7" or "degrees 7 to
// 31".
func (c *compilation) degreeText() string {
	lo, hi := math.MaxInt, 0
	for _, a := range c.acts {
		lo, hi = min(lo, a.Degree), max(hi, a.Degree)
	}
	if lo == hi {
		return fmt.Sprintf("degree %d", lo)
	}
	return fmt.Sprintf("degrees %d to %d", lo, hi)
}

// roundUp formats x with two significant digits, rounded up, so that
// asking for the printed value is asking for no less than x.
func roundUp(x float64) string {
	if x <= 0 {
		return "0"
	}
	e := math.Floor(math.Log10(x)) - 1
	v := math.Ceil(x/math.Pow(10, e)*(1-1e-12)) * math.Pow(10, e)
	return strconv.FormatFloat(v, 'g', 2, 64)
}

// thousands formats a whole number with thousands separators: 1,850.
func thousands(x float64) string {
	s := strconv.FormatInt(int64(math.Round(x)), 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
