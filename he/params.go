package he

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"

	"github.com/fheserve/fheserve"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/ring"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
)

// ParamSpec is the public, JSON-serializable description of a CKKS
// parameter set: ring degree 2^LogN, the bit sizes of the ciphertext primes
// (LogQ, q_0 first) and of the key-switching primes (LogP), and the default
// scale 2^LogDefaultScale. Like Lattigo's ParametersLiteral it is unchecked
// input; Params checks it and builds the parameters.
type ParamSpec struct {
	LogN            int   `json:"log_n"`
	LogQ            []int `json:"log_q"`
	LogP            []int `json:"log_p"`
	LogDefaultScale int   `json:"log_default_scale"`
}

// Ranges accepted by ParamSpec.Params.
const (
	MinLogN      = 12
	MaxLogN      = 17
	MinPrimeBits = 20
	MaxPrimeBits = 61
	MinLogScale  = 10
	MaxLogScale  = 60
)

// secretDist is the secret distribution: uniform ternary, each coefficient
// -1, 0 or 1 with probability 1/3, the distribution the HomomorphicEncryption.org
// table assumes. Pinned here rather than taken from Lattigo's default so that
// a change of default cannot silently change the security level.
var secretDist = ring.Ternary{P: 2.0 / 3.0}

// errorDist is the error distribution: discrete Gaussian, sigma 3.2, bound 6 sigma.
var errorDist = ring.DiscreteGaussian{Sigma: rlwe.DefaultNoise, Bound: rlwe.DefaultNoiseBound}

// MaxLogQP returns the largest log2(Q*P) that keeps 128-bit classical security
// for a ring of degree 2^logN with a uniform ternary secret, from the
// HomomorphicEncryption.org security standard (Albrecht et al., 2018,
// table 1). ok is false for ring degrees outside the table.
func MaxLogQP(logN int) (bound float64, ok bool) {
	switch logN {
	case 12:
		return 109, true
	case 13:
		return 218, true
	case 14:
		return 438, true
	case 15:
		return 881, true
	case 16:
		return 1747, true
	case 17:
		return 3523, true
	}
	return 0, false
}

// Params checks s and returns the CKKS parameters it describes: standard
// (not conjugate-invariant) ring, uniform ternary secret, Gaussian error of
// sigma 3.2. It refuses with EINVALID malformed specs and with EINSECURE sets
// whose actual modulus Q*P, computed from the generated primes, exceeds the
// 128-bit bound of MaxLogQP.
func (s ParamSpec) Params() (ckks.Parameters, error) {
	if _, ok := MaxLogQP(s.LogN); !ok {
		return ckks.Parameters{}, fheserve.Errorf(fheserve.EINVALID, "parameters: log_n=%d is outside %d..%d", s.LogN, MinLogN, MaxLogN)
	}
	if len(s.LogQ) == 0 {
		return ckks.Parameters{}, fheserve.Errorf(fheserve.EINVALID, "parameters: log_q is empty")
	}
	if len(s.LogP) == 0 {
		return ckks.Parameters{}, fheserve.Errorf(fheserve.EINVALID, "parameters: log_p is empty (key switching needs at least one P prime)")
	}
	// Both lists are bounded so that a hostile spec cannot make prime
	// generation run long; the security bound caps them far lower anyway.
	const maxPrimes = 255
	if len(s.LogQ) > maxPrimes || len(s.LogP) > maxPrimes {
		return ckks.Parameters{}, fheserve.Errorf(fheserve.EINVALID, "parameters: more than %d primes in log_q or log_p", maxPrimes)
	}
	total := 0
	for _, l := range []struct {
		name string
		bits []int
	}{{"log_q", s.LogQ}, {"log_p", s.LogP}} {
		for i, b := range l.bits {
			if b < MinPrimeBits || b > MaxPrimeBits {
				return ckks.Parameters{}, fheserve.Errorf(fheserve.EINVALID, "parameters: %s[%d]=%d is outside %d..%d bits", l.name, i, b, MinPrimeBits, MaxPrimeBits)
			}
			total += b
		}
	}
	if s.LogDefaultScale < MinLogScale || s.LogDefaultScale > MaxLogScale {
		return ckks.Parameters{}, fheserve.Errorf(fheserve.EINVALID, "parameters: log_default_scale=%d is outside %d..%d", s.LogDefaultScale, MinLogScale, MaxLogScale)
	}
	if s.LogDefaultScale >= s.LogQ[0] {
		return ckks.Parameters{}, fheserve.Errorf(fheserve.EINVALID, "parameters: log_default_scale=%d must be below log_q[0]=%d, or level-0 values overflow", s.LogDefaultScale, s.LogQ[0])
	}
	bound, _ := MaxLogQP(s.LogN)
	// Refuse early, before generating primes, when even the nominal sizes
	// are far above the bound; the exact check follows below.
	if float64(total) > bound+float64(len(s.LogQ)+len(s.LogP)) {
		return ckks.Parameters{}, insecure(s.LogN, float64(total), bound)
	}
	params, err := ckks.NewParametersFromLiteral(ckks.ParametersLiteral{
		LogN:            s.LogN,
		LogQ:            s.LogQ,
		LogP:            s.LogP,
		Xs:              secretDist,
		Xe:              errorDist,
		RingType:        ring.Standard,
		LogDefaultScale: s.LogDefaultScale,
	})
	if err != nil {
		return ckks.Parameters{}, fheserve.Errorf(fheserve.EINVALID, "parameters: %v", err)
	}
	if logQP := params.LogQP(); logQP > bound {
		return ckks.Parameters{}, insecure(s.LogN, logQP, bound)
	}
	return params, nil
}

