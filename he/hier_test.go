package he_test

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"math/bits"
	"slices"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/he"
	"github.com/fheserve/fheserve/he/client"
	"github.com/fheserve/fheserve/plan"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
)

// specDerive has room for a 61-bit master prime (logQP 221 of 421.4);
// specDeriveBase2, the bundled cnn's, for a 50-bit one, smaller than its
// 60- and 61-bit primes, so that its masters have a base-two
// decomposition; specDeriveTight (logQP 191.0 of 209.7) leaves 18 bits,
// too few.
var (
	specDerive      = plan.Params{LogN: 14, LogQ: []int{60, 50, 50}, LogP: []int{61}, LogDefaultScale: 50}
	specDeriveBase2 = plan.Params{LogN: 14, LogQ: []int{60, 50, 50, 50, 50, 50}, LogP: []int{61}, LogDefaultScale: 50}
	specDeriveTight = plan.Params{LogN: 13, LogQ: []int{40, 35, 35, 40}, LogP: []int{41}, LogDefaultScale: 35}
)

// derivedSpec is a key set of rotations with several binary digits
// (8176 is -16: nine digits), at two levels.
func derivedSpec(params ckks.Parameters) he.KeySpec {
	rots := []int{1, 3, 7, 16, 5000, -16}
	s := he.KeySpec{Derived: true, Relin: true, RelinLevel: 1}
	for i, r := range rots {
		s.Galois = append(s.Galois, params.GaloisElement(r))
		s.GaloisLevels = append(s.GaloisLevels, []int{2, 1}[i%2])
	}
	return s
}

// TestDerivedKeysRotate: master keys made on the client, encoded,
// decoded by the server (which derives the Galois keys from them without
// a secret) rotate ciphertexts like keys generated directly: each
// rotation decrypts to the plaintext rotation within noise, at each
// key's level.
func TestDerivedKeysRotate(t *testing.T) {
	for _, ps := range []plan.Params{specDerive, specDeriveBase2} {
		t.Run(fmt.Sprintf("logQ=%v", ps.LogQ), func(t *testing.T) { testDerivedKeysRotate(t, ps) })
	}
}

func testDerivedKeysRotate(t *testing.T, ps plan.Params) {
	params := MustParams(t, ps)
	mp, err := he.MasterParams(params)
	if err != nil {
		t.Fatal(err)
	}
	if w := he.MasterDecomposition(mp); (w > 0) != (ps.LogQ[1] == specDeriveBase2.LogQ[1] && len(ps.LogQ) == len(specDeriveBase2.LogQ)) {
		t.Fatalf("master decomposition %d bits with a %d-bit master prime", w, bits.Len64(mp.P()[0]))
	}
	spec := derivedSpec(params)
	keys, evk, err := client.GenerateKeys(params, spec)
	if err != nil {
		t.Fatal(err)
	}
	if len(evk.Galois) != 0 || len(evk.Masters) == 0 {
		t.Fatalf("client made %d Galois and %d master keys, want masters only", len(evk.Galois), len(evk.Masters))
	}
	data := mustMarshal(t, func(b *bytes.Buffer) error { return he.MarshalEvalKeys(b, params, evk) })
	if want := he.EvalKeysSize(params, spec); len(data) != want {
		t.Fatalf("encoded %d bytes, EvalKeysSize says %d", len(data), want)
	}
	got, err := he.UnmarshalEvalKeys(bytes.NewReader(data), params, he.KeyLimits{Keys: &spec})
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Spec().Covers(spec); err != nil {
		t.Fatal(err)
	}
	if again := mustMarshal(t, func(b *bytes.Buffer) error { return he.MarshalEvalKeys(b, params, got) }); !bytes.Equal(again, data) {
		t.Fatal("re-encoding differs")
	}
	slots := params.MaxSlots()
	values := randomVectors(3, 1, slots)[0]
	eval := ckks.NewEvaluator(params, got.EvaluationKeySet())
	d, err := he.PlanDerivation(params, spec)
	if err != nil {
		t.Fatal(err)
	}
	for i, g := range spec.Galois {
		level := spec.GaloisLevels[i]
		ct, err := keys.Encrypt([][]float64{values}, level, scaleOf(params))
		if err != nil {
			t.Fatal(err)
		}
		fresh, err := keys.Decrypt(ct)
		if err != nil {
			t.Fatal(err)
		}
		r := rotationOf(params, g)
		out, err := eval.RotateNew(ct[0], r)
		if err != nil {
			t.Fatal(err)
		}
		dec, err := keys.Decrypt([]*rlwe.Ciphertext{out})
		if err != nil {
			t.Fatal(err)
		}
		want := append(slices.Clone(values[r:]), values[:r]...)
		got, freshErr := maxDiff(t, dec[0], want), maxDiff(t, fresh[0], values)
		// The error's standard deviation (beyond the encryption's) is
		// within the model's, its factor included; its largest slot
		// within 20 of them (a slot's error is a sum of products of two
		// nearly Gaussian values, heavier-tailed than a Gaussian: up to 12
		// measured).
		model := he.DerivedKeyErrorStd(params, level, d.Steps(g))
		var rot, enc float64
		for j := range want {
			rot += (dec[0][j] - want[j]) * (dec[0][j] - want[j])
			enc += (fresh[0][j] - values[j]) * (fresh[0][j] - values[j])
		}
		std := math.Sqrt(max(rot-enc, 0) / float64(len(want)))
		t.Logf("rotation %d: error std %.3g, %.2f times the model's %.3g before its factor", r, std, std/(model/he.DerivedErrorFactor), model/he.DerivedErrorFactor)
		if std > model {
			t.Errorf("rotation %d: error std %.3g with derived keys, above the model's %.3g", r, std, model)
		}
		bound := freshErr + 20*model
		t.Logf("rotation %d at level %d, %d steps: error %.2g (fresh %.2g, bound %.2g)", r, level, d.Steps(g), got, freshErr, bound)
		if got > bound {
			t.Errorf("rotation %d: error %.3g with derived keys, above %.3g", r, got, bound)
		}
	}
}

