package he

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"io"
	"slices"

	"github.com/fheserve/fheserve"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/ring"
	"github.com/tuneinsight/lattigo/v6/ring/ringqp"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
)

var magicKeys = [4]byte{'F', 'H', 'E', 'K'}

const (
	kindEvalKeys  = 1
	keyHeaderLen  = 48
	flagRelin     = 1 << 0
	galoisElemLen = 8
)

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

	params *ckks.Parameters // to expand compressed keys
}

// NewEvalKeys assembles a key set; he/client uses it. Relin and Galois keys
// may be compressed or expanded but must carry their seeds.
func NewEvalKeys(params ckks.Parameters, pk *rlwe.PublicKey, pkSeed [32]byte, relin *rlwe.RelinearizationKey, galois []*rlwe.GaloisKey) *EvalKeys {
	return &EvalKeys{Public: pk, PublicSeed: &pkSeed, Relin: relin, Galois: galois, params: &params}
}

// KeyLimits bounds what UnmarshalEvalKeys accepts.
type KeyLimits struct {
	MaxGalois int
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

// keyShape is the shape of every evaluation key params imply: all levels of
// Q and P, no base-two decomposition, so rows x 1 gadget entries.
type keyShape struct {
	levelQ, levelP int
	rows           int
}

func shapeOf(params ckks.Parameters) keyShape {
	lq, lp := params.MaxLevelQ(), params.MaxLevelP()
	return keyShape{levelQ: lq, levelP: lp, rows: params.BaseRNSDecompositionVectorSize(lq, lp)}
}

// polyQPLen is the packed size of one polynomial over QP.
func polyQPLen(params ckks.Parameters) int {
	n := 0
	for _, q := range append(params.Q(), params.P()...) {
		n += packedLen(params.N(), bitLen(q))
	}
	return n
}

// EvalKeysSize returns the exact encoded size of a key set with a public
// key, Galois keys for galEls and, if relin, a relinearization key.
func EvalKeysSize(params ckks.Parameters, galEls []uint64, relin bool) int {
	poly := polyQPLen(params)
	matrix := seedLen + shapeOf(params).rows*poly
	n := keyHeaderLen + seedLen + poly + len(galEls)*(galoisElemLen+matrix)
	if relin {
		n += matrix
	}
	return n
}

// checkEvalKey checks that a local key has the shape params imply and a seed.
func checkEvalKey(params ckks.Parameters, evk *rlwe.EvaluationKey, name string) error {
	s := shapeOf(params)
	if evk.Seed == nil {
		return fheserve.Errorf(fheserve.EINVALID, "%s has no seed: generate keys with client.GenerateKeys", name)
	}
	if evk.BaseTwoDecomposition != 0 || len(evk.Value) != s.rows {
		return fheserve.Errorf(fheserve.EINVALID, "%s does not have the shape the parameters imply", name)
	}
	for _, row := range evk.Value {
		if len(row) != 1 || len(row[0]) == 0 || len(row[0]) > 2 {
			return fheserve.Errorf(fheserve.EINVALID, "%s does not have the shape the parameters imply", name)
		}
		if err := checkPolyQP(params, row[0][0], s, name); err != nil {
			return err
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
		if err := checkEvalKey(params, &k.Relin.EvaluationKey, "relinearization key"); err != nil {
			return nil, err
		}
	}
	if slices.Contains(k.Galois, nil) {
		return nil, fheserve.Errorf(fheserve.EINVALID, "evaluation keys: a galois key is nil")
	}
	galEls := k.GaloisElements()
	if err := CheckGaloisElements(params, galEls); err != nil {
		return nil, err
	}
	for _, g := range k.Galois {
		if err := checkEvalKey(params, &g.EvaluationKey, "galois key"); err != nil {
			return nil, err
		}
	}
	gks := slices.Clone(k.Galois)
	slices.SortFunc(gks, func(a, b *rlwe.GaloisKey) int {
		return cmp.Compare(a.GaloisElement, b.GaloisElement)
	})
	return gks, nil
}

// writeEvalKeys is the writing half of MarshalEvalKeys.
func writeEvalKeys(e *encoder, params ckks.Parameters, k *EvalKeys, gks []*rlwe.GaloisKey) {
	s := shapeOf(params)
	var h [keyHeaderLen]byte
	copy(h[0:4], magicKeys[:])
	h[4] = FormatVersion
	h[5] = kindEvalKeys
	h[6] = byte(params.LogN())
	if k.Relin != nil {
		h[7] = flagRelin
	}
	fp := fingerprint(params)
	copy(h[8:40], fp[:])
	h[40], h[41] = byte(s.levelQ), byte(s.levelP)
	binary.BigEndian.PutUint32(h[44:48], uint32(len(gks)))
	e.write(h[:])

	e.write(k.PublicSeed[:])
	writePolyQP(e, params, k.Public.Value[0])
	if k.Relin != nil {
		writeEvalKey(e, params, &k.Relin.EvaluationKey)
	}
	for _, g := range gks {
		var el [galoisElemLen]byte
		binary.BigEndian.PutUint64(el[:], g.GaloisElement)
		e.write(el[:])
		writeEvalKey(e, params, &g.EvaluationKey)
	}
}

func writePolyQP(e *encoder, params ckks.Parameters, p ringqp.Poly) {
	for i, q := range params.Q() {
		e.writeRow(p.Q.Coeffs[i], bitLen(q))
	}
	for i, q := range params.P() {
		e.writeRow(p.P.Coeffs[i], bitLen(q))
	}
}

func writeEvalKey(e *encoder, params ckks.Parameters, evk *rlwe.EvaluationKey) {
	e.write(evk.Seed[:])
	for _, row := range evk.Value {
		writePolyQP(e, params, row[0][0])
	}
}

// UnmarshalEvalKeys reads a key set written by MarshalEvalKeys for params.
// It checks the header against params and lim before allocating (at most
// one relinearization key and lim.MaxGalois Galois keys, each of the size
// params imply), checks every coefficient against its prime and the Galois
// elements for validity and order, regenerates the a parts from the seeds
// and refuses degenerate b parts (see keyChecker). The keys it returns are
// expanded, ready for EvaluationKeySet.
func UnmarshalEvalKeys(r io.Reader, params ckks.Parameters, lim KeyLimits) (*EvalKeys, error) {
	if err := CheckParams(params); err != nil {
		return nil, err
	}
	d := &decoder{r: r, what: "evaluation keys"}
	count, relin, err := readKeysHeader(d, params, lim)
	if err != nil {
		return nil, err
	}
	k := &EvalKeys{params: &params}
	check := newKeyChecker(params)
	if k.Public, k.PublicSeed, err = readPublicKey(d, params, check); err != nil {
		return nil, err
	}
	evkParams := rlwe.EvaluationKeyParameters{Compressed: true}
	if relin {
		k.Relin = rlwe.NewRelinearizationKey(params, evkParams)
		if err := readEvalKey(d, params, &k.Relin.EvaluationKey, check, "relinearization key"); err != nil {
			return nil, err
		}
	}
	if k.Galois, err = readGaloisKeys(d, params, count, check); err != nil {
		return nil, err
	}
	if err := d.end(); err != nil {
		return nil, err
	}
	return k, nil
}

// readKeysHeader reads a key set's header and checks it against params and
// lim: it returns the number of Galois keys and whether a relinearization
// key follows.
func readKeysHeader(d *decoder, params ckks.Parameters, lim KeyLimits) (count int, relin bool, err error) {
	h, err := d.read(keyHeaderLen)
	if err != nil {
		return 0, false, err
	}
	s := shapeOf(params)
	fp := fingerprint(params)
	n := int64(binary.BigEndian.Uint32(h[44:48]))
	switch {
	case [4]byte(h[0:4]) != magicKeys:
		return 0, false, d.invalid("not a key set (bad magic)")
	case h[4] != FormatVersion:
		return 0, false, d.invalid("unsupported format version %d", h[4])
	case h[5] != kindEvalKeys:
		return 0, false, d.invalid("not an evaluation key set (kind %d)", h[5])
	case int(h[6]) != params.LogN():
		return 0, false, d.invalid("ring degree 2^%d does not match the parameters' 2^%d", h[6], params.LogN())
	case h[7]&^flagRelin != 0:
		return 0, false, d.invalid("unsupported flags %#x", h[7])
	case [32]byte(h[8:40]) != fp:
		return 0, false, d.invalid("made for other parameters (fingerprint mismatch)")
	case int(h[40]) != s.levelQ || int(h[41]) != s.levelP || h[42] != 0:
		return 0, false, d.invalid("key levels or decomposition do not match the parameters")
	case h[43] != 0:
		return 0, false, d.invalid("reserved header byte is not 0")
	case n > int64(lim.MaxGalois):
		return 0, false, d.tooLarge("%d galois keys exceed the limit of %d", n, lim.MaxGalois)
	}
	return int(n), h[7]&flagRelin != 0, nil
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

// readGaloisKeys reads count Galois keys, each with its element; the
// elements must be valid and strictly increasing.
func readGaloisKeys(d *decoder, params ckks.Parameters, count int, check *keyChecker) ([]*rlwe.GaloisKey, error) {
	evkParams := rlwe.EvaluationKeyParameters{Compressed: true}
	var gks []*rlwe.GaloisKey
	nthRoot := params.RingQ().NthRoot()
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
		gk := rlwe.NewGaloisKey(params, evkParams)
		gk.GaloisElement = g
		gk.NthRoot = nthRoot
		if err := readEvalKey(d, params, &gk.EvaluationKey, check, fmt.Sprintf("galois key %d", i)); err != nil {
			return nil, err
		}
		gks = append(gks, gk)
	}
	return gks, nil
}

func readPolyQP(d *decoder, params ckks.Parameters, p ringqp.Poly) error {
	for i, q := range params.Q() {
		if err := d.readRow(p.Q.Coeffs[i], bitLen(q), q); err != nil {
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

// readEvalKey fills a compressed key allocated with the shape params imply,
// expands it and refuses it if a b part is degenerate.
func readEvalKey(d *decoder, params ckks.Parameters, evk *rlwe.EvaluationKey, check *keyChecker, name string) error {
	seed, err := d.read(seedLen)
	if err != nil {
		return err
	}
	evk.Seed = new([32]byte)
	copy(evk.Seed[:], seed)
	for _, row := range evk.Value {
		if err := readPolyQP(d, params, row[0][0]); err != nil {
			return err
		}
	}
	if err := evk.Expand(params, nil); err != nil {
		return d.invalid("cannot expand key: %v", err)
	}
	for j, row := range evk.Value {
		if why := check.degenerate(row[0][0], row[0][1]); why != "" {
			return d.degenerate(fmt.Sprintf("%s (entry %d)", name, j), why)
		}
	}
	return nil
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
	buf   []uint64
}

func newKeyChecker(params ckks.Parameters) *keyChecker {
	rings := slices.Clone(params.RingQ().SubRings)
	rings = append(rings, params.RingP().SubRings...)
	return &keyChecker{rings: rings, buf: make([]uint64, params.N())}
}

// degenerate returns why b, the b part of a key whose a part is a (both
// over QP, NTT domain, Montgomery form), is not pseudo-random, or "".
func (c *keyChecker) degenerate(b, a ringqp.Poly) string {
	rowsB := append(slices.Clip(b.Q.Coeffs), b.P.Coeffs...)
	rowsA := append(slices.Clip(a.Q.Coeffs), a.P.Coeffs...)
	for i, s := range c.rings {
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
