package he

import (
	"encoding/binary"
	"io"
	"math"
	"math/bits"
	"runtime"
	"sync"
	"weak"

	"github.com/fheserve/fheserve"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/ring"
	"github.com/tuneinsight/lattigo/v6/ring/ringqp"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
)

// FormatVersion is the version of the wire format written and accepted.
const FormatVersion = 1

// Kinds of ciphertext batches (byte 5 of an "FHEC" header).
const (
	kindFull   = 1 // c0 and c1 at full width
	kindSeeded = 2 // c0 at full width and the seed of c1
	kindResult = 3 // level 0, c0 and c1 modulus-switched to 2^bits
)

const (
	batchHeaderLen  = 44
	recordHeaderLen = 7 + scaleLen
	seedLen         = 32
)

var magicCiphertexts = [4]byte{'F', 'H', 'E', 'C'}

// Record flag bits.
const (
	flagNTT         = 1 << 0
	flagMontgomery  = 1 << 1
	flagBatched     = 1 << 2
	flagBitReversed = 1 << 3
	// Version 1 holds ciphertexts in the form Lattigo's CKKS evaluator
	// works on: NTT domain, not Montgomery.
	requiredFlags = flagNTT
	optionalFlags = flagBatched | flagBitReversed
)

// Ciphertext is one CKKS ciphertext, as the codecs below read and write it.
type Ciphertext = rlwe.Ciphertext

// Limits bounds what UnmarshalCiphertexts and UnmarshalResult accept: at
// most MaxCount ciphertexts, each at a level in [MinLevel, MaxLevel]. The
// memory a decode allocates is bounded by MaxCount ciphertexts at MaxLevel.
type Limits struct {
	MaxCount int
	MaxLevel int
	MinLevel int
}

// MarshalCiphertexts writes cts in full: both polynomials of each
// ciphertext, every coefficient at ceil(log2 q_i) bits. Each ciphertext must
// have degree 1 and be in the NTT, non-Montgomery form of Lattigo's CKKS.
func MarshalCiphertexts(w io.Writer, params ckks.Parameters, cts []*rlwe.Ciphertext) error {
	return marshalCiphertexts(w, params, cts, kindFull)
}

// MarshalSeededCiphertexts writes fresh secret-key encryptions made by
// client.Keys.Encrypt or EncryptCoeffs compactly: c0 in full and, instead of
// c1, the 32-byte seed that c1 was expanded from, so that an upload costs
// about one polynomial per ciphertext. It refuses ciphertexts without a seed
// (see AttachSeed) and ciphertexts whose c1 no longer matches their seed.
func MarshalSeededCiphertexts(w io.Writer, params ckks.Parameters, cts []*rlwe.Ciphertext) error {
	return marshalCiphertexts(w, params, cts, kindSeeded)
}

// UnmarshalCiphertexts reads a batch written by MarshalCiphertexts or
// MarshalSeededCiphertexts for params, regenerating c1 from its seed in the
// second case. It never calls Lattigo's decoders: it validates the header
// against params and lim before allocating, and every coefficient against
// its prime.
func UnmarshalCiphertexts(r io.Reader, params ckks.Parameters, lim Limits) ([]*rlwe.Ciphertext, error) {
	return unmarshalCiphertexts(r, params, lim, false)
}

// UnmarshalResult reads a batch written by MarshalResult. The ciphertexts it
// returns are ordinary level-0 ciphertexts (NTT form) that a Lattigo
// decryptor decrypts; lim's level bounds are ignored, as results are always
// at level 0.
func UnmarshalResult(r io.Reader, params ckks.Parameters, lim Limits) ([]*rlwe.Ciphertext, error) {
	lim.MinLevel, lim.MaxLevel = 0, 0
	return unmarshalCiphertexts(r, params, lim, true)
}