// rotationOf returns r with params.GaloisElement(r) == g.
func rotationOf(params ckks.Parameters, g uint64) int {
	for r := range params.MaxSlots() {
		if params.GaloisElement(r) == g {
			return r
		}
	}
	panic("not a rotation")
}

func TestPlanDerivation(t *testing.T) {
	params := MustParams(t, specDerive)
	spec := derivedSpec(params)
	d, err := he.PlanDerivation(params, spec)
	if err != nil {
		t.Fatal(err)
	}
	// Base 2 would need a master per bit 0..12 (5000 = 4096+512+256+128+8,
	// 8176 = 4096+...+16); a larger base needs fewer.
	if n := len(d.Master.Galois); n > 13 || n < 13/4 {
		t.Errorf("%d masters, want 4 to 13", n)
	}
	for _, g := range spec.Galois {
		if d.Steps(g) == 0 {
			t.Errorf("galois element %d is not derived", g)
		}
	}
	for i, l := range d.Master.GaloisLevels {
		if l < params.PCount()+1 || l > params.PCount()+2 {
			t.Errorf("master %d at level %d of the master parameters, want %d or %d", i, l, params.PCount()+1, params.PCount()+2)
		}
	}
	t.Logf("%d masters, %d key switches", len(d.Master.Galois), d.KeySwitches(params))

	conj := spec
	conj.Galois = append(slices.Clone(spec.Galois), params.GaloisElementOrderTwoOrthogonalSubgroup())
	conj.GaloisLevels = append(slices.Clone(spec.GaloisLevels), 0)
	_, err = he.PlanDerivation(params, conj)
	wantCode(t, err, fheserve.EINVALID)

	_, err = he.PlanDerivation(MustParams(t, specDeriveTight), derivedSpec(MustParams(t, specDeriveTight)))
	wantCode(t, err, fheserve.EINVALID)
}

