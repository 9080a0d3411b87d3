// Package client is the half of the CKKS engine that runs on the user's
// device: key generation, encryption and decryption. It is the only package
// that holds a secret key. It uses no cgo, files or network, so it builds
// for GOOS=js GOARCH=wasm.
//
// Fresh encryptions are made with the secret key in a seeded way: the
// uniform part c1 is expanded from a random 32-byte seed (he.ExpandSeed),
// so that he.MarshalSeededCiphertexts can send the seed instead of c1 and an
// upload costs about one polynomial per ciphertext. Evaluation keys are
// seeded the same way (see he.EvalKeys).
package client

import (
	"crypto/rand"
	"encoding/hex"
	"math"
	"sync"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/he"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/ring"
	"github.com/tuneinsight/lattigo/v6/ring/ringqp"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
	"github.com/tuneinsight/lattigo/v6/utils/sampling"
)

// Keys holds a user's secret key for one parameter set. Its methods may be
// called concurrently.
type Keys struct {
	params ckks.Parameters
	sk     *rlwe.SecretKey

	mu   sync.Mutex // guards the encoder and the error sampler
	ecd  *ckks.Encoder
	errs ring.Sampler
	dec  *rlwe.Decryptor
}

func newKeys(params ckks.Parameters, sk *rlwe.SecretKey) (*Keys, error) {
	prng, _ := sampling.NewPRNG() // crypto/rand; never fails
	errs, err := ring.NewSampler(prng, params.RingQ(), params.Xe(), false)
	if err != nil {
		return nil, fheserve.Errorf(fheserve.EINVALID, "keys: %v", err)
	}
	return &Keys{
		params: params,
		sk:     sk,
		ecd:    ckks.NewEncoder(params, he.EncodingPrecision),
		errs:   errs,
		dec:    rlwe.NewDecryptor(params, sk),
	}, nil
}

// GenerateKeys generates a secret key, the public key and the evaluation
// keys spec lists (he.PlanKeys gives a plan's), each at its level: a key
// used only at lower levels is generated there, over fewer primes and with
// fewer decomposition rows. The evaluation keys are seeded, so
// he.MarshalEvalKeys writes them compressed, and held compressed.
func GenerateKeys(params ckks.Parameters, spec he.KeySpec) (*Keys, *he.EvalKeys, error) {
	return GenerateKeysProgress(params, spec, nil)
}

// GenerateKeysProgress is GenerateKeys that calls progress, if not nil,
// after each evaluation key it generates (the relinearization key, then
// each Galois key in spec's order): done of total, total being the number
// of evaluation keys spec lists, done going 1 to total. Progress runs on
// the caller's goroutine; keys with no evaluation key never call it.
func GenerateKeysProgress(params ckks.Parameters, spec he.KeySpec, progress func(done, total int)) (*Keys, *he.EvalKeys, error) {
	if err := he.CheckParams(params); err != nil {
		return nil, nil, err
	}
	if err := spec.Validate(params); err != nil {
		return nil, nil, err
	}
	kgen := rlwe.NewKeyGenerator(params)
	sk := kgen.GenSecretKeyNew()
	k, err := newKeys(params, sk)
	if err != nil {
		return nil, nil, err
	}
	seed, err := randomSeed()
	if err != nil {
		return nil, nil, err
	}
	pk := k.seededPublicKey(seed)
	at := func(level int) rlwe.EvaluationKeyParameters {
		return rlwe.EvaluationKeyParameters{LevelQ: &level, Compressed: true}
	}
	var masters *he.KeySpec
	if spec.Derived {
		d, err := he.PlanDerivation(params, spec)
		if err != nil {
			return nil, nil, err
		}
		masters = &d.Master
	}
	total := len(spec.Galois)
	if masters != nil {
		total = len(masters.Galois)
	}
	if spec.Relin {
		total++
	}
	done := 0
	step := func() {
		done++
		if progress != nil {
			progress(done, total)
		}
	}
	var rlk *rlwe.RelinearizationKey
	if spec.Relin {
		rlk = kgen.GenRelinearizationKeyNew(sk, at(spec.RelinLevel))
		step()
	}
	if masters != nil {
		mks, err := k.masterKeys(*masters, step)
		if err != nil {
			return nil, nil, err
		}
		return k, he.NewDerivedEvalKeys(params, pk, seed, rlk, mks), nil
	}
	var gks []*rlwe.GaloisKey
	for i, g := range spec.Galois {
		gks = append(gks, kgen.GenGaloisKeyNew(g, sk, at(spec.GaloisLevels[i])))
		step()
	}
	return k, he.NewEvalKeys(params, pk, seed, rlk, gks), nil
}

