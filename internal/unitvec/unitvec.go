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
