// Package server is the server half of the CKKS engine: it evaluates a
// compiled program on a user's ciphertexts with the user's evaluation keys
// alone and sanitizes the result before it leaves. Nothing in this package
// accepts or produces a secret key: its inputs are he.EvalKeys (public key,
// relinearization and Galois keys) and ciphertexts.
package server

import (
	"context"
	crand "crypto/rand"
	"fmt"
	"math"
	"math/bits"
	mrand "math/rand/v2"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"sync"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/he"
	"github.com/fheserve/fheserve/plan"
	ltckks "github.com/tuneinsight/lattigo/v6/circuits/ckks/lintrans"
	"github.com/tuneinsight/lattigo/v6/circuits/ckks/polynomial"
	"github.com/tuneinsight/lattigo/v6/circuits/common/lintrans"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/ring"
	"github.com/tuneinsight/lattigo/v6/ring/ringqp"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
	"github.com/tuneinsight/lattigo/v6/utils/bignum"
)

// Model is a program prepared for evaluation: weights encoded as
// plaintexts at the levels and scales the plan's schedule gives them. A
// Model is immutable and safe for concurrent use by many Evaluators.
type Model struct {
	Plan    *plan.Plan
	prog    *plan.Program
	params  ckks.Parameters
	steps   []prepared
	inScale rlwe.Scale
	// keep lists a coefficient-encoded result's output coefficients; the
	// others, partial sums of the weights, become uniform noise.
	keep []int
	// rerandomized: the result was re-randomized by its masking step, so
	// sanitization only floods it.
	rerandomized bool
	// sealed: a sealed model's weights, by linear step (sealed.go).
	sealed map[*plan.Step]*sealedStep
	// ecd encodes the per-call masks and masked maps.
	ecd *ckks.Encoder
	// masked holds, by number of samples, the last linear map of a tiled
	// plan prepared to write the outputs of that many tiles only (the
	// full count is in steps), made when a call first needs it.
	mu     sync.Mutex
	masked map[int]*prepared
	// masks holds, by number of samples, the mask step's plaintext for
	// calls of fewer samples than the batch, made when a call first
	// needs it.
	masks map[int]*rlwe.Plaintext
	// ptBytes: each step's diagonals encoded (Plaintexts).
	ptBytes []int64
}

type prepared struct {
	// Latency, slots: the transformation, split into parts by giant step
	// so that parts run on different cores.
	parts []lintrans.LinearTransformation
	// Latency, slots, a Horner step (plan.Step.Horner): the diagonals
	// pre-rotated by their giant steps (horner.go).
	horner *hornerMap
	// Latency, slots, a map of one row (prepareDot): the row.
	dot *rlwe.Plaintext
	// Latency, slots, a grouped map (plan.Step.Groups): each group's
	// transformation and bias, one output ciphertext each.
	groups []prepared
	// Latency, coefficients.
	coeffPt *rlwe.Plaintext
	// Batch: per row, the weights times target/input scale times the
	// rescaling prime, as RNS residues (rows[r][j*(level+1)+i] for prime i).
	rows [][]uint64
	// Batch: the rows laid out for the vector kernels, and whether every
	// weight is below 2^52 in absolute value, as they take them for
	// primes of 52 bits or more (mac.go).
	mac    []macRow
	ints52 bool
	// Bias as encoded after rescaling (latency: a full slot vector), and
	// (latency, slots) encoded once at the step's output level and scale,
	// so that a call does not encode it again.
	bias     []float64
	biasPt   *rlwe.Plaintext
	coeffB   []float64
	poly     polynomial.Polynomial
	target   rlwe.Scale // output scale
	ptScale  rlwe.Scale // plaintext scale of the weights
	outScale rlwe.Scale
	// Mask, latency: the 0/1 plaintext that keeps the declared output
	// positions of the first window, at the rescaling prime's scale.
	mask *rlwe.Plaintext
	// lazyRelin: a batch-mode product read only by linear maps stays of
	// degree 2; the linear map relinearizes its (fewer) outputs.
	lazyRelin bool
	// fused: a batch-mode product whose readers are batch linear maps
	// with fewer outputs in all than it has ciphertexts stays of degree 2
	// and unrescaled (fusedProduct); fusedIn: this linear map reads one,
	// a level above its LevelIn, and rescales twice.
	fused, fusedIn bool
	// sealed: the step's sealed weights (sealed.go).
	sealed *sealedStep
	// onDemand (a Horner map over the model's plaintext budget): the
	// diagonals are kept as slot vectors and each call encodes them as
	// it uses them (PrepareWithin).
	onDemand bool
}

// Parts is how many concurrent parts a linear transformation is split into.
var Parts = 2

// Prepare encodes a program's weights for its plan, holding at most a
// quarter of the memory limit (GOMEMLIMIT) in plaintexts when there is
// one (PrepareWithin).
func Prepare(p *plan.Plan, prog *plan.Program) (*Model, error) {
	var held int64
	if l := debug.SetMemoryLimit(-1); l != math.MaxInt64 {
		held = l / 4
	}
	return PrepareWithin(p, prog, held)
}

// PrepareWithin encodes a program's weights for its plan, holding at
// most held bytes of plaintexts (0: no bound): beyond it, the largest
// maps evaluated by Horner giant steps keep their diagonals as slot
// vectors (8 bytes a slot, against 8 bytes a slot and prime encoded)
// and each call encodes them one at a time as it uses them, which
// costs an encoding per diagonal per call. A network whose plaintexts
// do not fit in memory runs, slower.
func PrepareWithin(p *plan.Plan, prog *plan.Program, held int64) (*Model, error) {
	if p.Sealed {
		return nil, fheserve.Errorf(fheserve.EINVALID, "the plan is compiled for sealed weights: prepare it with the sealed weights")
	}
	return prepare(p, prog, nil, held)
}