// masterKeys generates the master keys spec lists (he.PlanDerivation),
// seeded, over he.MasterParams with the same secret, calling step after
// each.
func (k *Keys) masterKeys(spec he.KeySpec, step func()) ([]*rlwe.GaloisKey, error) {
	mp, err := he.MasterParams(k.params)
	if err != nil {
		return nil, err
	}
	skM := liftSecret(k.params, mp, k.sk)
	kgen := rlwe.NewKeyGenerator(mp)
	w := he.MasterDecomposition(mp)
	out := make([]*rlwe.GaloisKey, len(spec.Galois))
	for i, g := range spec.Galois {
		out[i] = kgen.GenGaloisKeyNew(g, skM, rlwe.EvaluationKeyParameters{LevelQ: &spec.GaloisLevels[i], BaseTwoDecomposition: &w, Compressed: true})
		step()
	}
	return out, nil
}

// liftSecret returns sk, a ternary secret over params, as a secret over mp
// (other primes): the same small polynomial, in NTT and Montgomery form.
func liftSecret(params, mp ckks.Parameters, sk *rlwe.SecretKey) *rlwe.SecretKey {
	r0 := params.RingQ().AtLevel(0)
	small := r0.NewPoly()
	r0.IMForm(sk.Value.Q, small)
	r0.INTT(small, small)
	q0 := params.Q()[0]
	out := rlwe.NewSecretKey(mp)
	for i, q := range append(mp.Q(), mp.P()...) {
		row := out.Value.Q.Coeffs
		j := i
		if i >= mp.QCount() {
			row, j = out.Value.P.Coeffs, i-mp.QCount()
		}
		for w, c := range small.Coeffs[0] {
			switch {
			case c == 0:
				row[j][w] = 0
			case c == 1:
				row[j][w] = 1
			case c == q0-1:
				row[j][w] = q - 1
			default:
				panic("client: the secret key is not ternary")
			}
		}
	}
	ringQP := mp.RingQP()
	ringQP.NTT(out.Value, out.Value)
	ringQP.MForm(out.Value, out.Value)
	return out
}

// seededPublicKey computes pk = (-a*s + e, a) over QP, in NTT and Montgomery
// form as Lattigo's key generator does, with a expanded from seed.
func (k *Keys) seededPublicKey(seed [32]byte) *rlwe.PublicKey {
	pk := rlwe.NewPublicKey(k.params)
	b, a := pk.Value[0], pk.Value[1]
	he.ExpandSeed(k.params, seed, a)
	ringQP := k.params.RingQP().AtLevel(k.params.MaxLevelQ(), k.params.MaxLevelP())
	k.mu.Lock()
	k.errs.Read(b.Q)
	k.mu.Unlock()
	ringQP.ExtendBasisSmallNormAndCenter(b.Q, k.params.MaxLevelP(), b.Q, b.P)
	ringQP.NTT(b, b)
	ringQP.MForm(b, b)
	ringQP.MulCoeffsMontgomeryThenSub(a, k.sk.Value, b)
	return pk
}

func randomSeed() (seed [32]byte, err error) {
	if _, err := rand.Read(seed[:]); err != nil {
		return seed, fheserve.Errorf(fheserve.EINTERNAL, "no randomness: %v", err)
	}
	return seed, nil
}

// Encrypt encodes each slot vector (at most N/2 values; missing slots are
// zero) at the given level and scale and encrypts it with the secret key,
// one ciphertext per vector.
func (k *Keys) Encrypt(values [][]float64, level int, scale rlwe.Scale) ([]*rlwe.Ciphertext, error) {
	return k.encrypt(values, level, scale, true)
}

// EncryptCoeffs is Encrypt with coefficient encoding: each vector (at most
// N values) becomes the coefficients of the plaintext polynomial, times the
// scale (IsBatched false).
func (k *Keys) EncryptCoeffs(values [][]float64, level int, scale rlwe.Scale) ([]*rlwe.Ciphertext, error) {
	return k.encrypt(values, level, scale, false)
}