// MarshalResult writes level-0 ciphertexts compactly: each coefficient of
// c0 and c1, in the coefficient domain, is switched from modulus q0 to 2^bits
// by c' = round(c * 2^bits / q0) and stored at bits bits. UnmarshalResult maps
// c' back to round(c' * q0 / 2^bits). This adds to the decrypted message an
// error of standard deviation about (q0/2^bits) * sqrt((1+h)/12) per
// coefficient, h being the secret's Hamming weight, that is about
// sqrt(N/2 * (1+h)/12) * q0/2^bits in each slot before division by the
// scale; ResultErrorStd gives it exactly. bits must lie in [1, ceil(log2 q0)].
func MarshalResult(w io.Writer, params ckks.Parameters, cts []*rlwe.Ciphertext, bits int) error {
	if err := CheckParams(params); err != nil {
		return err
	}
	if bits < 1 || bits > bitLen(params.Q()[0]) {
		return fheserve.Errorf(fheserve.EINVALID, "result: bits=%d is outside 1..%d", bits, bitLen(params.Q()[0]))
	}
	if err := checkCiphertexts(params, cts, kindResult); err != nil {
		return err
	}
	e := newEncoder(w)
	writeBatchHeader(e, params, kindResult, bits, len(cts))
	ringQ := params.RingQ().AtLevel(0)
	q0 := params.Q()[0]
	buf := ringQ.NewPoly()
	for _, ct := range cts {
		writeRecordHeader(e, ct)
		for _, p := range ct.Value[:2] {
			ringQ.INTT(p, buf)
			row := buf.Coeffs[0]
			for i, c := range row {
				row[i] = switchDown(c, q0, bits)
			}
			e.writeRow(row, bits)
		}
	}
	return e.flush("result")
}

// switchDown returns round(c * 2^bits / q) mod 2^bits, for c < q < 2^63.
func switchDown(c, q uint64, b int) uint64 {
	hi, lo := c>>(64-b), c<<b
	var carry uint64
	lo, carry = bits.Add64(lo, q>>1, 0)
	hi += carry
	quo, _ := bits.Div64(hi, lo, q) // hi < q since the quotient < 2^b <= 2^63
	return quo & (1<<b - 1)
}

// switchUp returns round(c * q / 2^bits) mod q, for c < 2^bits.
func switchUp(c, q uint64, b int) uint64 {
	hi, lo := bits.Mul64(c, q)
	var carry uint64
	lo, carry = bits.Add64(lo, 1<<(b-1), 0)
	hi += carry
	v := lo>>b | hi<<(64-b)
	if v >= q {
		v -= q
	}
	return v
}

// ResultErrorStd returns the standard deviation of the error MarshalResult
// adds at the given width, as seen in the real part of a decoded slot and
// divided by the default scale. With step = q0/2^bits, each of c0 and c1
// gets a rounding error of variance about (step^2+2)/12 (step^2/12 from the
// switch to 2^bits, the rest from rounding back to integers, which matters
// only when step is a few units); c1's error is multiplied by the secret, of
// Hamming weight h, so a coefficient of the message gets variance
// (1+h)(step^2+2)/12, and the canonical embedding multiplies the standard
// deviation by sqrt(N/2). A compiler picks bits so that this stays well
// below the precision the plan promises.
func ResultErrorStd(params ckks.Parameters, bits int) float64 {
	step := float64(params.Q()[0]) / math.Exp2(float64(bits))
	h := float64(params.XsHammingWeight())
	coeffStd := math.Sqrt((1 + h) * (step*step + 2) / 12)
	return coeffStd * math.Sqrt(float64(params.N())/2) / params.DefaultScale().Float64()
}

// CiphertextsSize returns the exact encoded size of count ciphertexts at
// level, written by MarshalCiphertexts (seeded false) or
// MarshalSeededCiphertexts (seeded true), or 0 if params has no such level.
// It is meant for request body limits.
func CiphertextsSize(params ckks.Parameters, level, count int, seeded bool) int {
	if level < 0 || level > params.MaxLevel() || count < 0 {
		return 0
	}
	row := 0
	for _, q := range params.Q()[:level+1] {
		row += packedLen(params.N(), bitLen(q))
	}
	rec := recordHeaderLen + 2*row
	if seeded {
		rec = recordHeaderLen + row + seedLen
	}
	return batchHeaderLen + count*rec
}