func prepare(p *plan.Plan, prog *plan.Program, sealed map[*plan.Step]*sealedStep, held int64) (*Model, error) {
	params, err := he.NewParameters(p.Params)
	if err != nil {
		return nil, err
	}
	m := &Model{Plan: p, prog: prog, params: params, steps: make([]prepared, len(prog.Steps)), sealed: sealed, masked: map[int]*prepared{}, masks: map[int]*rlwe.Plaintext{}}
	m.chooseOnDemand(held)
	kept, _ := m.Plaintexts()
	m.chooseFusion(callMemory(kept))
	if p.Output.Encoding == plan.Coeffs {
		m.keep = make([]int, p.Output.Length)
		for r := range m.keep {
			m.keep[r] = plan.Pos(p.Output.Positions, r)
		}
	}
	out := &prog.Steps[prog.Output-1]
	m.rerandomized = out.Kind == plan.StepMask || out.MaskOutput
	m.inScale = params.DefaultScale()
	ecd := ckks.NewEncoder(params, he.EncodingPrecision)
	m.ecd = ecd
	scales := make([]rlwe.Scale, len(prog.Steps)+1)
	scales[0] = m.inScale
	def := params.DefaultScale()
	// From the last computing step on, values have the plan's output
	// scale, which may be below the default (q_0 holds it with headroom).
	outScale := rlwe.NewScale(math.Exp2(float64(p.Output.LogScale)))
	last := prog.LastCompute()
	for i := range prog.Steps {
		s := &prog.Steps[i]
		// The scale a value should have: the default, or one whose square
		// after rescaling is the default when it feeds a product.
		target := def
		if s.FeedsMul {
			q := float64(params.Q()[s.Level])
			target = rlwe.NewScale(math.Sqrt(q * def.Float64()))
		} else if i+1 >= last {
			target = outScale
		}
		if err := m.prepareStep(ecd, i, scales, target); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// prepareStep encodes step i's constants for a result of scale target and
// records the scale of its output in scales[i+1].
func (m *Model) prepareStep(ecd *ckks.Encoder, i int, scales []rlwe.Scale, target rlwe.Scale) error {
	p, prog, params := m.Plan, m.prog, m.params
	s := &prog.Steps[i]
	st := &m.steps[i]
	in := scales[s.In[0]]
	switch s.Kind {
	case plan.StepLinear:
		st.fusedIn = s.In[0] > 0 && m.steps[s.In[0]-1].fused
		qIn := rlwe.NewScale(params.Q()[s.LevelIn])
		st.ptScale = qIn.Mul(target).Div(in)
		st.target = target
		if err := m.prepareLinear(ecd, s, st); err != nil {
			return fmt.Errorf("cannot prepare step %q: %w", s.Name, err)
		}
		scales[i+1] = target
	case plan.StepSquare:
		scales[i+1] = in.Mul(in).Div(rlwe.NewScale(params.Q()[s.LevelIn]))
	case plan.StepMul:
		scales[i+1] = in.Mul(scales[s.In[1]]).Div(rlwe.NewScale(params.Q()[s.LevelIn]))
	case plan.StepAdd, plan.StepSum:
		scales[i+1] = in
	case plan.StepMask:
		scales[i+1] = in
		if p.Packing == plan.Latency {
			var err error
			if st.mask, err = m.maskPlaintext(ecd, s.LevelIn, m.ciphertextSlots(0, p.BatchSize)); err != nil {
				return err
			}
		}
	case plan.StepPoly:
		st.poly = polynomial.NewPolynomial(bignum.NewPolynomial(polyBasis(s.Basis), s.Poly, [2]float64{-1, 1}))
		st.target = target
		scales[i+1] = target
	default:
		return fheserve.Errorf(fheserve.EINTERNAL, "step %q: unknown kind %q", s.Name, s.Kind)
	}
	st.outScale = scales[i+1]
	return nil
}

// lazyProduct reports whether step i, a product in batch packing that the
// compiler marked lazy (plan.Step.LazyRelin), may stay unrelinearized for
// its readers, batch linear maps.
func (m *Model) lazyProduct(i int) bool {
	s := &m.prog.Steps[i]
	return m.Plan.Packing == plan.Batch && s.LazyRelin && (s.Kind == plan.StepSquare || s.Kind == plan.StepMul) && m.prog.OnlyLinearReaders(i+1)
}

// fusedProduct reports whether step i, a product in batch packing, is left
// unrelinearized and unrescaled for its readers, batch linear maps: they
// sum it at its level, then rescale the degree-2 sums, relinearize them
// and rescale again. Relinearizations go from one per product to one per
// output (the bundled cnn's 720 and 64 squares: 64 and 10), at the price
// of products on three polynomials and one prime more. Unlike a lazy
// product (Step.LazyRelin), no degree-2 ciphertext is rescaled at the
// plan's scale: the first rescale leaves the sums at about the scale
// squared, so the rounding of the third component, which decrypts
// multiplied by s^2, is 2^50 times smaller than the values; the second
// rescale is of a relinearized ciphertext. So the noise is at most the
// noise model's, which counts a relinearization and a rescale per
// product.
func (m *Model) fusedProduct(i int) bool {
	prog := m.prog
	s := &prog.Steps[i]
	if m.Plan.Packing != plan.Batch || (s.Kind != plan.StepSquare && s.Kind != plan.StepMul) || !prog.OnlyLinearReaders(i+1) {
		return false
	}
	outputs := 0
	for j := range prog.Steps {
		r := &prog.Steps[j]
		if !slices.Contains(r.In, i+1) {
			continue
		}
		if r.In[0] != i+1 || len(r.In) != 1 || m.sealed[r] != nil || r.LevelIn != s.Level {
			return false
		}
		outputs += r.M.Rows
	}
	return outputs < s.Length
}

// outputSlots are the slots of the declared outputs of n samples: in
// latency packing the output positions of the first window, or of the
// first n tiles of a tiled plan; in batch packing the first n slots.
func (m *Model) outputSlots(n int) []int {
	if m.Plan.Packing == plan.Batch {
		keep := make([]int, n)
		for j := range keep {
			keep[j] = j
		}
		return keep
	}
	o := m.Plan.Output
	keep := make([]int, 0, n*o.Length)
	for t := 0; t < n; t++ {
		for r := 0; r < o.Length; r++ {
			keep = append(keep, t*o.Tile+plan.Pos(o.Positions, r))
		}
	}
	return keep
}

// ciphertextSlots are the slots of the declared outputs of n samples in
// result ciphertext j: outputSlots, or for an output split over
// ciphertexts (plan.Layout.PerCiphertext) the slots of ciphertext j's.
func (m *Model) ciphertextSlots(j, n int) []int {
	o := m.Plan.Output
	if o.PerCiphertext == 0 {
		return m.outputSlots(n)
	}
	var keep []int
	for i := j * o.PerCiphertext; i < min((j+1)*o.PerCiphertext, o.Length); i++ {
		_, slot := o.Slot(i)
		keep = append(keep, slot)
	}
	return keep
}

// maskPlaintext encodes a slot vector that is 1 at the given slots and 0
// elsewhere, at level and with the scale of that level's prime, so that a
// product by it followed by a rescale keeps the ciphertext's scale.
func (m *Model) maskPlaintext(ecd *ckks.Encoder, level int, keep []int) (*rlwe.Plaintext, error) {
	v := make([]float64, m.params.MaxSlots())
	for _, j := range keep {
		v[j] = 1
	}
	pt := ckks.NewPlaintext(m.params, level)
	pt.Scale = rlwe.NewScale(m.params.Q()[level])
	if err := ecd.Encode(v, pt); err != nil {
		return nil, err
	}
	return pt, nil
}

// randomMask encodes the mask of a randomized mask step (plan.Step.Spread)
// for one ciphertext of a call, keeping the given slots: every kept slot gets its own factor
// r = Spread^-u with u uniform on [0, 1] (r log-uniform on [1/Spread, 1]),
// from a ChaCha8 stream seeded by crypto/rand for this call alone, so
// that neither the user nor an earlier call knows or repeats it; every
// other slot 0. The scale is the level's prime, as maskPlaintext's.
func (m *Model) randomMask(level int, keep []int, spread float64) (*rlwe.Plaintext, error) {
	var seed [32]byte
	if _, err := crand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("cannot draw the decision factors: %w", err)
	}
	rng := mrand.New(mrand.NewChaCha8(seed))
	v := make([]float64, m.params.MaxSlots())
	for _, j := range keep {
		v[j] = math.Pow(spread, -rng.Float64())
	}
	pt := ckks.NewPlaintext(m.params, level)
	pt.Scale = rlwe.NewScale(m.params.Q()[level])
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.ecd.Encode(v, pt); err != nil {
		return nil, err
	}
	return pt, nil
}

// maskFor returns the mask step's plaintext at level for a call of n
// samples, fewer than the batch, encoded when a call first needs it.
func (m *Model) maskFor(level, n int) (*rlwe.Plaintext, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if pt, ok := m.masks[n]; ok {
		return pt, nil
	}
	pt, err := m.maskPlaintext(m.ecd, level, m.outputSlots(n))
	if err != nil {
		return nil, err
	}
	m.masks[n] = pt
	return pt, nil
}

func polyBasis(b string) bignum.Basis {
	if b == plan.Chebyshev {
		return bignum.Chebyshev
	}
	return bignum.Monomial
}

// prepareLinear encodes a linear step's weights at st.ptScale, in the form
// its evaluation reads them.
func (m *Model) prepareLinear(ecd *ckks.Encoder, s *plan.Step, st *prepared) error {
	switch {
	case m.sealed != nil:
		return m.prepareSealed(s, st)
	case m.Plan.Packing == plan.Batch:
		return m.prepareBatchRows(s, st)
	case s.Coeffs:
		return m.prepareCoeffs(ecd, s, st)
	case s.Groups > 1:
		st.groups = make([]prepared, s.Groups)
		for g := range st.groups {
			sub := s.Group(g)
			gs := &st.groups[g]
			gs.ptScale, gs.target = st.ptScale, st.target
			if err := m.prepareDiagonals(ecd, &sub, gs, 1); err != nil {
				return err
			}
		}
		return nil
	case m.prepareDot(ecd, s, st):
		return nil
	default:
		return m.prepareDiagonals(ecd, s, st, m.Plan.BatchSize)
	}
}

// prepareDot prepares a map of one non-empty row (a gallery's
// verification: the claimed template's row) as an inner product: the row
// at the input's first period, one product and log2(Pin) rotations
// summing the period into slot 0, where the row's output is, instead of
// every diagonal of the map. It reports false, and prepares nothing,
// when the map is not such a row or the plan has no keys for the
// rotations (1, 2, 4, ..., Pin/2).
func (m *Model) prepareDot(ecd *ckks.Encoder, s *plan.Step, st *prepared) bool {
	if s.Tile > 0 || s.MaskOutput || s.Pin < 2 || s.Pin&(s.Pin-1) != 0 || s.M.Rows < 1 || plan.Pos(s.OutPos, 0) != 0 || s.M.RowPtr[1] != s.M.NNZ() || !m.maskedAtZero(s) {
		return false
	}
	for r := 1; r < s.Pin; r *= 2 {
		if !slices.Contains(m.Plan.Rotations, r) {
			return false
		}
	}
	v := make([]float64, m.params.MaxSlots())
	cols, vals := s.M.Row(0)
	for i, c := range cols {
		v[plan.Pos(s.InPos, c)] = vals[i]
	}
	pt := ckks.NewPlaintext(m.params, s.LevelIn)
	pt.Scale = st.ptScale
	if err := ecd.Encode(v, pt); err != nil {
		return false
	}
	st.dot = pt
	if s.Bias != nil {
		st.bias = make([]float64, m.params.MaxSlots())
		st.bias[0] = s.Bias[0]
		if m.encodeBias(ecd, s, st) != nil {
			st.dot, st.bias = nil, nil
			return false
		}
	}
	return true
}

// maskedAtZero reports whether step s's output reaches the result only
// through elementwise polynomials and a mask step that keeps slot 0
// alone: the other slots of a one-row map's inner sum (partial sums, not
// the copies of the output a diagonal map writes) are then never read.
func (m *Model) maskedAtZero(s *plan.Step) bool {
	steps := m.prog.Steps
	v := 0
	for i := range steps {
		if &steps[i] == s {
			v = i + 1
		}
	}
	for v > 0 && v != m.prog.Output {
		next := -1
		for i := range steps {
			if slices.Contains(steps[i].In, v) {
				if next >= 0 {
					return false
				}
				next = i
			}
		}
		if next < 0 || (steps[next].Kind != plan.StepPoly && steps[next].Kind != plan.StepMask) {
			return false
		}
		v = next + 1
	}
	keep := m.ciphertextSlots(0, m.Plan.BatchSize)
	return v == m.prog.Output && m.prog.Steps[v-1].Kind == plan.StepMask && m.Plan.Output.Ciphertexts == 1 && len(keep) == 1 && keep[0] == 0
}

// linearDot evaluates a map prepared by prepareDot: slot 0 holds the
// row's output; the other slots, partial sums, are the mask step's to
// zero.
func (e *Evaluator) linearDot(s *plan.Step, st *prepared, x *rlwe.Ciphertext) (*rlwe.Ciphertext, error) {
	out, err := e.eval.MulNew(x, st.dot)
	if err != nil {
		return nil, err
	}
	if err := e.eval.Rescale(out, out); err != nil {
		return nil, err
	}
	for b := 1; b < s.Pin; {
		rots := e.m.sumStage(b, s.Pin)
		if out, err = e.hoistedSum(out, rots); err != nil {
			return nil, err
		}
		b *= len(rots) + 1
	}
	return e.withBias(out, st)
}

// sumStage returns the rotations b, 2b, ..., (k-1)b of one stage of a
// slot sum whose partial sums hold blocks of b slots: k the largest power
// of two up to pin/b for which the plan has every key (at least 2:
// prepareDot checked the powers of two). Fewer, wider stages won: with
// the gallery keys (1..16 and multiples of 16) a 128-slot sum is two
// stages, [1..15] and [16..112] (22 hoisted key switches, 2
// decompositions and 2 ModDowns, against 7 of each for 7 rotations).
func (m *Model) sumStage(b, pin int) []int {
	k := 2
	for next := 4; next <= pin/b; next *= 2 {
		ok := true
		for j := 1; j < next; j++ {
			ok = ok && slices.Contains(m.Plan.Rotations, j*b)
		}
		if !ok {
			break
		}
		k = next
	}
	rots := make([]int, k-1)
	for j := range rots {
		rots[j] = (j + 1) * b
	}
	return rots
}

// hoistedSum returns y plus its rotations by rots, all from one
// decomposition of y: the rotations are summed modulo QP and brought
// back to Q once (one ModDown instead of one per rotation).
func (e *Evaluator) hoistedSum(y *rlwe.Ciphertext, rots []int) (*rlwe.Ciphertext, error) {
	if len(rots) == 1 {
		rot, err := e.eval.RotateNew(y, rots[0])
		if err != nil {
			return nil, err
		}
		return rot, e.eval.Add(y, rot, rot)
	}
	rp := e.m.params.GetRLWEParameters()
	levelQ, levelP := y.Level(), e.m.params.MaxLevelP()
	pool := rlwe.NewPool(rp.RingQP()).AtLevel(levelQ, levelP)
	decomp := pool.GetBuffDecompQP(*rp, levelQ, levelP)
	defer pool.RecycleBuffDecompQP(decomp)
	e.eval.DecomposeNTT(levelQ, levelP, levelP+1, y.Value[1], y.IsNTT, decomp)
	ringQP := rp.RingQP().AtLevel(levelQ, levelP)
	acc := &rlwe.Element[ringqp.Poly]{Value: []ringqp.Poly{ringQP.NewPoly(), ringQP.NewPoly()}, MetaData: y.MetaData.CopyNew()}
	tmp := &rlwe.Element[ringqp.Poly]{Value: []ringqp.Poly{ringQP.NewPoly(), ringQP.NewPoly()}, MetaData: y.MetaData.CopyNew()}
	for _, r := range rots {
		if err := e.eval.AutomorphismHoistedLazy(levelQ, y, decomp, e.m.params.GaloisElement(r), tmp); err != nil {
			return nil, err
		}
		ringQP.Add(acc.Value[0], tmp.Value[0], acc.Value[0])
		ringQP.Add(acc.Value[1], tmp.Value[1], acc.Value[1])
	}
	out := ckks.NewCiphertext(e.m.params, 1, levelQ)
	*out.MetaData = *y.MetaData
	e.eval.ModDown(levelQ, levelP, acc, out)
	return out, e.eval.Add(out, y, out)
}

// batchLevel is the level of a batch linear map's inputs.
func batchLevel(s *plan.Step, st *prepared) int {
	if st.fusedIn {
		return s.LevelIn + 1
	}
	return s.LevelIn
}

// prepareBatchRows reduces each weight, scaled, modulo every prime of the
// step's input level: the scalar products of linearBatch.
func (m *Model) prepareBatchRows(s *plan.Step, st *prepared) error {
	params := m.params
	// ptScale = q * target/in: each weight becomes round(w * ptScale).
	f := st.ptScale.Float64()
	ringQ := params.RingQ()
	nl := batchLevel(s, st) + 1
	st.rows = make([][]uint64, s.M.Rows)
	ints := make([][]int64, s.M.Rows)
	st.ints52 = true
	for r := range st.rows {
		_, vals := s.M.Row(r)
		w := make([]uint64, len(vals)*nl)
		ints[r] = make([]int64, len(vals))
		for j, v := range vals {
			x := v * f
			if math.Abs(x) >= 1<<62 {
				return fheserve.Errorf(fheserve.EUNSUPPORTED, "weight %g of step %q is too large for the parameters", v, s.Name)
			}
			wi := int64(math.Round(x))
			ints[r][j] = wi
			st.ints52 = st.ints52 && max(wi, -wi) < 1<<52
			for i := 0; i < nl; i++ {
				sr := ringQ.SubRings[i]
				u := wi % int64(sr.Modulus)
				if u < 0 {
					u += int64(sr.Modulus)
				}
				w[j*nl+i] = uint64(u)
			}
		}
		st.rows[r] = w
	}
	if hasMAC {
		st.mac = macRows(s, st.rows, ints, ringQ.SubRings[:nl])
	}
	st.bias = s.Bias
	return nil
}

// prepareCoeffs encodes the weights as one coefficient-encoded plaintext,
// each row reversed (see linearCoeffs), and the bias as coefficients.
func (m *Model) prepareCoeffs(ecd *ckks.Encoder, s *plan.Step, st *prepared) error {
	params := m.params
	pt := ckks.NewPlaintext(params, s.LevelIn)
	pt.IsBatched = false
	pt.Scale = st.ptScale
	if err := ecd.Encode(s.WeightPolynomial(params.N()), pt); err != nil {
		return err
	}
	st.coeffPt = pt
	if s.Bias != nil {
		st.coeffB = s.BiasCoefficients(params.N())
	}
	return nil
}

// prepareDiagonals encodes the weights' diagonals as a baby-step
// giant-step linear transformation split into Parts, and the bias as a
// slot vector. A map that masks its output writes the first window, or
// the first n tiles of a tiled plan, and zero everywhere else.
func (m *Model) prepareDiagonals(ecd *ckks.Encoder, s *plan.Step, st *prepared, n int) error {
	params := m.params
	slots := params.MaxSlots()
	diags := s.Diagonals()
	// The diagonals, and the bias, repeat every window (a tile, or the
	// larger period); a masked map fills the first windows only.
	window := max(s.Pin, s.Pout, s.Tile)
	windows := slots / window
	if s.MaskOutput {
		windows = 1
		if s.Tile > 0 {
			windows = n
		}
	}
	full := make(lintrans.Diagonals[float64], len(diags))
	for k, d := range diags {
		v := make([]float64, slots)
		for w := 0; w < windows; w++ {
			copy(v[w*window:], d)
		}
		full[k] = v
	}
	if s.Horner > 0 {
		if err := m.prepareHorner(ecd, s, st, full); err != nil {
			return err
		}
	} else if err := m.prepareBSGS(ecd, s, st, full); err != nil {
		return err
	}
	if s.Bias != nil {
		// Every copy of the output gets the bias; a masked map's output
		// has one copy per window.
		step := s.Pout
		if s.MaskOutput {
			step = window
		}
		st.bias = make([]float64, slots)
		for j := 0; j < windows*window; j += step {
			for r, b := range s.Bias {
				st.bias[j+plan.Pos(s.OutPos, r)] = b
			}
		}
		return m.encodeBias(ecd, s, st)
	}
	return nil
}

// encodeBias encodes st.bias at step s's output level and scale, the
// plaintext withBias adds (it encodes the slot vector itself, per
// call, for an output at another level or scale).
func (m *Model) encodeBias(ecd *ckks.Encoder, s *plan.Step, st *prepared) error {
	pt := ckks.NewPlaintext(m.params, s.Level)
	pt.Scale = st.target
	if err := ecd.Encode(st.bias, pt); err != nil {
		return err
	}
	st.biasPt = pt
	return nil
}

// prepareBSGS encodes full-slot diagonals as a baby-step giant-step
// linear transformation split into Parts.
func (m *Model) prepareBSGS(ecd *ckks.Encoder, s *plan.Step, st *prepared, full lintrans.Diagonals[float64]) error {
	params := m.params
	ltp := ltckks.Parameters{
		DiagonalsIndexList:        full.DiagonalsIndexList(),
		LevelQ:                    s.LevelIn,
		LevelP:                    params.MaxLevelP(),
		Scale:                     st.ptScale,
		LogDimensions:             ring.Dimensions{Rows: 0, Cols: params.LogMaxSlots()},
		LogBabyStepGiantStepRatio: s.LogBSGSRatio,
	}
	lt := ltckks.NewTransformation(params, ltp)
	if err := ltckks.Encode(ecd, ltckks.Diagonals[float64](full), lt); err != nil {
		return err
	}
	st.parts = splitTransformation(lintrans.LinearTransformation(lt), Parts)
	return nil
}

// maskedFor returns step i, the last linear map of a tiled plan, prepared
// to write the outputs of the first n tiles only.
func (m *Model) maskedFor(i, n int) (*prepared, error) {
	if n == m.Plan.BatchSize {
		return &m.steps[i], nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if st, ok := m.masked[n]; ok {
		return st, nil
	}
	full := &m.steps[i]
	st := &prepared{target: full.target, ptScale: full.ptScale, outScale: full.outScale, onDemand: full.onDemand}
	if err := m.prepareDiagonals(m.ecd, &m.prog.Steps[i], st, n); err != nil {
		return nil, err
	}
	m.masked[n] = st
	return st, nil
}

// splitTransformation divides a baby-step giant-step transformation into
// up to n transformations over disjoint giant steps with the same baby
// steps; their results add up to the whole.
func splitTransformation(lt lintrans.LinearTransformation, n int) []lintrans.LinearTransformation {
	index, giants, _ := lt.BSGSIndex()
	if n <= 1 || len(giants) < 2 || lt.N1 == 0 {
		return []lintrans.LinearTransformation{lt}
	}
	n = min(n, len(giants))
	// Balance the number of diagonals per part, largest groups first.
	sort.Slice(giants, func(a, b int) bool { return len(index[giants[a]]) > len(index[giants[b]]) })
	load := make([]int, n)
	parts := make([]lintrans.LinearTransformation, n)
	for i := range parts {
		parts[i] = lt
		parts[i].Vec = map[int]ringqp.Poly{}
	}
	for _, j := range giants {
		best := 0
		for i := range load {
			if load[i] < load[best] {
				best = i
			}
		}
		for _, b := range index[j] {
			parts[best].Vec[j+b] = lt.Vec[j+b]
		}
		load[best] += len(index[j])
	}
	return parts
}

// Evaluator evaluates a Model with one user's evaluation keys. It is safe
// for concurrent use.
type Evaluator struct {
	m         *Model
	eval      *ckks.Evaluator
	lt        *lintrans.Evaluator
	sanitizer *he.Sanitizer
	workers   int
}

// NewEvaluator binds a model to a user's evaluation keys. workers is the
// number of goroutines evaluation may use (0: GOMAXPROCS).
func (m *Model) NewEvaluator(keys *he.EvalKeys, workers int) (*Evaluator, error) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	if err := keys.Spec().Covers(he.PlanKeys(m.Plan)); err != nil {
		return nil, err
	}
	san, err := he.NewSanitizer(m.params, keys.Public)
	if err != nil {
		return nil, err
	}
	eval := ckks.NewEvaluator(m.params, keys.EvaluationKeySet())
	return &Evaluator{m: m, eval: eval, lt: lintrans.NewEvaluator(eval), sanitizer: san, workers: workers}, nil
}

// Params returns the CKKS parameters of the model.
func (m *Model) Params() ckks.Parameters { return m.params }

// Steps is the number of progress units of one evaluation.
func (m *Model) Steps() int { return len(m.prog.Steps) + 1 }

// Evaluate runs the program on one call's input ciphertexts holding the
// given number of samples (1 to the plan's batch size: its tiles in
// latency packing) and returns the sanitized result ciphertexts at
// level 0, which hold the outputs of those samples and nothing else.
// progress, if not nil, is called after each step with (done, total).
func (e *Evaluator) Evaluate(ctx context.Context, in []*rlwe.Ciphertext, samples int, progress func(done, total int)) ([]*rlwe.Ciphertext, error) {
	return e.evaluate(ctx, in, samples, progress, false)
}

// EvaluateOwned is Evaluate for a caller that hands the input over: each
// input ciphertext is dropped (its entry of in set to nil) once no later
// step reads it, as the steps' own values are, instead of being held to
// the end of the call (a batch call's input is hundreds of ciphertexts:
// fmnist-cnn-poly's, 3.7 GB).
func (e *Evaluator) EvaluateOwned(ctx context.Context, in []*rlwe.Ciphertext, samples int, progress func(done, total int)) ([]*rlwe.Ciphertext, error) {
	return e.evaluate(ctx, in, samples, progress, true)
}

func (e *Evaluator) evaluate(ctx context.Context, in []*rlwe.Ciphertext, samples int, progress func(done, total int), owned bool) ([]*rlwe.Ciphertext, error) {
	p := e.m.Plan
	if samples < 1 || samples > p.BatchSize {
		return nil, fheserve.Errorf(fheserve.EINVALID, "a call holds 1 to %d samples, not %d", p.BatchSize, samples)
	}
	if len(in) != p.Input.Ciphertexts {
		return nil, fheserve.Errorf(fheserve.EINVALID, "input has %d ciphertexts, the plan takes %d", len(in), p.Input.Ciphertexts)
	}
	wantBatched := p.Input.Encoding == plan.Slots
	for i, ct := range in {
		switch {
		case ct == nil || ct.Degree() != 1:
			return nil, fheserve.Errorf(fheserve.EINVALID, "input ciphertext %d is not a degree-1 ciphertext", i)
		case ct.Level() != p.Input.Level:
			return nil, fheserve.Errorf(fheserve.EINVALID, "input ciphertext %d is at level %d, the plan takes level %d", i, ct.Level(), p.Input.Level)
		case ct.IsBatched != wantBatched:
			return nil, fheserve.Errorf(fheserve.EINVALID, "input ciphertext %d has the wrong encoding (slots vs coefficients)", i)
		case !ct.IsNTT:
			return nil, fheserve.Errorf(fheserve.EINVALID, "input ciphertext %d is not in NTT form", i)
		}
		if r := ct.Scale.Float64() / e.m.inScale.Float64(); math.Abs(r-1) > 1e-9 {
			return nil, fheserve.Errorf(fheserve.EINVALID, "input ciphertext %d has scale 2^%.2f, the plan takes 2^%d", i, math.Log2(ct.Scale.Float64()), p.Params.LogDefaultScale)
		}
	}
	total := e.m.Steps()
	vals := make([][]*rlwe.Ciphertext, len(e.m.prog.Steps)+1)
	vals[0] = in
	zeros := e.drawZeros()
	for i := range e.m.prog.Steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		out, err := e.step(i, vals, samples, zeros, owned)
		if err != nil {
			return nil, fmt.Errorf("step %q: %w", e.m.prog.Steps[i].Name, err)
		}
		vals[i+1] = out
		// Free values no later step reads.
		e.release(vals, i, owned)
		if progress != nil {
			progress(i+1, total)
		}
	}
	res := vals[e.m.prog.Output]
	err := e.parallel(len(res), func(j int) error {
		if e.m.rerandomized {
			return e.sanitizer.Flood(res[j], p.Precision.FloodStd)
		}
		return e.sanitizer.SanitizeKeeping(res[j], p.Precision.FloodStd, e.m.keep)
	})
	if err != nil {
		return nil, err
	}
	if progress != nil {
		progress(total, total)
	}
	return res, nil
}

