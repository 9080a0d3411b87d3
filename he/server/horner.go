package server

import (
	"math/bits"
	"slices"
	"sort"
	"sync"

	"github.com/fheserve/fheserve/plan"
	"github.com/tuneinsight/lattigo/v6/circuits/common/lintrans"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
	"github.com/tuneinsight/lattigo/v6/utils"
)

// A key-frugal linear map in slots (plan.Step.Horner = n1, a power of
// two): diagonal d = g*n1 + b, with g a signed giant index and b in
// [0, n1), and
//
//	M x = sum_g rot_{g*n1}( v_g ),  v_g = sum_b rot_{-g*n1}(diag_d) * rot_b(x),
//
// the giant-step sums evaluated by Horner's rule,
//
//	rot_n1( ... rot_n1( rot_n1(v_K) + v_{K-1} ) ... ) + v_0
//
// (and the same with -n1 for the negative giant indices), so that the
// giant steps need the keys n1 and -n1 only, whatever their number. The
// baby steps rot_b(x) are full key switches, either one after another by
// rot_1 (plan.Step.HornerSeq) or each from a smaller one by a power of
// two. Every product is in the Q basis (ciphertext times plaintext) at
// the step's input level; the sum is rescaled once, as the hoisted
// baby-step giant-step method's is.

// HornerShape is how a map with the given diagonals is evaluated by
// Horner giant steps of n1 slots: what the compiler counts and lists as
// keys, and what the server runs.
type HornerShape struct {
	N1  int
	Seq bool
	// Babies are the baby-step rotations the diagonals read (b > 0).
	Babies []int
	// BabyFrom and BabyBy describe the baby-step key switches in order:
	// switch k computes rot_{BabyFrom[k]+BabyBy[k]}(x) from
	// rot_{BabyFrom[k]}(x) with the key BabyBy[k].
	BabyFrom, BabyBy []int
	// Pos and Neg are the largest positive and negative giant indices
	// (in units of n1): Pos rotations by n1 and Neg by -n1.
	Pos, Neg int
	// cut: giant indices (diagonal / n1 modulo slots/n1) above cut are
	// negative.
	cut int
}

// KeySwitches is the number of rotations the map costs.
func (h HornerShape) KeySwitches() int { return len(h.BabyBy) + h.Pos + h.Neg }

// Rotations returns the distinct rotations whose keys the map needs,
// sorted; -n1 is given modulo slots.
func (h HornerShape) Rotations(slots int) []int {
	set := map[int]bool{}
	for _, r := range h.BabyBy {
		set[r] = true
	}
	if h.Pos > 0 {
		set[h.N1%slots] = true
	}
	if h.Neg > 0 {
		set[(slots-h.N1)%slots] = true
	}
	delete(set, 0)
	out := make([]int, 0, len(set))
	for r := range set {
		out = append(out, r)
	}
	sort.Ints(out)
	return out
}

// giant returns the signed giant index and the baby step of diagonal d.
func (h HornerShape) giant(d, slots int) (g, b int) {
	d &= slots - 1
	g, b = d/h.N1, d%h.N1
	if g > h.cut {
		g -= slots / h.N1
	}
	return g, b
}

// Horner returns the shape of the map with diagonals diags (any sign,
// taken modulo slots) evaluated with giant steps of n1 slots (a power of
// two, at most slots), the baby steps sequential from rot_1 or from powers
// of two. The split between positive and negative giant indices takes the
// fewest giant rotations (ties: the fewest negative ones).
func Horner(diags []int, slots, n1 int, seq bool) HornerShape {
	h := HornerShape{N1: n1, Seq: seq}
	present := make([]bool, slots/n1)
	babies := map[int]bool{}
	for _, d := range diags {
		d &= slots - 1
		present[d/n1] = true
		if b := d % n1; b != 0 {
			babies[b] = true
		}
	}
	h.Pos, h.Neg, h.cut = hornerCut(present)
	for b := range babies {
		h.Babies = append(h.Babies, b)
	}
	sort.Ints(h.Babies)
	if len(h.Babies) == 0 {
		return h
	}
	h.BabyFrom, h.BabyBy = babySteps(h.Babies, seq)
	return h
}

// hornerCut returns the split of the giant indices 0..m-1 (m =
// len(present), present[g]: some diagonal has giant index g) that takes
// the fewest giant rotations (ties: the fewest negative ones): indices
// 0..cut positive (pos = the largest present one), cut+1..m-1 negative
// (neg = m minus the smallest present one).
func hornerCut(present []bool) (pos, neg, cut int) {
	m := len(present)
	// below[c]: the largest present index in 1..c (0: none).
	below := make([]int, m)
	for g := 1; g < m; g++ {
		below[g] = below[g-1]
		if present[g] {
			below[g] = g
		}
	}
	first := false
	for c := m - 1; c >= 0; c-- {
		n := 0
		if c+1 < m {
			if !present[c+1] {
				continue // the same split as cut c+1
			}
			n = m - (c + 1)
		}
		p := below[c]
		if !first || p+n < pos+neg || (p+n == pos+neg && n < neg) {
			first, pos, neg, cut = true, p, n, c
		}
	}
	return pos, neg, cut
}

