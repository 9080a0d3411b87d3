package he

import (
	"bytes"
	"io"
	"math"
	"slices"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/plan"
	"github.com/tuneinsight/lattigo/v6/circuits/common/lintrans"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
)

// Sealed weights travel as a batch of full ciphertexts (kind 1): a
// public-key encryption has no seed to send instead of c1, so each weight
// ciphertext costs both polynomials. What a sealed batch must hold is known
// before a byte arrives: the plan fixes how many ciphertexts there are and
// each one's level (he/seal.Layout), so the decoder checks the count and
// every level against that list and allocates nothing beyond it.

// MarshalPublicKey returns k's public key alone in the MarshalEvalKeys
// format (no relinearization or Galois key): what a server hands an owner
// to seal for, and the bytes fheserve.PublicKeyFingerprint is taken over
// in the audit log. The server and the user's client both encode it here,
// so that their fingerprints are of the same bytes.
func MarshalPublicKey(params ckks.Parameters, k *EvalKeys) ([]byte, error) {
	if k == nil || k.PublicSeed == nil {
		return nil, fheserve.Errorf(fheserve.EINVALID, "no public key with its seed to encode")
	}
	var buf bytes.Buffer
	if err := MarshalEvalKeys(&buf, params, NewEvalKeys(params, k.Public, *k.PublicSeed, nil, nil)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// MarshalSealed writes a model's sealed weights, in the order of the
// plan's sealed layout.
func MarshalSealed(w io.Writer, params ckks.Parameters, cts []*rlwe.Ciphertext) error {
	return marshalCiphertexts(w, params, cts, kindFull)
}

// SealedSize returns the exact encoded size of sealed weights whose k-th
// ciphertext is at levels[k], or 0 if a level is outside the parameters.
func SealedSize(params ckks.Parameters, levels []int) int {
	size := batchHeaderLen
	for _, l := range levels {
		one := CiphertextsSize(params, l, 1, false)
		if one == 0 {
			return 0
		}
		size += one - batchHeaderLen
	}
	return size
}

// UnmarshalSealed reads sealed weights written by MarshalSealed for params:
// exactly len(levels) ciphertexts, the k-th at levels[k], every
// coefficient below its modulus. levels comes from the plan, never from
// the bytes: the decoder allocates at most those ciphertexts.
func UnmarshalSealed(r io.Reader, params ckks.Parameters, levels []int) ([]*rlwe.Ciphertext, error) {
	if err := CheckParams(params); err != nil {
		return nil, err
	}
	if len(levels) == 0 {
		return nil, fheserve.Errorf(fheserve.EINVALID, "the plan seals no weights")
	}
	d := &decoder{r: r, what: "sealed weights"}
	kind, _, count, err := readBatchHeader(d, params, Limits{MaxCount: len(levels)}, false)
	switch {
	case err != nil:
		return nil, err
	case kind != kindFull:
		return nil, d.invalid("not full ciphertexts (kind %d): sealed weights are public-key encryptions, with no seed", kind)
	case count != len(levels):
		return nil, d.invalid("%d ciphertexts, the plan seals %d", count, len(levels))
	}
	cts := make([]*rlwe.Ciphertext, 0, min(count, 64))
	for k, level := range levels {
		if level < 0 || level > params.MaxLevel() {
			return nil, fheserve.Errorf(fheserve.EINTERNAL, "sealed layout level %d is outside the parameters", level)
		}
		ct, err := readRecordHeader(d, params, level, level, k)
		if err != nil {
			return nil, err
		}
		if err := readInputRecord(d, params, ct, nil); err != nil {
			return nil, err
		}
		cts = append(cts, ct)
	}
	if err := d.end(); err != nil {
		return nil, err
	}
	return cts, nil
}

// SealedItem is one ciphertext of a sealed model's weights: what it
// encrypts, at which level and scale. The owner's client encrypts each
// item there; the server checks each ciphertext against it.
type SealedItem struct {
	Step int // index of the linear step in the program
	// Giant and Baby (latency, slots): the item is the diagonal
	// Giant+Baby, rotated by -Giant (the baby-step giant-step
	// pre-rotation), multiplied by the input rotated by Baby.
	Giant, Baby int
	Bias        bool // the step's bias (zeros when it has none)
	Level       int
	Scale       rlwe.Scale
	Batched     bool // slots (false: coefficients)
}

// SealedLayout lists, in order, the ciphertexts of a sealed program's
// weights: per linear step, its diagonals (giant steps ascending, baby
// steps ascending within each) or its weight polynomial, then its bias.
// Every step gets a bias ciphertext, so the sealed weights do not say
// which steps have one. The layout is a function of the plan and the
// program's structure (sparsity patterns, positions, levels), not of its
// weights: the owner's client and the server compute the same one.
func SealedLayout(params ckks.Parameters, p *plan.Plan, prog *plan.Program) ([]SealedItem, error) {
	if p.Packing != plan.Latency {
		return nil, fheserve.Errorf(fheserve.EUNSUPPORTED, "sealed weights need latency packing: batch packing would need one ciphertext per weight")
	}
	pt, target := SealedScales(params, p, prog)
	slots := params.MaxSlots()
	var items []SealedItem
	for i := range prog.Steps {
		s := &prog.Steps[i]
		if s.Kind != plan.StepLinear {
			continue
		}
		if s.M == nil {
			return nil, fheserve.Errorf(fheserve.EINVALID, "linear step %q has no matrix structure", s.Name)
		}
		if s.Tile > 0 {
			return nil, fheserve.Errorf(fheserve.EUNSUPPORTED, "linear step %q is tiled: sealed plans hold one sample per call", s.Name)
		}
		if err := s.CheckFoldWidth(); err != nil {
			return nil, fheserve.Errorf(fheserve.EINVALID, "%v", err)
		}
		if s.Coeffs {
			items = append(items, SealedItem{Step: i, Level: s.LevelIn, Scale: pt[i]})
		} else {
			index, giants := SealedBSGS(s, slots)
			for _, j := range giants {
				for _, b := range index[j] {
					items = append(items, SealedItem{Step: i, Giant: j, Baby: b, Level: s.LevelIn, Scale: pt[i], Batched: true})
				}
			}
		}
		items = append(items, SealedItem{Step: i, Bias: true, Level: s.Level, Scale: target[i], Batched: !s.Coeffs})
	}
	return items, nil
}

// SealedLevels returns the level of each item, for UnmarshalSealed and
// SealedSize.
func SealedLevels(items []SealedItem) []int {
	levels := make([]int, len(items))
	for k, it := range items {
		levels[k] = it.Level
	}
	return levels
}

// SealedBSGS returns the baby-step giant-step split of a latency linear
// step's diagonals, computed from its sparsity pattern alone: for each
// giant step, the sorted baby steps, and the sorted giant steps. It is the
// split Lattigo's linear transformations use (server.BSGS), so the keys
// the plan lists serve it.
func SealedBSGS(s *plan.Step, slots int) (index map[int][]int, giants []int) {
	idx := s.DiagonalIndices()
	n1 := lintrans.FindBestBSGSRatio(idx, slots, s.LogBSGSRatio)
	index, giants, _ = lintrans.BSGSIndex(idx, slots, n1)
	return index, giants
}

// SealedScales returns, per program step, the scale of a linear step's
// sealed weights (pt) and of its result (target), on server.Prepare's
// schedule: the product of the input (its scale) by the weights, rescaled
// by the primes of the levels the step consumes, has the target scale.
func SealedScales(params ckks.Parameters, p *plan.Plan, prog *plan.Program) (pt, target []rlwe.Scale) {
	def := params.DefaultScale()
	outScale := rlwe.NewScale(math.Exp2(float64(p.Output.LogScale)))
	last := prog.LastCompute()
	scales := make([]rlwe.Scale, len(prog.Steps)+1)
	scales[0] = def
	pt = make([]rlwe.Scale, len(prog.Steps))
	target = make([]rlwe.Scale, len(prog.Steps))
	for i := range prog.Steps {
		s := &prog.Steps[i]
		t := def
		if s.FeedsMul {
			t = rlwe.NewScale(math.Sqrt(float64(params.Q()[s.Level]) * def.Float64()))
		} else if i+1 >= last {
			t = outScale
		}
		in := scales[s.In[0]]
		qIn := rlwe.NewScale(params.Q()[s.LevelIn])
		switch s.Kind {
		case plan.StepLinear:
			// The weights' scale holds every prime the step rescales by:
			// one, or two for a sealed map with headroom.
			qs := qIn
			for l := s.Level + 1; l < s.LevelIn; l++ {
				qs = qs.Mul(rlwe.NewScale(params.Q()[l]))
			}
			pt[i] = qs.Mul(t).Div(in)
			scales[i+1] = t
		case plan.StepSquare:
			scales[i+1] = in.Mul(in).Div(qIn)
		case plan.StepMul:
			scales[i+1] = in.Mul(scales[s.In[1]]).Div(qIn)
		case plan.StepPoly:
			scales[i+1] = t
		default:
			scales[i+1] = in
		}
		target[i] = t
	}
	return pt, target
}

// StripWeights returns the program a sealed model's server holds: the
// same steps and structure with every linear step's weight values and
// bias removed (the sparsity pattern stays: it is layout, and the plan's
// rotations reveal it anyway).
func StripWeights(prog *plan.Program) *plan.Program {
	out := &plan.Program{Packing: prog.Packing, Output: prog.Output, Steps: slices.Clone(prog.Steps)}
	for i := range out.Steps {
		s := &out.Steps[i]
		if s.Kind != plan.StepLinear {
			continue
		}
		s.Bias = nil
		if s.M != nil {
			m := *s.M
			m.Val = nil
			m.RowPtr = slices.Clone(m.RowPtr)
			m.ColIdx = slices.Clone(m.ColIdx)
			s.M = &m
		}
	}
	return out
}

// HasWeights reports the first linear step of prog that holds a weight or
// a bias value, or "" when it holds none.
func HasWeights(prog *plan.Program) string {
	for i := range prog.Steps {
		s := &prog.Steps[i]
		if s.Kind == plan.StepLinear && (s.Bias != nil || (s.M != nil && s.M.Val != nil)) {
			return s.Name
		}
	}
	return ""
}
