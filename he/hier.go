package he

import (
	"fmt"
	"math"
	"math/bits"
	"slices"
	"sync"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/plan"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/ring"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
)

// Hierarchical rotation keys (Lee, Lee, Kim and No, "Rotation key reduction
// for client-server systems of deep neural network on fully homomorphic
// encryption", ASIACRYPT 2023). Instead of one Galois key per rotation, the
// user uploads master keys for rotations by powers of two; the server
// derives every rotation key the plan lists from them, once per key set.
//
// The master keys live over a larger modulus: their ring Q is the
// evaluation parameters' primes of P then of Q, and their special modulus is
// one more prime P' (MasterParams). A polynomial over the evaluation
// modulus QP, such as a part of an evaluation key, is then a ciphertext
// element over the masters' Q, and a master key switches it with a noise
// divided by P'.
//
// Derivation. An evaluation key of Galois element g at level l has rows k
// (the decomposition digits of Q, groups of |P| primes), row k encrypting
// P*e_k*s under sigma_g^-1(s), where e_k is 1 modulo the primes of group k
// and 0 modulo the others (Lattigo's convention, see KeyGenerator.GenGaloisKey).
// The pair (0, P*e_k) over QP is a noiseless "ciphertext" of P*e_k*s under s;
// Lattigo's Automorphism by the master key of h turns an encryption of m
// under s into one of sigma_h(m) under s, so applying the masters of the
// powers of two that sum to rotation r, one after the other, gives an
// encryption T of P*e_k*sigma_g(s) under s, g = 5^r; then sigma_g^-1(T)
// encrypts P*e_k*s under sigma_g^-1(s): row k of the key. Each step adds a
// key switch's noise (the digits of QP times the master's error, divided
// by P', plus a rounding), so a derived key's error is a few key switches'
// worth instead of a fresh Gaussian's, and the evaluation keeps its
// precision as long as P' is not much smaller than the largest prime of QP.
// The server needs no secret: only public key material and Lattigo's
// evaluator.

// masterParamsCache holds MasterParams' results by parameter fingerprint:
// generating the prime and the rings costs milliseconds, and every key
// set's decoding needs them.
var masterParamsCache sync.Map // [32]byte -> masterParamsResult

type masterParamsResult struct {
	params ckks.Parameters
	err    error
}

// MasterParams returns the parameters of the master keys for params: ring Q
// made of the primes of P then of Q (so that a polynomial over Q_l*P is a
// ciphertext at level |P|+l), and as special prime P' the largest
// NTT-friendly prime of at most 61 bits that keeps log2(Q*P*P') within
// MaxLogQP. It refuses parameters that leave less than MinPrimeBits of room
// under the bound.
func MasterParams(params ckks.Parameters) (ckks.Parameters, error) {
	fp := fingerprint(params)
	if r, ok := masterParamsCache.Load(fp); ok {
		r := r.(masterParamsResult)
		return r.params, r.err
	}
	p, err := masterParams(params)
	masterParamsCache.Store(fp, masterParamsResult{p, err})
	return p, err
}