func (k *Keys) encrypt(values [][]float64, level int, scale rlwe.Scale, batched bool) ([]*rlwe.Ciphertext, error) {
	maxLen := k.params.N()
	if batched {
		maxLen = k.params.MaxSlots()
	}
	switch f := scale.Float64(); {
	case len(values) == 0:
		return nil, fheserve.Errorf(fheserve.EINVALID, "encrypt: no values")
	case level < 0 || level > k.params.MaxLevel():
		return nil, fheserve.Errorf(fheserve.EINVALID, "encrypt: level %d is outside 0..%d", level, k.params.MaxLevel())
	case scale.Mod != nil || !(f >= 1) || math.IsInf(f, 0):
		return nil, fheserve.Errorf(fheserve.EINVALID, "encrypt: scale must be a finite value >= 1")
	}
	for i, v := range values {
		if len(v) > maxLen {
			return nil, fheserve.Errorf(fheserve.EINVALID, "encrypt: vector %d has %d values, more than %d", i, len(v), maxLen)
		}
		for _, x := range v {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return nil, fheserve.Errorf(fheserve.EINVALID, "encrypt: vector %d holds a value that is not finite", i)
			}
		}
	}
	ringQ := k.params.RingQ().AtLevel(level)
	cts := make([]*rlwe.Ciphertext, len(values))
	for i, v := range values {
		pt := ckks.NewPlaintext(k.params, level)
		pt.Scale = scale
		pt.IsBatched = batched
		seed, err := randomSeed()
		if err != nil {
			return nil, err
		}
		ct := ckks.NewCiphertext(k.params, 1, level)
		k.mu.Lock()
		err = k.ecd.Encode(v, pt)
		if err == nil {
			k.errs.AtLevel(level).Read(ct.Value[0])
		}
		k.mu.Unlock()
		if err != nil {
			return nil, fheserve.Errorf(fheserve.EINVALID, "encrypt: vector %d: %v", i, err)
		}
		*ct.MetaData = *pt.MetaData
		// c1 = a from the seed; c0 = -a*s + e + m, all in the NTT domain.
		c0, c1 := ct.Value[0], ct.Value[1]
		he.ExpandSeed(k.params, seed, ringqp.Poly{Q: c1})
		ringQ.NTT(c0, c0)
		ringQ.Add(c0, pt.Value, c0)
		ringQ.MulCoeffsMontgomeryThenSub(c1, k.sk.Value.Q, c0)
		he.AttachSeed(ct, seed)
		cts[i] = ct
	}
	return cts, nil
}

// Decrypt decrypts slot-encoded ciphertexts and returns the real parts of
// their slots.
func (k *Keys) Decrypt(cts []*rlwe.Ciphertext) ([][]float64, error) {
	return k.decrypt(cts, true)
}

// DecryptCoeffs decrypts coefficient-encoded ciphertexts (IsBatched false)
// and returns their N coefficients divided by the scale.
func (k *Keys) DecryptCoeffs(cts []*rlwe.Ciphertext) ([][]float64, error) {
	return k.decrypt(cts, false)
}

func (k *Keys) decrypt(cts []*rlwe.Ciphertext, batched bool) ([][]float64, error) {
	out := make([][]float64, len(cts))
	for i, ct := range cts {
		if err := k.checkCiphertext(ct); err != nil {
			return nil, fheserve.Errorf(fheserve.EINVALID, "decrypt: ciphertext %d: %s", i, fheserve.ErrorMessage(err))
		}
		if ct.IsBatched != batched {
			if batched {
				return nil, fheserve.Errorf(fheserve.EINVALID, "decrypt: ciphertext %d is coefficient-encoded: use DecryptCoeffs", i)
			}
			return nil, fheserve.Errorf(fheserve.EINVALID, "decrypt: ciphertext %d is slot-encoded: use Decrypt", i)
		}
		n := k.params.N()
		if batched {
			n = 1 << ct.LogDimensions.Cols
		}
		out[i] = make([]float64, n)
		pt := k.dec.DecryptNew(ct)
		k.mu.Lock()
		err := k.ecd.Decode(pt, out[i])
		k.mu.Unlock()
		if err != nil {
			return nil, fheserve.Errorf(fheserve.EINVALID, "decrypt: ciphertext %d: %v", i, err)
		}
	}
	return out, nil
}

// checkCiphertext refuses what would make Lattigo's decryptor or decoder
// panic or misread; ciphertexts come from the server.
func (k *Keys) checkCiphertext(ct *rlwe.Ciphertext) error {
	p := k.params
	switch {
	case ct == nil || ct.MetaData == nil || len(ct.Value) < 2 || len(ct.Value) > 3:
		return fheserve.Errorf(fheserve.EINVALID, "malformed ciphertext")
	case !ct.IsNTT || ct.IsMontgomery:
		return fheserve.Errorf(fheserve.EINVALID, "not in NTT, non-Montgomery form")
	case ct.Scale.Mod != nil || ct.Scale.Value.Sign() <= 0 || ct.Scale.Value.IsInf():
		return fheserve.Errorf(fheserve.EINVALID, "scale is not finite and positive")
	case ct.LogDimensions.Rows != 0 || ct.LogDimensions.Cols < 0 || ct.LogDimensions.Cols > p.LogMaxDimensions().Cols:
		return fheserve.Errorf(fheserve.EINVALID, "dimensions do not match the parameters")
	}
	level := ct.Level()
	if level < 0 || level > p.MaxLevel() {
		return fheserve.Errorf(fheserve.EINVALID, "level %d is outside 0..%d", level, p.MaxLevel())
	}
	for _, poly := range ct.Value {
		if poly.Level() != level {
			return fheserve.Errorf(fheserve.EINVALID, "polynomials at different levels")
		}
		for _, row := range poly.Coeffs {
			if len(row) != p.N() {
				return fheserve.Errorf(fheserve.EINVALID, "ring degree does not match the parameters")
			}
		}
	}
	return nil
}

