package compiler

import (
	"math"
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
// for another prime's bits of the security budget.
func chooseParams(depth, logN int, outBound float64, maxScale int, fixedOut bool, pCount int) (*paramChoice, error) {
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
		if float64(b0+depth*s+pCount*bp) > bound-1 {
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
		return &paramChoice{spec: spec, outLogScale: b0 - hb, pCount: pCount, params: params, logQP: params.LogQP(), bound: int(bound)}, nil
	}
	return nil, nil
}

// keyBytes is the size of one rotation key under ps.
func (ps *paramChoice) keyBytes() int {
	return he.EvalKeysSize(ps.params, []uint64{ps.params.GaloisElement(1)}, false) - he.EvalKeysSize(ps.params, nil, false)
}

func galoisElements(ps *paramChoice, rots []int) []uint64 {
	els := make([]uint64, 0, len(rots))
	for _, r := range rots {
		els = append(els, ps.params.GaloisElement(r))
	}
	sort.Slice(els, func(i, j int) bool { return els[i] < els[j] })
	return els
}

// hoistedCost is the cost of a hoisted rotation relative to a full one.
const hoistedCost = 0.5

// bestRatio picks the baby-step giant-step ratio with the lowest rotation
// cost, hoisted baby steps being cheaper than giant steps.
func bestRatio(diags []int, slots int) int {
	best, bestCost := 0, math.Inf(1)
	for r := 0; r <= 4; r++ {
		b, g := server.BSGS(diags, slots, r)
		cost := hoistedCost*float64(len(b)) + float64(len(g))
		if cost < bestCost {
			best, bestCost = r, cost
		}
	}
	return best
}