func masterParams(params ckks.Parameters) (ckks.Parameters, error) {
	if err := CheckParams(params); err != nil {
		return ckks.Parameters{}, err
	}
	bound, _ := MaxLogQP(params.LogN())
	room := bound - params.LogQP()
	b := min(MaxPrimeBits, int(math.Floor(room)))
	if b < MinPrimeBits {
		return ckks.Parameters{}, fheserve.Errorf(fheserve.EINVALID, "derived keys need a master prime of at least %d bits, and these parameters (logQP %.1f) leave %.1f bits under the 128-bit bound %.1f: use --keys small or fast", MinPrimeBits, params.LogQP(), room, bound)
	}
	used := append(slices.Clone(params.Q()), params.P()...)
	for ; b >= MinPrimeBits; b-- {
		gen := ring.NewNTTFriendlyPrimesGenerator(uint64(b), params.RingQ().NthRoot())
		for {
			pm, err := gen.NextDownstreamPrime()
			if err != nil {
				break
			}
			if slices.Contains(used, pm) {
				continue
			}
			mp, err := ckks.NewParametersFromLiteral(ckks.ParametersLiteral{
				LogN:            params.LogN(),
				Q:               append(slices.Clone(params.P()), params.Q()...),
				P:               []uint64{pm},
				Xs:              secretDist,
				Xe:              errorDist,
				RingType:        ring.Standard,
				LogDefaultScale: params.LogDefaultScale(),
			})
			if err != nil {
				return ckks.Parameters{}, fheserve.Errorf(fheserve.EINVALID, "master parameters: %v", err)
			}
			if CheckParams(mp) == nil {
				return mp, nil
			}
			break // the largest prime of b bits is too large: try b-1
		}
	}
	return ckks.Parameters{}, fheserve.Errorf(fheserve.EINVALID, "derived keys: no master prime fits under the 128-bit bound: use --keys small or fast")
}

// Derivation is how the Galois keys of a derived key set are obtained:
// the master keys to upload and the key switches the server runs.
type Derivation struct {
	Master KeySpec // the master keys (Galois elements of powers of two; levels of the master parameters)
	// Steps are the chains' nodes in the order the server computes them.
	steps []derivStep
	// targets maps a derived Galois element to its node.
	targets map[uint64]int
}

// derivStep is one node of the derivation: the rows of T_r for rotation r
// at level (of the evaluation parameters), from the node prev (-1: the
// noiseless start) by the master of rotation 2^bit.
type derivStep struct {
	rot, level, prev, bit int
}

// Steps returns the number of derivation steps behind the key of Galois
// element g (for DerivedKeyErrorStd), or 0 if d does not derive it.
func (d *Derivation) Steps(g uint64) int {
	j, ok := d.targets[g]
	n := 0
	for ok && j >= 0 {
		n, j = n+1, d.steps[j].prev
	}
	return n
}

// KeySwitches returns the number of key switches (Lattigo automorphisms by
// a master key, each at its node's level over the master parameters) a
// derivation runs: the server's one-time cost, rows per node.
func (d *Derivation) KeySwitches(params ckks.Parameters) int {
	n := 0
	for _, s := range d.steps {
		n += params.BaseRNSDecompositionVectorSize(s.level, params.MaxLevelP())
	}
	return n
}

// PlanDerivation returns how the Galois keys of spec are derived from
// master keys of rotations by powers of two: every rotation r (Galois
// element 5^r) written in base 2^k, r = sum d_i 2^(k i), and reached by d_i
// steps with the master of 2^(k i) for each digit, the chains sharing the
// rotations they pass through (taking the digits from the lowest or from
// the highest, whichever needs fewer steps), each step and master at the
// highest level a key it leads to needs. A larger base needs fewer
// masters (about log2(N/2)/k) and more steps; PlanDerivation takes the
// base with the fewest masters whose steps stay within maxStepRatio times
// base 2's. It refuses elements that are not rotations of the slots
// (conjugations), which no power of 5 gives.
func PlanDerivation(params ckks.Parameters, spec KeySpec) (*Derivation, error) {
	if err := spec.Validate(params); err != nil {
		return nil, err
	}
	if _, err := MasterParams(params); err != nil {
		return nil, err
	}
	rots, err := rotationsOf(params, spec.Galois)
	if err != nil {
		return nil, err
	}
	var best, base2 *Derivation
	for k := 1; k <= maxLogBase; k++ {
		for _, fromLow := range []bool{true, false} {
			d := planChains(params, rots, spec.GaloisLevels, k, fromLow)
			if k == 1 && (base2 == nil || len(d.steps) < len(base2.steps)) {
				base2 = d
			}
			if len(d.steps) > maxStepRatio*len(base2.steps) {
				continue
			}
			if best == nil || len(d.Master.Galois) < len(best.Master.Galois) ||
				(len(d.Master.Galois) == len(best.Master.Galois) && len(d.steps) < len(best.steps)) {
				best = d
			}
		}
	}
	return best, nil
}