// ResultSize returns the exact encoded size of count results written by
// MarshalResult at the given width.
func ResultSize(params ckks.Parameters, count, bits int) int {
	if count < 0 || bits < 1 || bits > 63 {
		return 0
	}
	return batchHeaderLen + count*(recordHeaderLen+2*packedLen(params.N(), bits))
}

// SeededBatch is a batch of fresh seeded encryptions in
// MarshalSeededCiphertexts' format, built in place so that several cores
// can encrypt straight into one upload: the batch's bytes are allocated
// once at their exact size (CiphertextsSize), and Put writes record i at
// its offset, so records may be put concurrently and in any order. Every
// record is at the batch's level.
type SeededBatch struct {
	params ckks.Parameters
	level  int
	count  int
	bits   []int  // bits per coefficient of each row
	rec    int    // bytes per record
	data   []byte // the whole batch, header first
}

// NewSeededBatch returns a batch of count seeded ciphertexts at level, its
// header written and its records to be filled by Put.
func NewSeededBatch(params ckks.Parameters, level, count int) (*SeededBatch, error) {
	if err := CheckParams(params); err != nil {
		return nil, err
	}
	switch {
	case count <= 0 || count > math.MaxUint32:
		return nil, fheserve.Errorf(fheserve.EINVALID, "seeded batch: %d ciphertexts", count)
	case level < 0 || level > params.MaxLevel():
		return nil, fheserve.Errorf(fheserve.EINVALID, "seeded batch: level %d is outside 0..%d", level, params.MaxLevel())
	}
	b := &SeededBatch{params: params, level: level, count: count, data: make([]byte, CiphertextsSize(params, level, count, true))}
	b.rec = (len(b.data) - batchHeaderLen) / count
	for _, q := range params.Q()[:level+1] {
		b.bits = append(b.bits, bitLen(q))
	}
	h := batchHeader(params, kindSeeded, 0, count)
	copy(b.data, h[:])
	return b, nil
}

// Put writes record i: ct's header and c0, and seed in place of c1. ct
// must be a fresh encryption at the batch's level whose c1 is
// ExpandSeed(seed), as client.Keys makes them; unlike
// MarshalSeededCiphertexts, Put does not expand the seed again to check
// c1 (client.Keys expanded it a moment ago: a second expansion per
// ciphertext would cost as much as the encryption's own). Put may be called
// concurrently for different i.
func (b *SeededBatch) Put(i int, ct *rlwe.Ciphertext, seed [32]byte) error {
	if err := checkCiphertexts(b.params, []*rlwe.Ciphertext{ct}, kindSeeded); err != nil {
		return err
	}
	if i < 0 || i >= b.count || ct.Level() != b.level {
		return fheserve.Errorf(fheserve.EINVALID, "seeded batch: record %d at level %d does not fit a batch at level %d", i, ct.Level(), b.level)
	}
	dst := b.data[batchHeaderLen+i*b.rec:][:b.rec]
	h := recordHeader(ct)
	dst = dst[copy(dst, h[:]):]
	for j, row := range ct.Value[0].Coeffs {
		n := packedLen(len(row), b.bits[j])
		pack(dst[:n], row, b.bits[j])
		dst = dst[n:]
	}
	copy(dst, seed[:])
	return nil
}

// Bytes returns the batch, as MarshalSeededCiphertexts would write it once
// every record is put.
func (b *SeededBatch) Bytes() []byte { return b.data }

func marshalCiphertexts(w io.Writer, params ckks.Parameters, cts []*rlwe.Ciphertext, kind byte) error {
	if err := CheckParams(params); err != nil {
		return err
	}
	if err := checkCiphertexts(params, cts, kind); err != nil {
		return err
	}
	var seeds [][seedLen]byte
	if kind == kindSeeded {
		var err error
		if seeds, err = seedsOf(params, cts); err != nil {
			return err
		}
	}
	e := newEncoder(w)
	writeBatchHeader(e, params, kind, 0, len(cts))
	moduli := params.Q()
	for k, ct := range cts {
		writeRecordHeader(e, ct)
		for i, row := range ct.Value[0].Coeffs {
			e.writeRow(row, bitLen(moduli[i]))
		}
		if kind == kindSeeded {
			e.write(seeds[k][:])
			continue
		}
		for i, row := range ct.Value[1].Coeffs {
			e.writeRow(row, bitLen(moduli[i]))
		}
	}
	return e.flush("ciphertexts")
}