// Secret key storage format: "FHES", version 1, kind 1, logN, a reserved
// zero byte, the 32-byte parameter fingerprint, then the N ternary
// coefficients of the secret at 2 bits each (0 for 0, 1 for 1, 2 for -1),
// four per byte, least significant bits first.
const secretHeaderLen = 40

var magicSecret = [4]byte{'F', 'H', 'E', 'S'}

// MarshalSecret encodes the secret key for the user's local storage. The
// bytes are the secret: store them protected.
func (k *Keys) MarshalSecret() ([]byte, error) {
	n := k.params.N()
	out := make([]byte, secretHeaderLen+n/4)
	copy(out, magicSecret[:])
	out[4], out[5], out[6] = he.FormatVersion, 1, byte(k.params.LogN())
	fp, err := fingerprintBytes(k.params)
	if err != nil {
		return nil, err
	}
	copy(out[8:40], fp)

	ringQ := k.params.RingQ().AtLevel(0)
	s := ringQ.NewPoly()
	s.Copy(ring.Poly{Coeffs: k.sk.Value.Q.Coeffs[:1]})
	ringQ.IMForm(s, s)
	ringQ.INTT(s, s)
	q0 := k.params.Q()[0]
	body := out[secretHeaderLen:]
	for i, c := range s.Coeffs[0] {
		var v byte
		switch c {
		case 0:
		case 1:
			v = 1
		case q0 - 1:
			v = 2
		default:
			return nil, fheserve.Errorf(fheserve.EINTERNAL, "secret key is not ternary")
		}
		body[i/4] |= v << (2 * (i % 4))
	}
	return out, nil
}

// UnmarshalSecret decodes a secret key written by MarshalSecret for params.
func UnmarshalSecret(params ckks.Parameters, data []byte) (*Keys, error) {
	if err := he.CheckParams(params); err != nil {
		return nil, err
	}
	n := params.N()
	fp, err := fingerprintBytes(params)
	if err != nil {
		return nil, err
	}
	switch {
	case len(data) != secretHeaderLen+n/4:
		return nil, fheserve.Errorf(fheserve.EINVALID, "secret key: %d bytes, want %d", len(data), secretHeaderLen+n/4)
	case [4]byte(data[:4]) != magicSecret:
		return nil, fheserve.Errorf(fheserve.EINVALID, "secret key: bad magic")
	case data[4] != he.FormatVersion || data[5] != 1:
		return nil, fheserve.Errorf(fheserve.EINVALID, "secret key: unsupported version %d or kind %d", data[4], data[5])
	case int(data[6]) != params.LogN() || data[7] != 0:
		return nil, fheserve.Errorf(fheserve.EINVALID, "secret key: ring degree does not match the parameters")
	case string(data[8:40]) != string(fp):
		return nil, fheserve.Errorf(fheserve.EINVALID, "secret key: made for other parameters (fingerprint mismatch)")
	}
	sk := rlwe.NewSecretKey(params)
	moduli := append(params.Q(), params.P()...)
	rows := append(sk.Value.Q.Coeffs, sk.Value.P.Coeffs...)
	for i := range n {
		v := data[secretHeaderLen+i/4] >> (2 * (i % 4)) & 3
		if v == 3 {
			return nil, fheserve.Errorf(fheserve.EINVALID, "secret key: coefficient %d is not ternary", i)
		}
		for j, row := range rows {
			switch v {
			case 1:
				row[i] = 1
			case 2:
				row[i] = moduli[j] - 1
			}
		}
	}
	ringQP := params.RingQP()
	ringQP.NTT(sk.Value, sk.Value)
	ringQP.MForm(sk.Value, sk.Value)
	return newKeys(params, sk)
}

func fingerprintBytes(params ckks.Parameters) ([]byte, error) {
	fp, err := hex.DecodeString(he.Fingerprint(params))
	if err != nil {
		return nil, fheserve.Errorf(fheserve.EINTERNAL, "fingerprint: %v", err)
	}
	return fp, nil
}
