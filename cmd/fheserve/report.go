package main

import (
	"fmt"
	"io"
	"math/bits"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/nn"
	"github.com/fheserve/fheserve/plan"
)

// writePlanReport prints a plan for a person: what it costs, what keys it
// needs and how precise its results are.
func writePlanReport(w io.Writer, p *plan.Plan) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	writePlanSummary(tw, p)
	writePlanKeys(tw, p)
	writePlanSizes(tw, p)
	writePlanOps(tw, p)
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, section := range []func(io.Writer, *plan.Plan) error{writePlanSteps, writePlanActivations, writePlanPrecision, writePlanPrivacy, writePlanDecision} {
		if err := section(w, p); err != nil {
			return err
		}
	}
	if len(p.Warnings) > 0 {
		fmt.Fprintf(w, "\nWarnings\n")
		for _, s := range p.Warnings {
			fmt.Fprintf(w, "  - %s\n", s)
		}
	}
	return nil
}

// The first sections share one tabwriter: a line without a tab ends a
// block of aligned columns, so each section aligns on its own.

func writePlanSummary(tw io.Writer, p *plan.Plan) {
	pr := func(format string, args ...any) { fmt.Fprintf(tw, format, args...) }
	pr("Model\t%s\n", p.Model)
	pr("Packing\t%s\n", packingText(p))
	pr("Ring\tN = 2^%d (%d slots)\n", p.Params.LogN, p.Slots())
	pr("Security\tlog QP = %.1f bits, bound %d for 128-bit security at this N (%s)\n",
		p.LogQP, p.SecurityBound, secureText(p))
	pr("Moduli\t%s\n", moduliText(p.Params))
	pr("Depth\t%d levels\n", p.Depth)
	pr("Scale\t2^%d\n", p.Params.LogDefaultScale)
	pr("Input\t%s\n", layoutText(p.InputShape, p.Input))
	pr("Output\t%s\n", layoutText(p.OutputShape, p.Output))
	if p.Head != "" {
		pr("Head\t%s, applied by the client after decryption\n", p.Head)
	}
	pr("Fingerprint\t%s\n", p.Fingerprint)
	pr("\n")
}

func writePlanKeys(tw io.Writer, p *plan.Plan) {
	pr := func(format string, args ...any) { fmt.Fprintf(tw, format, args...) }
	pr("Keys\n")
	pr("  relinearization key\t%s\n", yesNo(p.Relin))
	switch lines := wrapInts(p.Rotations, 64); len(lines) {
	case 0:
		pr("  rotation keys\tnone\n")
	case 1:
		pr("  rotation keys\t%d: %s\n", len(p.Rotations), lines[0])
	default:
		pr("  rotation keys\t%d:\n", len(p.Rotations))
		for _, line := range lines {
			pr("  \t%s\n", line)
		}
	}
	pr("\n")
}

func writePlanSizes(tw io.Writer, p *plan.Plan) {
	pr := func(format string, args ...any) { fmt.Fprintf(tw, format, args...) }
	pr("Sizes (estimated)\n")
	pr("  upload\t%s per call\n", fmtBytes(p.Sizes.Upload))
	pr("  result\t%s per call\n", fmtBytes(p.Sizes.Result))
	if d := p.Derivation; d != nil {
		pr("  evaluation keys\t%s (relinearization and %d master keys with a %d-bit master prime, sent once)\n", fmtBytes(p.Sizes.EvalKeys), d.MasterKeys, d.MasterBits)
		pr("  derived on the server\t%d Galois keys, %s in memory, by %d key switches once per key set\n", p.Sizes.GaloisKeys, fmtBytes(d.DerivedBytes), d.KeySwitches)
	} else {
		pr("  evaluation keys\t%s (relinearization and %d Galois keys, sent once)\n", fmtBytes(p.Sizes.EvalKeys), p.Sizes.GaloisKeys)
	}
	if o := p.OtherKeys; o != nil {
		pr("  with --keys %s\t%s (%d Galois keys), %d rotations per call\n", o.Keys, fmtBytes(o.EvalKeys), o.RotationKeys, o.Rotations)
	}
	pr("  public key\t%s\n", fmtBytes(p.Sizes.PublicKey))
	pr("\n")
}

func writePlanOps(tw io.Writer, p *plan.Plan) {
	fmt.Fprintf(tw, "Operations per call\n")
	for _, c := range opCounts(&p.Ops) {
		fmt.Fprintf(tw, "  %s\t%d\n", c.name, c.n)
	}
	if u := p.Untiled; u != nil {
		fmt.Fprintf(tw, "  untiled (1 sample per call)\t%d rotations, %d diagonals, %d rotation keys (%s): tiles read inside their tile\n",
			u.Rotations, u.Diagonals, u.RotationKeys, fmtBytes(u.EvalKeys))
	}
}

