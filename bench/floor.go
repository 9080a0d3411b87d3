package bench

import (
	"sort"
	"time"

	"github.com/fheserve/fheserve/he"
	"github.com/fheserve/fheserve/he/client"
	"github.com/fheserve/fheserve/he/server"
	"github.com/fheserve/fheserve/local"
	"github.com/fheserve/fheserve/plan"
)

// opCosts are single-core costs of one operation at one level.
type opCosts struct {
	rot, hoisted, ptMul, constMul, ctMul, rescale, add time.Duration
}

// costMeter measures operation costs with throwaway keys for the plan's
// parameters, once per level.
type costMeter struct {
	kernels *server.Kernels
	levels  map[int]opCosts
}

func newCostMeter(p *plan.Plan) (*costMeter, error) {
	params, err := he.NewParameters(p.Params)
	if err != nil {
		return nil, err
	}
	_, keys, err := client.GenerateKeys(params, he.TopLevelKeys(params, server.KernelGaloisElements(params), true))
	if err != nil {
		return nil, err
	}
	k, err := server.NewKernels(params, keys)
	if err != nil {
		return nil, err
	}
	return &costMeter{kernels: k, levels: map[int]opCosts{}}, nil
}

// timeOp returns the median of reps runs of f.
func timeOp(reps int, f func() error) time.Duration {
	d := make([]time.Duration, reps)
	for i := range d {
		t0 := time.Now()
		must(f())
		d[i] = time.Since(t0)
	}
	sort.Slice(d, func(a, b int) bool { return d[a] < d[b] })
	return d[reps/2]
}

func (m *costMeter) at(level int) opCosts {
	if c, ok := m.levels[level]; ok {
		return c
	}
	ops, err := m.kernels.At(level)
	must(err)
	const reps = 9
	var c opCosts
	c.rot = timeOp(reps, ops.Rotate)
	c.hoisted = timeOp(3, ops.RotateHoisted8) / 8
	c.ptMul = timeOp(reps, ops.MulPlaintextAdd)
	c.constMul = timeOp(reps, ops.MulConstAdd)
	if level > 0 {
		c.ctMul = timeOp(reps, ops.MulRelin)
		c.rescale = timeOp(reps, ops.Rescale)
	}
	c.add = timeOp(reps, ops.Add)
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
				if s.Horner > 0 {
					h := server.Horner(idx, slots, s.Horner, s.HornerSeq)
					total += time.Duration(h.KeySwitches())*c.rot + time.Duration(len(idx))*c.ptMul + c.rescale
				} else {
					babies, giants := server.BSGS(idx, slots, s.LogBSGSRatio)
					total += time.Duration(len(babies))*c.hoisted + time.Duration(len(giants))*c.rot +
						time.Duration(len(idx))*c.ptMul + c.rescale
				}
				total += foldTime(m.at(s.Level), s.FoldStages())
			}
		case plan.StepSquare, plan.StepMul:
			total += cts * (c.ctMul + c.rescale)
		case plan.StepMask:
			total += cts * (c.ptMul + c.rescale)
		case plan.StepAdd:
			total += cts * c.add
		case plan.StepSum:
			if p.Packing == plan.Batch {
				total += time.Duration(s.M.NNZ()-s.M.Rows) * c.add
			} else {
				for _, stage := range s.Stages {
					total += time.Duration(len(stage)-1) * (c.hoisted + c.add)
				}
			}
		case plan.StepPoly:
			muls := p.Ops.PolyCtMuls / max(p.Ops.PolyEvals, 1)
			total += cts * time.Duration(muls) * (c.ctMul + c.rescale)
		}
	}
	sanitize := timeOp(5, m.kernels.Sanitize(p.Precision.FloodStd))
	total += time.Duration(p.Output.Ciphertexts) * sanitize
	return total, nil
}

// foldTime is the cost of a map's fold stages at the level of its
// output: a rotation a stage costs a rotation; a wider stage its
// decomposition and ModDown once (a rotation less a hoisted one) and a
// hoisted rotation for each.
func foldTime(c opCosts, stages [][]int) time.Duration {
	var t time.Duration
	for _, stage := range stages {
		n := time.Duration(len(stage))
		if n == 1 {
			t += c.rot + c.add
		} else {
			t += c.rot - c.hoisted + n*(c.hoisted+c.add)
		}
	}
	return t
}