// The bases PlanDerivation tries (2^1 to 2^maxLogBase), and how many times
// base 2's derivation steps it accepts for fewer master keys: a step is a
// key switch per row of a key, once per key set, while a master key is
// uploaded (and generated on the user's device) with every key set.
const (
	maxLogBase   = 4
	maxStepRatio = 4
)

// MaxDerivationSteps bounds Derivation.Steps for any rotation of params'
// slots: the largest base's digits, each up to 2^k-1 steps.
func MaxDerivationSteps(params ckks.Parameters) int {
	logSlots := params.LogN() - 1
	return (1<<maxLogBase - 1) * ((logSlots + maxLogBase - 1) / maxLogBase)
}

// rotationsOf returns, for each Galois element, the rotation r in
// 1..N/2-1 with 5^r = g mod 2N.
func rotationsOf(params ckks.Parameters, galEls []uint64) ([]int, error) {
	slots := params.N() / 2
	nthRoot := params.RingQ().NthRoot()
	want := make(map[uint64]int, len(galEls))
	for i, g := range galEls {
		want[g] = i
	}
	out := make([]int, len(galEls))
	seen := make([]bool, len(galEls))
	g := uint64(1)
	for r := 0; r < slots; r++ {
		if i, ok := want[g]; ok {
			out[i], seen[i] = r, true
		}
		g = g * ring.GaloisGen % nthRoot
	}
	if i := slices.Index(seen, false); i >= 0 {
		return nil, fheserve.Errorf(fheserve.EINVALID, "galois element %d is not a rotation of the slots: derived keys cover rotations only", galEls[i])
	}
	return out, nil
}

// planChains builds the derivation of rotations rots at levels in base
// 2^k, taking each rotation's digits from the lowest (fromLow) or the
// highest.
func planChains(params ckks.Parameters, rots, levels []int, k int, fromLow bool) *Derivation {
	d := &Derivation{targets: make(map[uint64]int, len(rots))}
	index := map[int]int{}       // rotation -> step
	masterLevel := map[int]int{} // exponent -> level
	for i, r := range rots {
		prev, prefix := -1, 0
		for _, b := range hops(r, k, fromLow) {
			prefix += 1 << b
			j, ok := index[prefix]
			if !ok {
				j = len(d.steps)
				index[prefix] = j
				d.steps = append(d.steps, derivStep{rot: prefix, level: levels[i], prev: prev, bit: b})
			}
			d.steps[j].level = max(d.steps[j].level, levels[i])
			masterLevel[b] = max(masterLevel[b], levels[i])
			prev = j
		}
		d.targets[params.GaloisElement(r)] = prev
	}
	// A step's level covers every step after it on a chain (a step joined
	// from another chain keeps the predecessor it was made with).
	for j := len(d.steps) - 1; j >= 0; j-- {
		if p := d.steps[j].prev; p >= 0 {
			d.steps[p].level = max(d.steps[p].level, d.steps[j].level)
		}
	}
	for _, s := range d.steps {
		masterLevel[s.bit] = max(masterLevel[s.bit], s.level)
	}
	exps := make([]int, 0, len(masterLevel))
	for b := range masterLevel {
		exps = append(exps, b)
	}
	slices.Sort(exps)
	for _, b := range exps {
		d.Master.Galois = append(d.Master.Galois, params.GaloisElement(1<<b))
		d.Master.GaloisLevels = append(d.Master.GaloisLevels, masterLevelOf(params, masterLevel[b]))
	}
	return d
}

// MasterDecomposition returns the base-two decomposition (Lattigo's
// EvaluationKeyParameters.BaseTwoDecomposition, bits per digit) of the
// master keys for params: 0 when the master prime is at least as large as
// every prime of QP, whose residues are then the digits; otherwise
// masterDigitMargin bits less than the master prime, so that no digit of
// a key switch comes near the master prime, which divides the digits'
// products with the master's error (a 61-bit digit over a 50-bit prime
// would add 11 bits to every derived key's error). Each prime's residues
// then take two or more rows of the master keys.
func MasterDecomposition(mp ckks.Parameters) int {
	pb := bits.Len64(mp.P()[0])
	for _, q := range mp.Q() {
		if bits.Len64(q) > pb {
			return pb - masterDigitMargin
		}
	}
	return 0
}