func writePlanSteps(w io.Writer, p *plan.Plan) error {
	fmt.Fprintf(w, "\nSteps\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  #\tKIND\tNAME\tLEVELS\tLENGTHS\tDIAGONALS\tROTATIONS\tDEGREE\n")
	for i, s := range p.Steps {
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%d -> %d\t%d -> %d\t%s\t%s\t%s\n", i+1, s.Kind, s.Name,
			s.LevelIn, s.LevelOut, s.InLength, s.OutLength, blank(s.Diagonals), blank(s.Rotations), blank(s.Degree))
	}
	return tw.Flush()
}

func writePlanActivations(w io.Writer, p *plan.Plan) error {
	fmt.Fprintf(w, "\nActivations\n")
	if len(p.Activations) == 0 {
		fmt.Fprintf(w, "  none: every operation is exact under encryption\n")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  NODE\tFUNC\tINTERVAL\tSOURCE\tFIT\tDEGREE\tDEPTH\tMAX ERROR\tOUTSIDE +10%%\t+25%%\n")
	for i := range p.Activations {
		a := &p.Activations[i]
		fit := a.Fit
		if fit == "" {
			fit = compiler.FitInterpolation
		}
		fmt.Fprintf(tw, "  %s\t%s\t[%.4g, %.4g]\t%s\t%s\t%d\t%d\t%.2e\t%s\t%s\n", a.Node, a.Func,
			a.Interval[0], a.Interval[1], a.Source, fit, a.Degree, a.Depth, a.MaxError, excursion(a, 0.1), excursion(a, 0.25))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "  MAX ERROR is on the interval; OUTSIDE is the largest error for inputs up to 10%% and 25%% of\n"+
		"  the interval's half-width beyond it, where the polynomial grows fast (more so at high degree).\n")
	if c := p.ActivationChoice; c != nil {
		fmt.Fprintf(w, "  Degrees, fit and margin chosen from the calibration data: of %d settings judged by the outputs\n"+
			"  on %d held-out rows, the cheapest that %s:\n"+
			"  class kept on %d of %d (%d near ties), largest output error %.3g.\n",
			c.Tried, c.HeldOut, c.Rule, c.Kept, c.HeldOut, c.Unsafe, c.MaxOutputError)
	}
	fmt.Fprintf(w, "  Choose the degree with --degree or per node with --degrees node=D,..., the interval's margin\n"+
		"  with --margin and the fit with --fit (see docs/models.md).\n")
	return nil
}

func writePlanPrecision(w io.Writer, p *plan.Plan) error {
	fmt.Fprintf(w, "\nPrecision\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	pr := func(format string, args ...any) { fmt.Fprintf(tw, format, args...) }
	pr("  output error\t%.2e\t(expected largest absolute error of an output value)\n", p.Precision.OutputError)
	if len(p.Activations) > 0 {
		pr("  approximation error\t%.2e\t(largest activation approximation error on its interval)\n", p.Precision.ApproximationError)
		pr("  approximation output error\t%.2e\t(the approximations' error propagated to the outputs, on the calibration data)\n", p.Precision.ApproxOutputError)
	}
	if p.Precision.Asked > 0 {
		pr("  asked\t%.2e\t(--precision: the largest error of an output value against the exact model, approximations included)\n", p.Precision.Asked)
	}
	pr("  output bound\t%.4g\t(largest output magnitude the parameters carry)\n", p.Precision.OutputBound)
	pr("  result bits\t%d\t(bits per coefficient of a returned ciphertext)\n", p.ResultBits)
	return tw.Flush()
}

func writePlanPrivacy(w io.Writer, p *plan.Plan) error {
	fmt.Fprintf(w, "\nPrivacy of the weights\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	pr := func(format string, args ...any) { fmt.Fprintf(tw, format, args...) }
	if pp := p.Precision; pp.PrivacyBits > 0 {
		pr("  circuit privacy\t%s bits over %s samples\t(statistical distance at most 2^-%s between a user's view of the results and one simulated from the outputs alone)\n",
			trimBits(pp.PrivacyBits), countText(pp.QueryBudget), trimBits(pp.PrivacyBits/2))
	} else {
		pr("  circuit privacy\tnone\t(results may reveal more of the weights than the outputs)\n")
	}
	if p.Precision.FloodStd > 0 {
		pr("  flood margin\t%.1f bits\t(flooding noise above the evaluation noise it hides)\n", p.Precision.FloodBits)
	}
	return tw.Flush()
}

// trimBits formats a number of bits without needless decimals.
func trimBits(b float64) string { return strconv.FormatFloat(b, 'f', -1, 64) }

// countText formats a count with thousands separators, or as a power of
// two when it is one above 1000.
func countText(n int) string {
	if n > 1000 && n&(n-1) == 0 {
		return fmt.Sprintf("2^%d", bits.TrailingZeros(uint(n)))
	}
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func packingText(p *plan.Plan) string {
	switch {
	case p.Packing == plan.Batch:
		return fmt.Sprintf("batch: up to %d samples per call, sample i in slot i, one ciphertext per feature", p.BatchSize)
	case p.Input.Encoding == plan.Coeffs:
		return "latency: one sample per call, in polynomial coefficients (a single linear layer)"
	}
	if t := p.Input.Tile; t > 0 {
		return fmt.Sprintf("latency: up to %d samples per call, sample t in tile t (%d slots), its vector repeated across the tile", p.BatchSize, t)
	}
	return "latency: one sample per call, the vector repeated across all slots"
}

func secureText(p *plan.Plan) string {
	if p.LogQP <= float64(p.SecurityBound) {
		return "secure"
	}
	return "NOT secure"
}

// moduliText describes the modulus chain: q_0, the rescaling primes and
// the key-switching primes.
func moduliText(ps plan.Params) string {
	q := fmt.Sprintf("q0 %d bits", ps.LogQ[0])
	if n := len(ps.LogQ) - 1; n > 0 {
		q += fmt.Sprintf(" + %d x %d bits", n, ps.LogQ[1])
	}
	p := make([]string, len(ps.LogP))
	for i, b := range ps.LogP {
		p[i] = strconv.Itoa(b)
	}
	return fmt.Sprintf("%s; key switching p %s bits", q, strings.Join(p, ", "))
}

func layoutText(shape []int, l plan.Layout) string {
	s := fmt.Sprintf("%v: %d values in %d ciphertext%s (%s", shape, l.Length, l.Ciphertexts, plural(l.Ciphertexts), l.Encoding)
	if l.Period > 0 {
		s += fmt.Sprintf(", period %d", l.Period)
	}
	return s + fmt.Sprintf("), level %d, scale 2^%d", l.Level, l.LogScale)
}

type count struct {
	name string
	n    int
}

// opCounts lists the non-zero operation counts in a fixed order.
func opCounts(o *plan.OpCounts) []count {
	all := []count{
		{"rotations", o.Rotations},
		{"  baby steps (hoisted)", o.BabySteps},
		{"  baby steps (key switched)", o.SerialBabySteps},
		{"  giant steps", o.GiantSteps},
		{"  fold rotations", o.FoldRotations},
		{"plaintext diagonals", o.Diagonals},
		{"ciphertext x plaintext products", o.PtMuls},
		{"ciphertext x scalar products", o.ConstMuls},
		{"coefficient products", o.CoeffMuls},
		{"ciphertext x ciphertext products", o.CtMuls},
		{"polynomial evaluations", o.PolyEvals},
		{"  their ciphertext products", o.PolyCtMuls},
		{"rescalings", o.Rescales},
		{"additions", o.Additions},
		{"input ciphertexts", o.Ciphertexts},
		{"result ciphertexts", o.ResultCts},
	}
	var out []count
	for _, c := range all {
		if c.n != 0 {
			out = append(out, c)
		}
	}
	return out
}

// wrapInts formats xs separated by spaces in lines of at most width
// characters.
func wrapInts(xs []int, width int) []string {
	var lines []string
	line := ""
	for _, x := range xs {
		s := strconv.Itoa(x)
		if line != "" && len(line)+1+len(s) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += s
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}

// fmtBytes formats a byte count in B, KB, MB or GB (powers of 1000).
func fmtBytes(n int) string {
	f := float64(n)
	switch {
	case f < 1e3:
		return fmt.Sprintf("%d B", n)
	case f < 1e6:
		return fmt.Sprintf("%.1f KB", f/1e3)
	case f < 1e9:
		return fmt.Sprintf("%.1f MB", f/1e6)
	}
	return fmt.Sprintf("%.2f GB", f/1e9)
}

func blank(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// excursion formats the largest error of an activation's approximation up
// to frac half-widths outside its interval (blank when the plan carries no
// coefficients, as one read from JSON).
func excursion(a *plan.Activation, frac float64) string {
	f, err := nn.ActivationFunc(a.Func)
	if err != nil || len(a.Coeffs) == 0 {
		return ""
	}
	return fmt.Sprintf("%.2e", compiler.Excursion(a, f, frac))
}
