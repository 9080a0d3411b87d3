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
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/he"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/ring"
	"github.com/tuneinsight/lattigo/v6/ring/ringqp"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
	"github.com/tuneinsight/lattigo/v6/utils/sampling"
)

// Keys holds a user's secret key for one parameter set. Its methods may be
// called concurrently. Encryption and decryption of several ciphertexts run
// on every core (runtime.GOMAXPROCS), each core with a worker of its own.
type Keys struct {
	params ckks.Parameters
	sk     *rlwe.SecretKey
	ecd    *ckks.Encoder   // safe for concurrent use: its buffers come from pools
	dec    *rlwe.Decryptor // same

	mu   sync.Mutex // guards idle
	idle []*worker
}

// worker is what one core needs to encrypt: an error sampler of its own,
// drawing from crypto/rand, and the buffer of the inverse FFT. Keys keeps
// the workers of past calls for the next.
type worker struct {
	errs ring.Sampler
	fft  []complex128
}

func newKeys(params ckks.Parameters, sk *rlwe.SecretKey) (*Keys, error) {
	k := &Keys{
		params: params,
		sk:     sk,
		ecd:    ckks.NewEncoder(params, he.EncodingPrecision),
		dec:    rlwe.NewDecryptor(params, sk),
	}
	w, err := k.newWorker()
	if err != nil {
		return nil, err
	}
	k.idle = append(k.idle, w)
	return k, nil
}

func (k *Keys) newWorker() (*worker, error) {
	prng, _ := sampling.NewPRNG() // crypto/rand; never fails
	errs, err := ring.NewSampler(prng, k.params.RingQ(), k.params.Xe(), false)
	if err != nil {
		return nil, fheserve.Errorf(fheserve.EINVALID, "keys: %v", err)
	}
	return &worker{errs: errs, fft: make([]complex128, k.params.MaxSlots())}, nil
}

// take returns an idle worker, or a new one.
func (k *Keys) take() (*worker, error) {
	k.mu.Lock()
	if n := len(k.idle); n > 0 {
		w := k.idle[n-1]
		k.idle = k.idle[:n-1]
		k.mu.Unlock()
		return w, nil
	}
	k.mu.Unlock()
	return k.newWorker()
}

func (k *Keys) release(w *worker) {
	k.mu.Lock()
	k.idle = append(k.idle, w)
	k.mu.Unlock()
}

