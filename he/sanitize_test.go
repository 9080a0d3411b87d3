package he_test

import (
	"bytes"
	"math"
	"sync"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/he"
	"github.com/fheserve/fheserve/he/client"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
)

func TestSanitize(t *testing.T) {
	params := MustParams(t, spec12)
	keys, evk := MustKeys(t, params, nil, false)
	// The server works on the public key as decoded from the wire.
	data := mustMarshal(t, func(b *bytes.Buffer) error { return he.MarshalEvalKeys(b, params, evk) })
	srvKeys, err := he.UnmarshalEvalKeys(bytes.NewReader(data), params, he.KeyLimits{})
	if err != nil {
		t.Fatal(err)
	}
	san, err := he.NewSanitizer(params, srvKeys.Public)
	if err != nil {
		t.Fatal(err)
	}
	values := randomVectors(8, 1, params.MaxSlots())
	const floodStd = 1 << 20
	// Slot error from flooding: floodStd*sqrt(N/2)/scale, about 0.044 here.
	floodSlotStd := floodStd * math.Sqrt(float64(params.N())/2) / params.DefaultScale().Float64()

	ct, err := keys.Encrypt(values, 1, params.DefaultScale())
	if err != nil {
		t.Fatal(err)
	}
	a, b := ct[0].CopyNew(), ct[0].CopyNew()
	for _, c := range []*rlwe.Ciphertext{a, b} {
		if err := san.Sanitize(c, floodStd); err != nil {
			t.Fatal(err)
		}
		if c.Level() != 0 {
			t.Fatalf("sanitized ciphertext at level %d", c.Level())
		}
	}
	if a.Value[0].Equal(&b.Value[0]) || a.Value[1].Equal(&b.Value[1]) {
		t.Fatal("two sanitizations of one ciphertext are equal")
	}
	dec, err := keys.Decrypt([]*rlwe.Ciphertext{a, b})
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range dec {
		var sum float64
		for j := range values[0] {
			e := d[j] - values[0][j]
			sum += e * e
		}
		std := math.Sqrt(sum / float64(len(values[0])))
		t.Logf("sanitized %d: error std %.3g, flooding predicts %.3g", i, std, floodSlotStd)
		if std < floodSlotStd/1.2 || std > floodSlotStd*1.2 {
			t.Errorf("sanitized %d: error std %.3g, want about %.3g", i, std, floodSlotStd)
		}
	}

	// Without flooding, only the small re-randomization noise remains.
	c := ct[0].CopyNew()
	if err := san.Sanitize(c, 0); err != nil {
		t.Fatal(err)
	}
	d, err := keys.Decrypt([]*rlwe.Ciphertext{c})
	if err != nil {
		t.Fatal(err)
	}
	if e := maxDiff(t, d[0], values[0]); e > 1e-5 {
		t.Errorf("re-randomized ciphertext decrypts with error %g", e)
	}

	for _, bad := range []float64{-1, math.NaN(), math.Inf(1), he.MaxFloodStd * 2} {
		wantCode(t, san.Sanitize(ct[0].CopyNew(), bad), fheserve.EINVALID)
	}
}