// TestMasterParamsSecure: the master keys' modulus Q*P*P' is within the
// 128-bit bound less the margin, with the master prime as large as fits.
func TestMasterParamsSecure(t *testing.T) {
	for _, spec := range []plan.Params{specDerive, spec12, {LogN: 14, LogQ: []int{60, 50, 50, 50, 50, 50}, LogP: []int{61}, LogDefaultScale: 50}} {
		params := MustParams(t, spec)
		mp, err := he.MasterParams(params)
		if spec.LogN == 12 {
			wantCode(t, err, fheserve.EINVALID) // spec12 leaves under 1 bit
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := he.CheckParams(mp); err != nil {
			t.Fatal(err)
		}
		bound, _ := he.MaxLogQP(spec.LogN)
		pBits := math.Log2(float64(mp.P()[0]))
		t.Logf("logN %d: logQP %.1f, master prime %.1f bits, logQPP' %.1f of %.1f", spec.LogN, params.LogQP(), pBits, mp.LogQP(), bound)
		if mp.LogQP() > bound || (pBits < he.MaxPrimeBits-1 && mp.LogQP() < bound-2) {
			t.Errorf("master logQP %.2f, bound %.2f, prime of %.1f bits", mp.LogQP(), bound, pBits)
		}
	}
}

// TestDerivedKeysAtRest: derived Galois keys written by
// MarshalDerivedKeys read back equal; a damaged byte (the checksum), keys
// of another plan and trailing bytes are refused as EINVALID.
func TestDerivedKeysAtRest(t *testing.T) {
	params, spec, gks, stored := derivedAtRest(t)
	got, err := he.UnmarshalDerivedKeys(bytes.NewReader(stored), params, spec)
	if err != nil {
		t.Fatal(err)
	}
	for i := range gks {
		if got[i].GaloisElement != gks[i].GaloisElement || !got[i].GadgetCiphertext.Equal(&gks[i].GadgetCiphertext) {
			t.Fatalf("key %d differs after the round trip", i)
		}
	}
	damaged := bytes.Clone(stored)
	damaged[len(damaged)/2] ^= 1
	_, err = he.UnmarshalDerivedKeys(bytes.NewReader(damaged), params, spec)
	wantCode(t, err, fheserve.EINVALID)
	_, err = he.UnmarshalDerivedKeys(bytes.NewReader(append(bytes.Clone(stored), 0)), params, spec)
	wantCode(t, err, fheserve.EINVALID)
	other := spec
	other.GaloisLevels = slices.Clone(spec.GaloisLevels)
	other.GaloisLevels[0]--
	_, err = he.UnmarshalDerivedKeys(bytes.NewReader(stored), params, other)
	wantCode(t, err, fheserve.EINVALID)
	_, err = he.UnmarshalDerivedKeys(bytes.NewReader(stored[:len(stored)-40]), params, spec)
	wantCode(t, err, fheserve.EINVALID)
}

// derivedAtRest derives a plan's Galois keys from a user's master keys
// (uploaded with NoDerivation) and stores them as the service does.
func derivedAtRest(tb testing.TB) (ckks.Parameters, he.KeySpec, []*rlwe.GaloisKey, []byte) {
	params := MustParams(tb, specDerive)
	spec := derivedSpec(params)
	_, evk, err := client.GenerateKeys(params, spec)
	if err != nil {
		tb.Fatal(err)
	}
	data := mustMarshal(tb, func(b *bytes.Buffer) error { return he.MarshalEvalKeys(b, params, evk) })
	keys, err := he.UnmarshalEvalKeys(bytes.NewReader(data), params, he.KeyLimits{Keys: &spec, NoDerivation: true})
	if err != nil {
		tb.Fatal(err)
	}
	if keys.Galois != nil || len(keys.Masters) == 0 {
		tb.Fatalf("NoDerivation: %d Galois keys, %d masters", len(keys.Galois), len(keys.Masters))
	}
	gks, err := he.DeriveGaloisKeys(params, keys.Masters, spec)
	if err != nil {
		tb.Fatal(err)
	}
	return params, spec, gks, mustMarshal(tb, func(b *bytes.Buffer) error { return he.MarshalDerivedKeys(b, params, gks) })
}

// FuzzUnmarshalDerivedKeys: stored derived keys, damaged in any way, are
// refused with EINVALID or decode to keys that encode back to the same
// bytes, within a bounded allocation.
func FuzzUnmarshalDerivedKeys(f *testing.F) {
	params, spec, _, stored := derivedAtRest(f)
	f.Add(stored)
	f.Add(stored[:len(stored)/2])
	limit := 2*uint64(len(stored)) + 1<<20
	f.Fuzz(func(t *testing.T, data []byte) {
		gks, ok := decodeBounded(t, limit, data, func(r io.Reader) ([]*rlwe.GaloisKey, error) {
			return he.UnmarshalDerivedKeys(r, params, spec)
		})
		if !ok {
			return
		}
		again := mustMarshal(t, func(b *bytes.Buffer) error { return he.MarshalDerivedKeys(b, params, gks) })
		if !bytes.Equal(again, data) {
			t.Fatal("re-encoding differs")
		}
	})
}