// masterDigitMargin is how many bits below the master prime base-two
// digits stay. Lattigo does not center them (uniform in [0, 2^w)): with
// digits of the master prime's size (w = 50 bits under a 50-bit prime),
// derived keys' errors measured up to 11.5 times DerivedKeyErrorStd's
// model before its factor, and spread by 3x from run to run; 10 bits
// below, within the model's factor, for twice the master rows of 50-bit
// primes.
const masterDigitMargin = 10

// masterLevelOf is the level, in the master parameters, of a master key
// that switches polynomials over Q_l*P: its Q holds the |P| primes of P
// before q_0..q_l.
func masterLevelOf(params ckks.Parameters, l int) int { return params.PCount() + l }

// hops returns the exponents of the masters that reach rotation r in base
// 2^k: digit d at position i is d steps of 2^(k i); lowest digit first
// when fromLow.
func hops(r, k int, fromLow bool) []int {
	var out []int
	for i := 0; r > 0; i++ {
		for range r & (1<<k - 1) {
			out = append(out, k*i)
		}
		r >>= k
	}
	if !fromLow {
		slices.Reverse(out)
	}
	return out
}

// DeriveGaloisKeys derives the Galois keys of spec (Galois elements of
// rotations, at their levels) from master keys over MasterParams(params),
// as PlanDerivation(params, spec) plans. The masters must be expanded
// (UnmarshalEvalKeys expands them). The keys it returns are ready for
// evaluation, in spec's order. It runs PlanDerivation(...).KeySwitches key
// switches over the master parameters, on the calling goroutine.
func DeriveGaloisKeys(params ckks.Parameters, masters []*rlwe.GaloisKey, spec KeySpec) ([]*rlwe.GaloisKey, error) {
	d, err := PlanDerivation(params, spec)
	if err != nil {
		return nil, err
	}
	mp, err := MasterParams(params)
	if err != nil {
		return nil, err
	}
	have := KeySpec{}
	for _, m := range masters {
		if m == nil || m.IsCompressed() {
			return nil, fheserve.Errorf(fheserve.EINVALID, "derived keys: a master key is missing or compressed")
		}
		have.Galois = append(have.Galois, m.GaloisElement)
		have.GaloisLevels = append(have.GaloisLevels, m.LevelQ())
	}
	if err := have.Covers(d.Master); err != nil {
		return nil, fmt.Errorf("master keys: %w", err)
	}
	eval := rlwe.NewEvaluator(mp, rlwe.NewMemEvaluationKeySet(nil, masters...))
	rows := make([][]*rlwe.Ciphertext, len(d.steps)) // T of each node, one ciphertext per row
	for k, s := range d.steps {
		n := params.BaseRNSDecompositionVectorSize(s.level, params.MaxLevelP())
		rows[k] = make([]*rlwe.Ciphertext, n)
		for i := range n {
			var in *rlwe.Ciphertext
			if s.prev < 0 {
				in = gadgetStart(params, mp, s.level, i)
			} else {
				in = rows[s.prev][i]
			}
			out := rlwe.NewCiphertext(mp, 1, masterLevelOf(params, s.level))
			if err := eval.Automorphism(in, params.GaloisElement(1<<s.bit), out); err != nil {
				return nil, fheserve.Errorf(fheserve.EINTERNAL, "derived keys: %v", err)
			}
			rows[k][i] = out
		}
	}
	gks := make([]*rlwe.GaloisKey, len(spec.Galois))
	for i, g := range spec.Galois {
		gks[i] = galoisKeyFrom(params, mp, rows[d.targets[g]], g, spec.GaloisLevels[i])
	}
	return gks, nil
}

