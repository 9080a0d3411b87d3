package compiler

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/nn"
	"github.com/fheserve/fheserve/plan"
)

// Approximated returns evaluation options under which g.Eval and
// g.EvalBatch compute in plaintext what p computes under encryption: each
// non-polynomial activation is replaced by the plan's polynomial, which is
// not clipped to its interval. p must be compiled from g. Comparing an
// encrypted result with this model isolates the HE error, which the plan
// bounds by Precision.OutputError; comparing this model with the exact one
// isolates the approximation's effect.
func Approximated(g *nn.Graph, p *plan.Plan) *nn.EvalOptions {
	acts := activationsByNode(p)
	return &nn.EvalOptions{Activation: func(node int, _ *nn.Activation) func(float64) float64 {
		a, ok := acts[g.Nodes[node].Name]
		if !ok {
			return nil
		}
		return a.Approximate
	}}
}

func activationsByNode(p *plan.Plan) map[string]*plan.Activation {
	acts := make(map[string]*plan.Activation, len(p.Activations))
	for i := range p.Activations {
		acts[p.Activations[i].Node] = &p.Activations[i]
	}
	return acts
}

// checkDegrees refuses per-node degrees that name no non-polynomial
// activation of g (a typo would otherwise be ignored) or are out of range.
func checkDegrees(g *nn.Graph, degrees map[string]int) error {
	if len(degrees) == 0 {
		return nil
	}
	acts := map[string]bool{}
	var names []string
	for _, n := range g.Nodes {
		if _, ok := n.Op.(*nn.Activation); ok {
			acts[n.Name] = true
			names = append(names, fmt.Sprintf("%q", n.Name))
		}
	}
	keys := make([]string, 0, len(degrees))
	for k := range degrees {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !acts[k] {
			have := "it has none"
			if len(names) > 0 {
				have = "its activations are " + strings.Join(names, ", ")
			}
			return fheserve.Errorf(fheserve.EINVALID, "a degree is given for node %q, which is not a non-polynomial activation of model %q (%s)", k, g.Name, have)
		}
		if d := degrees[k]; d < 2 || d > 63 {
			return fheserve.Errorf(fheserve.EINVALID, "activation degree %d for node %q is out of range 2..63", d, k)
		}
	}
	return nil
}

// Excursion measures how an activation's approximation behaves beyond its
// interval: the largest error |p(x) - f(x)| for x up to frac times the
// interval's half-width outside either end. f is the exact activation.
func Excursion(a *plan.Activation, f func(float64) float64, frac float64) float64 {
	lo, hi := a.Interval[0], a.Interval[1]
	w := frac * (hi - lo) / 2
	var worst float64
	const steps = 200
	for i := 1; i <= steps; i++ {
		d := w * float64(i) / steps
		for _, x := range []float64{lo - d, hi + d} {
			worst = math.Max(worst, math.Abs(a.Approximate(x)-f(x)))
		}
	}
	return worst
}
