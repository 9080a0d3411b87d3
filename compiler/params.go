package compiler

import (
	"maps"
	"math"
	"math/bits"
	"slices"
	"sort"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/he"
	"github.com/fheserve/fheserve/he/server"
	"github.com/fheserve/fheserve/plan"
)

// Scale bounds: above 40 bits precision gains nothing for inference, below
// 26 bits the rescaling noise shows in the outputs.
const (
	maxLogScale = 40
	minLogScale = 26
	maxQBits    = 60
)

type paramChoice struct {
	spec plan.Params
	// outLogScale is the scale of the outputs: the default scale, or less
	// when q_0 (at most 60 bits) cannot hold it with the output headroom.
	outLogScale int
	// pCount is the number of key-switching primes.
	pCount int
	params he.Parameters
	logQP  float64
	bound  int
	// deriv is the derivation of the plan's keys on these parameters
	// (KeysDerived; nil until planDerivation).
	deriv *he.Derivation
}

// headroomBits is how many bits above the scale q_0 needs to carry outputs
// of magnitude up to bound without wrapping around.
func headroomBits(bound float64) int {
	b := int(math.Ceil(math.Log2(math.Max(bound, 1)))) + 3
	return max(b, 4)
}

// maxLogN is the largest ring degree the compiler considers.
const maxLogN = 16

// chooseParams returns, on the ring of degree 2^logN, the parameters with
// the largest scale up to 2^maxScale that fit the depth and the output
// headroom at 128-bit security, or nil when none does.
//
// fixedOut says that the outputs keep the default scale (the last step is
// a product or a sum, whose scale follows from its inputs). pCount is the
// number of key-switching primes: with two, each key has half as many
// decomposition rows (about 1.8x smaller keys and faster key switching),
// for another prime's bits of the security budget. derived leaves room
// under the bound for a master keys' prime (he.MasterParams) of at least
// derivedMasterBits.
func chooseParams(depth, logN int, outBound float64, maxScale int, fixedOut bool, pCount int, derived bool) (*paramChoice, error) {
	hb := headroomBits(outBound)
	bound, ok := he.MaxLogQP(logN)
	if !ok {
		return nil, fheserve.Errorf(fheserve.EINVALID, "ring degree 2^%d is not supported", logN)
	}
	// q0 must hold the output scale plus the output headroom; Lattigo
	// takes ciphertext primes of at most 60 bits. Intermediate values may
	// have a larger scale than the outputs: the last step lands on the
	// output scale, and the noise of every earlier step is smaller.
	for s := min(maxScale, maxQBits-1); s >= minLogScale; s-- {
		b0 := min(s+hb, maxQBits)
		if b0-hb < minLogScale || (fixedOut && b0-hb < s) {
			continue
		}
		bp := min(max(b0, s)+1, he.MaxPrimeBits)
		// Leave a bit of slack: generated primes are not exact powers of two.
		master := 0
		if derived {
			master = derivedMasterBits
		}
		if float64(b0+depth*s+pCount*bp+master) > bound-1 {
			continue
		}
		spec := plan.Params{LogN: logN, LogQ: []int{b0}, LogDefaultScale: s}
		for i := 0; i < pCount; i++ {
			spec.LogP = append(spec.LogP, bp)
		}
		for i := 0; i < depth; i++ {
			spec.LogQ = append(spec.LogQ, s)
		}
		params, err := he.NewParameters(spec)
		if fheserve.ErrorCode(err) == fheserve.EINSECURE {
			continue
		}
		if err != nil {
			return nil, err
		}
		if derived {
			if mp, err := he.MasterParams(params); err != nil || bits.Len64(mp.P()[0]) < derivedMasterBits {
				continue
			}
		}
		return &paramChoice{spec: spec, outLogScale: b0 - hb, pCount: pCount, params: params, logQP: params.LogQP(), bound: int(bound)}, nil
	}
	return nil, nil
}

// keyBytes is the size of one rotation key under ps.
func (ps *paramChoice) keyBytes() int {
	return he.EvalKeysSize(ps.params, he.TopLevelKeys(ps.params, []uint64{ps.params.GaloisElement(1)}, false)) - he.EvalKeysSize(ps.params, he.KeySpec{})
}

