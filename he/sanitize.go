package he

import (
	"crypto/rand"
	"encoding/binary"
	"math"
	"math/bits"
	"sync"

	"github.com/fheserve/fheserve"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
)

// MaxFloodStd is the largest flooding standard deviation Sanitize accepts,
// in coefficient units. Up to it, the flooding sampler has sub-integer
// resolution (float64 carries 53 bits), so its output is a true rounded
// Gaussian rather than a sparse lattice of values.
const MaxFloodStd = 1 << 48

// Sanitizer makes result ciphertexts safe to return to a user (circuit
// privacy): it brings them to level 0, re-randomizes them with a fresh
// encryption of zero under the user's public key, and floods c0 with a
// large Gaussian so that the decryption error reveals nothing about the
// computation beyond the result. It is safe for concurrent use.
type Sanitizer struct {
	params ckks.Parameters
	pk     *rlwe.PublicKey
	encs   sync.Pool // *rlwe.Encryptor, one per concurrent Sanitize
}

// NewSanitizer returns a Sanitizer for results decryptable under pk.
func NewSanitizer(params ckks.Parameters, pk *rlwe.PublicKey) (*Sanitizer, error) {
	if err := CheckParams(params); err != nil {
		return nil, err
	}
	if pk == nil || len(pk.Value) != 2 {
		return nil, fheserve.Errorf(fheserve.EINVALID, "sanitizer: a public key is required")
	}
	s := shapeOf(params)
	for _, p := range pk.Value {
		if err := checkPolyQP(params, p, s, "public key"); err != nil {
			return nil, err
		}
	}
	san := &Sanitizer{params: params, pk: pk}
	san.encs.New = func() any { return rlwe.NewEncryptor(params, pk) }
	return san, nil
}

// Sanitize turns ct, in place, into a level-0 re-randomized ciphertext of
// the same message plus a Gaussian error of standard deviation floodStd in
// coefficient units (so about floodStd*sqrt(N/2)/scale in each slot).
// floodStd must lie in [0, MaxFloodStd]; choose it about 2^lambda times the
// bound of the evaluation error it must hide. ct must have degree 1.
func (s *Sanitizer) Sanitize(ct *rlwe.Ciphertext, floodStd float64) error {
	return s.SanitizeKeeping(ct, floodStd, nil)
}

// SanitizeKeeping is Sanitize for a result of which only some coefficients
// are outputs (coefficient encoding): every coefficient not listed in keep
// is made uniformly random mod q_0, so that what it held (partial sums of
// the weights, for a coefficient-encoded product) is gone; the kept ones
// are flooded. keep nil keeps every coefficient; keep must be nil for a
// slot-encoded ciphertext, whose slots are not coefficients.
func (s *Sanitizer) SanitizeKeeping(ct *rlwe.Ciphertext, floodStd float64, keep []int) error {
	return s.sanitize(ct, floodStd, keep, true)
}

// Flood is Sanitize for a ciphertext that was re-randomized (Rerandomize)
// just before its last rescale: its parts are already independent of the
// computation, so it is only brought to level 0 and flooded, which saves
// an encryption of zero per result ciphertext.
func (s *Sanitizer) Flood(ct *rlwe.Ciphertext, floodStd float64) error {
	return s.sanitize(ct, floodStd, nil, false)
}

func (s *Sanitizer) sanitize(ct *rlwe.Ciphertext, floodStd float64, keep []int, rerandomize bool) error {
	if err := s.check(ct, "sanitize"); err != nil {
		return err
	}
	switch {
	case !(floodStd >= 0 && floodStd <= MaxFloodStd): // also refuses NaN
		return fheserve.Errorf(fheserve.EINVALID, "sanitize: flooding std %g is outside 0..2^48", floodStd)
	case keep != nil && ct.IsBatched:
		return fheserve.Errorf(fheserve.EINVALID, "sanitize: only a coefficient-encoded result keeps some coefficients")
	}
	for _, k := range keep {
		if k < 0 || k >= s.params.N() {
			return fheserve.Errorf(fheserve.EINVALID, "sanitize: coefficient %d is outside 0..%d", k, s.params.N()-1)
		}
	}
	// (a) Dropping levels only forgets residues: the message and the error
	// stay the same, and the result is as small as it can be.
	ct.Resize(1, 0)
	ringQ := s.params.RingQ().AtLevel(0)

	// (b) Re-randomize: add a fresh encryption of zero under the public key.
	if rerandomize {
		if err := s.addZero(ct); err != nil {
			return err
		}
	}

	// (c) Flood c0 with a wide Gaussian, and replace the coefficients that
	// are not outputs by uniform values mod q_0.
	if floodStd > 0 || keep != nil {
		e := ringQ.NewPoly()
		q := s.params.Q()[0]
		if err := sampleGaussian(e.Coeffs[0], floodStd, q); err != nil {
			return err
		}
		if keep != nil {
			kept := e.Coeffs[0]
			u := make([]uint64, len(kept))
			if err := sampleUniform(u, q); err != nil {
				return err
			}
			for _, k := range keep {
				u[k] = kept[k]
			}
			copy(kept, u)
		}
		ringQ.NTT(e, e)
		ringQ.Add(ct.Value[0], e, ct.Value[0])
	}
	return nil
}

