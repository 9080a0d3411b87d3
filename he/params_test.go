package he_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/he"
	"github.com/fheserve/fheserve/plan"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/ring"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
)

func TestStandardLogQP(t *testing.T) {
	// ePrint 2024/463, table 5.2: 128-bit classical, uniform ternary secret.
	want := map[int]float64{12: 106, 13: 214, 14: 430, 15: 868, 16: 1747, 17: 3523}
	for logN := 8; logN <= 20; logN++ {
		got, ok := he.StandardLogQP(logN)
		w, wok := want[logN]
		if ok != wok || got != w {
			t.Errorf("StandardLogQP(%d) = %v, %v; want %v, %v", logN, got, ok, w, wok)
		}
		max, mok := he.MaxLogQP(logN)
		if mok != wok || max != w*(1-he.SecurityMargin) {
			t.Errorf("MaxLogQP(%d) = %v, %v; want %v less %v%%", logN, max, mok, w, 100*he.SecurityMargin)
		}
	}
}

// specWithLogQP returns a spec for a ring of degree 2^logN whose primes add
// up to total bits nominally: one 60-bit P prime and Q primes of at most 60.
func specWithLogQP(logN, total int) plan.Params {
	q := total - 60
	k := (q + 59) / 60
	logQ := make([]int, k)
	for i := range logQ {
		logQ[i] = q / k
		if i < q%k {
			logQ[i]++
		}
	}
	return plan.Params{LogN: logN, LogQ: logQ, LogP: []int{60}, LogDefaultScale: 30}
}

// Every ring degree's enforced bound: a set just below it is accepted, one
// just above it (still below the standard's bound) is refused.
func TestMaxLogQPEnforced(t *testing.T) {
	for logN := he.MinLogN; logN <= he.MaxLogN; logN++ {
		bound, _ := he.MaxLogQP(logN)
		std, _ := he.StandardLogQP(logN)
		below, above := specWithLogQP(logN, int(math.Floor(bound))), specWithLogQP(logN, int(math.Ceil(bound)))
		t.Run(fmt.Sprintf("logN %d below %.2f", logN, bound), func(t *testing.T) {
			params, err := he.NewParameters(below)
			if err != nil {
				t.Fatal(err)
			}
			if params.LogQP() > bound {
				t.Fatalf("logQP %.4f above %.2f accepted", params.LogQP(), bound)
			}
			if err := he.CheckParams(params); err != nil {
				t.Fatal(err)
			}
		})
		t.Run(fmt.Sprintf("logN %d above %.2f", logN, bound), func(t *testing.T) {
			if float64(sum(above.LogQ)+sum(above.LogP)) >= std {
				t.Fatalf("test spec %v is not below the standard's %v", above, std)
			}
			_, err := he.NewParameters(above)
			wantCode(t, err, fheserve.EINSECURE)
		})
	}
}

// CheckParams refuses parameters built without NewParameters above the bound.
func TestCheckParamsInsecure(t *testing.T) {
	spec := specWithLogQP(13, 212)
	params, err := ckks.NewParametersFromLiteral(ckks.ParametersLiteral{
		LogN: spec.LogN, LogQ: spec.LogQ, LogP: spec.LogP, LogDefaultScale: spec.LogDefaultScale,
		Xs: ring.Ternary{P: 2.0 / 3.0}, Xe: ring.DiscreteGaussian{Sigma: rlwe.DefaultNoise, Bound: rlwe.DefaultNoiseBound},
	})
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, he.CheckParams(params), fheserve.EINSECURE)
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}

