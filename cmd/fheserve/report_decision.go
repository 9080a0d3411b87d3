package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/fheserve/fheserve/plan"
)

// writePlanDecision prints what a gallery plan's outputs mean: the
// decision, its threshold and the margin inside which it may be wrong.
func writePlanDecision(w io.Writer, p *plan.Plan) error {
	d := p.Decision
	if d == nil {
		return nil
	}
	fmt.Fprintf(w, "\nDecisions\n")
	if d.Mode == plan.Scores {
		_, err := fmt.Fprintf(w, "  scores: every raw %s similarity, threshold %g applied by the client\n", d.Metric, d.Threshold)
		return err
	}
	what := "one match bit per enrolled template (identification)"
	if d.Mode == plan.Verify {
		what = "one match bit for the claimed template (verification)"
	}
	if d.IsRandomized() {
		what = strings.Replace(what, "match bit", "randomized sign", 1)
		fmt.Fprintf(w, "  %s: %s score >= %g\n", what, d.Metric, d.Threshold)
		fmt.Fprintf(w, "  randomized: each output is r (score - threshold)/%.3g, r drawn by the server per template and query, log-uniform on [1/%g, 1]\n", d.Range, d.Spread)
		fmt.Fprintf(w, "  reveals: the sign, and |score - threshold| within a factor %g per query (docs/security.md: repeated queries narrow it)\n", d.Spread)
		fmt.Fprintf(w, "  margin: scores within %.4g of the threshold may get either decision\n", d.Margin)
		_, err := fmt.Fprintf(w, "  error: each output is within %.3g of r (score - threshold)/%.3g (read at 0)\n", d.Error, d.Range)
		return err
	}
	fmt.Fprintf(w, "  %s: %s score >= %g\n", what, d.Metric, d.Threshold)
	fmt.Fprintf(w, "  margin: scores within %.4g of the threshold may get either decision\n", d.Margin)
	fmt.Fprintf(w, "  error: outside the margin each output is within %.3g of 0 or 1 (read at 1/2)\n", d.Error)
	_, err := fmt.Fprintf(w, "  sign approximation: %s on (score - threshold)/%.3g\n", strings.Join(d.Stages, " then "), d.Range)
	return err
}