func TestSanitizeConcurrent(t *testing.T) {
	params, keys, san := mustSanitizer(t)
	values := randomVectors(9, 8, 16)
	cts, err := keys.Encrypt(values, 1, params.DefaultScale())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(cts))
	for i := range cts {
		wg.Go(func() { errs[i] = san.Sanitize(cts[i], 1<<10) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	dec, err := keys.Decrypt(cts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range values {
		// Flooding at 2^10 gives a slot std of about 4.3e-5.
		if e := maxDiff(t, dec[i], values[i]); e > 4e-4 {
			t.Errorf("ciphertext %d decrypts with error %g", i, e)
		}
	}
}

// SanitizeKeeping keeps the listed coefficients of a coefficient-encoded
// result and makes every other one uniform mod q_0; Rerandomize changes a
// ciphertext at any level without changing what it decrypts to.
func TestSanitizeKeeping(t *testing.T) {
	params, keys, san := mustSanitizer(t)
	n := params.N()
	v := make([]float64, n)
	for i := range v {
		v[i] = float64(i%7) - 3
	}
	cts, err := keys.EncryptCoeffs([][]float64{v}, 1, params.DefaultScale())
	if err != nil {
		t.Fatal(err)
	}
	ct := cts[0]
	before := ct.CopyNew()
	if err := san.Rerandomize(ct); err != nil {
		t.Fatal(err)
	}
	if ct.Level() != 1 || ct.Value[1].Equal(&before.Value[1]) {
		t.Fatal("Rerandomize left the ciphertext as it was, or changed its level")
	}
	keep := []int{0, 5, 77, n - 1}
	if err := san.SanitizeKeeping(ct, 1<<10, keep); err != nil {
		t.Fatal(err)
	}
	dec, err := keys.DecryptCoeffs([]*rlwe.Ciphertext{ct})
	if err != nil {
		t.Fatal(err)
	}
	kept := map[int]bool{}
	for _, k := range keep {
		kept[k] = true
		if e := math.Abs(dec[0][k] - v[k]); e > 1e-4 {
			t.Errorf("kept coefficient %d decrypts to %g, want %g", k, dec[0][k], v[k])
		}
	}
	// The others: uniform on +-q_0/(2 scale). Their mean square is
	// (q_0/scale)^2/12; a message of at most 3 would give at most 9.
	half := float64(params.Q()[0]) / 2 / params.DefaultScale().Float64()
	var sum float64
	var count int
	for i, x := range dec[0] {
		if !kept[i] {
			sum += x * x
			count++
		}
	}
	ms, want := sum/float64(count), half*half/3
	if ms < 0.9*want || ms > 1.1*want {
		t.Errorf("non-kept coefficients have mean square %.3g, uniform mod q_0 gives %.3g", ms, want)
	}
	slots, err := keys.Encrypt(randomVectors(1, 1, 8), 1, params.DefaultScale())
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, san.SanitizeKeeping(slots[0], 0, keep), fheserve.EINVALID)
	wantCode(t, san.SanitizeKeeping(cts[0].CopyNew(), 0, []int{n}), fheserve.EINVALID)
}

// RerandomizeWith adds an encryption of zero drawn ahead by Zero: the
// ciphertext changes, what it decrypts to does not; a zero at another
// level is refused.
func TestRerandomizeWith(t *testing.T) {
	params, keys, san := mustSanitizer(t)
	values := randomVectors(1, 1, 8)
	cts, err := keys.Encrypt(values, 1, params.DefaultScale())
	if err != nil {
		t.Fatal(err)
	}
	ct := cts[0]
	before := ct.CopyNew()
	zero, err := san.Zero(ct.Level())
	if err != nil {
		t.Fatal(err)
	}
	if err := san.RerandomizeWith(ct, zero); err != nil {
		t.Fatal(err)
	}
	if ct.Value[0].Equal(&before.Value[0]) || ct.Value[1].Equal(&before.Value[1]) {
		t.Fatal("RerandomizeWith left the ciphertext as it was")
	}
	dec, err := keys.Decrypt([]*rlwe.Ciphertext{ct})
	if err != nil {
		t.Fatal(err)
	}
	if e := maxDiff(t, dec[0], values[0]); e > 1e-4 {
		t.Errorf("re-randomized ciphertext decrypts with error %g", e)
	}
	other, err := san.Zero(ct.Level() - 1)
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, san.RerandomizeWith(ct, other), fheserve.EINTERNAL)
	_, err = san.Zero(params.MaxLevel() + 1)
	wantCode(t, err, fheserve.EINVALID)
}

// mustSanitizer returns spec12 parameters, fresh keys and a sanitizer for
// their public key.
func mustSanitizer(t *testing.T) (ckks.Parameters, *client.Keys, *he.Sanitizer) {
	t.Helper()
	params := MustParams(t, spec12)
	keys, evk := MustKeys(t, params, nil, false)
	san, err := he.NewSanitizer(params, evk.Public)
	if err != nil {
		t.Fatal(err)
	}
	return params, keys, san
}
