package server

import (
	"math/bits"
	"math/rand/v2"
	"testing"

	"github.com/tuneinsight/lattigo/v6/ring"
)

// The 128-bit accumulation gives the same residues as Lattigo's reduced
// multiply-add, for primes of every width the engine uses.
func TestMulAccMatchesLattigo(t *testing.T) {
	for _, logQ := range []int{30, 40, 50, 60} {
		r, err := newTestRing(logQ)
		if err != nil {
			t.Fatal(err)
		}
		sr := r.SubRings[0]
		q := sr.Modulus
		rng := rand.New(rand.NewPCG(uint64(logQ), 1))
		const n, terms = 256, 300
		xs := make([][]uint64, terms)
		ws := make([]uint64, terms)
		for j := range xs {
			xs[j] = make([]uint64, n)
			for i := range xs[j] {
				xs[j][i] = rng.Uint64N(q)
			}
			ws[j] = rng.Uint64N(q)
		}
		want := make([]uint64, n)
		for j := range xs {
			sr.MulScalarMontgomeryThenAdd(xs[j], ring.MForm(ws[j], q, sr.BRedConstant), want)
		}
		hi, lo := make([]uint64, n), make([]uint64, n)
		limit := accLimit(q)
		for j := range xs {
			if j > 0 && j%limit == 0 {
				for i := range lo {
					lo[i], hi[i] = bits.Rem64(hi[i], lo[i], q), 0
				}
			}
			mulAcc(hi, lo, xs[j], ws[j])
		}
		for i := range want {
			if got := bits.Rem64(hi[i], lo[i], q); got != want[i] {
				t.Fatalf("logQ %d: coefficient %d: got %d, want %d", logQ, i, got, want[i])
			}
		}
	}
}

func BenchmarkMulAdd(b *testing.B) {
	r, err := newTestRing(40)
	if err != nil {
		b.Fatal(err)
	}
	sr := r.SubRings[0]
	x := make([]uint64, 256)
	for i := range x {
		x[i] = uint64(i) * 7919
	}
	hi, lo, o := make([]uint64, 256), make([]uint64, 256), make([]uint64, 256)
	b.Run("lattigo-montgomery", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			sr.MulScalarMontgomeryThenAdd(x, 12345, o)
		}
	})
	b.Run("mulacc-128", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			mulAcc(hi, lo, x, 12345)
		}
	})
}

func newTestRing(logQ int) (*ring.Ring, error) {
	g := ring.NewNTTFriendlyPrimesGenerator(uint64(logQ), 1<<13)
	primes, err := g.NextDownstreamPrimes(1)
	if err != nil {
		return nil, err
	}
	return ring.NewRing(1<<12, primes)
}
