package he

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"io"
	"slices"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/plan"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/ring"
	"github.com/tuneinsight/lattigo/v6/ring/ringqp"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
)

var magicKeys = [4]byte{'F', 'H', 'E', 'K'}

const (
	kindEvalKeys   = 1
	kindDerived    = 2 // master keys instead of Galois keys (hier.go)
	keyHeaderLen   = 48
	flagRelin      = 1 << 0
	flagLevels     = 1 << 1 // each evaluation key is preceded by its level
	galoisElemLen  = 8
	masterPrimeLen = 8
	levelLen       = 1
)

// KeySpec lists the evaluation keys of a key set and the level of each.
// A key at level l switches ciphertexts at levels 0..l and has the
// decomposition rows of level l: ceil((l+1)/|P|) polynomials over the l+1
// primes of Q and the primes of P.
type KeySpec struct {
	Galois       []uint64 // Galois elements
	GaloisLevels []int    // the level of each Galois key
	Relin        bool
	RelinLevel   int // the relinearization key's, when Relin
	// Derived: the Galois keys are not uploaded but derived by the server
	// from master keys of rotations by powers of two (PlanDerivation).
	Derived bool
}

// TopLevelKeys specifies Galois keys for galEls and, if relin, a
// relinearization key, all at the top level of params.
func TopLevelKeys(params ckks.Parameters, galEls []uint64, relin bool) KeySpec {
	top := params.MaxLevelQ()
	levels := make([]int, len(galEls))
	for i := range levels {
		levels[i] = top
	}
	return KeySpec{Galois: galEls, GaloisLevels: levels, Relin: relin, RelinLevel: top}
}

// PlanKeys is the key set a plan needs: its Galois elements and
// relinearization key at the plan's key levels (all at the top level for
// plans compiled without levels).
func PlanKeys(p *plan.Plan) KeySpec {
	return KeySpec{Galois: p.GaloisElements, GaloisLevels: p.GaloisLevels(), Relin: p.Relin, RelinLevel: p.RelinLevel(), Derived: p.Keys == plan.KeysDerived}
}

// Validate checks that s is a valid key set for params: levels aligned with
// valid, distinct Galois elements, each level in 0..params.MaxLevelQ().
func (s KeySpec) Validate(params ckks.Parameters) error {
	if len(s.GaloisLevels) != len(s.Galois) {
		return fheserve.Errorf(fheserve.EINVALID, "key set: %d levels for %d galois elements", len(s.GaloisLevels), len(s.Galois))
	}
	if err := CheckGaloisElements(params, s.Galois); err != nil {
		return err
	}
	levels := s.GaloisLevels
	if s.Relin {
		levels = append([]int{s.RelinLevel}, levels...)
	}
	for _, l := range levels {
		if l < 0 || l > params.MaxLevelQ() {
			return fheserve.Errorf(fheserve.EINVALID, "key set: level %d is outside 0..%d", l, params.MaxLevelQ())
		}
	}
	return nil
}

// Covers checks that s holds every key want needs, each at want's level
// or above: key switching a ciphertext above a key's level would read
// rows and primes the key does not have.
func (s KeySpec) Covers(want KeySpec) error {
	if want.Relin {
		switch {
		case !s.Relin:
			return fheserve.Errorf(fheserve.EINVALID, "key set lacks the relinearization key the plan needs")
		case s.RelinLevel < want.RelinLevel:
			return fheserve.Errorf(fheserve.EINVALID, "the relinearization key is at level %d, the plan needs level %d", s.RelinLevel, want.RelinLevel)
		}
	}
	for i, g := range want.Galois {
		l, ok := s.galoisLevel(g)
		switch {
		case !ok:
			return fheserve.Errorf(fheserve.EINVALID, "key set lacks the Galois key %d the plan needs", g)
		case l < want.GaloisLevels[i]:
			return fheserve.Errorf(fheserve.EINVALID, "the Galois key %d is at level %d, the plan needs level %d", g, l, want.GaloisLevels[i])
		}
	}
	return nil
}

// galoisLevel returns the level s gives the key of Galois element g.
func (s KeySpec) galoisLevel(g uint64) (int, bool) {
	i := slices.Index(s.Galois, g)
	if i < 0 {
		return 0, false
	}
	return s.GaloisLevels[i], true
}

// leveled reports whether some key of s is below the top level of params:
// the key set is then written with a level before each evaluation key.
func (s KeySpec) leveled(params ckks.Parameters) bool {
	top := params.MaxLevelQ()
	return (s.Relin && s.RelinLevel != top) || slices.ContainsFunc(s.GaloisLevels, func(l int) bool { return l != top })
}