func galoisElements(ps *paramChoice, rots []int) []uint64 {
	els := make([]uint64, 0, len(rots))
	for _, r := range rots {
		els = append(els, ps.params.GaloisElement(r))
	}
	sort.Slice(els, func(i, j int) bool { return els[i] < els[j] })
	return els
}

// hoistedCost is the cost of a hoisted rotation relative to a full one:
// a baby step shares the decomposition of its input and stays in QP (an
// automorphism and an inner product with the key), where a giant step
// (or any other rotation) decomposes its input again, with the number
// theoretic transforms of every digit, and scales down. Measured with
// Lattigo v6.2.0 at N = 2^14 and 2^15, levels 1 to 9, one key-switching
// prime: 0.06 to 0.18 of a full rotation, about 0.16 at the levels the
// convolutions run at (BENCHMARKS.md, "Convolutions multiplexed over
// copies").
const hoistedCost = 0.16

// hoistedStageBase is the cost, relative to a full rotation, of what a
// stage of hoisted rotations pays once: the decomposition of its input
// and the ModDown of its sum. Measured with Lattigo v6.2.0 at N = 2^14,
// level 2 (BENCHMARKS.md, "Folds in hoisted stages"): a stage of 3
// rotations took 1.0 and one of 7 1.4 full rotations, which 0.7 plus
// hoistedCost a rotation bounds.
const hoistedStageBase = 0.7

// foldWidth returns the stage width (plan.Step.FoldWidth) that sums
// blocks blocks of a map's output in the least time, a key weighing
// fastBytesWeight of a key switch: one rotation a stage costs a key
// switch each, a wider stage hoistedStageBase plus hoistedCost a
// rotation, and needs a key for each (64 blocks: 6 key switches and 6
// keys at width 2, 3.5 and 9 keys at width 4).
func foldWidth(blocks int) int {
	best, bestCost := 2, math.Inf(1)
	for w := 2; w <= blocks; w *= 2 {
		s := plan.Step{Pin: blocks, Pout: 1, FoldWidth: w}
		var cost float64
		for _, stage := range s.FoldStages() {
			cost += fastBytesWeight * float64(len(stage))
			if len(stage) == 1 {
				cost++
			} else {
				cost += hoistedStageBase + hoistedCost*float64(len(stage))
			}
		}
		if cost < bestCost {
			best, bestCost = w, cost
		}
	}
	return best
}

// maxLogRatio is the largest log2 baby-step giant-step ratio tried: up to
// one giant step per map when the diagonals allow (a hoisted baby step
// costs a sixth of a giant step, so few giant steps pay for many babies).
const maxLogRatio = 12

// bsgsOption is one way to evaluate a linear map: a hoisted baby-step
// giant-step split (horner 0) or Horner giant steps of horner slots.
type bsgsOption struct {
	ratio  int
	horner int
	seq    bool
	// keys are the rotations whose keys it needs; switches its key
	// switches, a hoisted one counted as hoistedCost.
	keys     []int
	switches float64
}

// bsgsOptions returns the distinct splits that the ratios 0..maxLogRatio
// give a linear map's diagonals, smallest ratio first, then, when horner,
// the Horner evaluations that no other option beats on both keys and key
// switches.
func bsgsOptions(diags []int, slots int, horner bool) []bsgsOption {
	var out []bsgsOption
	for r := 0; r <= maxLogRatio; r++ {
		b, g := server.BSGS(diags, slots, r)
		o := bsgsOption{ratio: r, keys: sortedSet(slices.Concat(b, g)), switches: hoistedCost*float64(len(b)) + float64(len(g))}
		if !slices.ContainsFunc(out, func(p bsgsOption) bool {
			return p.horner == 0 && slices.Equal(p.keys, o.keys) && p.switches == o.switches
		}) {
			out = append(out, o)
		}
	}
	if !horner {
		return out
	}
	var hs []bsgsOption
	for n1 := 1; n1 <= slots; n1 *= 2 {
		for _, seq := range []bool{true, false} {
			h := server.Horner(diags, slots, n1, seq)
			hs = append(hs, bsgsOption{horner: n1, seq: seq, keys: h.Rotations(slots), switches: float64(h.KeySwitches())})
		}
	}
	for i, o := range hs {
		dominated := false
		for j, p := range hs {
			if j != i && subset(p.keys, o.keys) && p.switches <= o.switches && (p.switches < o.switches || len(p.keys) < len(o.keys) || j < i) {
				dominated = true
				break
			}
		}
		if !dominated {
			out = append(out, o)
		}
	}
	return out
}

