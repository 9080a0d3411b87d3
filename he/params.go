package he

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/plan"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/ring"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
)

// Parameters is a checked CKKS parameter set. Outside this package tree
// it is obtained only from NewParameters, which checks the plan's
// unchecked literal (plan.Params) the way Lattigo's NewParametersFromLiteral
// checks a ParametersLiteral, and adds the security check.
type Parameters = ckks.Parameters

// Ranges accepted by NewParameters.
const (
	MinLogN      = 12
	MaxLogN      = 17
	MinPrimeBits = 20
	MaxPrimeBits = 61
	MinLogScale  = 10
	MaxLogScale  = 60
)

// EncodingPrecision is the precision, in bits, every encoder is made
// with (ckks.NewEncoder(params, EncodingPrecision)): float64 FFTs. Left
// to itself Lattigo encodes with big floats of log2(scale) bits whenever
// the default scale exceeds 2^53, several times slower, for a rounding
// error of 2^-53 relative to the values that lies far below the
// encryption noise at any scale up to MaxLogScale.
const EncodingPrecision = 53

// secretDist is the secret distribution: uniform ternary, each coefficient
// -1, 0 or 1 with probability 1/3, the distribution the HomomorphicEncryption.org
// tables assume. Pinned here rather than taken from Lattigo's default so that
// a change of default cannot silently change the security level.
var secretDist = ring.Ternary{P: 2.0 / 3.0}

// errorDist is the error distribution: discrete Gaussian, sigma 3.2, bound 6
// sigma. The 2024 table assumes sigma 3.19; a wider error only adds security.
var errorDist = ring.DiscreteGaussian{Sigma: rlwe.DefaultNoise, Bound: rlwe.DefaultNoiseBound}

// StandardLogQP returns the largest log2(Q*P) that the 2024
// HomomorphicEncryption.org guidelines allow for 128-bit classical security
// with a uniform ternary secret and a ring of degree 2^logN: Bossuat et al.,
// "Security Guidelines for Implementing Homomorphic Encryption", ePrint
// 2024/463, table 5.2 (the values for 2^16 and 2^17 as in the paper's
// companion code, github.com/gong-cr/FHE-Security-Guidelines,
// RNS-CKKS-examples/lattigo/parameters/tables.go, which also holds the
// lattice-estimator run behind the table). ok is false for ring degrees
// outside the table. The bound is for reporting; the code enforces MaxLogQP.
func StandardLogQP(logN int) (bound float64, ok bool) {
	switch logN {
	case 12:
		return 106, true
	case 13:
		return 214, true
	case 14:
		return 430, true
	case 15:
		return 868, true
	case 16:
		return 1747, true
	case 17:
		return 3523, true
	}
	return 0, false
}

// SecurityMargin is the fraction of StandardLogQP that parameter sets leave
// unused. The standard's bounds are where the lattice estimator's best
// attack reaches 2^128 operations; the estimator moves by a bit of log2(QP)
// between its versions (its run behind the 2024 table gives 107 and 431 at
// 2^12 and 2^14, where the table says 106 and 430), and security falls
// about in proportion to log2(QP) at a fixed ring degree. Two percent of
// log2(QP) is worth about 3 bits of estimated security (interpolating the
// table's 128- and 192-bit columns) at every ring degree, where a fixed
// number of bits would be worth less and less as the ring grows. The
// difference between nominal and generated prime sizes needs no margin:
// every check uses the actual primes.
const SecurityMargin = 0.02

// MaxLogQP returns the largest log2(Q*P) that parameter sets may have for a
// ring of degree 2^logN: StandardLogQP less SecurityMargin. NewParameters
// and CheckParams refuse parameters above it, and the compiler chooses
// parameters below it. ok is false for ring degrees outside the table.
func MaxLogQP(logN int) (bound float64, ok bool) {
	std, ok := StandardLogQP(logN)
	return std * (1 - SecurityMargin), ok
}

