package he_test

import (
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/he"
)

func TestMaxLogQP(t *testing.T) {
	want := map[int]float64{12: 109, 13: 218, 14: 438, 15: 881, 16: 1747, 17: 3523}
	for logN := 8; logN <= 20; logN++ {
		got, ok := he.MaxLogQP(logN)
		w, wok := want[logN]
		if ok != wok || got != w {
			t.Errorf("MaxLogQP(%d) = %v, %v; want %v, %v", logN, got, ok, w, wok)
		}
	}
}

func TestParams(t *testing.T) {
	tests := []struct {
		name string
		spec he.ParamSpec
		code string // "" for success
	}{
		{"small", spec12, ""},
		{"seven levels", spec13, ""},
		{"insecure logN 13", he.ParamSpec{LogN: 13, LogQ: []int{60, 60, 60, 40}, LogP: []int{30}, LogDefaultScale: 40}, fheserve.EINSECURE},
		// Nominally 218 bits, but the generated primes make it 218.00001.
		{"insecure by the actual primes", he.ParamSpec{LogN: 13, LogQ: []int{60, 40, 40, 38}, LogP: []int{40}, LogDefaultScale: 30}, fheserve.EINSECURE},
		{"insecure by a few bits", he.ParamSpec{LogN: 12, LogQ: []int{40, 40}, LogP: []int{35}, LogDefaultScale: 30}, fheserve.EINSECURE},
		{"insecure far above", he.ParamSpec{LogN: 12, LogQ: []int{60, 60, 60, 60, 60, 60, 60, 60}, LogP: []int{60}, LogDefaultScale: 40}, fheserve.EINSECURE},
		{"logN 11", he.ParamSpec{LogN: 11, LogQ: []int{30}, LogP: []int{30}, LogDefaultScale: 20}, fheserve.EINVALID},
		{"logN 18", he.ParamSpec{LogN: 18, LogQ: []int{30}, LogP: []int{30}, LogDefaultScale: 20}, fheserve.EINVALID},
		{"no Q", he.ParamSpec{LogN: 12, LogP: []int{30}, LogDefaultScale: 20}, fheserve.EINVALID},
		{"no P", he.ParamSpec{LogN: 12, LogQ: []int{30}, LogDefaultScale: 20}, fheserve.EINVALID},
		{"prime too small", he.ParamSpec{LogN: 12, LogQ: []int{30, 19}, LogP: []int{30}, LogDefaultScale: 20}, fheserve.EINVALID},
		{"prime too large", he.ParamSpec{LogN: 12, LogQ: []int{62}, LogP: []int{30}, LogDefaultScale: 20}, fheserve.EINVALID},
		{"P prime too large", he.ParamSpec{LogN: 12, LogQ: []int{30}, LogP: []int{62}, LogDefaultScale: 20}, fheserve.EINVALID},
		{"scale too small", he.ParamSpec{LogN: 12, LogQ: []int{30}, LogP: []int{30}, LogDefaultScale: 5}, fheserve.EINVALID},
		{"scale not below q0", he.ParamSpec{LogN: 12, LogQ: []int{30, 30}, LogP: []int{30}, LogDefaultScale: 30}, fheserve.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			params, err := tt.spec.Params()
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
		spec he.ParamSpec
		want string
	}{
		"spec12": {spec12, "d92d70acfaf85747208227f987646d4666e46a5451337d63d73917079ee29b15"},
		"spec13": {spec13, "745a43b7bdd81b9408264e5f0ff7c92245ef2d27ce92aee1e3c688a4db284e6c"},
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