// checkCiphertexts checks the local ciphertexts about to be written; it
// protects against writing what could not be read back.
func checkCiphertexts(params ckks.Parameters, cts []*rlwe.Ciphertext, kind byte) error {
	if len(cts) == 0 {
		return fheserve.Errorf(fheserve.EINVALID, "no ciphertexts to write")
	}
	if len(cts) > math.MaxUint32 {
		return fheserve.Errorf(fheserve.ETOOLARGE, "too many ciphertexts")
	}
	for k, ct := range cts {
		switch {
		case ct == nil || ct.MetaData == nil || len(ct.Value) == 0:
			return fheserve.Errorf(fheserve.EINVALID, "ciphertext %d is empty", k)
		case ct.Degree() != 1:
			return fheserve.Errorf(fheserve.EINVALID, "ciphertext %d has degree %d, not 1 (relinearize it first)", k, ct.Degree())
		case ct.N() != params.N() || ct.Value[1].N() != params.N():
			return fheserve.Errorf(fheserve.EINVALID, "ciphertext %d has ring degree %d, not %d", k, ct.N(), params.N())
		case ct.Level() > params.MaxLevel() || ct.Value[1].Level() != ct.Level():
			return fheserve.Errorf(fheserve.EINVALID, "ciphertext %d has level %d, above the parameters' %d", k, ct.Level(), params.MaxLevel())
		case kind == kindResult && ct.Level() != 0:
			return fheserve.Errorf(fheserve.EINVALID, "result ciphertext %d is at level %d, not 0 (sanitize it first)", k, ct.Level())
		case !ct.IsNTT || ct.IsMontgomery:
			return fheserve.Errorf(fheserve.EINVALID, "ciphertext %d is not in NTT, non-Montgomery form", k)
		case ct.LogDimensions.Rows < 0 || ct.LogDimensions.Cols < 0 ||
			ct.LogDimensions.Rows > params.LogMaxDimensions().Rows || ct.LogDimensions.Cols > params.LogMaxDimensions().Cols:
			return fheserve.Errorf(fheserve.EINVALID, "ciphertext %d has dimensions outside the parameters'", k)
		}
		if _, err := encodeScale(ct.Scale); err != nil {
			return fheserve.Errorf(fheserve.EINVALID, "ciphertext %d: %s", k, fheserve.ErrorMessage(err))
		}
	}
	return nil
}

func writeBatchHeader(e *encoder, params ckks.Parameters, kind byte, bits, count int) {
	h := batchHeader(params, kind, bits, count)
	e.write(h[:])
}

func batchHeader(params ckks.Parameters, kind byte, bits, count int) (h [batchHeaderLen]byte) {
	copy(h[0:4], magicCiphertexts[:])
	h[4] = FormatVersion
	h[5] = kind
	h[6] = byte(params.LogN())
	h[7] = byte(bits)
	fp := fingerprint(params)
	copy(h[8:40], fp[:])
	binary.BigEndian.PutUint32(h[40:44], uint32(count))
	return h
}

func writeRecordHeader(e *encoder, ct *rlwe.Ciphertext) {
	h := recordHeader(ct)
	e.write(h[:])
}

// recordHeader is the header of ct's record; ct must have passed
// checkCiphertexts.
func recordHeader(ct *rlwe.Ciphertext) (h [recordHeaderLen]byte) {
	h[0] = byte(ct.Level())
	h[1] = byte(ct.Degree())
	if ct.IsNTT {
		h[2] |= flagNTT
	}
	if ct.IsMontgomery {
		h[2] |= flagMontgomery
	}
	if ct.IsBatched {
		h[2] |= flagBatched
	}
	if ct.IsBitReversed {
		h[2] |= flagBitReversed
	}
	h[3] = byte(ct.LogDimensions.Rows)
	h[4] = byte(ct.LogDimensions.Cols)
	s, _ := encodeScale(ct.Scale) // checked by checkCiphertexts
	copy(h[7:], s[:])
	return h
}