// sortedSet returns the distinct non-zero values of r, sorted.
func sortedSet(r []int) []int {
	out := slices.Clone(r)
	slices.Sort(out)
	out = slices.Compact(out)
	if len(out) > 0 && out[0] == 0 {
		out = out[1:]
	}
	return out
}

// subset reports whether sorted a is a subset of sorted b.
func subset(a, b []int) bool {
	for _, x := range a {
		if _, ok := slices.BinarySearch(b, x); !ok {
			return false
		}
	}
	return true
}

// ratioStep is a latency linear step whose ratio chooseRatios picks.
type ratioStep struct {
	s    *plan.Step
	opts []bsgsOption
}

// ratioCost is the cost of a choice of ratios: the bytes of the rotation
// keys (each at the highest level it is used) and the time of the
// rotations, in the same unit: a key switch at level l costs about as
// much as the key at level l is large (both grow with the decomposition
// rows times the primes), a hoisted baby step hoistedCost of that.
type ratioCost struct {
	bytes, time float64
}

// derivedMasterBits is the smallest master prime a derived plan's
// parameters leave room for. A derived key's error grows with the largest
// prime of QP over the master prime (he.DerivedKeyErrorStd): with a 61-bit
// key-switching prime and a 40-bit master prime, a rotation's error at
// N = 2^14 and scale 2^50 is about 2^-13 of a unit, which the plan's
// precision model does not count; a larger master prime costs scale bits,
// which the precision and privacy model does count.
const derivedMasterBits = 40

// smallTimeWeight is what a key switch in an evaluation weighs against
// the bytes of a key of the same level in the small choice: keys are
// uploaded once per key set, evaluations run many times, so a key is
// worth a few key switches, not any number of them.
const smallTimeWeight = 0.25

// less orders costs by what the owner asked for: fast (time, then bytes)
// or small (bytes plus smallTimeWeight times time, then bytes).
func (a ratioCost) less(b ratioCost, keys string) bool {
	if keys == KeysSmall {
		ca, cb := a.bytes+smallTimeWeight*a.time, b.bytes+smallTimeWeight*b.time
		return ca < cb || (ca == cb && a.bytes < b.bytes)
	}
	ca, cb := a.time+fastBytesWeight*a.bytes, b.time+fastBytesWeight*b.bytes
	return ca < cb || (ca == cb && a.bytes < b.bytes)
}

// fastBytesWeight is what a key's bytes weigh against a key switch at its
// level in the fast choice: a key must save a tenth of a key switch per
// call to be worth uploading and holding.
const fastBytesWeight = 0.1

// maxRatioChoices bounds the exhaustive search over the ratios of all
// linear steps; beyond it, each step's ratio is improved in turn.
const maxRatioChoices = 1 << 14

// chooseRatios sets the baby-step giant-step ratio of every latency-mode
// linear step in slots, all together: a rotation key that one step needs
// serves every step at its level or below, so a step may take a ratio
// whose rotations other steps already need. keys is Options.Keys.
// In the small choice (unless sealed), a step may instead be evaluated by
// Horner giant steps (plan.Step.Horner), whose keys every step shares.
func chooseRatios(steps []plan.Step, slots int, ps *paramChoice, keys string, sealed bool) {
	r := &ratioSearch{fixed: map[int]int{}, keys: keys}
	for i := range steps {
		s := &steps[i]
		if s.Kind != plan.StepLinear || s.Coeffs {
			continue
		}
		r.rs = append(r.rs, ratioStep{s: s, opts: bsgsOptions(s.DiagonalIndices(), slots, keys == KeysSmall && !sealed)})
		s.FoldWidth = 0
		if keys == KeysFast {
			s.FoldWidth = foldWidth(s.Pin / s.Pout)
		}
		for _, rot := range s.FoldRotations() {
			r.fixed[rot] = max(r.fixed[rot], s.LevelIn-1)
		}
	}
	if len(r.rs) == 0 {
		return
	}
	r.kb = ps.galoisKeyBytes()
	pick := r.fastest()
	total := 1
	for _, st := range r.rs {
		total = min(total*len(st.opts), maxRatioChoices+1)
	}
	var best []int
	if total <= maxRatioChoices {
		best = r.exhaustive(pick)
	} else {
		best = r.improve(pick, slots)
	}
	for i, st := range r.rs {
		o := st.opts[best[i]]
		st.s.LogBSGSRatio, st.s.Horner, st.s.HornerSeq = o.ratio, o.horner, o.seq
	}
}

