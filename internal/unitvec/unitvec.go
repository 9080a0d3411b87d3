// Package unitvec draws random unit vectors: the gallery's synthetic
// calibration probes, and the templates and probes of its tests.
package unitvec

import (
	"math"
	"math/rand/v2"
)

// Random returns a vector of d standard-normal draws from rng scaled to
// unit Euclidean norm: uniform on the unit sphere.
func Random(rng *rand.Rand, d int) []float64 {
	v := make([]float64, d)
	var s float64
	for i := range v {
		v[i] = rng.NormFloat64()
		s += v[i] * v[i]
	}
	for i := range v {
		v[i] /= math.Sqrt(s)
	}
	return v
}

// AtCosine returns a random unit vector whose cosine with the unit
// vector t is s (in [-1, 1]): s·t plus √(1-s²) times a random unit
// direction orthogonal to t.
func AtCosine(rng *rand.Rand, t []float64, s float64) []float64 {
	u := Random(rng, len(t))
	var dot float64
	for i := range u {
		dot += u[i] * t[i]
	}
	var n float64
	for i := range u {
		u[i] -= dot * t[i]
		n += u[i] * u[i]
	}
	x := make([]float64, len(t))
	for i := range x {
		x[i] = s*t[i] + math.Sqrt(1-s*s)*u[i]/math.Sqrt(n)
	}
	return x
}