func unmarshalCiphertexts(r io.Reader, params ckks.Parameters, lim Limits, result bool) ([]*rlwe.Ciphertext, error) {
	what := "ciphertexts"
	if result {
		what = "result"
	}
	if err := CheckParams(params); err != nil {
		return nil, err
	}
	d := &decoder{r: r, what: what}
	kind, bits, count, err := readBatchHeader(d, params, lim, result)
	if err != nil {
		return nil, err
	}
	maxLevel := min(lim.MaxLevel, params.MaxLevel())
	var expand *expansions
	if kind == kindSeeded {
		expand = startExpansions(params)
		defer expand.wait()
	}
	// The count is a claim: allocate for what actually arrives.
	cts := make([]*rlwe.Ciphertext, 0, min(count, 64))
	for k := range count {
		ct, err := readRecordHeader(d, params, lim.MinLevel, maxLevel, k)
		if err != nil {
			return nil, err
		}
		switch kind {
		case kindResult:
			err = readResultRecord(d, params, ct, bits)
		default:
			err = readInputRecord(d, params, ct, expand)
		}
		if err != nil {
			return nil, err
		}
		cts = append(cts, ct)
	}
	if err := d.end(); err != nil {
		return nil, err
	}
	return cts, nil
}

// readBatchHeader reads a ciphertext batch's header and checks it against
// params and lim: it returns the batch's kind, its bits (results) and its
// count of ciphertexts.
func readBatchHeader(d *decoder, params ckks.Parameters, lim Limits, result bool) (kind byte, bits, count int, err error) {
	h, err := d.read(batchHeaderLen)
	if err != nil {
		return 0, 0, 0, err
	}
	fp := fingerprint(params)
	kind, bits = h[5], int(h[7])
	n := int64(binary.BigEndian.Uint32(h[40:44]))
	switch {
	case [4]byte(h[0:4]) != magicCiphertexts:
		err = d.invalid("not a ciphertext batch (bad magic)")
	case h[4] != FormatVersion:
		err = d.invalid("unsupported format version %d", h[4])
	case result && kind != kindResult:
		err = d.invalid("not a result batch (kind %d)", kind)
	case !result && kind != kindFull && kind != kindSeeded:
		err = d.invalid("not an input ciphertext batch (kind %d)", kind)
	case int(h[6]) != params.LogN():
		err = d.invalid("ring degree 2^%d does not match the parameters' 2^%d", h[6], params.LogN())
	case [32]byte(h[8:40]) != fp:
		err = d.invalid("made for other parameters (fingerprint mismatch)")
	case result && (bits < 1 || bits > bitLen(params.Q()[0])):
		err = d.invalid("bits=%d is outside 1..%d", bits, bitLen(params.Q()[0]))
	case !result && bits != 0:
		err = d.invalid("reserved header byte is not 0")
	case n == 0:
		err = d.invalid("no ciphertexts")
	case n > int64(lim.MaxCount):
		err = d.tooLarge("%d ciphertexts exceed the limit of %d", n, lim.MaxCount)
	}
	if err != nil {
		return 0, 0, 0, err
	}
	return kind, bits, int(n), nil
}