// EvalKeys is what a user uploads for a plan: the public key (for the
// server's re-randomization of results), the relinearization key if the
// plan multiplies ciphertexts, and one Galois key per rotation.
//
// On the wire every key is seeded: only the b parts travel, with a 32-byte
// seed per key from which the a parts are regenerated. PublicSeed is the
// seed of Public's a part; Relin and Galois keys carry theirs in Lattigo's
// EvaluationKey.Seed. Keys from client.GenerateKeys are compressed (degree
// 0, the a parts not held) to save the client's memory; keys from
// UnmarshalEvalKeys are expanded and ready for evaluation.
type EvalKeys struct {
	Public     *rlwe.PublicKey
	PublicSeed *[32]byte
	Relin      *rlwe.RelinearizationKey // nil if the plan does not relinearize
	Galois     []*rlwe.GaloisKey
	// Masters, in a derived key set, are the master keys (over
	// MasterParams) that travel instead of Galois keys; Galois then holds
	// the keys derived from them, if any were.
	Masters []*rlwe.GaloisKey

	params *ckks.Parameters // to expand compressed keys
}

// NewEvalKeys assembles a key set; he/client uses it. Relin and Galois keys
// may be compressed or expanded but must carry their seeds.
func NewEvalKeys(params ckks.Parameters, pk *rlwe.PublicKey, pkSeed [32]byte, relin *rlwe.RelinearizationKey, galois []*rlwe.GaloisKey) *EvalKeys {
	return &EvalKeys{Public: pk, PublicSeed: &pkSeed, Relin: relin, Galois: galois, params: &params}
}

// NewDerivedEvalKeys assembles a derived key set: master keys (made over
// MasterParams(params), seeded) instead of Galois keys.
func NewDerivedEvalKeys(params ckks.Parameters, pk *rlwe.PublicKey, pkSeed [32]byte, relin *rlwe.RelinearizationKey, masters []*rlwe.GaloisKey) *EvalKeys {
	return &EvalKeys{Public: pk, PublicSeed: &pkSeed, Relin: relin, Masters: masters, params: &params}
}

// KeyLimits bounds what UnmarshalEvalKeys accepts: at most MaxGalois
// Galois keys, and when Keys is not nil, only keys it lists, at the levels
// it gives (MaxGalois is then len(Keys.Galois)): a key that Keys does not
// list, or lists at another level, is refused before it is read. A key set
// may lack some of Keys' Galois keys; the caller checks that it has those
// it needs, and names what is missing.
type KeyLimits struct {
	MaxGalois int
	Keys      *KeySpec
	// NoDerivation leaves a derived key set's Galois keys nil: the caller
	// reads them stored (UnmarshalDerivedKeys) or derives them
	// (DeriveGaloisKeys).
	NoDerivation bool
}

// Spec returns the keys k holds and their levels, Galois keys in
// increasing order of element.
func (k *EvalKeys) Spec() KeySpec {
	gks := slices.Clone(k.Galois)
	slices.SortFunc(gks, func(a, b *rlwe.GaloisKey) int { return cmp.Compare(a.GaloisElement, b.GaloisElement) })
	s := KeySpec{Relin: k.Relin != nil, Derived: k.Masters != nil}
	for _, g := range gks {
		s.Galois = append(s.Galois, g.GaloisElement)
		s.GaloisLevels = append(s.GaloisLevels, g.LevelQ())
	}
	if k.Relin != nil {
		s.RelinLevel = k.Relin.LevelQ()
	}
	return s
}

// GaloisElements returns the Galois elements of k's Galois keys, sorted.
func (k *EvalKeys) GaloisElements() []uint64 {
	out := make([]uint64, 0, len(k.Galois))
	for _, g := range k.Galois {
		out = append(out, g.GaloisElement)
	}
	slices.Sort(out)
	return out
}

// EvaluationKeySet returns k's relinearization and Galois keys as a Lattigo
// key set for ckks.NewEvaluator. k is not modified, so calls may run
// concurrently. Compressed keys (from client.GenerateKeys) are expanded into
// new keys on every call, which costs time and memory; keys from
// UnmarshalEvalKeys are used as they are.
func (k *EvalKeys) EvaluationKeySet() rlwe.EvaluationKeySet {
	relin := k.Relin
	if relin != nil && relin.IsCompressed() {
		relin = &rlwe.RelinearizationKey{EvaluationKey: k.expanded(&relin.EvaluationKey)}
	}
	gks := make([]*rlwe.GaloisKey, len(k.Galois))
	for i, g := range k.Galois {
		gks[i] = g
		if g.IsCompressed() {
			gks[i] = &rlwe.GaloisKey{GaloisElement: g.GaloisElement, NthRoot: g.NthRoot, EvaluationKey: k.expanded(&g.EvaluationKey)}
		}
	}
	return rlwe.NewMemEvaluationKeySet(relin, gks...)
}