func TestParams(t *testing.T) {
	tests := []struct {
		name string
		spec plan.Params
		code string // "" for success
	}{
		{"small", spec12, ""},
		{"seven levels", spec13, ""},
		{"insecure logN 13", plan.Params{LogN: 13, LogQ: []int{60, 60, 60, 40}, LogP: []int{30}, LogDefaultScale: 40}, fheserve.EINSECURE},
		// Nominally 218 bits: within the 2018 table's bound, above the 2024 one.
		{"insecure by the 2024 table", plan.Params{LogN: 13, LogQ: []int{60, 40, 40, 38}, LogP: []int{40}, LogDefaultScale: 30}, fheserve.EINSECURE},
		// Nominally 213 bits: within the 2024 table's 214, not within its margin.
		{"insecure by the margin", plan.Params{LogN: 13, LogQ: []int{60, 40, 40, 33}, LogP: []int{40}, LogDefaultScale: 30}, fheserve.EINSECURE},
		{"insecure by a few bits", plan.Params{LogN: 12, LogQ: []int{40, 36}, LogP: []int{35}, LogDefaultScale: 30}, fheserve.EINSECURE},
		{"insecure far above", plan.Params{LogN: 12, LogQ: []int{60, 60, 60, 60, 60, 60, 60, 60}, LogP: []int{60}, LogDefaultScale: 40}, fheserve.EINSECURE},
		{"logN 11", plan.Params{LogN: 11, LogQ: []int{30}, LogP: []int{30}, LogDefaultScale: 20}, fheserve.EINVALID},
		{"logN 18", plan.Params{LogN: 18, LogQ: []int{30}, LogP: []int{30}, LogDefaultScale: 20}, fheserve.EINVALID},
		{"no Q", plan.Params{LogN: 12, LogP: []int{30}, LogDefaultScale: 20}, fheserve.EINVALID},
		{"no P", plan.Params{LogN: 12, LogQ: []int{30}, LogDefaultScale: 20}, fheserve.EINVALID},
		{"prime too small", plan.Params{LogN: 12, LogQ: []int{30, 19}, LogP: []int{30}, LogDefaultScale: 20}, fheserve.EINVALID},
		{"prime too large", plan.Params{LogN: 12, LogQ: []int{62}, LogP: []int{30}, LogDefaultScale: 20}, fheserve.EINVALID},
		{"P prime too large", plan.Params{LogN: 12, LogQ: []int{30}, LogP: []int{62}, LogDefaultScale: 20}, fheserve.EINVALID},
		{"scale too small", plan.Params{LogN: 12, LogQ: []int{30}, LogP: []int{30}, LogDefaultScale: 5}, fheserve.EINVALID},
		{"scale not below q0", plan.Params{LogN: 12, LogQ: []int{30, 30}, LogP: []int{30}, LogDefaultScale: 30}, fheserve.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			params, err := he.NewParameters(tt.spec)
			if tt.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				if err := he.CheckParams(params); err != nil {
					t.Fatal(err)
				}
				bound, _ := he.MaxLogQP(tt.spec.LogN)
				if params.LogQP() > bound {
					t.Fatalf("logQP %.2f above %v accepted", params.LogQP(), bound)
				}
				return
			}
			wantCode(t, err, tt.code)
		})
	}
}

func TestParamsDistributions(t *testing.T) {
	p := MustParams(t, spec12)
	if p.RingType().String() != "Standard" {
		t.Errorf("ring type %v", p.RingType())
	}
	if h, n := p.XsHammingWeight(), p.N(); h != (2*n+2)/3 {
		t.Errorf("expected Hamming weight %d, want ceil(2N/3)=%d", h, (2*n+2)/3)
	}
}

// The fingerprint is part of every stored key and ciphertext: it must not
// change across runs or releases. If this test fails after a change to
// Fingerprint, the wire format version must change too.
func TestFingerprintGolden(t *testing.T) {
	golden := map[string]struct {
		spec plan.Params
		want string
	}{
		"spec12": {spec12, "d92d70acfaf85747208227f987646d4666e46a5451337d63d73917079ee29b15"},
		"spec13": {spec13, "6ee3340501fb54de23f9ca9f35e26376e16e5107ad6ee272de758707ac494636"},
	}
	for name, g := range golden {
		got := he.Fingerprint(MustParams(t, g.spec))
		if got != g.want {
			t.Errorf("%s: fingerprint %s, want %s", name, got, g.want)
		}
	}
	if he.Fingerprint(MustParams(t, spec12)) == he.Fingerprint(MustParams(t, specFuzz)) {
		t.Error("different parameters share a fingerprint")
	}
}
