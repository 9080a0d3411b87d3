package server

import (
	"fmt"
	"math"
	"slices"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/he"
	"github.com/fheserve/fheserve/plan"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
)

// A sealed model's weights reach the server only as ciphertexts under one
// user's public key (he/client.Seal): a Model prepared from them holds no
// plaintext weight, and serves that user alone. Its linear maps multiply
// ciphertexts: in slots, the hoisted baby-step rotations of the input by
// the sealed diagonals, accumulated in degree 2 per giant step and
// relinearized once per giant step (lazy relinearization), then rotated by
// the giant step, summed and rescaled once; in coefficients, one product
// by the sealed weight polynomial. Biases are sealed too, added after the
// rescale. Flooding and masking apply unchanged.

// sealedStep holds a linear step's sealed weights.
type sealedStep struct {
	giants []int                      // giant steps, ascending
	babies []int                      // the distinct non-zero baby steps
	diags  map[int][]*rlwe.Ciphertext // giant step -> diagonals, by baby step
	babyOf map[int][]int              // giant step -> baby steps
	coeff  *rlwe.Ciphertext           // coefficient steps: the weight polynomial
	bias   *rlwe.Ciphertext
	scale  rlwe.Scale // the weights' scale
}

// PrepareSealed prepares a sealed program for one user: prog must be
// stripped of its weights (he.StripWeights) and sealed must be the
// user's sealed weights as he.UnmarshalSealed read them for the plan's
// layout. The model evaluates only with that user's evaluation keys.
func PrepareSealed(p *plan.Plan, prog *plan.Program, sealed []*rlwe.Ciphertext) (*Model, error) {
	if !p.Sealed {
		return nil, fheserve.Errorf(fheserve.EINVALID, "the plan is not compiled for sealed weights")
	}
	if name := he.HasWeights(prog); name != "" {
		return nil, fheserve.Errorf(fheserve.EINVALID, "a sealed program holds no plaintext weights, but step %q does", name)
	}
	params, err := he.NewParameters(p.Params)
	if err != nil {
		return nil, err
	}
	items, err := he.SealedLayout(params, p, prog)
	if err != nil {
		return nil, err
	}
	if len(sealed) != len(items) {
		return nil, fheserve.Errorf(fheserve.EINVALID, "%d sealed ciphertexts, the plan seals %d", len(sealed), len(items))
	}
	steps := map[*plan.Step]*sealedStep{}
	for k, it := range items {
		if err := checkSealed(sealed[k], it, k); err != nil {
			return nil, err
		}
		s := &prog.Steps[it.Step]
		ss := steps[s]
		if ss == nil {
			ss = &sealedStep{diags: map[int][]*rlwe.Ciphertext{}, babyOf: map[int][]int{}}
			steps[s] = ss
		}
		ct := sealed[k]
		switch {
		case it.Bias:
			ss.bias = ct
		case s.Coeffs:
			ss.coeff, ss.scale = ct, it.Scale
		default:
			ss.scale = it.Scale
			if len(ss.diags[it.Giant]) == 0 {
				ss.giants = append(ss.giants, it.Giant)
			}
			ss.diags[it.Giant] = append(ss.diags[it.Giant], ct)
			ss.babyOf[it.Giant] = append(ss.babyOf[it.Giant], it.Baby)
			if it.Baby != 0 && !slices.Contains(ss.babies, it.Baby) {
				ss.babies = append(ss.babies, it.Baby)
			}
		}
	}
	return prepare(p, prog, steps, 0)
}

// checkSealed checks sealed ciphertext k against its layout item: the
// level was checked by the decoder; the scale and encoding say it was
// sealed for this plan.
func checkSealed(ct *rlwe.Ciphertext, it he.SealedItem, k int) error {
	switch {
	case ct == nil || ct.Degree() != 1 || !ct.IsNTT:
		return fheserve.Errorf(fheserve.EINVALID, "sealed ciphertext %d is not a degree-1 NTT ciphertext", k)
	case ct.Level() != it.Level:
		return fheserve.Errorf(fheserve.EINVALID, "sealed ciphertext %d is at level %d, the plan seals it at %d", k, ct.Level(), it.Level)
	case ct.IsBatched != it.Batched:
		return fheserve.Errorf(fheserve.EINVALID, "sealed ciphertext %d has the wrong encoding (slots vs coefficients)", k)
	}
	if r := ct.Scale.Float64() / it.Scale.Float64(); math.Abs(r-1) > 1e-9 {
		return fheserve.Errorf(fheserve.EINVALID, "sealed ciphertext %d has scale 2^%.3f, the plan seals it at 2^%.3f", k, math.Log2(ct.Scale.Float64()), math.Log2(it.Scale.Float64()))
	}
	return nil
}