// zeros are the fresh encryptions of zero a call's mask step adds to its
// result ciphertexts, one each, drawn while the steps before it run: they
// do not depend on the input, and the draw takes the second core that a
// one-ciphertext evaluation (a verification) leaves idle.
type zeros struct {
	done  chan struct{}
	level int
	cts   []*rlwe.Ciphertext
	err   error
}

// drawZeros starts drawing the encryptions of zero of a call whose last
// step is a latency mask step (nil for other plans: the mask draws its
// own).
func (e *Evaluator) drawZeros() *zeros {
	p, out := e.m.Plan, e.m.prog.Output
	if out < 1 || p.Packing == plan.Batch || p.Output.Ciphertexts < 1 {
		return nil
	}
	s := &e.m.prog.Steps[out-1]
	if s.Kind != plan.StepMask {
		return nil
	}
	z := &zeros{done: make(chan struct{}), level: s.LevelIn, cts: make([]*rlwe.Ciphertext, p.Output.Ciphertexts)}
	go func() {
		defer close(z.done)
		for j := range z.cts {
			if z.cts[j], z.err = e.sanitizer.Zero(z.level); z.err != nil {
				return
			}
		}
	}()
	return z
}

// get waits for the draw and returns result ciphertext j's encryption of
// zero, or nil when there is none for it at level (the caller draws it).
func (z *zeros) get(j, level int) (*rlwe.Ciphertext, error) {
	if z == nil {
		return nil, nil
	}
	<-z.done
	if z.err != nil {
		return nil, z.err
	}
	if j >= len(z.cts) || level != z.level {
		return nil, nil
	}
	return z.cts[j], nil
}