// ratioSearch is the search of chooseRatios over the options of its
// steps: a choice (pick) holds an index into each step's options.
type ratioSearch struct {
	rs    []ratioStep
	fixed map[int]int // fold rotations: rotation -> level
	kb    []float64   // galoisKeyBytes
	keys  string      // Options.Keys, for ratioCost.less
}

// cost returns the cost of the choice pick: the key switches of every
// step at its level, and one key per rotation (fold rotations included)
// at the highest level it is used.
func (r *ratioSearch) cost(pick []int) ratioCost {
	use := &keyUse{rots: maps.Clone(r.fixed)}
	var c ratioCost
	for i, st := range r.rs {
		o := st.opts[pick[i]]
		l := st.s.LevelIn
		c.time += o.switches * r.kb[l]
		use.rotate(l, o.keys...)
	}
	for rot, l := range use.rots {
		if rot != 0 {
			c.bytes += r.kb[l]
		}
	}
	return c
}

// fastest returns each step's fastest split alone: the start of the
// search, and the choice before keys were costed.
func (r *ratioSearch) fastest() []int {
	pick := make([]int, len(r.rs))
	for i, st := range r.rs {
		for j, o := range st.opts {
			if o.switches < st.opts[pick[i]].switches {
				pick[i] = j
			}
		}
	}
	return pick
}

// exhaustive returns the cheapest of every combination of options, as
// an odometer over the steps' options (ties: pick, then the first met).
func (r *ratioSearch) exhaustive(pick []int) []int {
	best, bestCost := slices.Clone(pick), r.cost(pick)
	cur := make([]int, len(r.rs))
	for {
		if c := r.cost(cur); c.less(bestCost, r.keys) {
			best, bestCost = slices.Clone(cur), c
		}
		i := 0
		for i < len(r.rs) && cur[i] == len(r.rs[i].opts)-1 {
			cur[i] = 0
			i++
		}
		if i == len(r.rs) {
			break
		}
		cur[i]++
	}
	return best
}

// improve returns the cheapest choice found by improving each step's
// option in turn, from the fastest splits pick and, in the small choice,
// from every step on Horner giant steps of the same n1 (shared keys that
// no single step's move finds).
func (r *ratioSearch) improve(pick []int, slots int) []int {
	best := slices.Clone(pick)
	bestCost := r.cost(best)
	starts := [][]int{best}
	for n1 := 1; n1 <= slots; n1 *= 2 {
		start, any := slices.Clone(pick), false
		for i, st := range r.rs {
			for j, o := range st.opts {
				if o.horner == n1 && (start[i] == pick[i] || o.seq) {
					start[i], any = j, true
				}
			}
		}
		if any {
			starts = append(starts, start)
		}
	}
	for _, start := range starts {
		cur, curCost := start, r.cost(start)
		for improved := true; improved; {
			improved = false
			for i, st := range r.rs {
				for j := range st.opts {
					next := slices.Clone(cur)
					next[i] = j
					if c := r.cost(next); c.less(curCost, r.keys) {
						cur, curCost, improved = next, c, true
					}
				}
			}
		}
		if curCost.less(bestCost, r.keys) {
			best, bestCost = cur, curCost
		}
	}
	return best
}

// galoisKeyBytes returns the encoded size of one Galois key at each level.
func (ps *paramChoice) galoisKeyBytes() []float64 {
	empty := he.EvalKeysSize(ps.params, he.KeySpec{})
	g := ps.params.GaloisElement(1)
	out := make([]float64, ps.params.MaxLevel()+1)
	for l := range out {
		out[l] = float64(he.EvalKeysSize(ps.params, he.KeySpec{Galois: []uint64{g}, GaloisLevels: []int{l}}) - empty)
	}
	return out
}