// prepareSealed attaches a linear step's sealed weights in place of
// prepareLinear's plaintexts.
func (m *Model) prepareSealed(s *plan.Step, st *prepared) error {
	ss := m.sealed[s]
	if ss == nil || ss.bias == nil {
		return fheserve.Errorf(fheserve.EINTERNAL, "step %q has no sealed weights", s.Name)
	}
	st.sealed = ss
	return nil
}

// linearSealed evaluates a linear step on sealed weights.
func (e *Evaluator) linearSealed(s *plan.Step, st *prepared, x *rlwe.Ciphertext) (*rlwe.Ciphertext, error) {
	ss := st.sealed
	if ss.coeff != nil {
		out, err := e.eval.MulRelinNew(x, ss.coeff)
		if err != nil {
			return nil, err
		}
		if err := e.rescaleTo(out, s.Level); err != nil {
			return nil, err
		}
		out.Scale = st.target
		return out, e.addSealedBias(out, ss)
	}
	rot, err := e.eval.RotateHoistedNew(x, ss.babies)
	if err != nil {
		return nil, err
	}
	rot[0] = x
	out, err := e.parallelSum(len(ss.giants), func(k int) (*rlwe.Ciphertext, error) {
		return e.giantStep(x, ss, ss.giants[k], rot)
	})
	if err != nil {
		return nil, err
	}
	// With headroom, the first rescale: its rounding, divided by the
	// second prime, is far below the flood; finishSlots re-randomizes a
	// masked result before the last.
	if err := e.rescaleTo(out, s.Level+1); err != nil {
		return nil, err
	}
	out, err = e.finishSlots(s, st, out)
	if err != nil {
		return nil, err
	}
	return out, e.addSealedBias(out, ss)
}

// giantStep returns rot(sum over its baby steps b of rot(x, b) * the
// sealed diagonal, giant): the products accumulate in degree 2 and are
// relinearized once.
func (e *Evaluator) giantStep(x *rlwe.Ciphertext, ss *sealedStep, giant int, rot map[int]*rlwe.Ciphertext) (*rlwe.Ciphertext, error) {
	acc := ckks.NewCiphertext(e.m.params, 2, x.Level())
	acc.MetaData = x.MetaData.CopyNew()
	acc.Scale = x.Scale.Mul(ss.scale)
	for t, b := range ss.babyOf[giant] {
		d := ss.diags[giant][t]
		if err := e.eval.MulThenAdd(rot[b], d, acc); err != nil {
			return nil, fmt.Errorf("sealed product: %w", err)
		}
	}
	out := ckks.NewCiphertext(e.m.params, 1, x.Level())
	if err := e.eval.Relinearize(acc, out); err != nil {
		return nil, err
	}
	if giant == 0 {
		return out, nil
	}
	return e.eval.RotateNew(out, giant)
}

// addSealedBias adds a step's sealed bias to its rescaled result.
func (e *Evaluator) addSealedBias(out *rlwe.Ciphertext, ss *sealedStep) error {
	b := ss.bias
	if b.Scale.Cmp(out.Scale) != 0 {
		b = b.CopyNew()
		b.Scale = out.Scale // equal within the checked 1e-9
	}
	return e.eval.Add(out, b, out)
}

// rescaleTo rescales ct down to level.
func (e *Evaluator) rescaleTo(ct *rlwe.Ciphertext, level int) error {
	for ct.Level() > level {
		if err := e.eval.Rescale(ct, ct); err != nil {
			return err
		}
	}
	return nil
}