// gadgetStart returns the noiseless pair (0, P*e_k) at level l, over the
// master parameters' Q (P's primes first), in the NTT domain: in each
// residue a constant, P mod q for the primes q of digit group k and 0
// elsewhere (P mod p is 0).
func gadgetStart(params, mp ckks.Parameters, l, k int) *rlwe.Ciphertext {
	ct := rlwe.NewCiphertext(mp, 1, masterLevelOf(params, l))
	ct.IsNTT = true
	pc := params.PCount()
	for j := k * pc; j < min((k+1)*pc, l+1); j++ {
		q := params.Q()[j]
		c := uint64(1)
		for _, p := range params.P() {
			c = ring.BRed(c, p%q, q, ring.GenBRedConstant(q))
		}
		row := ct.Value[1].Coeffs[pc+j]
		for w := range row {
			row[w] = c
		}
	}
	return ct
}

// galoisKeyFrom returns the Galois key of g at level l from the rows T_r
// (r the rotation of g) of its node, which may be at a higher level: each
// row truncated to Q_l*P, mapped by sigma_g^-1, put in Montgomery form and
// laid out over Q and P.
func galoisKeyFrom(params, mp ckks.Parameters, rows []*rlwe.Ciphertext, g uint64, l int) *rlwe.GaloisKey {
	lm := masterLevelOf(params, l)
	ringQ := mp.RingQ().AtLevel(lm)
	idx, err := ring.AutomorphismNTTIndex(ringQ.N(), ringQ.NthRoot(), params.ModInvGaloisElement(g))
	if err != nil {
		panic(err) // g was checked to be a valid element
	}
	gk := rlwe.NewGaloisKey(params, rlwe.EvaluationKeyParameters{LevelQ: &l})
	gk.GaloisElement, gk.NthRoot = g, params.RingQ().NthRoot()
	pc := params.PCount()
	buf := ringQ.NewPoly()
	for i, row := range gk.Value {
		for u, src := range rows[i].Value {
			ringQ.AutomorphismNTTWithIndex(src, idx, buf) // reads the primes up to q_l only
			ringQ.MForm(buf, buf)
			dst := row[0][u]
			for j := range pc {
				copy(dst.P.Coeffs[j], buf.Coeffs[j])
			}
			for j := 0; j <= l; j++ {
				copy(dst.Q.Coeffs[j], buf.Coeffs[pc+j])
			}
		}
	}
	return gk
}

// DerivedKeyStd returns the standard deviation of a coefficient of the
// error of a derived key's row (in integer units, over QP) after hops
// derivation steps (Derivation.Steps); a directly generated key's is the
// error distribution's sigma, 3.2.
//
// A derivation step is a key switch over the master parameters: the
// digits D_j of the row's second part over the masters' Q (the primes of
// P and Q: D_j below q_j, centered; with a base-two decomposition, pieces
// uniform in [0, 2^w), not centered) times the master's Gaussian error
// (sigma), divided by P', plus the rounding of that division, r0 + r1*s,
// of variance (1+h)/12 for a secret of Hamming weight h. The automorphism
// between steps permutes the error's coefficients, so the variances add:
// hops*(1+h)/12 + (hops-1)*N*sigma^2*sum_j E[D_j^2]/P'^2. The first step
// switches the noiseless start (0, P*e_k), whose digits are constants
// (P mod q_j), so its product with the master's error has no factor N and
// is left out (at most |P| sigma^2/4 against (1+h)/12). The rounding
// dominates once P' is larger than every prime of QP: about 30 per step
// at N = 2^14, against 3.2 for a fresh key. TestDerivedKeyError measures
// it.
func DerivedKeyStd(params ckks.Parameters, hops int) float64 {
	mp, err := MasterParams(params)
	if err != nil || hops <= 0 {
		return 0
	}
	n := float64(params.N())
	sigma := params.Xe().(ring.DiscreteGaussian).Sigma
	h := float64(params.XsHammingWeight())
	pm := float64(mp.P()[0])
	w := MasterDecomposition(mp)
	sq := 0.0 // sum_j E[D_j^2] / P'^2
	for _, q := range mp.Q() {
		if w > 0 {
			for b := bits.Len64(q); b > 0; b -= w {
				sq += math.Pow(math.Exp2(float64(min(b, w)))/pm, 2) / 3
			}
			continue
		}
		sq += math.Pow(float64(q)/pm, 2) / 12
	}
	return math.Sqrt(float64(hops)*(1+h)/12 + float64(hops-1)*n*sigma*sigma*sq)
}