// readRecordHeader reads the header of ciphertext k, checks it, and returns
// a ciphertext of the level, scale and form it declares.
func readRecordHeader(d *decoder, params ckks.Parameters, minLevel, maxLevel, k int) (*rlwe.Ciphertext, error) {
	h, err := d.read(recordHeaderLen)
	if err != nil {
		return nil, err
	}
	level, flags := int(h[0]), h[2]
	scale, okScale := decodeScale(h[7:])
	dims := ring.Dimensions{Rows: int(h[3]), Cols: int(h[4])}
	switch {
	case level < minLevel || level > maxLevel:
		return nil, d.invalid("ciphertext %d: level %d is outside %d..%d", k, level, minLevel, maxLevel)
	case h[1] != 1:
		return nil, d.invalid("ciphertext %d: degree %d is not 1", k, h[1])
	case flags&^(requiredFlags|optionalFlags) != 0 || flags&requiredFlags != requiredFlags:
		return nil, d.invalid("ciphertext %d: unsupported flags %#x", k, flags)
	case dims.Rows > params.LogMaxDimensions().Rows || dims.Cols > params.LogMaxDimensions().Cols:
		return nil, d.invalid("ciphertext %d: dimensions 2^%dx2^%d exceed the parameters'", k, dims.Rows, dims.Cols)
	case h[5] != 0 || h[6] != 0:
		return nil, d.invalid("ciphertext %d: reserved bytes are not 0", k)
	case !okScale:
		return nil, d.invalid("ciphertext %d: scale is not a normalized value in 2^0..2^%d", k, maxScaleExp)
	}
	ct := rlwe.NewCiphertext(params, 1, level)
	ct.Scale = scale
	ct.LogDimensions = dims
	ct.IsNTT = true
	ct.IsBatched = flags&flagBatched != 0
	ct.IsBitReversed = flags&flagBitReversed != 0
	return ct, nil
}

// readInputRecord reads the polynomials of an input ciphertext: c0 in full,
// then c1 in full or, when expand is not nil, its seed, which expand
// expands into c1.
func readInputRecord(d *decoder, params ckks.Parameters, ct *rlwe.Ciphertext, expand *expansions) error {
	moduli := params.Q()
	for i, row := range ct.Value[0].Coeffs {
		if err := d.readRow(row, bitLen(moduli[i]), moduli[i]); err != nil {
			return err
		}
	}
	if expand != nil {
		seed, err := d.read(seedLen)
		if err != nil {
			return err
		}
		expand.add(ct, [seedLen]byte(seed))
		return nil
	}
	for i, row := range ct.Value[1].Coeffs {
		if err := d.readRow(row, bitLen(moduli[i]), moduli[i]); err != nil {
			return err
		}
	}
	return nil
}

func readResultRecord(d *decoder, params ckks.Parameters, ct *rlwe.Ciphertext, bits int) error {
	ringQ := params.RingQ().AtLevel(0)
	q0 := params.Q()[0]
	for _, p := range ct.Value[:2] {
		row := p.Coeffs[0]
		if err := d.readRow(row, bits, 1<<bits); err != nil {
			return err
		}
		for i, c := range row {
			row[i] = switchUp(c, q0, bits)
		}
		ringQ.NTT(p, p)
	}
	return nil
}

// seedExpander expands 32-byte seeds into uniform polynomials. The client
// and the server both go through it, so they expand a seed identically.
type seedExpander struct {
	ringQP ringqp.Ring
}

func newSeedExpander(params ckks.Parameters) *seedExpander {
	return &seedExpander{ringQP: *params.RingQP()}
}

// expand fills p, at the levels p has (p.P may be empty), with the uniform
// polynomial the seed expands to: a keyed BLAKE2b XOF (seedStream, the
// stream of Lattigo's sampling.NewKeyedPRNG) read as Lattigo's uniform
// sampler reads it (ringqp.UniformSampler), rows of Q then rows of P.
func (x *seedExpander) expand(seed [seedLen]byte, p ringqp.Poly) {
	s := newSeedStream(seed)
	readUniform(s, x.ringQP.RingQ, p.Q)
	if p.LevelP() > -1 {
		readUniform(s, x.ringQP.RingP, p.P)
	}
}