// parallel calls do(i) for each i in 0..n-1 on up to GOMAXPROCS
// goroutines, each with a worker of its own and a do of its own, which
// start(w) returns (per-goroutine buffers live there). Once a call fails,
// no new i is started; parallel returns the error of the lowest i that
// failed.
func (k *Keys) parallel(n int, start func(w *worker) (do func(i int) error)) error {
	if n == 0 {
		return nil
	}
	workers := min(runtime.GOMAXPROCS(0), n)
	var next atomic.Int64
	var failed atomic.Bool
	type failure struct {
		i   int
		err error
	}
	fails := make([]failure, workers)
	run := func(g int) {
		w, err := k.take()
		if err != nil {
			fails[g] = failure{-1, err}
			failed.Store(true)
			return
		}
		defer k.release(w)
		do := start(w)
		for !failed.Load() {
			i := int(next.Add(1) - 1)
			if i >= n {
				return
			}
			if err := do(i); err != nil {
				fails[g] = failure{i, err}
				failed.Store(true)
				return
			}
		}
	}
	var wg sync.WaitGroup
	for g := 1; g < workers; g++ {
		wg.Go(func() { run(g) })
	}
	run(0)
	wg.Wait()
	var first *failure
	for g := range fails {
		if f := &fails[g]; f.err != nil && (first == nil || f.i < first.i) {
			first = f
		}
	}
	if first != nil {
		return first.err
	}
	return nil
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
	pk, err := k.seededPublicKey(seed)
	if err != nil {
		return nil, nil, err
	}
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
func (k *Keys) seededPublicKey(seed [32]byte) (*rlwe.PublicKey, error) {
	pk := rlwe.NewPublicKey(k.params)
	b, a := pk.Value[0], pk.Value[1]
	he.ExpandSeed(k.params, seed, a)
	ringQP := k.params.RingQP().AtLevel(k.params.MaxLevelQ(), k.params.MaxLevelP())
	w, err := k.take()
	if err != nil {
		return nil, err
	}
	w.errs.Read(b.Q)
	k.release(w)
	ringQP.ExtendBasisSmallNormAndCenter(b.Q, k.params.MaxLevelP(), b.Q, b.P)
	ringQP.NTT(b, b)
	ringQP.MForm(b, b)
	ringQP.MulCoeffsMontgomeryThenSub(a, k.sk.Value, b)
	return pk, nil
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

// EncryptSeeded encrypts as Encrypt (batched) or EncryptCoeffs (not
// batched) straight into the bytes he.MarshalSeededCiphertexts would write
// of the ciphertexts, without holding them: each core encrypts into a
// ciphertext of its own and writes its record in place (he.SeededBatch).
// An upload of many ciphertexts costs one allocation of its exact size.
func (k *Keys) EncryptSeeded(values [][]float64, level int, scale rlwe.Scale, batched bool) ([]byte, error) {
	if err := k.checkValues(values, level, scale, batched); err != nil {
		return nil, err
	}
	b, err := he.NewSeededBatch(k.params, level, len(values))
	if err != nil {
		return nil, err
	}
	err = k.parallel(len(values), func(w *worker) func(int) error {
		e := k.newEncryption(w, level, scale, batched)
		ct := e.newCiphertext()
		return func(i int) error {
			seed, err := e.encrypt(i, values[i], ct)
			if err != nil {
				return err
			}
			return b.Put(i, ct, seed)
		}
	})
	if err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func (k *Keys) encrypt(values [][]float64, level int, scale rlwe.Scale, batched bool) ([]*rlwe.Ciphertext, error) {
	if err := k.checkValues(values, level, scale, batched); err != nil {
		return nil, err
	}
	cts := make([]*rlwe.Ciphertext, len(values))
	err := k.parallel(len(values), func(w *worker) func(int) error {
		e := k.newEncryption(w, level, scale, batched)
		return func(i int) error {
			ct := e.newCiphertext()
			seed, err := e.encrypt(i, values[i], ct)
			if err != nil {
				return err
			}
			he.AttachSeed(ct, seed)
			cts[i] = ct
			return nil
		}
	})
	if err != nil {
		return nil, err
	}
	return cts, nil
}

// checkValues refuses what encrypt cannot encode.
func (k *Keys) checkValues(values [][]float64, level int, scale rlwe.Scale, batched bool) error {
	maxLen := k.params.N()
	if batched {
		maxLen = k.params.MaxSlots()
	}
	switch f := scale.Float64(); {
	case len(values) == 0:
		return fheserve.Errorf(fheserve.EINVALID, "encrypt: no values")
	case level < 0 || level > k.params.MaxLevel():
		return fheserve.Errorf(fheserve.EINVALID, "encrypt: level %d is outside 0..%d", level, k.params.MaxLevel())
	case scale.Mod != nil || !(f >= 1) || math.IsInf(f, 0):
		return fheserve.Errorf(fheserve.EINVALID, "encrypt: scale must be a finite value >= 1")
	}
	for i, v := range values {
		if len(v) > maxLen {
			return fheserve.Errorf(fheserve.EINVALID, "encrypt: vector %d has %d values, more than %d", i, len(v), maxLen)
		}
		for _, x := range v {
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return fheserve.Errorf(fheserve.EINVALID, "encrypt: vector %d holds a value that is not finite", i)
			}
		}
	}
	return nil
}

// encryption is one goroutine's share of an encryption call: its worker,
// with the error sampler at the call's level, and what every ciphertext of
// the call shares.
type encryption struct {
	k       *Keys
	w       *worker
	errs    ring.Sampler
	ringQ   *ring.Ring
	moduli  []uint64
	scale   rlwe.Scale
	batched bool
}

func (k *Keys) newEncryption(w *worker, level int, scale rlwe.Scale, batched bool) *encryption {
	ringQ := k.params.RingQ().AtLevel(level)
	return &encryption{k: k, w: w, errs: w.errs.AtLevel(level), ringQ: ringQ, moduli: ringQ.ModuliChain()[:level+1], scale: scale, batched: batched}
}

func (e *encryption) newCiphertext() *rlwe.Ciphertext {
	ct := ckks.NewCiphertext(e.k.params, 1, e.ringQ.Level())
	ct.Scale = e.scale
	ct.IsBatched = e.batched
	return ct
}

// encrypt encrypts v (vector i) with the secret key into ct, of degree 1
// at the call's level, and returns the fresh seed its c1 was expanded
// from: c0 = -c1*s + e + m. The message's quantized coefficients and the
// error are summed in the coefficient domain and moved to the NTT domain
// at once (the sum is what Lattigo's encoder and encryptor compute with an
// NTT each).
func (e *encryption) encrypt(i int, v []float64, ct *rlwe.Ciphertext) (seed [32]byte, err error) {
	if seed, err = randomSeed(); err != nil {
		return seed, err
	}
	c0, c1 := ct.Value[0], ct.Value[1]
	if err := e.quantize(v, c0); err != nil {
		return seed, fheserve.Errorf(fheserve.EINVALID, "encrypt: vector %d: %v", i, err)
	}
	e.errs.ReadAndAdd(c0)
	e.ringQ.NTT(c0, c0)
	he.ExpandSeed(e.k.params, seed, ringqp.Poly{Q: c1})
	e.ringQ.MulCoeffsMontgomeryThenSub(c1, e.k.sk.Value.Q, c0)
	return seed, nil
}

// quantize writes the plaintext polynomial of v, scaled and rounded, into
// p in CRT form, each residue below its prime, as Lattigo's encoder does
// before its NTT: v itself (coefficient encoding), or the inverse FFT of
// the slots v (their real parts in coefficients 0..N/2-1, their imaginary
// parts in N/2..N-1).
func (e *encryption) quantize(v []float64, p ring.Poly) error {
	scale := e.scale.Float64()
	if !e.batched {
		for i := range p.Coeffs[0] {
			var x float64
			if i < len(v) {
				x = v[i]
			}
			e.setCoeff(i, x, scale, p.Coeffs)
		}
		return nil
	}
	buf := e.w.fft
	for i := range buf {
		buf[i] = 0
		if i < len(v) {
			buf[i] = complex(v[i], 0)
		}
	}
	if err := e.k.ecd.IFFT(buf, e.k.params.LogMaxSlots()); err != nil {
		return err
	}
	half := len(buf)
	for i, c := range buf {
		e.setCoeff(i, real(c), scale, p.Coeffs)
		e.setCoeff(i+half, imag(c), scale, p.Coeffs)
	}
	return nil
}

// setCoeff sets coefficient i to round(x*scale) (half away from zero, as
// Lattigo rounds), reduced modulo each prime. Values of 2^63 and more take
// Lattigo's big-integer path.
func (e *encryption) setCoeff(i int, x, scale float64, coeffs [][]uint64) {
	y := math.Abs(x * scale)
	if y >= 0x1p63 {
		ckks.SingleFloat64ToFixedPointCRT(e.ringQ, i, x, scale, coeffs)
		return
	}
	c := uint64(y + 0.5)
	for j, q := range e.moduli {
		r := c
		if r >= q {
			r %= q
		}
		if x < 0 && r != 0 {
			r = q - r
		}
		coeffs[j][i] = r
	}
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
	}
	out := make([][]float64, len(cts))
	err := k.parallel(len(cts), func(*worker) func(int) error {
		var pt *rlwe.Plaintext
		return func(i int) error {
			ct := cts[i]
			if pt == nil || pt.Level() != ct.Level() {
				pt = ckks.NewPlaintext(k.params, ct.Level())
			}
			n := k.params.N()
			if batched {
				n = 1 << ct.LogDimensions.Cols
			}
			out[i] = make([]float64, n)
			k.dec.Decrypt(ct, pt)
			if err := k.ecd.Decode(pt, out[i]); err != nil {
				return fheserve.Errorf(fheserve.EINVALID, "decrypt: ciphertext %d: %v", i, err)
			}
			return nil
		}
	})
	if err != nil {
		return nil, err
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
