package he_test

import (
	"bytes"
	"math"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/he"
	"github.com/fheserve/fheserve/he/client"
	"github.com/fheserve/fheserve/plan"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
)

// Parameter sets used by the tests.
var (
	// spec12 is small and fast: two levels, logQP 103.0 of 103.9 (he.MaxLogQP).
	spec12 = plan.Params{LogN: 12, LogQ: []int{36, 30}, LogP: []int{37}, LogDefaultScale: 30}
	// spec13 has seven levels, logQP 209.0 of 209.7; used for sizes and benchmarks.
	spec13 = plan.Params{LogN: 13, LogQ: []int{35, 24, 24, 24, 24, 24, 24}, LogP: []int{30}, LogDefaultScale: 24}
	// specFuzz keeps fuzz inputs small: two short primes.
	specFuzz = plan.Params{LogN: 12, LogQ: []int{30, 20}, LogP: []int{30}, LogDefaultScale: 20}
)

var paramsCache sync.Map // string -> ckks.Parameters

// MustParams builds the parameters of spec, once per spec.
func MustParams(tb testing.TB, spec plan.Params) ckks.Parameters {
	tb.Helper()
	key := string(mustJSONKey(spec))
	if p, ok := paramsCache.Load(key); ok {
		return p.(ckks.Parameters)
	}
	p, err := he.NewParameters(spec)
	if err != nil {
		tb.Fatalf("%+v: %v", spec, err)
	}
	paramsCache.Store(key, p)
	return p
}

func mustJSONKey(spec plan.Params) []byte {
	var b bytes.Buffer
	b.WriteByte(byte(spec.LogN))
	for _, l := range [][]int{spec.LogQ, {-1}, spec.LogP, {-1, spec.LogDefaultScale}} {
		for _, v := range l {
			b.WriteByte(byte(v))
		}
	}
	return b.Bytes()
}

// MustKeys generates keys for params.
func MustKeys(tb testing.TB, params ckks.Parameters, galEls []uint64, relin bool) (*client.Keys, *he.EvalKeys) {
	tb.Helper()
	k, evk, err := client.GenerateKeys(params, he.TopLevelKeys(params, galEls, relin))
	if err != nil {
		tb.Fatal(err)
	}
	return k, evk
}

// randomVectors returns n vectors of the given length with values in [-1, 1].
func randomVectors(seed uint64, n, length int) [][]float64 {
	rng := rand.New(rand.NewPCG(seed, 7))
	out := make([][]float64, n)
	for i := range out {
		out[i] = make([]float64, length)
		for j := range out[i] {
			out[i][j] = 2*rng.Float64() - 1
		}
	}
	return out
}

// maxDiff returns the largest absolute difference between got and want,
// over the length of want.
func maxDiff(tb testing.TB, got, want []float64) float64 {
	tb.Helper()
	if len(got) < len(want) {
		tb.Fatalf("got %d values, want at least %d", len(got), len(want))
	}
	d := 0.0
	for i := range want {
		d = math.Max(d, math.Abs(got[i]-want[i]))
	}
	return d
}

func mustMarshal(tb testing.TB, f func(*bytes.Buffer) error) []byte {
	tb.Helper()
	var b bytes.Buffer
	if err := f(&b); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

// wantCode fails unless err is an *fheserve.Error with the given code.
func wantCode(tb testing.TB, err error, code string) {
	tb.Helper()
	if err == nil {
		tb.Fatalf("got no error, want %s", code)
	}
	if got := fheserve.ErrorCode(err); got != code {
		tb.Fatalf("got error %q with code %s, want %s", err, got, code)
	}
}

func scaleOf(params ckks.Parameters) rlwe.Scale { return params.DefaultScale() }
