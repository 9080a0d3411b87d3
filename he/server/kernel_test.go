package server

import (
	"math/bits"
	"math/rand/v2"
	"testing"
	"unsafe"

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

// The vector kernels' sums, reduced, equal the sums of the products
// modulo q computed one by one in 128 bits, for primes below 2^52 (weights
// as residues) and above (weights as signed integers below 2^52), with
// random and largest operands and more terms than one kernel call sums.
func TestVecMACMatchesExact(t *testing.T) {
	if !hasMAC {
		t.Skip("no AVX-512 IFMA on this CPU")
	}
	const n = 64
	for _, tc := range []struct {
		name    string
		logQ    int
		terms   int
		largest bool
	}{
		{"30 bits", 30, 300, false},
		{"51 bits", 51, 300, false},
		{"51 bits, largest, two runs", 51, macLimit52 + 1, true},
		{"60 bits", 60, 300, false},
		{"60 bits, largest, two runs", 60, 2*macLimit64 + 3, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := newTestRing(tc.logQ)
			if err != nil {
				t.Fatal(err)
			}
			q := r.SubRings[0].Modulus
			p := newMacPrime(q)
			rng := rand.New(rand.NewPCG(uint64(tc.logQ), uint64(tc.terms)))
			xs := make([]unsafe.Pointer, tc.terms)
			ints := make([]int64, tc.terms)
			vals := make([][]uint64, tc.terms)
			for j := range vals {
				vals[j] = make([]uint64, n)
				for i := range vals[j] {
					vals[j][i] = rng.Uint64N(q)
					if tc.largest {
						vals[j][i] = q - 1
					}
				}
				xs[j] = unsafe.Pointer(&vals[j][0])
				ints[j] = rng.Int64N(1<<53) - 1<<52
				if tc.largest {
					ints[j] = 1<<52 - 1
					if p.q < 1<<52 {
						ints[j] = int64(q - 1)
					}
				}
			}
			// The residue of each weight modulo q, as mulAcc takes it.
			res := make([]uint64, tc.terms)
			for j, v := range ints {
				res[j] = uint64(v % int64(q))
				if v < 0 {
					res[j] = uint64(v%int64(q) + int64(q))
				}
			}
			want := make([]uint64, n)
			for j := range vals {
				for i, v := range vals[j] {
					h, l := bits.Mul64(v, res[j])
					want[i] = (want[i] + bits.Rem64(h, l, q)) % q
				}
			}
			got := make([]uint64, n)
			lo, mid, top := make([]uint64, n), make([]uint64, n), make([]uint64, n)
			if q < 1<<52 {
				cols := make([]int, tc.terms)
				for j := range cols {
					cols[j] = j
				}
				macInto(got, cols, xs, 0, res, lo, mid, nil, p, false)
			} else {
				for _, neg := range []bool{false, true} {
					var cols []int
					var sw []uint64
					for j, v := range ints {
						if (v < 0) == neg && v != 0 {
							cols, sw = append(cols, j), append(sw, uint64(max(v, -v)))
						}
					}
					macInto(got, cols, xs, 0, sw, lo, mid, top, p, neg)
				}
			}
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("coefficient %d: got %d, want %d", i, got[i], want[i])
				}
			}
		})
	}
}