// sampleUniform fills out with independent uniform values mod q from
// crypto/rand: 128 random bits reduced mod q, whose bias (below q/2^128)
// is far below any statistical test.
func sampleUniform(out []uint64, q uint64) error {
	buf := make([]byte, 16*len(out))
	if _, err := rand.Read(buf); err != nil {
		return fheserve.Errorf(fheserve.EINTERNAL, "sanitize: no randomness: %v", err)
	}
	for i := range out {
		hi := binary.LittleEndian.Uint64(buf[16*i:]) % q
		lo := binary.LittleEndian.Uint64(buf[16*i+8:])
		out[i] = bits.Rem64(hi, lo, q)
	}
	return nil
}

// Rerandomize adds, in place, a fresh encryption of zero under the user's
// public key to ct at its level. Before a rescale it makes the rescale's
// rounding a function of fresh randomness rather than of the computation:
// the ciphertext's parts become (pseudo)uniform and independent of what
// was computed, and so do their roundings.
func (s *Sanitizer) Rerandomize(ct *rlwe.Ciphertext) error {
	if err := s.check(ct, "rerandomize"); err != nil {
		return err
	}
	return s.addZero(ct)
}

// check refuses a ciphertext the sanitizer cannot work on.
func (s *Sanitizer) check(ct *rlwe.Ciphertext, op string) error {
	switch {
	case ct == nil || ct.MetaData == nil || ct.Degree() != 1:
		return fheserve.Errorf(fheserve.EINVALID, "%s: ciphertext must have degree 1", op)
	case ct.N() != s.params.N() || ct.Level() > s.params.MaxLevel():
		return fheserve.Errorf(fheserve.EINVALID, "%s: ciphertext does not match the parameters", op)
	case !ct.IsNTT || ct.IsMontgomery:
		return fheserve.Errorf(fheserve.EINVALID, "%s: ciphertext is not in NTT, non-Montgomery form", op)
	}
	return nil
}

// addZero adds a fresh encryption of zero under the public key to ct, at
// its level.
func (s *Sanitizer) addZero(ct *rlwe.Ciphertext) error {
	zero, err := s.Zero(ct.Level())
	if err != nil {
		return err
	}
	s.add(ct, zero)
	return nil
}

// Zero returns a fresh encryption of zero under the user's public key at
// level, in NTT form: what Rerandomize adds, drawn ahead of time (it does
// not depend on the ciphertext) for RerandomizeWith. Each one must be
// used once.
func (s *Sanitizer) Zero(level int) (*rlwe.Ciphertext, error) {
	if level < 0 || level > s.params.MaxLevel() {
		return nil, fheserve.Errorf(fheserve.EINVALID, "sanitize: level %d is outside 0..%d", level, s.params.MaxLevel())
	}
	zero := rlwe.NewCiphertext(s.params, 1, level)
	zero.IsNTT = true
	enc := s.encs.Get().(*rlwe.Encryptor)
	err := enc.EncryptZero(zero)
	s.encs.Put(enc)
	if err != nil {
		return nil, fheserve.Errorf(fheserve.EINTERNAL, "sanitize: cannot encrypt zero: %v", err)
	}
	return zero, nil
}

// RerandomizeWith is Rerandomize with a fresh encryption of zero drawn
// by Zero at ct's level.
func (s *Sanitizer) RerandomizeWith(ct, zero *rlwe.Ciphertext) error {
	if err := s.check(ct, "rerandomize"); err != nil {
		return err
	}
	if err := s.check(zero, "rerandomize"); err != nil || zero.Level() != ct.Level() {
		return fheserve.Errorf(fheserve.EINTERNAL, "rerandomize: the encryption of zero does not match the ciphertext")
	}
	s.add(ct, zero)
	return nil
}

// add adds zero's parts to ct's.
func (s *Sanitizer) add(ct, zero *rlwe.Ciphertext) {
	ringQ := s.params.RingQ().AtLevel(ct.Level())
	ringQ.Add(ct.Value[0], zero.Value[0], ct.Value[0])
	ringQ.Add(ct.Value[1], zero.Value[1], ct.Value[1])
}

// sampleGaussian fills out with independent samples round(sigma*z) mod q,
// z standard normal, by the Box-Muller transform on 53-bit uniforms read
// from crypto/rand. Lattigo's Gaussian sampler is not used: below 2^53 its
// samples are multiples of about sigma*2^-31 (its ziggurat has 31-bit
// resolution), which for large sigma leaves the low bits of the error
// unflooded. Tails are cut at about 8.6 sigma (the smallest uniform is
// 2^-53), far beyond any sample a run will draw.
func sampleGaussian(out []uint64, sigma float64, q uint64) error {
	buf := make([]byte, 16*((len(out)+1)/2))
	if _, err := rand.Read(buf); err != nil {
		return fheserve.Errorf(fheserve.EINTERNAL, "sanitize: no randomness: %v", err)
	}
	const inv53 = 1.0 / (1 << 53)
	for i := 0; i < len(out); i += 2 {
		// u1 in (0, 1] so that the logarithm is finite; u2 in [0, 1).
		u1 := float64(binary.LittleEndian.Uint64(buf[16*(i/2):])>>11+1) * inv53
		u2 := float64(binary.LittleEndian.Uint64(buf[16*(i/2)+8:])>>11) * inv53
		r := sigma * math.Sqrt(-2*math.Log(u1))
		sin, cos := math.Sincos(2 * math.Pi * u2)
		out[i] = modQ(math.Round(r*cos), q)
		if i+1 < len(out) {
			out[i+1] = modQ(math.Round(r*sin), q)
		}
	}
	return nil
}

// modQ maps an integer-valued float64 with |x| < 2^63 to [0, q).
func modQ(x float64, q uint64) uint64 {
	if x < 0 {
		v := uint64(-x) % q
		if v == 0 {
			return 0
		}
		return q - v
	}
	return uint64(x) % q
}