// readUniform fills the rows p has with coefficients uniform below their
// primes, exactly as Lattigo's ring.UniformSampler reads them from s: from
// a fresh 1,024-byte buffer, 8 bytes big-endian per candidate, masked to
// the prime's bit length, candidates at or above the prime skipped. It is
// that loop without a function call per coefficient, which made it as
// slow as the XOF itself.
func readUniform(s io.Reader, r *ring.Ring, p ring.Poly) {
	var buf [1024]byte
	s.Read(buf[:])
	ptr := 0
	for j, row := range p.Coeffs {
		q, mask := r.SubRings[j].Modulus, r.SubRings[j].Mask
		for i := range row {
			for {
				if ptr == len(buf) {
					s.Read(buf[:])
					ptr = 0
				}
				v := binary.BigEndian.Uint64(buf[ptr:]) & mask
				ptr += 8
				if v < q {
					row[i] = v
					break
				}
			}
		}
	}
}

// expansions expand the seeds of a batch being decoded into their
// ciphertexts' c1 on GOMAXPROCS goroutines, while the decoder reads on: a
// seed's expansion costs about as much CPU as the encryption that made it.
type expansions struct {
	x    *seedExpander
	jobs chan expansion
	wg   sync.WaitGroup
}

type expansion struct {
	ct   *rlwe.Ciphertext
	seed [seedLen]byte
}

func startExpansions(params ckks.Parameters) *expansions {
	e := &expansions{x: newSeedExpander(params), jobs: make(chan expansion, 64)}
	for range runtime.GOMAXPROCS(0) {
		e.wg.Go(func() {
			for j := range e.jobs {
				e.x.expand(j.seed, ringqp.Poly{Q: j.ct.Value[1]})
			}
		})
	}
	return e
}

// add queues the expansion of seed into ct's c1.
func (e *expansions) add(ct *rlwe.Ciphertext, seed [seedLen]byte) {
	e.jobs <- expansion{ct, seed}
}

// wait returns when every seed added is expanded; call it once.
func (e *expansions) wait() {
	close(e.jobs)
	e.wg.Wait()
}

// ExpandSeed fills p with the uniform polynomial that seed expands to, at
// the levels p has (p.P may be empty). The result is read as an NTT-domain
// polynomial (in Montgomery form for keys). It is exported for he/client,
// which must expand seeds exactly as the decoders here do.
func ExpandSeed(params ckks.Parameters, seed [32]byte, p ringqp.Poly) {
	newSeedExpander(params).expand(seed, p)
}

// seeds remembers, for each fresh seeded encryption still alive, the seed of
// its c1. Entries are keyed by weak pointers and removed when the ciphertext
// is collected, so the registry never keeps a ciphertext alive.
var seeds sync.Map // weak.Pointer[rlwe.Ciphertext] -> [32]byte

// AttachSeed records that c1 of ct was expanded by ExpandSeed from seed, so
// that MarshalSeededCiphertexts can send the seed instead of c1. he/client
// calls it for every fresh encryption.
func AttachSeed(ct *rlwe.Ciphertext, seed [32]byte) {
	wp := weak.Make(ct)
	seeds.Store(wp, seed)
	runtime.AddCleanup(ct, func(wp weak.Pointer[rlwe.Ciphertext]) { seeds.Delete(wp) }, wp)
}

// seedsOf returns the seed of each ciphertext, after checking that c1 still
// expands from it (an evaluated or modified ciphertext no longer does).
func seedsOf(params ckks.Parameters, cts []*rlwe.Ciphertext) ([][seedLen]byte, error) {
	out := make([][seedLen]byte, len(cts))
	x := newSeedExpander(params)
	buf := params.RingQ().NewPoly()
	for k, ct := range cts {
		v, ok := seeds.Load(weak.Make(ct))
		if !ok {
			return nil, fheserve.Errorf(fheserve.EINVALID, "ciphertext %d has no seed: only fresh encryptions from client.Keys can be sent seeded", k)
		}
		out[k] = v.([seedLen]byte)
		a := ring.Poly{Coeffs: buf.Coeffs[:ct.Level()+1]}
		x.expand(out[k], ringqp.Poly{Q: a})
		if !a.Equal(&ct.Value[1]) {
			return nil, fheserve.Errorf(fheserve.EINVALID, "ciphertext %d was modified after encryption and can no longer be sent seeded", k)
		}
	}
	return out, nil
}