// release drops values whose last reader was step i (the input only when
// the caller handed it over: owned).
func (e *Evaluator) release(vals [][]*rlwe.Ciphertext, i int, owned bool) {
	steps := e.m.prog.Steps
	for _, in := range steps[i].In {
		if in == e.m.prog.Output || in == 0 && !owned {
			continue
		}
		used := false
		for j := i + 1; j < len(steps) && !used; j++ {
			for _, x := range steps[j].In {
				used = used || x == in
			}
		}
		if !used {
			if in == 0 {
				clear(vals[in]) // the caller's slice: drop its ciphertexts
			}
			vals[in] = nil
		}
	}
}

// consumed returns value k's ciphertexts when step i is the last step to
// read them and they are neither the call's input (unless owned: handed
// over by the caller) nor its result, so that an elementwise step drops each one as soon as it has
// used it (nil otherwise). A batch plan's layers are thousands of
// ciphertexts of megabytes each: without this a layer's input and its
// output are both held whole while the step runs, the largest part of a
// batch call's peak memory.
func (e *Evaluator) consumed(vals [][]*rlwe.Ciphertext, i, k int, owned bool) []*rlwe.Ciphertext {
	if k == 0 && !owned || k == e.m.prog.Output {
		return nil
	}
	for _, s := range e.m.prog.Steps[i+1:] {
		if slices.Contains(s.In, k) {
			return nil
		}
	}
	return vals[k]
}

