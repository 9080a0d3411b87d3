package bench

import (
	"sort"
	"time"

	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/he"
	"github.com/fheserve/fheserve/local"
	"github.com/fheserve/fheserve/plan"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
)

// opCosts are single-core costs of one operation at one level.
type opCosts struct {
	rot, hoisted, ptMul, constMul, ctMul, rescale, add time.Duration
}

// costMeter measures operation costs with throwaway keys for the plan's
// parameters, once per level.
type costMeter struct {
	params ckks.Parameters
	eval   *ckks.Evaluator
	ecd    *ckks.Encoder
	enc    *rlwe.Encryptor
	pk     *rlwe.PublicKey
	levels map[int]opCosts
}

func newCostMeter(p *plan.Plan) (*costMeter, error) {
	params, err := he.NewParameters(p.Params)
	if err != nil {
		return nil, err
	}
	kgen := rlwe.NewKeyGenerator(params)
	sk, pk := kgen.GenKeyPairNew()
	rlk := kgen.GenRelinearizationKeyNew(sk)
	rots := []int{1, 2, 3, 4, 5, 6, 7, 8}
	gks := kgen.GenGaloisKeysNew(params.GaloisElements(rots), sk)
	eval := ckks.NewEvaluator(params, rlwe.NewMemEvaluationKeySet(rlk, gks...))
	return &costMeter{params: params, eval: eval, ecd: ckks.NewEncoder(params), enc: rlwe.NewEncryptor(params, sk), pk: pk, levels: map[int]opCosts{}}, nil
}

// timeOp returns the median of reps runs of f.
func timeOp(reps int, f func()) time.Duration {
	d := make([]time.Duration, reps)
	for i := range d {
		t0 := time.Now()
		f()
		d[i] = time.Since(t0)
	}
	sort.Slice(d, func(a, b int) bool { return d[a] < d[b] })
	return d[reps/2]
}

func (m *costMeter) at(level int) opCosts {
	if c, ok := m.levels[level]; ok {
		return c
	}
	p := m.params
	vals := make([]float64, p.MaxSlots())
	for i := range vals {
		vals[i] = float64(i%7) / 7
	}
	pt := ckks.NewPlaintext(p, level)
	must(m.ecd.Encode(vals, pt))
	ct, err := m.enc.EncryptNew(pt)
	must(err)
	acc := ckks.NewCiphertext(p, 1, level)
	acc.Scale = ct.Scale.Mul(rlwe.NewScale(p.Q()[level]))
	tmp := ckks.NewCiphertext(p, 1, level)
	const reps = 9
	var c opCosts
	c.rot = timeOp(reps, func() { must(m.eval.Rotate(ct, 1, tmp)) })
	c.hoisted = timeOp(3, func() {
		_, err := m.eval.RotateHoistedNew(ct, []int{1, 2, 3, 4, 5, 6, 7, 8})
		must(err)
	}) / 8
	c.ptMul = timeOp(reps, func() { must(m.eval.MulThenAdd(ct, pt, acc)) })
	c.constMul = timeOp(reps, func() { must(m.eval.MulThenAdd(ct, 0.3712, acc)) })
	if level > 0 {
		c.ctMul = timeOp(reps, func() {
			_, err := m.eval.MulRelinNew(ct, ct)
			must(err)
		})
		c.rescale = timeOp(reps, func() {
			x := ct.CopyNew()
			x.Scale = x.Scale.Mul(rlwe.NewScale(p.Q()[level]))
			must(m.eval.Rescale(x, x))
		})
	}
	c.add = timeOp(reps, func() { must(m.eval.Add(ct, ct, tmp)) })
	m.levels[level] = c
	return c
}

func must(err error) {
	if err != nil {
		panic(err) // measurement on freshly generated, well-formed objects
	}
}

// Floor is the single-core cost of the runner's plan: its operation
// counts times per-operation costs measured now, step by step at each
// step's level, plus sanitization.
func Floor(r *local.Runner) (time.Duration, error) {
	p := r.Plan
	m, err := newCostMeter(p)
	if err != nil {
		return 0, err
	}
	var total time.Duration
	slots := p.Slots()
	for i := range r.Program.Steps {
		s := &r.Program.Steps[i]
		c := m.at(s.LevelIn)
		cts := time.Duration(1)
		if p.Packing == plan.Batch {
			cts = time.Duration(s.Length)
		}
		switch s.Kind {
		case plan.StepLinear:
			switch {
			case p.Packing == plan.Batch:
				total += time.Duration(s.M.NNZ())*c.constMul + cts*c.rescale
			case s.Coeffs:
				total += c.ptMul + c.rescale
			default:
				idx := s.DiagonalIndices()
				babies, giants := compiler.BSGS(idx, slots, s.LogBSGSRatio)
				total += time.Duration(len(babies))*c.hoisted + time.Duration(len(giants))*c.rot +
					time.Duration(len(idx))*c.ptMul + c.rescale
				out := m.at(s.Level)
				total += time.Duration(len(s.FoldRotations())) * (out.rot + out.add)
			}
		case plan.StepSquare, plan.StepMul:
			total += cts * (c.ctMul + c.rescale)
		case plan.StepMask:
			total += cts * (c.ptMul + c.rescale)
		case plan.StepAdd:
			total += cts * c.add
		case plan.StepPoly:
			muls := p.Ops.PolyCtMuls / max(p.Ops.PolyEvals, 1)
			total += cts * time.Duration(muls) * (c.ctMul + c.rescale)
		}
	}
	san, err := he.NewSanitizer(m.params, m.pk)
	if err != nil {
		return 0, err
	}
	ct := ckks.NewCiphertext(m.params, 1, 0)
	sanitize := timeOp(5, func() { must(san.Sanitize(ct, p.Precision.FloodStd)) })
	total += time.Duration(p.Output.Ciphertexts) * sanitize
	return total, nil
}
