package compiler

import (
	"github.com/fheserve/fheserve/he"
	"github.com/fheserve/fheserve/plan"
)

// sealCounts marks a sealed plan and moves its linear maps' products from
// plaintext to sealed (ciphertext x ciphertext) products: one per
// diagonal or weight polynomial, with a relinearization per giant step
// (per coefficient product). Sealed products need the relinearization key.
func (c *compilation) sealCounts(p *plan.Plan) {
	if !c.opts.Sealed {
		return
	}
	p.Sealed = true
	p.Relin = true
	ops := &p.Ops
	for i := range c.prog.Steps {
		s := &c.prog.Steps[i]
		switch {
		case s.Kind != plan.StepLinear:
		case s.Coeffs:
			ops.CoeffMuls--
			ops.SealedMuls++
			ops.SealedRelins++
		default:
			index, giants := he.SealedBSGS(s, p.Slots())
			for _, j := range giants {
				ops.PtMuls -= len(index[j])
				ops.SealedMuls += len(index[j])
			}
			ops.SealedRelins += len(giants)
		}
		if s.Kind == plan.StepLinear {
			ops.Additions++ // the sealed bias
			ops.Rescales += s.LevelIn - s.Level - 1
			if p.KeyLevels != nil {
				// Sealed products relinearize at the step's input level.
				p.KeyLevels.Relin = max(p.KeyLevels.Relin, s.LevelIn)
			}
		}
	}
}

// stepDepth is the number of levels step s consumes: a sealed linear map
// with headroom consumes two.
func (c *compilation) stepDepth(s *plan.Step) int {
	d := stepDepth(s)
	if c.opts.Sealed && c.opts.SealedHeadroom && s.Kind == plan.StepLinear {
		d++
	}
	return d
}