// drop forgets ciphertext j of a consumed value (see consumed).
func drop(x []*rlwe.Ciphertext, j int) {
	if x != nil {
		x[j] = nil
	}
}

// parallelSum runs f(0..n-1) on the evaluator's workers and returns the
// sum of their ciphertexts (added into f(0)'s).
func (e *Evaluator) parallelSum(n int, f func(int) (*rlwe.Ciphertext, error)) (*rlwe.Ciphertext, error) {
	cts := make([]*rlwe.Ciphertext, n)
	err := e.parallel(n, func(k int) error {
		ct, err := f(k)
		cts[k] = ct
		return err
	})
	if err != nil {
		return nil, err
	}
	out := cts[0]
	for _, o := range cts[1:] {
		if err := e.eval.Add(out, o, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// parallel runs f(0..n-1) on the evaluator's workers.
func (e *Evaluator) parallel(n int, f func(int) error) error {
	w := min(e.workers, n)
	if w <= 1 {
		for i := 0; i < n; i++ {
			if err := f(i); err != nil {
				return err
			}
		}
		return nil
	}
	var (
		mu   sync.Mutex
		next int
		ferr error
		wg   sync.WaitGroup
	)
	for k := 0; k < w; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				stop := ferr != nil
				mu.Unlock()
				if i >= n || stop {
					return
				}
				if err := f(i); err != nil {
					mu.Lock()
					if ferr == nil {
						ferr = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return ferr
}

func (e *Evaluator) step(i int, vals [][]*rlwe.Ciphertext, samples int, zeros *zeros, owned bool) ([]*rlwe.Ciphertext, error) {
	s := &e.m.prog.Steps[i]
	st := &e.m.steps[i]
	x := vals[s.In[0]]
	switch s.Kind {
	case plan.StepLinear:
		switch {
		case st.sealed != nil:
			out, err := e.linearSealed(s, st, x[0])
			return []*rlwe.Ciphertext{out}, err
		case e.m.Plan.Packing == plan.Batch:
			return e.linearBatch(s, st, x)
		case s.Coeffs:
			out, err := e.linearCoeffs(s, st, x[0])
			return []*rlwe.Ciphertext{out}, err
		case st.dot != nil:
			out, err := e.linearDot(s, st, x[0])
			return []*rlwe.Ciphertext{out}, err
		case st.groups != nil:
			return e.linearGroups(s, st, x[0])
		default:
			if s.MaskOutput && s.Tile > 0 {
				var err error
				if st, err = e.m.maskedFor(i, samples); err != nil {
					return nil, err
				}
			}
			out, err := e.linearSlots(s, st, x[0])
			return []*rlwe.Ciphertext{out}, err
		}
	case plan.StepSquare:
		return e.mul(st, x, x, e.consumed(vals, i, s.In[0], owned), nil)
	case plan.StepMul:
		return e.mul(st, x, vals[s.In[1]], e.consumed(vals, i, s.In[0], owned), e.consumed(vals, i, s.In[1], owned))
	case plan.StepAdd:
		y := vals[s.In[1]]
		out := make([]*rlwe.Ciphertext, len(x))
		err := e.parallel(len(x), func(j int) error {
			ct, err := e.eval.AddNew(x[j], y[j])
			out[j] = ct
			return err
		})
		return out, err
	case plan.StepMask:
		return e.mask(s, st, x, samples, zeros)
	case plan.StepPoly:
		return e.poly(s, st, x, e.consumed(vals, i, s.In[0], owned))
	case plan.StepSum:
		return e.sum(s, x)
	}
	return nil, fheserve.Errorf(fheserve.EINTERNAL, "unknown step kind %q", s.Kind)
}

// sum adds the windows of a Sum step: in latency packing by its stages of
// rotations, each stage's from one hoisted decomposition; in batch packing
// the ciphertexts of each window.
func (e *Evaluator) sum(s *plan.Step, x []*rlwe.Ciphertext) ([]*rlwe.Ciphertext, error) {
	if e.m.Plan.Packing == plan.Batch {
		out := make([]*rlwe.Ciphertext, s.M.Rows)
		err := e.parallel(len(out), func(r int) error {
			cols, _ := s.M.Row(r)
			acc := x[cols[0]].CopyNew()
			for _, c := range cols[1:] {
				if err := e.eval.Add(acc, x[c], acc); err != nil {
					return err
				}
			}
			out[r] = acc
			return nil
		})
		return out, err
	}
	acc := x[0]
	for _, stage := range s.Stages {
		next, err := e.sumStage(acc, stage)
		if err != nil {
			return nil, err
		}
		acc = next
	}
	if acc == x[0] {
		acc = acc.CopyNew()
	}
	return []*rlwe.Ciphertext{acc}, nil
}

// sumStage returns the sum of x rotated by each offset (0: x itself), the
// rotations hoisted.
func (e *Evaluator) sumStage(x *rlwe.Ciphertext, offsets []int) (*rlwe.Ciphertext, error) {
	var rots []int
	for _, r := range offsets {
		if r != 0 {
			rots = append(rots, r)
		}
	}
	if len(rots) == 0 {
		return x, nil
	}
	rotated, err := e.eval.RotateHoistedNew(x, rots)
	if err != nil {
		return nil, err
	}
	acc := rotated[rots[0]]
	for _, r := range rots[1:] {
		if err := e.eval.Add(acc, rotated[r], acc); err != nil {
			return nil, err
		}
	}
	if slices.Contains(offsets, 0) {
		if err := e.eval.Add(acc, x, acc); err != nil {
			return nil, err
		}
	}
	return acc, nil
}

// mul multiplies x by y element by element and rescales; the products stay
// unrelinearized when the step is lazy.
func (e *Evaluator) mul(st *prepared, x, y, dropX, dropY []*rlwe.Ciphertext) ([]*rlwe.Ciphertext, error) {
	out := make([]*rlwe.Ciphertext, len(x))
	err := e.parallel(len(x), func(j int) error {
		mul := e.eval.MulRelinNew
		if st.lazyRelin || st.fused {
			mul = e.eval.MulNew
		}
		ct, err := mul(x[j], y[j])
		if err != nil {
			return err
		}
		drop(dropX, j)
		drop(dropY, j)
		if st.fused {
			out[j] = ct
			return nil
		}
		if err := e.eval.Rescale(ct, ct); err != nil {
			return err
		}
		out[j] = ct
		return nil
	})
	return out, err
}

// poly evaluates the step's polynomial on each ciphertext of x and brings
// the results to the step's level.
func (e *Evaluator) poly(s *plan.Step, st *prepared, x, dropX []*rlwe.Ciphertext) ([]*rlwe.Ciphertext, error) {
	out := make([]*rlwe.Ciphertext, len(x))
	err := e.parallel(len(x), func(j int) error {
		pe := polynomial.NewEvaluator(e.m.params, e.eval)
		ct, err := pe.Evaluate(x[j], st.poly, st.target)
		if err != nil {
			return err
		}
		drop(dropX, j)
		if ct.Level() != s.Level {
			e.eval.DropLevel(ct, ct.Level()-s.Level)
		}
		out[j] = ct
		return nil
	})
	return out, err
}

// mask keeps the call's declared outputs and zeroes every other slot, so
// that a result carries nothing but them: in latency packing the output
// positions of the first window (the other windows are copies for an
// honest input, and anything at all for a crafted one) or of the call's
// tiles, in batch packing the slots of the call's samples.
func (e *Evaluator) mask(s *plan.Step, st *prepared, x []*rlwe.Ciphertext, samples int, zeros *zeros) ([]*rlwe.Ciphertext, error) {
	if e.m.Plan.Packing == plan.Batch && samples == e.m.Plan.BatchSize {
		// Every slot is a declared sample: nothing to zero, and no
		// rescale whose rounding to hide; re-randomized as every
		// masked result is.
		out := make([]*rlwe.Ciphertext, len(x))
		err := e.parallel(len(x), func(j int) error {
			out[j] = x[j].CopyNew()
			e.eval.DropLevel(out[j], s.LevelIn-s.Level)
			return e.sanitizer.Rerandomize(out[j])
		})
		return out, err
	}
	pt := st.mask // latency: the outputs of the full batch
	if samples < e.m.Plan.BatchSize && s.Spread == 0 {
		var err error
		if pt, err = e.m.maskFor(s.LevelIn, samples); err != nil {
			return nil, err
		}
	}
	if e.m.Plan.Output.PerCiphertext > 0 && len(x) != e.m.Plan.Output.Ciphertexts {
		return nil, fheserve.Errorf(fheserve.EINTERNAL, "step %q: %d ciphertexts to mask, the plan returns %d", s.Name, len(x), e.m.Plan.Output.Ciphertexts)
	}
	out := make([]*rlwe.Ciphertext, len(x))
	err := e.parallel(len(x), func(j int) error {
		pt := pt
		switch {
		case s.Spread > 0:
			var err error
			if pt, err = e.m.randomMask(s.LevelIn, e.m.ciphertextSlots(j, samples), s.Spread); err != nil {
				return err
			}
		case e.m.Plan.Output.PerCiphertext > 0 && j > 0:
			e.m.mu.Lock()
			var err error
			pt, err = e.m.maskPlaintext(e.m.ecd, s.LevelIn, e.m.ciphertextSlots(j, samples))
			e.m.mu.Unlock()
			if err != nil {
				return err
			}
		}
		ct, err := e.eval.MulNew(x[j], pt)
		if err != nil {
			return err
		}
		// Re-randomized before the rescale, the rescale's rounding (in
		// every slot, zeroed or not) no longer depends on the weights.
		zero, err := zeros.get(j, ct.Level())
		if err != nil {
			return err
		}
		if zero != nil {
			err = e.sanitizer.RerandomizeWith(ct, zero)
		} else {
			err = e.sanitizer.Rerandomize(ct)
		}
		if err != nil {
			return err
		}
		if err := e.eval.Rescale(ct, ct); err != nil {
			return err
		}
		ct.Scale = st.outScale
		out[j] = ct
		return nil
	})
	return out, err
}

// linearSlots evaluates M x with the diagonal method: hoisted baby-step
// rotations shared by all parts, giant steps split across cores, then
// rescaling, block folding and the bias.
func (e *Evaluator) linearSlots(s *plan.Step, st *prepared, x *rlwe.Ciphertext) (*rlwe.Ciphertext, error) {
	if st.horner != nil {
		return e.linearHorner(s, st, x)
	}
	params := e.m.params
	levelQ := x.Level()
	pre, err := e.preRotate(st.parts, x)
	if err != nil {
		return nil, err
	}
	out, err := e.parallelSum(len(st.parts), func(k int) (*rlwe.Ciphertext, error) {
		out := ckks.NewCiphertext(params, 1, levelQ)
		return out, e.lt.MultiplyByDiagMatrixBSGS(x, st.parts[k], pre, out)
	})
	if err != nil {
		return nil, err
	}
	return e.finishSlots(s, st, out)
}

// linearGroups evaluates a grouped map (plan.Step.Groups): the baby-step
// rotations of x hoisted once for every group, then each group's giant
// steps, one output ciphertext per group, groups spread over the
// workers.
func (e *Evaluator) linearGroups(s *plan.Step, st *prepared, x *rlwe.Ciphertext) ([]*rlwe.Ciphertext, error) {
	var parts []lintrans.LinearTransformation
	for g := range st.groups {
		parts = append(parts, st.groups[g].parts...)
	}
	pre, err := e.preRotate(parts, x)
	if err != nil {
		return nil, err
	}
	out := make([]*rlwe.Ciphertext, len(st.groups))
	err = e.parallel(len(st.groups), func(g int) error {
		gs := &st.groups[g]
		var sum *rlwe.Ciphertext
		for _, part := range gs.parts {
			ct := ckks.NewCiphertext(e.m.params, 1, x.Level())
			if err := e.lt.MultiplyByDiagMatrixBSGS(x, part, pre, ct); err != nil {
				return err
			}
			if sum == nil {
				sum = ct
			} else if err := e.eval.Add(sum, ct, sum); err != nil {
				return err
			}
		}
		ct, err := e.finishSlots(s, gs, sum)
		out[g] = ct
		return err
	})
	return out, err
}

// preRotate returns the hoisted baby-step rotations of x that parts use.
func (e *Evaluator) preRotate(parts []lintrans.LinearTransformation, x *rlwe.Ciphertext) (map[int]*rlwe.Element[ringqp.Poly], error) {
	rp := e.m.params.GetRLWEParameters()
	levelQ, levelP := x.Level(), parts[0].LevelP
	// The parts share N1 but not necessarily all baby steps: hoist the union.
	need := map[int]bool{}
	for _, part := range parts {
		_, _, b := part.BSGSIndex()
		for _, r := range b {
			need[r] = true
		}
	}
	babies := make([]int, 0, len(need))
	for r := range need {
		babies = append(babies, r)
	}
	sort.Ints(babies)

	pool := rlwe.NewPool(rp.RingQP()).AtLevel(levelQ, levelP)
	decomp := pool.GetBuffDecompQP(*rp, levelQ, levelP)
	defer pool.RecycleBuffDecompQP(decomp)
	e.eval.DecomposeNTT(levelQ, levelP, levelP+1, x.Value[1], x.IsNTT, decomp)

	// Hoisted baby steps, spread over the workers.
	w := max(1, min(e.workers, len(babies)))
	maps := make([]map[int]*rlwe.Element[ringqp.Poly], w)
	err := e.parallel(w, func(k int) error {
		var mine []int
		for j := k; j < len(babies); j += w {
			mine = append(mine, babies[j])
		}
		maps[k] = map[int]*rlwe.Element[ringqp.Poly]{}
		return e.lt.PreRotatedCiphertextForDiagonalMatrixMultiplication(levelQ, levelP, x, decomp, mine, maps[k])
	})
	if err != nil {
		return nil, err
	}
	pre := map[int]*rlwe.Element[ringqp.Poly]{}
	for _, m := range maps {
		for k, v := range m {
			pre[k] = v
		}
	}
	return pre, nil
}

// finishSlots rescales the diagonal method's sum, folds its blocks (each
// stage of plan.Step.FoldStages from one decomposition) and adds the
// bias.
func (e *Evaluator) finishSlots(s *plan.Step, st *prepared, out *rlwe.Ciphertext) (*rlwe.Ciphertext, error) {
	if s.MaskOutput {
		// The result's last rescale: re-randomized first, its rounding
		// no longer depends on the weights (see mask).
		if err := e.sanitizer.Rerandomize(out); err != nil {
			return nil, err
		}
	}
	if err := e.eval.Rescale(out, out); err != nil {
		return nil, err
	}
	for _, stage := range s.FoldStages() {
		var err error
		if out, err = e.hoistedSum(out, stage); err != nil {
			return nil, err
		}
	}
	return e.withBias(out, st)
}

// withBias gives out the step's output scale and adds the bias.
func (e *Evaluator) withBias(out *rlwe.Ciphertext, st *prepared) (*rlwe.Ciphertext, error) {
	out.Scale = st.target
	switch {
	case st.biasPt != nil && st.biasPt.Level() == out.Level() && st.biasPt.Scale.Cmp(out.Scale) == 0:
		if err := e.eval.Add(out, st.biasPt, out); err != nil {
			return nil, err
		}
	case st.bias != nil:
		if err := e.eval.Add(out, st.bias, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// linearCoeffs evaluates M x for a coefficient-encoded x with one
// plaintext product: row r's weights, reversed, sit at coefficients
// r*Pin..r*Pin+Pin-1, so coefficient r*Pin+Pin-1 of the product is row r's
// dot product.
func (e *Evaluator) linearCoeffs(s *plan.Step, st *prepared, x *rlwe.Ciphertext) (*rlwe.Ciphertext, error) {
	out, err := e.eval.MulNew(x, st.coeffPt)
	if err != nil {
		return nil, err
	}
	if err := e.eval.Rescale(out, out); err != nil {
		return nil, err
	}
	out.Scale = st.target
	if st.coeffB != nil {
		pt := ckks.NewPlaintext(e.m.params, out.Level())
		pt.IsBatched = false
		pt.Scale = out.Scale
		if err := ckks.NewEncoder(e.m.params, he.EncodingPrecision).Encode(st.coeffB, pt); err != nil {
			return nil, err
		}
		if err := e.eval.Add(out, pt, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// mulAcc adds x*w to the 128-bit accumulators (hi, lo) without reducing:
// a sum of 2^(127-2*log2 q) products of residues mod q stays below 2^127,
// so one reduction per coefficient (more only for primes near 2^61)
// replaces one per term.
func mulAcc(hi, lo, x []uint64, w uint64) {
	lo = lo[:len(x)]
	hi = hi[:len(x)]
	for t, v := range x {
		h, l := bits.Mul64(v, w)
		var c uint64
		lo[t], c = bits.Add64(lo[t], l, 0)
		hi[t] += h + c
	}
}

// accLimit is how many products mod q fit the 128-bit accumulators of
// mulAcc before a reduction is due.
func accLimit(q uint64) int {
	room := 127 - 2*bits.Len64(q)
	if room >= 30 {
		return math.MaxInt
	}
	return 1 << max(room, 0)
}

// batchChunk is how many coefficients of every ciphertext one task of a
// batch linear map touches: small enough that the inputs' chunks stay in
// cache while every output row reads them.
const batchChunk = 256

// linearBatch evaluates y_r = sum_c M[r][c] x_c + b_r with one ciphertext
// per feature: scalar products only, no rotations. The work is split by
// RNS prime, polynomial and coefficient range, so that each input chunk
// is read from cache by all rows and tasks never share an output.
func (e *Evaluator) linearBatch(s *plan.Step, st *prepared, x []*rlwe.Ciphertext) ([]*rlwe.Ciphertext, error) {
	params := e.m.params
	level := x[0].Level()
	if level != batchLevel(s, st) {
		return nil, fheserve.Errorf(fheserve.EINTERNAL, "step %q: input at level %d, prepared for %d", s.Name, level, batchLevel(s, st))
	}
	deg := x[0].Degree()
	out := make([]*rlwe.Ciphertext, s.M.Rows)
	for r := range out {
		out[r] = ckks.NewCiphertext(params, deg, level)
		*out[r].MetaData = *x[0].MetaData
		out[r].Scale = x[0].Scale
		for l := s.LevelIn; l <= level; l++ {
			out[r].Scale = out[r].Scale.Mul(rlwe.NewScale(params.Q()[l]))
		}
	}
	if err := e.batchProducts(s, st, x, out); err != nil {
		return nil, err
	}
	err := e.parallel(len(out), func(r int) error {
		acc := out[r]
		if st.fusedIn {
			// Sums of unrescaled products: at about the scale squared,
			// the rounding of this rescale is negligible (fusedProduct).
			if err := e.eval.Rescale(acc, acc); err != nil {
				return err
			}
		}
		// Relinearize before rescaling: the rounding of a rescale
		// multiplies the third component's by s^2 at decryption, tens of
		// times the noise of a rescale after relinearization.
		if acc.Degree() > 1 {
			if err := e.eval.Relinearize(acc, acc); err != nil {
				return err
			}
		}
		if err := e.eval.Rescale(acc, acc); err != nil {
			return err
		}
		acc.Scale = st.target
		if st.bias != nil && st.bias[r] != 0 {
			return e.eval.Add(acc, st.bias[r], acc)
		}
		return nil
	})
	return out, err
}

// batchProducts writes into out the sums of scalar products of linearBatch,
// unreduced in 128-bit accumulators and reduced once per coefficient.
func (e *Evaluator) batchProducts(s *plan.Step, st *prepared, x, out []*rlwe.Ciphertext) error {
	params := e.m.params
	nl := x[0].Level() + 1
	sub := params.RingQ().SubRings[:nl]
	n := params.N()
	chunk := min(batchChunk, n)
	perPoly := n / chunk
	polys := x[0].Degree() + 1
	return e.parallel(nl*polys*perPoly, func(t int) error {
		i, k, a := t/(polys*perPoly), (t/perPoly)%polys, (t%perPoly)*chunk
		b := a + chunk
		q := sub[i].Modulus
		if useMAC && chunk%32 == 0 && (q < 1<<52 || st.ints52) {
			e.vecProducts(s, st, x, out, i, k, a, b)
			return nil
		}
		limit := accLimit(q)
		hi, lo := make([]uint64, chunk), make([]uint64, chunk)
		for r := range out {
			cols, _ := s.M.Row(r)
			w := st.rows[r]
			clear(hi)
			clear(lo)
			for j, c := range cols {
				if j > 0 && j%limit == 0 {
					for t := range lo {
						lo[t], hi[t] = bits.Rem64(hi[t], lo[t], q), 0
					}
				}
				mulAcc(hi, lo, x[c].Value[k].Coeffs[i][a:b], w[j*nl+i])
			}
			o := out[r].Value[k].Coeffs[i][a:b]
			for t := range o {
				o[t] = bits.Rem64(hi[t], lo[t], q)
			}
		}
		return nil
	})
}

// MemoryEstimate is, roughly, the most memory one evaluation holds beyond
// the model and the keys: the ciphertexts alive at once (the input, kept
// to the end, and every value from the step that makes it to the last
// that reads it, but an elementwise step's consumed inputs and its output
// not both whole; in batch packing one ciphertext per element, products
// left unrelinearized with three polynomials) times 1.5 for temporaries,
// plus working buffers of 32 top-level ciphertexts per thread (rotations,
// key switching, sanitization), plus, in a tiled plan, the last map's
// plaintexts prepared again for a call of fewer samples. The allowances are measured
// (local.TestMemoryEstimate): the estimate covers the heap an evaluation
// adds, within 2x.
func (m *Model) MemoryEstimate(threads int) int64 {
	p, steps := m.Plan, m.prog.Steps
	n := int64(m.params.N())
	ctBytes := func(level, polys int) int64 { return int64(polys) * int64(level+1) * n * 8 }
	size := func(v int) int64 {
		if v == 0 {
			return int64(p.Input.Ciphertexts) * ctBytes(p.Input.Level, 2)
		}
		s := &steps[v-1]
		polys, level := 2, s.Level
		if m.steps[v-1].lazyRelin {
			polys = 3
		}
		if m.steps[v-1].fused {
			polys, level = 3, s.LevelIn
		}
		width := 1
		if p.Packing == plan.Batch {
			width = s.Length
		}
		return int64(width) * ctBytes(level, polys)
	}
	last := make([]int, len(steps)+1) // value -> the last step that reads it
	for i := range steps {
		for _, in := range steps[i].In {
			last[in] = i
		}
	}
	last[0], last[m.prog.Output] = len(steps), len(steps)
	var peak int64
	for i := range steps {
		var live, dropped int64
		for v := 0; v <= i+1; v++ {
			if last[v] >= i {
				live += size(v)
			}
		}
		// An elementwise step drops each input ciphertext it consumes
		// once used (Evaluator.consumed): its inputs shrink as its
		// output grows, so the two are never both held whole.
		if elementwise(steps[i].Kind) {
			for _, v := range uniqueInputs(&steps[i]) {
				if v != 0 && v != m.prog.Output && last[v] == i {
					dropped += size(v)
				}
			}
			live -= min(dropped, size(i+1))
		}
		peak = max(peak, live)
	}
	// A call of fewer samples than a tiled plan's batch prepares the last
	// map again for them (maskedFor) the first time.
	var masked int64
	if p.Input.Tile > 0 {
		for i := range steps {
			if steps[i].MaskOutput {
				masked += m.ptBytes[i]
			}
		}
	}
	return peak*3/2 + masked + int64(32*max(threads, 1))*ctBytes(m.params.MaxLevel(), 2)
}