func insecure(logN int, logQP, bound float64) error {
	return fheserve.Errorf(fheserve.EINSECURE, "parameters logN=%d logQP=%.1f exceed the 128-bit security bound %.0f of the HomomorphicEncryption.org table", logN, logQP, bound)
}

// CheckParams checks that params, however they were built, are ones this
// package supports: a standard ring of degree 2^12..2^17, at least one P
// prime, the pinned secret and error distributions, and log2(Q*P) within the
// 128-bit bound. The wire codecs and the sanitizer call it.
func CheckParams(params ckks.Parameters) error {
	bound, ok := MaxLogQP(params.LogN())
	switch {
	case params.N() == 0:
		return fheserve.Errorf(fheserve.EINVALID, "parameters are not initialized")
	case !ok:
		return fheserve.Errorf(fheserve.EINVALID, "parameters: logN=%d is outside %d..%d", params.LogN(), MinLogN, MaxLogN)
	case params.RingType() != ring.Standard:
		return fheserve.Errorf(fheserve.EINVALID, "parameters: only the standard ring is supported")
	case params.PCount() == 0:
		return fheserve.Errorf(fheserve.EINVALID, "parameters: at least one P prime is required")
	case params.Xs() != ring.DistributionParameters(secretDist):
		return fheserve.Errorf(fheserve.EINVALID, "parameters: the secret must be uniform ternary")
	case params.Xe() != ring.DistributionParameters(errorDist):
		return fheserve.Errorf(fheserve.EINVALID, "parameters: the error must be Gaussian with sigma %.1f", rlwe.DefaultNoise)
	case params.LogQP() > bound:
		return insecure(params.LogN(), params.LogQP(), bound)
	}
	for _, q := range append(params.Q(), params.P()...) {
		if q >= 1<<MaxPrimeBits {
			return fheserve.Errorf(fheserve.EINVALID, "parameters: a prime has more than %d bits", MaxPrimeBits)
		}
	}
	return nil
}

// Fingerprint returns the hex SHA-256 of a canonical encoding of everything
// that makes two parameter sets interoperable: ring degree and type, the Q
// and P primes, the default scale, and the secret and error distributions.
// Every wire object carries it, so that a ciphertext or key made for other
// parameters is refused rather than misread.
func Fingerprint(params ckks.Parameters) string {
	sum := fingerprint(params)
	return hex.EncodeToString(sum[:])
}

func fingerprint(params ckks.Parameters) [32]byte {
	var b []byte
	b = append(b, "fheserve/he/params/v1\x00"...)
	b = binary.BigEndian.AppendUint32(b, uint32(params.LogN()))
	b = binary.BigEndian.AppendUint32(b, uint32(params.RingType()))
	b = binary.BigEndian.AppendUint64(b, params.RingQ().NthRoot())
	for _, moduli := range [][]uint64{params.Q(), params.P()} {
		b = binary.BigEndian.AppendUint32(b, uint32(len(moduli)))
		for _, q := range moduli {
			b = binary.BigEndian.AppendUint64(b, q)
		}
	}
	scale, err := encodeScale(params.DefaultScale())
	if err != nil {
		// A default scale outside the wire range still gets a stable,
		// distinct fingerprint.
		b = append(b, 0xff)
	} else {
		b = append(b, scale[:]...)
	}
	for _, d := range []ring.DistributionParameters{params.Xs(), params.Xe()} {
		switch d := d.(type) {
		case ring.Ternary:
			b = append(b, 1)
			b = binary.BigEndian.AppendUint64(b, math.Float64bits(d.P))
			b = binary.BigEndian.AppendUint64(b, uint64(d.H))
		case ring.DiscreteGaussian:
			b = append(b, 2)
			b = binary.BigEndian.AppendUint64(b, math.Float64bits(d.Sigma))
			b = binary.BigEndian.AppendUint64(b, math.Float64bits(d.Bound))
		default:
			b = append(b, 0)
		}
	}
	return sha256.Sum256(b)
}