// expanded returns an expanded copy of a compressed key, sharing its b parts.
func (k *EvalKeys) expanded(evk *rlwe.EvaluationKey) rlwe.EvaluationKey {
	if k.params == nil {
		panic("he: EvalKeys holding compressed keys must come from NewEvalKeys or UnmarshalEvalKeys")
	}
	out := rlwe.EvaluationKey{GadgetCiphertext: rlwe.GadgetCiphertext{BaseTwoDecomposition: evk.BaseTwoDecomposition}, Seed: evk.Seed}
	out.Value = make([][]rlwe.VectorQP, len(evk.Value))
	for i, row := range evk.Value {
		out.Value[i] = make([]rlwe.VectorQP, len(row))
		for j, v := range row {
			out.Value[i][j] = rlwe.VectorQP{v[0]}
		}
	}
	if err := out.Expand(*k.params, nil); err != nil {
		panic(err) // the key was built compressed with a seed, so this cannot fail
	}
	return out
}

// CheckGaloisElements checks that each element is a valid, non-trivial
// automorphism of the ring (odd, in 3..2N-1) and that none repeats.
func CheckGaloisElements(params ckks.Parameters, galEls []uint64) error {
	nthRoot := params.RingQ().NthRoot()
	seen := make(map[uint64]bool, len(galEls))
	for _, g := range galEls {
		switch {
		case g&1 == 0 || g >= nthRoot:
			return fheserve.Errorf(fheserve.EINVALID, "galois element %d is not odd and below %d", g, nthRoot)
		case g == 1:
			return fheserve.Errorf(fheserve.EINVALID, "galois element 1 is the identity and needs no key")
		case seen[g]:
			return fheserve.Errorf(fheserve.EINVALID, "galois element %d is repeated", g)
		}
		seen[g] = true
	}
	return nil
}

// keyShape is the shape of an evaluation key at level levelQ: levels
// 0..levelQ of Q, all of P, and rows of gadget entries: one each without
// base-two decomposition, pieces[i] for row i with a decomposition of base2
// bits (master keys, MasterDecomposition). The public key has the top
// level's shape.
type keyShape struct {
	levelQ, levelP int
	rows           int
	base2          int
	pieces         []int
}

func shapeOf(params ckks.Parameters) keyShape {
	return shapeAt(params, params.MaxLevelQ())
}

func shapeAt(params ckks.Parameters, levelQ int) keyShape {
	return shapeBase2(params, levelQ, 0)
}

// shapeBase2 is shapeAt for keys with a base-two decomposition of base2
// bits (0: none).
func shapeBase2(params ckks.Parameters, levelQ, base2 int) keyShape {
	lp := params.MaxLevelP()
	s := keyShape{levelQ: levelQ, levelP: lp, rows: params.BaseRNSDecompositionVectorSize(levelQ, lp), base2: base2}
	s.pieces = params.BaseTwoDecompositionVectorSize(levelQ, lp, base2)[:s.rows]
	return s
}

// entries is the number of gadget entries (polynomials over QP) of a key
// of shape s.
func (s keyShape) entries() int {
	n := 0
	for _, p := range s.pieces {
		n += p
	}
	return n
}

// polyQPLen is the packed size of one polynomial over the primes of Q up
// to levelQ and all of P.
func polyQPLen(params ckks.Parameters, levelQ int) int {
	n := 0
	for _, q := range append(slices.Clip(params.Q()[:levelQ+1]), params.P()...) {
		n += packedLen(params.N(), bitLen(q))
	}
	return n
}

// evalKeyLen is the encoded size of an evaluation key at levelQ: its seed
// and its b parts.
func evalKeyLen(params ckks.Parameters, levelQ, base2 int) int {
	return seedLen + shapeBase2(params, levelQ, base2).entries()*polyQPLen(params, levelQ)
}

// EvalKeysSize returns the exact encoded size of a key set with a public
// key and the evaluation keys of spec, or 0 if spec is not valid for
// params.
func EvalKeysSize(params ckks.Parameters, spec KeySpec) int {
	if spec.Validate(params) != nil {
		return 0
	}
	n := keyHeaderLen + seedLen + polyQPLen(params, params.MaxLevelQ())
	per := 0
	if spec.leveled(params) || spec.Derived {
		per = levelLen
	}
	if spec.Derived {
		d, err := PlanDerivation(params, spec)
		if err != nil {
			return 0
		}
		mp, _ := MasterParams(params)
		n += masterPrimeLen
		for _, l := range d.Master.GaloisLevels {
			n += galoisElemLen + levelLen + evalKeyLen(mp, l, MasterDecomposition(mp))
		}
	} else {
		for _, l := range spec.GaloisLevels {
			n += galoisElemLen + per + evalKeyLen(params, l, 0)
		}
	}
	if spec.Relin {
		n += per + evalKeyLen(params, spec.RelinLevel, 0)
	}
	return n
}

