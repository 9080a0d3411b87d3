package he

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"

	"github.com/tuneinsight/lattigo/v6/core/rlwe"
)

func TestPackRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, b := range []int{1, 7, 8, 20, 31, 33, 45, 60, 61, 63} {
		for _, n := range []int{0, 1, 3, 64, 4096} {
			vals := make([]uint64, n)
			for i := range vals {
				vals[i] = rng.Uint64() & (1<<b - 1)
			}
			buf := make([]byte, packedLen(n, b))
			pack(buf, vals, b)
			got := make([]uint64, n)
			if !unpack(got, buf, b, 1<<b) {
				t.Fatalf("b=%d n=%d: unpack reported a value out of range", b, n)
			}
			for i := range vals {
				if got[i] != vals[i] {
					t.Fatalf("b=%d n=%d: value %d is %d, want %d", b, n, i, got[i], vals[i])
				}
			}
		}
	}
}

func TestUnpackChecksBound(t *testing.T) {
	vals := []uint64{1, 2, 1000, 3}
	buf := make([]byte, packedLen(len(vals), 10))
	pack(buf, vals, 10)
	if unpack(make([]uint64, 4), buf, 10, 1000) {
		t.Fatal("unpack accepted 1000 with bound 1000")
	}
	if !unpack(make([]uint64, 4), buf, 10, 1001) {
		t.Fatal("unpack refused values below the bound")
	}
}

func TestScaleRoundTrip(t *testing.T) {
	third := new(big.Float).SetPrec(128).Quo(big.NewFloat(math.Exp2(40)), big.NewFloat(3))
	for _, s := range []rlwe.Scale{
		rlwe.NewScale(1),
		rlwe.NewScale(math.Exp2(40)),
		rlwe.NewScale(third),
		rlwe.NewScale(math.Exp2(40) * 1099511627689 / 1099511627776),
		rlwe.NewScale(new(big.Float).SetMantExp(big.NewFloat(1.5), 1000)),
	} {
		b, err := encodeScale(s)
		if err != nil {
			t.Fatalf("encode %v: %v", s.Float64(), err)
		}
		got, ok := decodeScale(b[:])
		if !ok {
			t.Fatalf("decode %v failed", s.Float64())
		}
		if got.Value.Cmp(&s.Value) != 0 {
			t.Fatalf("scale %s decoded as %s", s.Value.Text('g', 40), got.Value.Text('g', 40))
		}
	}
	for _, s := range []rlwe.Scale{
		rlwe.NewScale(0.5),
		{Value: *big.NewFloat(-4)},
		rlwe.NewScale(0),
		rlwe.NewScale(new(big.Float).SetMantExp(big.NewFloat(1), 1025)),
		rlwe.NewScaleModT(4, 17),
	} {
		if _, err := encodeScale(s); err == nil {
			t.Errorf("encodeScale(%v) succeeded", s.Float64())
		}
	}
}

func TestModulusSwitch(t *testing.T) {
	const q = 1152921504606584833 // a 60-bit NTT prime
	rng := rand.New(rand.NewPCG(3, 4))
	for _, b := range []int{1, 8, 31, 45, 60} {
		step := float64(q) / math.Exp2(float64(b))
		for range 10000 {
			c := rng.Uint64N(q)
			d := switchDown(c, q, b)
			if d >= 1<<b {
				t.Fatalf("b=%d: switchDown(%d)=%d is not below 2^b", b, c, d)
			}
			u := switchUp(d, q, b)
			if u >= q {
				t.Fatalf("b=%d: switchUp(%d)=%d is not below q", b, d, u)
			}
			diff := float64(int64(u - c)) // centered difference mod 2^64, small
			if u < c && c-u > q/2 {
				diff = float64(q - c + u)
			} else if u > c && u-c > q/2 {
				diff = -float64(q - u + c)
			}
			if math.Abs(diff) > step/2+1 {
				t.Fatalf("b=%d: c=%d came back as %d, off by %g > %g", b, c, u, diff, step/2+1)
			}
		}
	}
}
