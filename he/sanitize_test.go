package he_test

import (
	"bytes"
	"math"
	"sync"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/he"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
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
	params := MustParams(t, spec12)
	keys, evk := MustKeys(t, params, nil, false)
	san, err := he.NewSanitizer(params, evk.Public)
	if err != nil {
		t.Fatal(err)
	}
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