// checkEvalKey checks that a local key has the shape of its level and a
// seed.
func checkEvalKey(params ckks.Parameters, evk *rlwe.EvaluationKey, name string, base2 int) error {
	if evk.Seed == nil {
		return fheserve.Errorf(fheserve.EINVALID, "%s has no seed: generate keys with client.GenerateKeys", name)
	}
	if len(evk.Value) == 0 || len(evk.Value[0]) == 0 || len(evk.Value[0][0]) == 0 {
		return fheserve.Errorf(fheserve.EINVALID, "%s is empty", name)
	}
	lq := evk.Value[0][0][0].LevelQ()
	if lq < 0 || lq > params.MaxLevelQ() {
		return fheserve.Errorf(fheserve.EINVALID, "%s has level %d, outside the parameters' 0..%d", name, lq, params.MaxLevelQ())
	}
	s := shapeBase2(params, lq, base2)
	if evk.BaseTwoDecomposition != base2 || len(evk.Value) != s.rows {
		return fheserve.Errorf(fheserve.EINVALID, "%s does not have the shape the parameters imply", name)
	}
	for i, row := range evk.Value {
		if len(row) != s.pieces[i] {
			return fheserve.Errorf(fheserve.EINVALID, "%s does not have the shape the parameters imply", name)
		}
		for _, v := range row {
			if len(v) == 0 || len(v) > 2 {
				return fheserve.Errorf(fheserve.EINVALID, "%s does not have the shape the parameters imply", name)
			}
			if err := checkPolyQP(params, v[0], s, name); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkPolyQP(params ckks.Parameters, p ringqp.Poly, s keyShape, name string) error {
	if p.LevelQ() != s.levelQ || p.LevelP() != s.levelP || p.Q.N() != params.N() || p.P.N() != params.N() {
		return fheserve.Errorf(fheserve.EINVALID, "%s does not have the levels or ring degree the parameters imply", name)
	}
	return nil
}

// MarshalEvalKeys writes k compressed: for the public key and for each
// evaluation key, a 32-byte seed and the b parts (NTT and Montgomery form,
// as Lattigo holds them). Galois keys are written in increasing order of
// Galois element. Before writing, it checks that the public key's a part
// matches its seed; evaluation keys are trusted to match theirs.
func MarshalEvalKeys(w io.Writer, params ckks.Parameters, k *EvalKeys) error {
	if err := CheckParams(params); err != nil {
		return err
	}
	gks, err := checkEvalKeys(params, k)
	if err != nil {
		return err
	}
	e := newEncoder(w)
	writeEvalKeys(e, params, k, gks)
	return e.flush("evaluation keys")
}

// checkEvalKeys checks k before MarshalEvalKeys writes it and returns its
// Galois keys in increasing order of Galois element.
func checkEvalKeys(params ckks.Parameters, k *EvalKeys) ([]*rlwe.GaloisKey, error) {
	if k == nil || k.Public == nil || k.PublicSeed == nil || len(k.Public.Value) != 2 {
		return nil, fheserve.Errorf(fheserve.EINVALID, "evaluation keys: a public key and its seed are required")
	}
	s := shapeOf(params)
	for _, p := range k.Public.Value {
		if err := checkPolyQP(params, p, s, "public key"); err != nil {
			return nil, err
		}
	}
	a := params.RingQP().NewPoly()
	ExpandSeed(params, *k.PublicSeed, a)
	if !a.Equal(&k.Public.Value[1]) {
		return nil, fheserve.Errorf(fheserve.EINVALID, "public key does not match its seed")
	}
	if k.Relin != nil {
		if err := checkEvalKey(params, &k.Relin.EvaluationKey, "relinearization key", 0); err != nil {
			return nil, err
		}
	}
	gks, gp, what, base2 := k.Galois, params, "galois key", 0
	if k.Masters != nil {
		mp, err := MasterParams(params)
		if err != nil {
			return nil, err
		}
		gks, gp, what, base2 = k.Masters, mp, "master key", MasterDecomposition(mp)
	}
	if slices.Contains(gks, nil) {
		return nil, fheserve.Errorf(fheserve.EINVALID, "evaluation keys: a %s is nil", what)
	}
	galEls := make([]uint64, len(gks))
	for i, g := range gks {
		galEls[i] = g.GaloisElement
	}
	if err := CheckGaloisElements(gp, galEls); err != nil {
		return nil, err
	}
	for _, g := range gks {
		if err := checkEvalKey(gp, &g.EvaluationKey, what, base2); err != nil {
			return nil, err
		}
	}
	gks = slices.Clone(gks)
	slices.SortFunc(gks, func(a, b *rlwe.GaloisKey) int {
		return cmp.Compare(a.GaloisElement, b.GaloisElement)
	})
	return gks, nil
}

// writeEvalKeys is the writing half of MarshalEvalKeys; gks are the
// Galois keys, or in a derived key set the master keys, to write.
func writeEvalKeys(e *encoder, params ckks.Parameters, k *EvalKeys, gks []*rlwe.GaloisKey) {
	s := shapeOf(params)
	derived := k.Masters != nil
	leveled := k.Spec().leveled(params)
	if derived {
		leveled = k.Relin != nil && k.Relin.LevelQ() != params.MaxLevelQ()
	}
	var h [keyHeaderLen]byte
	copy(h[0:4], magicKeys[:])
	h[4] = FormatVersion
	h[5] = kindEvalKeys
	if derived {
		h[5] = kindDerived
	}
	h[6] = byte(params.LogN())
	if k.Relin != nil {
		h[7] = flagRelin
	}
	if leveled {
		h[7] |= flagLevels
	}
	fp := fingerprint(params)
	copy(h[8:40], fp[:])
	h[40], h[41] = byte(s.levelQ), byte(s.levelP)
	binary.BigEndian.PutUint32(h[44:48], uint32(len(gks)))
	e.write(h[:])
	gp := params
	if derived {
		gp, _ = MasterParams(params) // checked by checkEvalKeys
		e.write(binary.BigEndian.AppendUint64(nil, gp.P()[0]))
	}

	e.write(k.PublicSeed[:])
	writePolyQP(e, params, k.Public.Value[0])
	if k.Relin != nil {
		writeEvalKey(e, params, &k.Relin.EvaluationKey, leveled)
	}
	for _, g := range gks {
		var el [galoisElemLen]byte
		binary.BigEndian.PutUint64(el[:], g.GaloisElement)
		e.write(el[:])
		writeEvalKey(e, gp, &g.EvaluationKey, leveled || derived)
	}
}

// writePolyQP writes p at the levels it has.
func writePolyQP(e *encoder, params ckks.Parameters, p ringqp.Poly) {
	for i, row := range p.Q.Coeffs {
		e.writeRow(row, bitLen(params.Q()[i]))
	}
	for i, q := range params.P() {
		e.writeRow(p.P.Coeffs[i], bitLen(q))
	}
}

func writeEvalKey(e *encoder, params ckks.Parameters, evk *rlwe.EvaluationKey, leveled bool) {
	if leveled {
		e.write([]byte{byte(evk.LevelQ())})
	}
	e.write(evk.Seed[:])
	for _, row := range evk.Value {
		for _, v := range row {
			writePolyQP(e, params, v[0])
		}
	}
}

// UnmarshalEvalKeys reads a key set written by MarshalEvalKeys for params.
// It checks the header against params and lim before allocating (at most
// one relinearization key and lim.MaxGalois Galois keys), and each key's
// element and level against lim.Keys before allocating the key at that
// level; it checks every coefficient against its prime and the Galois
// elements for validity and order, regenerates the a parts from the seeds
// and refuses degenerate b parts (see keyChecker). The keys it returns are
// expanded, ready for EvaluationKeySet.
func UnmarshalEvalKeys(r io.Reader, params ckks.Parameters, lim KeyLimits) (*EvalKeys, error) {
	if err := CheckParams(params); err != nil {
		return nil, err
	}
	var deriv *Derivation
	if lim.Keys != nil {
		if err := lim.Keys.Validate(params); err != nil {
			return nil, err
		}
		lim.MaxGalois = len(lim.Keys.Galois)
		if lim.Keys.Derived {
			var err error
			if deriv, err = PlanDerivation(params, *lim.Keys); err != nil {
				return nil, err
			}
			lim.MaxGalois = len(deriv.Master.Galois)
		}
	}
	d := &decoder{r: r, what: "evaluation keys"}
	h, err := readKeysHeader(d, params, lim)
	if err != nil {
		return nil, err
	}
	var mp ckks.Parameters
	if h.derived {
		if mp, err = readMasterPrime(d, params); err != nil {
			return nil, err
		}
	}
	k := &EvalKeys{params: &params}
	kr := &keyReader{d: d, params: params, want: lim.Keys, leveled: h.leveled, check: newKeyChecker(params)}
	if k.Public, k.PublicSeed, err = readPublicKey(d, params, kr.check); err != nil {
		return nil, err
	}
	if h.relin {
		evk, err := kr.readEvalKey("relinearization key", func(l int) error { return kr.wantRelin(l) })
		if err != nil {
			return nil, err
		}
		k.Relin = &rlwe.RelinearizationKey{EvaluationKey: *evk}
	}
	if h.derived {
		mr := &keyReader{d: d, params: mp, leveled: true, base2: MasterDecomposition(mp), check: newKeyChecker(mp)}
		if deriv != nil {
			mr.want = &deriv.Master
		}
		if k.Masters, err = mr.readGaloisKeys(h.count); err != nil {
			return nil, err
		}
		if k.Masters == nil {
			k.Masters = []*rlwe.GaloisKey{}
		}
	} else if k.Galois, err = kr.readGaloisKeys(h.count); err != nil {
		return nil, err
	}
	if err := d.end(); err != nil {
		return nil, err
	}
	if deriv != nil && !lim.NoDerivation {
		if k.Galois, err = DeriveGaloisKeys(params, k.Masters, *lim.Keys); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// readMasterPrime reads a derived key set's master prime and returns the
// master parameters, refusing a prime other than MasterParams'.
func readMasterPrime(d *decoder, params ckks.Parameters) (ckks.Parameters, error) {
	b, err := d.read(masterPrimeLen)
	if err != nil {
		return ckks.Parameters{}, err
	}
	mp, err := MasterParams(params)
	if err != nil {
		return ckks.Parameters{}, err
	}
	if binary.BigEndian.Uint64(b) != mp.P()[0] {
		return ckks.Parameters{}, d.invalid("the master prime is not the one the parameters imply")
	}
	return mp, nil
}

// keysHeader is what a key set's header says: the number of Galois keys,
// whether a relinearization key follows, and whether each evaluation key
// is preceded by its level (otherwise all are at the top level).
type keysHeader struct {
	count                   int
	relin, leveled, derived bool
}

// readKeysHeader reads a key set's header and checks it against params and
// lim.
func readKeysHeader(d *decoder, params ckks.Parameters, lim KeyLimits) (keysHeader, error) {
	h, err := d.read(keyHeaderLen)
	if err != nil {
		return keysHeader{}, err
	}
	s := shapeOf(params)
	fp := fingerprint(params)
	n := int64(binary.BigEndian.Uint32(h[44:48]))
	switch {
	case [4]byte(h[0:4]) != magicKeys:
		return keysHeader{}, d.invalid("not a key set (bad magic)")
	case h[4] != FormatVersion:
		return keysHeader{}, d.invalid("unsupported format version %d", h[4])
	case h[5] != kindEvalKeys && h[5] != kindDerived:
		return keysHeader{}, d.invalid("not an evaluation key set (kind %d)", h[5])
	case int(h[6]) != params.LogN():
		return keysHeader{}, d.invalid("ring degree 2^%d does not match the parameters' 2^%d", h[6], params.LogN())
	case h[7]&^(flagRelin|flagLevels) != 0:
		return keysHeader{}, d.invalid("unsupported flags %#x", h[7])
	case [32]byte(h[8:40]) != fp:
		return keysHeader{}, d.invalid("made for other parameters (fingerprint mismatch)")
	case int(h[40]) != s.levelQ || int(h[41]) != s.levelP || h[42] != 0:
		return keysHeader{}, d.invalid("key levels or decomposition do not match the parameters")
	case h[43] != 0:
		return keysHeader{}, d.invalid("reserved header byte is not 0")
	case n > int64(lim.MaxGalois):
		return keysHeader{}, d.tooLarge("%d galois keys exceed the limit of %d", n, lim.MaxGalois)
	}
	hd := keysHeader{count: int(n), relin: h[7]&flagRelin != 0, leveled: h[7]&flagLevels != 0, derived: h[5] == kindDerived}
	if w := lim.Keys; w != nil {
		switch {
		case hd.derived != w.Derived && w.Derived:
			return keysHeader{}, d.invalid("the plan wants master keys (--keys derived), not Galois keys")
		case hd.derived != w.Derived:
			return keysHeader{}, d.invalid("it holds master keys, and the plan wants Galois keys")
		case hd.relin != w.Relin && w.Relin:
			return keysHeader{}, d.invalid("the relinearization key is missing")
		case hd.relin != w.Relin:
			return keysHeader{}, d.invalid("it has a relinearization key, which is not wanted")
		}
	}
	return hd, nil
}

// readPublicKey reads the public key's seed and b part and regenerates its
// a part from the seed.
func readPublicKey(d *decoder, params ckks.Parameters, check *keyChecker) (*rlwe.PublicKey, *[32]byte, error) {
	pk := rlwe.NewPublicKey(params)
	b, err := d.read(seedLen)
	if err != nil {
		return nil, nil, err
	}
	seed := new([32]byte)
	copy(seed[:], b)
	if err := readPolyQP(d, params, pk.Value[0]); err != nil {
		return nil, nil, err
	}
	ExpandSeed(params, *seed, pk.Value[1])
	if why := check.degenerate(pk.Value[0], pk.Value[1]); why != "" {
		return nil, nil, d.degenerate("public key", why)
	}
	return pk, seed, nil
}

// keyReader reads the evaluation keys of a key set.
type keyReader struct {
	d       *decoder
	params  ckks.Parameters
	want    *KeySpec // nil: any keys, at any level
	leveled bool
	base2   int // the keys' base-two decomposition (master keys)
	check   *keyChecker
}

func (kr *keyReader) wantRelin(level int) error {
	if kr.want != nil && level != kr.want.RelinLevel {
		return kr.d.invalid("the relinearization key is at level %d, the plan wants level %d", level, kr.want.RelinLevel)
	}
	return nil
}

// readGaloisKeys reads count Galois keys, each with its element; the
// elements must be valid and strictly increasing.
func (kr *keyReader) readGaloisKeys(count int) ([]*rlwe.GaloisKey, error) {
	d := kr.d
	var gks []*rlwe.GaloisKey
	nthRoot := kr.params.RingQ().NthRoot()
	var prev uint64
	for i := range count {
		b, err := d.read(galoisElemLen)
		if err != nil {
			return nil, err
		}
		g := binary.BigEndian.Uint64(b)
		switch {
		case g&1 == 0 || g < 3 || g >= nthRoot:
			return nil, d.invalid("galois key %d: element %d is not an odd value in 3..%d", i, g, nthRoot-1)
		case g <= prev:
			return nil, d.invalid("galois key %d: elements are not strictly increasing", i)
		}
		prev = g
		name := fmt.Sprintf("galois key %d", i)
		evk, err := kr.readEvalKey(name, func(level int) error {
			if kr.want == nil {
				return nil
			}
			switch want, ok := kr.want.galoisLevel(g); {
			case !ok:
				return d.invalid("%s: element %d is not one the plan uses", name, g)
			case level != want:
				return d.invalid("%s (element %d) is at level %d, the plan wants level %d", name, g, level, want)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		gks = append(gks, &rlwe.GaloisKey{GaloisElement: g, NthRoot: nthRoot, EvaluationKey: *evk})
	}
	return gks, nil
}

// readPolyQP reads p at the levels it has.
func readPolyQP(d *decoder, params ckks.Parameters, p ringqp.Poly) error {
	for i, row := range p.Q.Coeffs {
		q := params.Q()[i]
		if err := d.readRow(row, bitLen(q), q); err != nil {
			return err
		}
	}
	for i, q := range params.P() {
		if err := d.readRow(p.P.Coeffs[i], bitLen(q), q); err != nil {
			return err
		}
	}
	return nil
}

// readEvalKey reads a key's level (in a leveled key set; otherwise it is
// at the top level), checks it with ok before allocating the key, then
// reads the key, expands it and refuses it if a b part is degenerate.
func (kr *keyReader) readEvalKey(name string, ok func(level int) error) (*rlwe.EvaluationKey, error) {
	d, params := kr.d, kr.params
	level := params.MaxLevelQ()
	if kr.leveled {
		b, err := d.read(levelLen)
		if err != nil {
			return nil, err
		}
		if level = int(b[0]); level > params.MaxLevelQ() {
			return nil, d.invalid("%s: level %d is above the parameters' %d", name, level, params.MaxLevelQ())
		}
	}
	if err := ok(level); err != nil {
		return nil, err
	}
	seed, err := d.read(seedLen)
	if err != nil {
		return nil, err
	}
	evk := rlwe.NewEvaluationKey(params, rlwe.EvaluationKeyParameters{LevelQ: &level, BaseTwoDecomposition: &kr.base2, Compressed: true})
	evk.Seed = new([32]byte)
	copy(evk.Seed[:], seed)
	for _, row := range evk.Value {
		for _, v := range row {
			if err := readPolyQP(d, params, v[0]); err != nil {
				return nil, err
			}
		}
	}
	if err := evk.Expand(params, nil); err != nil {
		return nil, d.invalid("cannot expand key: %v", err)
	}
	for j, row := range evk.Value {
		for _, v := range row {
			if why := kr.check.degenerate(v[0], v[1]); why != "" {
				return nil, d.degenerate(fmt.Sprintf("%s (entry %d)", name, j), why)
			}
		}
	}
	return evk, nil
}

func (d *decoder) degenerate(name, why string) error {
	return d.invalid("%s is degenerate: %s; make keys with client.GenerateKeys", name, why)
}

// Degenerate key material. An honest b part, -a*s + e (plus the gadget
// term in an evaluation key), is pseudo-random modulo each prime under the
// RLWE assumption, in the NTT domain and, the inverse NTT being a
// bijection, in the coefficient domain. keyChecker counts, in each row of a
// b part (the residues modulo one prime), three things a uniform row makes
// rare, and refuses the key if any of them covers more than half the row:
//
//   - coefficients within q/2^10 of 0, centred, in the NTT and in the
//     coefficient domain (probability below 2^-9 each): a zero secret gives
//     b = e, whose coefficients are all below 6 sigma (q/2^10 >= 2^9); a
//     zero b part or a constant one is near 0 in one of the two domains;
//   - coefficients equal to their predecessor, in both domains
//     (probability 1/q each): constant or mostly constant rows;
//   - coefficients equal to plus or minus the a part's (probability 2/q
//     each): b = a or b = -a, the secrets -1 and 1 without noise.
//
// For a uniform row of N >= 2^12 residues modulo q >= 2^19, a count above
// N/2 of events of probability p <= 2^-9 each has probability at most
// 2^N * p^(N/2) <= 2^(-3.5N) <= 2^-14336, so an honest key set (fewer than
// 2^40 rows, six counts each) is refused with probability below 2^-14000,
// plus the advantage of whoever could tell RLWE samples from uniform ones.
// The checks cost an IMForm and an inverse NTT per row: about a third of
// regenerating the a part from its seed (1 ms against 3.3 ms per
// polynomial over QP at N = 2^13).
//
// They catch keys that are not even pseudo-random, not malicious ones in
// general: a b part with any polynomial added (say 2^30 on a Galois key,
// which makes key switching add 2^30/P times the RNS digits of the rotated
// ciphertext's c1 to the result) is as pseudo-random as an honest one,
// and only a proof of well-formedness made with the secret key can rule it
// out. docs/security.md says what such keys give a user.
type keyChecker struct {
	rings []*ring.SubRing // the primes of Q, then of P
	nQ    int             // the number of primes of Q
	buf   []uint64
}

func newKeyChecker(params ckks.Parameters) *keyChecker {
	rings := slices.Clone(params.RingQ().SubRings)
	rings = append(rings, params.RingP().SubRings...)
	return &keyChecker{rings: rings, nQ: params.QCount(), buf: make([]uint64, params.N())}
}

// degenerate returns why b, the b part of a key whose a part is a (both
// over QP, NTT domain, Montgomery form), is not pseudo-random, or "".
func (c *keyChecker) degenerate(b, a ringqp.Poly) string {
	rowsB := append(slices.Clip(b.Q.Coeffs), b.P.Coeffs...)
	rowsA := append(slices.Clip(a.Q.Coeffs), a.P.Coeffs...)
	rings := append(slices.Clip(c.rings[:len(b.Q.Coeffs)]), c.rings[c.nQ:]...)
	for i, s := range rings {
		if mostlyPlusMinus(rowsB[i], rowsA[i], s.Modulus) {
			return fmt.Sprintf("row %d of b is mostly plus or minus the a part", i)
		}
		s.IMForm(rowsB[i], c.buf)
		if why := sparse(c.buf, s.Modulus); why != "" {
			return fmt.Sprintf("row %d of b is mostly %s in the NTT domain", i, why)
		}
		s.INTT(c.buf, c.buf)
		switch why := sparse(c.buf, s.Modulus); why {
		case "near 0":
			return fmt.Sprintf("row %d of b is mostly near 0 in the coefficient domain, as with a zero secret key", i)
		case "repeated values":
			return fmt.Sprintf("row %d of b is mostly repeated values in the coefficient domain", i)
		}
	}
	return ""
}

// sparse returns "near 0" or "repeated values" if more than half of row
// (residues mod q) is within q/2^10 of 0, or equal to its predecessor.
func sparse(row []uint64, q uint64) string {
	near := q >> 10
	small, repeats := 0, 0
	for i, x := range row {
		if x < near || q-x < near {
			small++
		}
		if i > 0 && x == row[i-1] {
			repeats++
		}
	}
	switch half := len(row) / 2; {
	case small > half:
		return "near 0"
	case repeats > half:
		return "repeated values"
	}
	return ""
}

// mostlyPlusMinus reports whether more than half of b equals a or -a mod q.
func mostlyPlusMinus(b, a []uint64, q uint64) bool {
	n := 0
	for i, x := range b {
		if x == a[i] || x+a[i] == q {
			n++
		}
	}
	return n > len(b)/2
}