// babySteps returns the baby-step chain that yields rot_b(x) for every b
// in babies (sorted, non-empty): rot_to = rot_by[k](rot_from[k]), to =
// from[k]+by[k]. Sequential (seq): every b from b-1 by 1, up to the
// largest baby. Otherwise each b from b minus its highest bit: the
// closure of the babies under removing the highest bit, in increasing
// order.
func babySteps(babies []int, seq bool) (from, by []int) {
	if seq {
		for b := 1; b <= babies[len(babies)-1]; b++ {
			from = append(from, b-1)
			by = append(by, 1)
		}
		return from, by
	}
	closure := map[int]bool{}
	for _, b := range babies {
		for x := b; x > 0; x -= highBit(x) {
			closure[x] = true
		}
	}
	all := make([]int, 0, len(closure))
	for x := range closure {
		all = append(all, x)
	}
	sort.Ints(all)
	for _, x := range all {
		hb := highBit(x)
		from = append(from, x-hb)
		by = append(by, hb)
	}
	return from, by
}

func highBit(x int) int { return 1 << (bits.Len(uint(x)) - 1) }

// hornerTerm is one product of a giant-step sum: the pre-rotated
// diagonal times rot_b(x). The diagonal is encoded in pt, or kept in v
// for each call to encode (an on-demand map).
type hornerTerm struct {
	b  int
	pt *rlwe.Plaintext
	v  []float64
}

// hornerMap is a linear map prepared for Horner evaluation.
type hornerMap struct {
	shape HornerShape
	// pos[g] (g = 0..Pos) and neg[g] (g = 1..Neg, index g) hold the
	// terms of v_g and v_{-g}.
	pos, neg [][]hornerTerm
}

// prepareHorner encodes the full-slot diagonals of step s, pre-rotated by
// their giant steps, at the step's input level and st.ptScale.
func (m *Model) prepareHorner(ecd *ckks.Encoder, s *plan.Step, st *prepared, full lintrans.Diagonals[float64]) error {
	params := m.params
	slots := params.MaxSlots()
	diags := make([]int, 0, len(full))
	for d := range full {
		diags = append(diags, d)
	}
	sort.Ints(diags)
	h := Horner(diags, slots, s.Horner, s.HornerSeq)
	hm := &hornerMap{shape: h, pos: make([][]hornerTerm, h.Pos+1), neg: make([][]hornerTerm, h.Neg+1)}
	buf := make([]float64, slots)
	for _, d := range diags {
		g, b := h.giant(d, slots)
		utils.RotateSliceAllocFree(full[d], -g*h.N1, buf)
		t := hornerTerm{b: b}
		if st.onDemand {
			t.v = slices.Clone(buf)
		} else {
			t.pt = ckks.NewPlaintext(params, s.LevelIn)
			t.pt.Scale = st.ptScale
			if err := ecd.Encode(buf, t.pt); err != nil {
				return err
			}
		}
		if g >= 0 {
			hm.pos[g] = append(hm.pos[g], t)
		} else {
			hm.neg[-g] = append(hm.neg[-g], t)
		}
	}
	st.horner = hm
	return nil
}

// hornerRun is one evaluation of a hornerMap on a ciphertext x: the
// baby-step rotations of x and the state the giant-step chains share.
type hornerRun struct {
	e *Evaluator
	h HornerShape
	// rot[b] is rot_b(x) once done[b] is closed (nil: its chain failed).
	rot  []*rlwe.Ciphertext
	done []chan struct{}
	// babyErr is the baby-step chain's error, read once done[b] of a
	// missing rot[b] is closed.
	babyErr error
	scale   rlwe.Scale
	ptScale rlwe.Scale
	level   int
}

// newHornerRun returns a run on x of a map of shape h with diagonals
// encoded at scale ptScale, with rot_0(x) = x done.
func newHornerRun(e *Evaluator, h HornerShape, x *rlwe.Ciphertext, ptScale rlwe.Scale) *hornerRun {
	top := 0
	for k, from := range h.BabyFrom {
		top = max(top, from+h.BabyBy[k])
	}
	r := &hornerRun{e: e, h: h, rot: make([]*rlwe.Ciphertext, top+1), done: make([]chan struct{}, top+1),
		scale: x.Scale.Mul(ptScale), ptScale: ptScale, level: x.Level()}
	for b := range r.done {
		r.done[b] = make(chan struct{})
	}
	r.rot[0] = x
	close(r.done[0])
	return r
}