// DerivedKeyErrorStd returns the standard deviation of the error that one
// rotation of a ciphertext at level l with a derived key adds, beyond a
// directly generated key's, in the real part of a decoded slot, divided by
// the default scale; hops is the number of derivation steps behind the
// key (Derivation.Steps).
//
// Key switching at level l adds sum_k D_k e'_k / P, D_k the digits of Q_l
// (groups of |P| primes, centered) and e'_k the key's error in row k
// (DerivedKeyStd, against sigma for a fresh key): variance N
// (var(e') - sigma^2) sum_k E[D_k^2] / P^2 per coefficient beyond a
// fresh key's, times N/2 in a slot (the canonical embedding). The digit of
// q_0 dominates it when P is hardly larger than q_0; keys whose
// derivation adds little to the rounding of the division by P' stay
// close to fresh ones. derivedErrorFactor covers what the model leaves
// out.
func DerivedKeyErrorStd(params ckks.Parameters, l, hops int) float64 {
	if _, err := MasterParams(params); err != nil {
		return math.Inf(1)
	}
	if hops <= 0 {
		return 0
	}
	n := float64(params.N())
	sigma := params.Xe().(ring.DiscreteGaussian).Sigma
	e := DerivedKeyStd(params, hops)
	excess := max(e*e-sigma*sigma, 0)
	p := 1.0
	for _, x := range params.P() {
		p *= float64(x)
	}
	digits := 0.0
	pc := params.PCount()
	for k := 0; k*pc <= l; k++ {
		d := 1.0
		for _, q := range params.Q()[k*pc : min((k+1)*pc, l+1)] {
			d *= float64(q)
		}
		digits += math.Pow(d/p, 2) / 12
	}
	return derivedErrorFactor * math.Sqrt(n*excess*digits*n/2) / params.DefaultScale().Float64()
}

// derivedErrorFactor covers what DerivedKeyErrorStd's model leaves out.
// Measured at N = 2^14 (he/client's TestDerivedKeyError: the keys' errors
// within 1% of DerivedKeyStd, 1 to 31 steps; TestDerivedKeysRotate: the
// rotations' error std 0.98 to 1.04 times the model). A slot's error is a
// sum of products of two nearly Gaussian values (digit and key error),
// so its tails are heavier than a Gaussian's: the largest of 8,192 slots
// measured up to 12 standard deviations; the noise model sizes standard
// deviations, which this factor is for.
const derivedErrorFactor = 1.1

// DerivationCost returns the costs of deriving spec's Galois keys (spec
// must be Derived): the master keys, the bits of the master prime, the key
// switches of the derivation and the memory the derived keys take,
// expanded (both parts of each row, 8 bytes per residue).
func DerivationCost(params ckks.Parameters, spec KeySpec) (plan.Derivation, error) {
	d, err := PlanDerivation(params, spec)
	if err != nil {
		return plan.Derivation{}, err
	}
	mp, _ := MasterParams(params)
	mem := 0
	for _, l := range spec.GaloisLevels {
		s := shapeAt(params, l)
		mem += s.rows * 2 * (l + 1 + params.PCount()) * params.N() * 8
	}
	return plan.Derivation{
		MasterKeys:   len(d.Master.Galois),
		MasterBits:   bits.Len64(mp.P()[0]),
		KeySwitches:  d.KeySwitches(params),
		DerivedBytes: mem,
	}, nil
}