// NewParameters checks the plan's parameter literal s and returns the CKKS
// parameters it describes: standard (not conjugate-invariant) ring, uniform
// ternary secret, Gaussian error of sigma 3.2. It refuses with EINVALID
// malformed literals and with EINSECURE sets whose actual modulus Q*P,
// computed from the generated primes, exceeds MaxLogQP, the 128-bit bound
// of the 2024 standard less SecurityMargin.
func NewParameters(s plan.Params) (Parameters, error) {
	if _, ok := MaxLogQP(s.LogN); !ok {
		return Parameters{}, fheserve.Errorf(fheserve.EINVALID, "parameters: log_n=%d is outside %d..%d", s.LogN, MinLogN, MaxLogN)
	}
	if len(s.LogQ) == 0 {
		return Parameters{}, fheserve.Errorf(fheserve.EINVALID, "parameters: log_q is empty")
	}
	if len(s.LogP) == 0 {
		return Parameters{}, fheserve.Errorf(fheserve.EINVALID, "parameters: log_p is empty (key switching needs at least one P prime)")
	}
	// Both lists are bounded so that a hostile literal cannot make prime
	// generation run long; the security bound caps them far lower anyway.
	const maxPrimes = 255
	if len(s.LogQ) > maxPrimes || len(s.LogP) > maxPrimes {
		return Parameters{}, fheserve.Errorf(fheserve.EINVALID, "parameters: more than %d primes in log_q or log_p", maxPrimes)
	}
	total := 0
	for _, l := range []struct {
		name string
		bits []int
	}{{"log_q", s.LogQ}, {"log_p", s.LogP}} {
		for i, b := range l.bits {
			if b < MinPrimeBits || b > MaxPrimeBits {
				return Parameters{}, fheserve.Errorf(fheserve.EINVALID, "parameters: %s[%d]=%d is outside %d..%d bits", l.name, i, b, MinPrimeBits, MaxPrimeBits)
			}
			total += b
		}
	}
	if s.LogDefaultScale < MinLogScale || s.LogDefaultScale > MaxLogScale {
		return Parameters{}, fheserve.Errorf(fheserve.EINVALID, "parameters: log_default_scale=%d is outside %d..%d", s.LogDefaultScale, MinLogScale, MaxLogScale)
	}
	if s.LogDefaultScale >= s.LogQ[0] {
		return Parameters{}, fheserve.Errorf(fheserve.EINVALID, "parameters: log_default_scale=%d must be below log_q[0]=%d, or level-0 values overflow", s.LogDefaultScale, s.LogQ[0])
	}
	bound, _ := MaxLogQP(s.LogN)
	// Refuse early, before generating primes, when even the nominal sizes
	// are far above the bound; the exact check follows below.
	if float64(total) > bound+float64(len(s.LogQ)+len(s.LogP)) {
		return Parameters{}, insecure(s.LogN, float64(total), bound)
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
		return Parameters{}, fheserve.Errorf(fheserve.EINVALID, "parameters: %v", err)
	}
	if logQP := params.LogQP(); logQP > bound {
		return Parameters{}, insecure(s.LogN, logQP, bound)
	}
	return params, nil
}

func insecure(logN int, logQP, bound float64) error {
	std, _ := StandardLogQP(logN)
	return fheserve.Errorf(fheserve.EINSECURE, "parameters logN=%d logQP=%.2f exceed %.2f, the 128-bit bound %.0f of the 2024 HomomorphicEncryption.org guidelines less a %.0f%% margin", logN, logQP, bound, std, 100*SecurityMargin)
}

// CheckParams checks that params, however they were built, are ones this
// package supports: a standard ring of degree 2^12..2^17, at least one P
// prime, the pinned secret and error distributions, and log2(Q*P) within
// MaxLogQP. The wire codecs and the sanitizer call it.
func CheckParams(params Parameters) error {
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
func Fingerprint(params Parameters) string {
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