// babies runs the baby-step chain, closing done[b] as each rot[b] is
// ready; on an error it records babyErr and closes the rest with rot nil.
func (r *hornerRun) babies() {
	closed := make([]bool, len(r.done))
	closed[0] = true
	defer func() {
		for b, c := range closed {
			if !c {
				close(r.done[b])
			}
		}
	}()
	for k, from := range r.h.BabyFrom {
		to := from + r.h.BabyBy[k]
		ct, err := r.e.eval.RotateNew(r.rot[from], r.h.BabyBy[k])
		if err != nil {
			r.babyErr = err
			return
		}
		r.rot[to] = ct
		close(r.done[to])
		closed[to] = true
	}
}

// sum returns the giant-step sum of terms, each waiting for its baby
// step (nil, nil: no terms).
func (r *hornerRun) sum(terms []hornerTerm) (*rlwe.Ciphertext, error) {
	if len(terms) == 0 {
		return nil, nil
	}
	acc := ckks.NewCiphertext(r.e.m.params, 1, r.level)
	acc.Scale = r.scale
	var buf *rlwe.Plaintext // an on-demand map's diagonals, encoded in turn
	for _, t := range terms {
		pt := t.pt
		if pt == nil {
			if buf == nil {
				buf = ckks.NewPlaintext(r.e.m.params, r.level)
				buf.Scale = r.ptScale
			}
			if err := r.e.m.ecd.Encode(t.v, buf); err != nil {
				return nil, err
			}
			pt = buf
		}
		<-r.done[t.b]
		if r.rot[t.b] == nil {
			return nil, r.babyErr
		}
		if err := r.e.eval.MulThenAdd(r.rot[t.b], pt, acc); err != nil {
			return nil, err
		}
	}
	return acc, nil
}

// chain returns sum_g rot_{g*by}(v_g) over groups g = 0..len-1 by
// Horner's rule: len-1 rotations by by.
func (r *hornerRun) chain(groups [][]hornerTerm, by int) (*rlwe.Ciphertext, error) {
	var acc *rlwe.Ciphertext
	for g := len(groups) - 1; g >= 0; g-- {
		if acc != nil {
			rt, err := r.e.eval.RotateNew(acc, by)
			if err != nil {
				return nil, err
			}
			acc = rt
		}
		v, err := r.sum(groups[g])
		switch {
		case err != nil:
			return nil, err
		case v == nil:
		case acc == nil:
			acc = v
		default:
			if err := r.e.eval.Add(acc, v, acc); err != nil {
				return nil, err
			}
		}
	}
	return acc, nil
}

// negChain returns sum_{g=1..Neg} rot_{-g n1}(v_{-g}) of hm (nil: none).
func (r *hornerRun) negChain(hm *hornerMap) (*rlwe.Ciphertext, error) {
	if r.h.Neg == 0 {
		return nil, nil
	}
	// = rot_{-n1}(Horner of v_{-1}, v_{-2}, ...).
	back := r.e.m.params.MaxSlots() - r.h.N1
	neg, err := r.chain(hm.neg[1:], back)
	if err == nil && neg != nil {
		neg, err = r.e.eval.RotateNew(neg, back)
	}
	return neg, err
}

// linearHorner evaluates a map prepared by prepareHorner on x, then
// rescales, folds and adds the bias as linearSlots does. The baby-step
// chain, the positive and the negative giant-step chains run
// concurrently: a giant-step sum waits only for its own baby steps.
func (e *Evaluator) linearHorner(s *plan.Step, st *prepared, x *rlwe.Ciphertext) (*rlwe.Ciphertext, error) {
	hm := st.horner
	r := newHornerRun(e, hm.shape, x, st.ptScale)
	var neg *rlwe.Ciphertext
	var negErr error
	negChain := func() { neg, negErr = r.negChain(hm) }
	var wg sync.WaitGroup
	if e.workers > 1 {
		wg.Add(2)
		go func() { defer wg.Done(); r.babies() }()
		go func() { defer wg.Done(); negChain() }()
	} else {
		r.babies()
		negChain()
	}
	out, err := r.chain(hm.pos, hm.shape.N1)
	wg.Wait()
	switch {
	case err != nil:
		return nil, err
	case negErr != nil:
		return nil, negErr
	case r.babyErr != nil:
		return nil, r.babyErr
	}
	if neg != nil {
		if out == nil {
			out = neg
		} else if err := e.eval.Add(out, neg, out); err != nil {
			return nil, err
		}
	}
	if out == nil { // no diagonal at all
		out = ckks.NewCiphertext(e.m.params, 1, x.Level())
		out.Scale = r.scale
	}
	return e.finishSlots(s, st, out)
}
