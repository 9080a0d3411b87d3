package unitvec

import (
	"math"
	"math/rand/v2"
	"testing"
)

// Each vector has unit norm and the given dimension, the draws follow the
// seed, and two draws from one source differ.
func TestRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	a, b := Random(rng, 33), Random(rng, 33)
	for _, v := range [][]float64{a, b} {
		var s float64
		for _, x := range v {
			s += x * x
		}
		if len(v) != 33 || math.Abs(s-1) > 1e-12 {
			t.Fatalf("dimension %d, squared norm %.15g", len(v), s)
		}
	}
	if a[0] == b[0] {
		t.Errorf("two draws start alike: %v", a[0])
	}
	if c := Random(rand.New(rand.NewPCG(1, 2)), 33); c[5] != a[5] {
		t.Errorf("same seed, other vector: %v, %v", c[5], a[5])
	}
}

// AtCosine's vectors have unit norm and the asked cosine with t, and
// differ from one draw to the next.
func TestAtCosine(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	u := Random(rng, 16)
	for _, s := range []float64{-1, -0.3, 0, 0.5, 0.999, 1} {
		a, b := AtCosine(rng, u, s), AtCosine(rng, u, s)
		var norm, cos float64
		for i := range a {
			norm += a[i] * a[i]
			cos += a[i] * u[i]
		}
		if math.Abs(norm-1) > 1e-12 || math.Abs(cos-s) > 1e-12 {
			t.Errorf("s=%g: squared norm %.15g, cosine %.15g", s, norm, cos)
		}
		if math.Abs(s) < 1 && a[0] == b[0] {
			t.Errorf("s=%g: two draws start alike", s)
		}
	}
}
