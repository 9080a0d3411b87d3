package plan

import (
	"math"

	"github.com/fheserve/fheserve"
)

// Decision modes of a gallery plan (Decision.Mode).
const (
	Verify   = "verify"   // 1:1: the claimed template's decision
	Identify = "identify" // 1:N: one decision per enrolled template
	Scores   = "scores"   // 1:N raw similarity scores, revealed by the owner's choice
)

// How a decision plan decides (Decision.Method).
const (
	// Polynomial: a composite odd polynomial approximates the step of
	// score - threshold under encryption; the output is 0 or 1 up to
	// Error outside the margin, read at 1/2. Deep (3 levels a stage).
	Polynomial = "polynomial"
	// Randomized: the output is r (score - threshold)/Range with r > 0
	// drawn by the server afresh for every slot and every call,
	// log-uniform on [1/Spread, 1]; its sign is the decision, read at 0.
	// One level; a user learns |score - threshold| within the factor
	// Spread per query (docs/security.md).
	Randomized = "randomized"
)

// Decision says what a gallery plan's outputs mean. A decision plan
// (Verify, Identify) outputs, per template, an approximation of the step
// function of score - Threshold computed under encryption: 1 for a match,
// 0 for none. A user decrypts the decisions and the approximation error,
// flooded like every result, and nothing else: no score.
type Decision struct {
	Mode      string  `json:"mode"`
	Metric    string  `json:"metric"` // "cosine": templates and probes of unit norm
	Threshold float64 `json:"threshold"`
	// Margin is the distance to the threshold beyond which a decision is
	// right: a template whose score s has |s - Threshold| >= Margin
	// decrypts to within Error of 1 (s above) or 0 (s below). Inside the
	// margin the output lies between (-Error and 1+Error) and may be
	// either decision.
	Margin float64 `json:"margin"`
	// Error bounds |output - step(score - Threshold)| outside the margin:
	// the composite polynomial's own error plus the plan's stated
	// encryption error (Precision.OutputError). Decisions are read at 1/2.
	Error float64 `json:"error"`
	// Stages names the odd polynomials composed to approximate the sign
	// (g3: Cheon, Kim and Kim 2020, degree 7; f3: Cheon et al. 2019,
	// degree 7), innermost first; the scores enter scaled by 1/Range.
	Stages []string `json:"stages,omitempty"`
	Range  float64  `json:"range,omitempty"`
	// Labels name the outputs: Labels[i] is output i's template (Identify,
	// Scores); a verification plan has one output, the claim's, and no
	// labels (the claim travels with the request).
	Labels []string `json:"labels,omitempty"`
	// Method is Polynomial (also when empty: plans made before the
	// randomized method) or Randomized.
	Method string `json:"method,omitempty"`
	// Spread (Randomized): the factor r lies in [1/Spread, 1].
	Spread float64 `json:"spread,omitempty"`
}

// IsRandomized reports whether the decisions are randomized signs.
func (d *Decision) IsRandomized() bool { return d.Method == Randomized }

// Decisions reads the decrypted outputs of one sample of a decision plan:
// match where the output is at least 1/2 (Polynomial) or 0 (Randomized).
func (d *Decision) Decisions(out []float64) []bool {
	at := 0.5
	if d.IsRandomized() {
		at = 0
	}
	m := make([]bool, len(out))
	for i, v := range out {
		m[i] = v >= at
	}
	return m
}

// MaxSpread bounds a randomized decision's spread (Decision.Spread).
const MaxSpread = 1 << 40

// validateDecision checks a gallery plan's decision against its outputs:
// a client names outputs by Labels and reads them at 1/2.
func (p *Plan) validateDecision() error {
	d := p.Decision
	if d == nil {
		return nil
	}
	n := p.OutputSize()
	switch {
	case d.Mode != Verify && d.Mode != Identify && d.Mode != Scores:
		return fheserve.Errorf(fheserve.EINVALID, "plan decision mode %q is not supported", d.Mode)
	case d.Mode == Verify && (n != 1 || len(d.Labels) != 0):
		return fheserve.Errorf(fheserve.EINVALID, "verification plan has %d outputs and %d labels, want 1 and none", n, len(d.Labels))
	case d.Mode != Verify && len(d.Labels) != n:
		return fheserve.Errorf(fheserve.EINVALID, "plan names %d of its %d outputs", len(d.Labels), n)
	case d.Mode != Scores && !(d.Margin > 0 && d.Error >= 0 && d.Error < 0.5 && !math.IsNaN(d.Threshold)):
		return fheserve.Errorf(fheserve.EINVALID, "plan decision margin %g or error %g is out of range", d.Margin, d.Error)
	case d.Method != "" && d.Method != Polynomial && d.Method != Randomized:
		return fheserve.Errorf(fheserve.EINVALID, "plan decision method %q is not supported", d.Method)
	case d.IsRandomized() && !(d.Spread >= 1 && d.Spread <= MaxSpread):
		return fheserve.Errorf(fheserve.EINVALID, "plan decision spread %g is outside 1..%g", d.Spread, float64(MaxSpread))
	}
	return nil
}

// DecisionView returns the plan of one query on a gallery plan compiled
// for capacity templates (mode Identify, one output per template slot):
// the same parameters, keys, input and program shape, with the outputs
// cut to the query's declared decisions. A verification query keeps
// output 0 (the claimed template's row is put there) and no labels; an
// identification query keeps the first len(labels) outputs, named by
// labels. The server masks every other output away, so a key set made
// for p serves every view, and enrolments, which change only the labels,
// do not invalidate it.
func (p *Plan) DecisionView(mode string, labels []string) (*Plan, error) {
	d := p.Decision
	if d == nil || d.Mode != Identify || p.Packing != Latency || p.BatchSize != 1 {
		return nil, fheserve.Errorf(fheserve.EINVALID, "plan %q is not a gallery's identification plan", p.Model)
	}
	k := len(labels)
	switch mode {
	case Verify:
		if k != 0 {
			return nil, fheserve.Errorf(fheserve.EINVALID, "a verification view names no labels (the claim travels with the request)")
		}
		k = 1
	case Identify:
		if k == 0 {
			return nil, fheserve.Errorf(fheserve.EINVALID, "the gallery has no templates: enrol some first")
		}
	default:
		return nil, fheserve.Errorf(fheserve.EINVALID, "unknown gallery query %q (want %q or %q)", mode, Verify, Identify)
	}
	if k > p.Output.Length {
		return nil, fheserve.Errorf(fheserve.EINVALID, "%d templates exceed the gallery plan's capacity of %d", k, p.Output.Length)
	}
	v := *p
	v.Output.Length = k
	switch o := &v.Output; {
	case o.PerCiphertext > 0:
		o.Ciphertexts = (k + o.PerCiphertext - 1) / o.PerCiphertext
		if o.Positions != nil {
			o.Positions = o.Positions[:min(k, o.PerCiphertext):min(k, o.PerCiphertext)]
		}
		v.Sizes.Result = p.Sizes.Result / p.Output.Ciphertexts * o.Ciphertexts
	case o.Positions != nil:
		o.Positions = o.Positions[:k:k]
	}
	v.OutputShape = []int{k}
	dv := *d
	dv.Mode, dv.Labels = mode, labels
	v.Decision = &dv
	v.Fingerprint = v.ComputeFingerprint()
	return &v, nil
}
