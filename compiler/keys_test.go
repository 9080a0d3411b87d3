package compiler

import (
	"slices"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/he"
	"github.com/fheserve/fheserve/he/server"
	"github.com/fheserve/fheserve/plan"
)

// keyUses re-derives, from the program's steps, the highest level at which
// the server switches keys with each Galois element (baby and giant steps
// of the evaluator's BSGS, or of its Horner evaluation, at a step's input
// level, folds after its rescale)
// and with the relinearization key (-1: never).
func keyUses(t *testing.T, p *plan.Plan, prog *plan.Program) (map[uint64]int, int) {
	t.Helper()
	params, err := he.NewParameters(p.Params)
	if err != nil {
		t.Fatal(err)
	}
	gal, relin := map[uint64]int{}, -1
	use := func(level int, rots ...int) {
		for _, r := range rots {
			g := params.GaloisElement(r)
			if cur, ok := gal[g]; !ok || level > cur {
				gal[g] = level
			}
		}
	}
	for i := range prog.Steps {
		s := &prog.Steps[i]
		switch {
		case s.Kind == plan.StepLinear && p.Packing == plan.Latency && !s.Coeffs && s.Horner > 0:
			use(s.LevelIn, server.Horner(s.DiagonalIndices(), p.Slots(), s.Horner, s.HornerSeq).Rotations(p.Slots())...)
			use(s.LevelIn-1, s.FoldRotations()...)
		case s.Kind == plan.StepLinear && p.Packing == plan.Latency && !s.Coeffs:
			babies, giants := server.BSGS(s.DiagonalIndices(), p.Slots(), s.LogBSGSRatio)
			use(s.LevelIn, slices.Concat(babies, giants)...)
			use(s.LevelIn-1, s.FoldRotations()...)
		case s.Kind == plan.StepSquare || s.Kind == plan.StepMul || (s.Kind == plan.StepPoly && len(s.Poly) > 2):
			relin = max(relin, s.LevelIn)
		}
	}
	return gal, relin
}

// TestKeyLevels checks, in both key choices, that each key of the plan is
// at exactly the highest level at which the program uses it, that the
// plan's key bytes are the per-level sizes and below the top-level ones,
// that small keys are no larger than fast ones, and that the small choice
// evaluates linear maps by Horner giant steps, the fast one never.
func TestKeyLevels(t *testing.T) {
	g, calib := mustBundled(t, "cnn")
	bytes := map[string]int{}
	other := map[string]*plan.OtherKeys{}
	for _, keys := range []string{KeysFast, KeysSmall} {
		res, err := Compile(g, Options{Calibration: calib, Keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		p := res.Plan
		gal, relin := keyUses(t, p, res.Program)
		levels := p.GaloisLevels()
		if len(gal) != len(p.GaloisElements) {
			t.Fatalf("%s: the program uses %d Galois elements, the plan lists %d", keys, len(gal), len(p.GaloisElements))
		}
		below := 0
		for i, el := range p.GaloisElements {
			if levels[i] != gal[el] {
				t.Errorf("%s: Galois element %d at level %d, the program uses it up to level %d", keys, el, levels[i], gal[el])
			}
			if levels[i] < p.MaxLevel() {
				below++
			}
		}
		if !p.Relin || p.RelinLevel() != relin {
			t.Errorf("%s: relinearization key at level %d (relin %v), the program relinearizes up to level %d", keys, p.RelinLevel(), p.Relin, relin)
		}
		if below == 0 {
			t.Errorf("%s: every key at the top level", keys)
		}
		params, err := he.NewParameters(p.Params)
		if err != nil {
			t.Fatal(err)
		}
		if want := he.EvalKeysSize(params, he.PlanKeys(p)); p.Sizes.EvalKeys != want {
			t.Errorf("%s: plan says %d key bytes, the key set is %d", keys, p.Sizes.EvalKeys, want)
		}
		if top := he.EvalKeysSize(params, he.TopLevelKeys(params, p.GaloisElements, p.Relin)); p.Sizes.EvalKeys >= top {
			t.Errorf("%s: %d key bytes, not below the %d of top-level keys", keys, p.Sizes.EvalKeys, top)
		}
		bytes[keys] = p.Sizes.EvalKeys
		other[keys] = p.OtherKeys
		if p.OtherKeys == nil || p.OtherKeys.Keys == keys {
			t.Fatalf("%s: the plan reports no other key choice: %+v", keys, p.OtherKeys)
		}
		if p.OtherKeys.Keys == KeysFast && p.OtherKeys.Rotations > p.Ops.Rotations {
			t.Errorf("%s: %d rotations, the fast choice %d", keys, p.Ops.Rotations, p.OtherKeys.Rotations)
		}
		horner := 0
		for i, s := range p.Steps {
			if s.Horner != res.Program.Steps[i].Horner || s.HornerSeq != res.Program.Steps[i].HornerSeq {
				t.Errorf("%s: step %d: the plan says Horner %d/%v, the program %d/%v", keys, i, s.Horner, s.HornerSeq, res.Program.Steps[i].Horner, res.Program.Steps[i].HornerSeq)
			}
			if s.Horner > 0 {
				horner++
			}
		}
		if (horner > 0) != (keys == KeysSmall) {
			t.Errorf("%s: %d linear maps by Horner giant steps", keys, horner)
		}
	}
	// Each plan's report of the other choice is that choice's plan.
	if other[KeysSmall].EvalKeys != bytes[KeysFast] || other[KeysFast].EvalKeys != bytes[KeysSmall] {
		t.Errorf("the small plan reports %d fast key bytes (fast plan: %d), the fast plan %d small ones (small plan: %d)",
			other[KeysSmall].EvalKeys, bytes[KeysFast], other[KeysFast].EvalKeys, bytes[KeysSmall])
	}
	if bytes[KeysSmall] > bytes[KeysFast] {
		t.Errorf("small keys %d bytes, more than fast keys' %d", bytes[KeysSmall], bytes[KeysFast])
	}
	if _, err := Compile(g, Options{Calibration: calib, Keys: "tiny"}); fheserve.ErrorCode(err) != fheserve.EINVALID {
		t.Errorf("unknown key choice: %v, want %s", err, fheserve.EINVALID)
	}
}
