package plan

import "math"

// Approximate evaluates the polynomial that replaces the activation under
// encryption at x: the affine pre-map to [-1, 1], then the Chebyshev
// series. Outside the interval it is the polynomial continued, as the
// server computes it, not the activation: the interpolant grows like
// T_d(t) ~ (|t| + sqrt(t*t-1))^d / 2 once |t| > 1, so inputs beyond the
// interval are approximated badly and, far beyond, explode.
func (a *Activation) Approximate(x float64) float64 {
	return EvalPoly(a.Basis, a.Coeffs, x*a.PreScale+a.PreOffset)
}

// OutOfBound returns the indices of the samples of raw (row-major outputs
// as DecodeRaw returns them, before the head) with a value larger in
// magnitude than Precision.OutputBound, the bound the parameters were
// sized for from calibration. Such a result is not trustworthy: the input
// was unlike the calibration data, typically driving an activation beyond
// its interval where the polynomial explodes, and a value past the
// modulus headroom decrypts to garbage. Checking costs nothing under
// encryption; it turns a silent explosion into a detected one.
func (p *Plan) OutOfBound(raw []float64) []int {
	size := p.OutputSize()
	bound := p.Precision.OutputBound
	var bad []int
	for s := 0; s+size <= len(raw); s += size {
		for _, v := range raw[s : s+size] {
			if math.Abs(v) > bound || math.IsNaN(v) {
				bad = append(bad, s/size)
				break
			}
		}
	}
	return bad
}
