package client_test

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/he"
	"github.com/fheserve/fheserve/he/client"
	"github.com/fheserve/fheserve/plan"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
	"github.com/tuneinsight/lattigo/v6/utils"
)

var spec = plan.Params{LogN: 12, LogQ: []int{36, 30}, LogP: []int{37}, LogDefaultScale: 30}

func mustParams(tb testing.TB) ckks.Parameters {
	tb.Helper()
	p, err := he.NewParameters(spec)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func vectors(seed uint64, n, length int) [][]float64 {
	rng := rand.New(rand.NewPCG(seed, 1))
	out := make([][]float64, n)
	for i := range out {
		out[i] = make([]float64, length)
		for j := range out[i] {
			out[i][j] = 2*rng.Float64() - 1
		}
	}
	return out
}

func checkClose(tb testing.TB, name string, got, want []float64, tol float64) {
	tb.Helper()
	for i := range want {
		if d := math.Abs(got[i] - want[i]); d > tol {
			tb.Fatalf("%s: value %d is %g, want %g (error %g > %g)", name, i, got[i], want[i], d, tol)
		}
	}
}

func TestEncryptDecrypt(t *testing.T) {
	params := mustParams(t)
	keys, _, err := client.GenerateKeys(params, he.TopLevelKeys(params, nil, false))
	if err != nil {
		t.Fatal(err)
	}
	values := vectors(1, 3, params.MaxSlots())
	values[1] = values[1][:10] // shorter vectors are zero-padded
	for level := 0; level <= params.MaxLevel(); level++ {
		cts, err := keys.Encrypt(values, level, params.DefaultScale())
		if err != nil {
			t.Fatal(err)
		}
		dec, err := keys.Decrypt(cts)
		if err != nil {
			t.Fatal(err)
		}
		for i := range values {
			checkClose(t, "slots", dec[i], values[i], 1e-5)
		}
		for _, v := range dec[1][10:] {
			if math.Abs(v) > 1e-5 {
				t.Fatalf("padding slot decrypts to %g", v)
			}
		}
	}
	coeffs := vectors(2, 2, params.N())
	cts, err := keys.EncryptCoeffs(coeffs, 1, params.DefaultScale())
	if err != nil {
		t.Fatal(err)
	}
	dec, err := keys.DecryptCoeffs(cts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range coeffs {
		checkClose(t, "coefficients", dec[i], coeffs[i], 1e-6)
	}
}

func TestEncryptRefuses(t *testing.T) {
	params := mustParams(t)
	keys, _, err := client.GenerateKeys(params, he.TopLevelKeys(params, nil, false))
	if err != nil {
		t.Fatal(err)
	}
	s := params.DefaultScale()
	for name, f := range map[string]func() error{
		"no vectors":   func() error { _, err := keys.Encrypt(nil, 0, s); return err },
		"level":        func() error { _, err := keys.Encrypt(vectors(1, 1, 4), 2, s); return err },
		"long vector":  func() error { _, err := keys.Encrypt(vectors(1, 1, params.MaxSlots()+1), 0, s); return err },
		"long coeffs":  func() error { _, err := keys.EncryptCoeffs(vectors(1, 1, params.N()+1), 0, s); return err },
		"NaN":          func() error { _, err := keys.Encrypt([][]float64{{math.NaN()}}, 0, s); return err },
		"scale below1": func() error { _, err := keys.Encrypt(vectors(1, 1, 4), 0, rlwe.NewScale(0.5)); return err },
	} {
		if code := fheserve.ErrorCode(f()); code != fheserve.EINVALID {
			t.Errorf("%s: error code %q, want %q", name, code, fheserve.EINVALID)
		}
	}
	if _, _, err := client.GenerateKeys(params, he.TopLevelKeys(params, []uint64{4}, false)); fheserve.ErrorCode(err) != fheserve.EINVALID {
		t.Errorf("even galois element: %v", err)
	}
}

// The whole client-server exchange: keys and seeded ciphertexts go through
// the wire, the server evaluates a rotation and a relinearized product with
// the decoded keys, and the client decrypts what the wire brings back.
func TestServerEvaluatesWithDecodedKeys(t *testing.T) {
	params := mustParams(t)
	const rot = 3
	galEls := []uint64{params.GaloisElement(rot)}
	keys, evk, err := client.GenerateKeys(params, he.TopLevelKeys(params, galEls, true))
	if err != nil {
		t.Fatal(err)
	}
	var keyWire bytes.Buffer
	if err := he.MarshalEvalKeys(&keyWire, params, evk); err != nil {
		t.Fatal(err)
	}
	t.Logf("key upload: %d bytes", keyWire.Len())
	srvKeys, err := he.UnmarshalEvalKeys(&keyWire, params, he.KeyLimits{MaxGalois: 1})
	if err != nil {
		t.Fatal(err)
	}

	x, y := vectors(3, 1, params.MaxSlots())[0], vectors(4, 1, params.MaxSlots())[0]
	cts, err := keys.Encrypt([][]float64{x, y}, params.MaxLevel(), params.DefaultScale())
	if err != nil {
		t.Fatal(err)
	}
	var up bytes.Buffer
	if err := he.MarshalSeededCiphertexts(&up, params, cts); err != nil {
		t.Fatal(err)
	}
	t.Logf("upload of 2 seeded ciphertexts: %d bytes", up.Len())
	in, err := he.UnmarshalCiphertexts(&up, params, he.Limits{MaxCount: 2, MaxLevel: params.MaxLevel()})
	if err != nil {
		t.Fatal(err)
	}

	eval := ckks.NewEvaluator(params, srvKeys.EvaluationKeySet())
	rotated, err := eval.RotateNew(in[0], rot)
	if err != nil {
		t.Fatal(err)
	}
	prod, err := eval.MulRelinNew(in[0], in[1])
	if err != nil {
		t.Fatal(err)
	}
	if err := eval.Rescale(prod, prod); err != nil {
		t.Fatal(err)
	}
	san, err := he.NewSanitizer(params, srvKeys.Public)
	if err != nil {
		t.Fatal(err)
	}
	for _, ct := range []*rlwe.Ciphertext{rotated, prod} {
		if err := san.Sanitize(ct, 1<<8); err != nil {
			t.Fatal(err)
		}
	}
	var down bytes.Buffer
	if err := he.MarshalResult(&down, params, []*rlwe.Ciphertext{rotated, prod}, 34); err != nil {
		t.Fatal(err)
	}
	out, err := he.UnmarshalResult(&down, params, he.Limits{MaxCount: 2})
	if err != nil {
		t.Fatal(err)
	}
	dec, err := keys.Decrypt(out)
	if err != nil {
		t.Fatal(err)
	}
	wantRot := utils.RotateSlice(x, rot)
	wantProd := make([]float64, len(x))
	for i := range x {
		wantProd[i] = x[i] * y[i]
	}
	checkClose(t, "rotation", dec[0], wantRot, 1e-3)
	checkClose(t, "product", dec[1], wantProd, 1e-3)
}

func TestSecretRoundTrip(t *testing.T) {
	params := mustParams(t)
	keys, _, err := client.GenerateKeys(params, he.TopLevelKeys(params, nil, false))
	if err != nil {
		t.Fatal(err)
	}
	data, err := keys.MarshalSecret()
	if err != nil {
		t.Fatal(err)
	}
	if len(data) != 40+params.N()/4 {
		t.Fatalf("secret is %d bytes", len(data))
	}
	again, err := client.UnmarshalSecret(params, data)
	if err != nil {
		t.Fatal(err)
	}
	values := vectors(5, 1, 16)
	cts, err := keys.Encrypt(values, 1, params.DefaultScale())
	if err != nil {
		t.Fatal(err)
	}
	dec, err := again.Decrypt(cts)
	if err != nil {
		t.Fatal(err)
	}
	checkClose(t, "restored key", dec[0], values[0], 1e-5)
	data2, err := again.MarshalSecret()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, data2) {
		t.Fatal("secret re-encodes differently")
	}

	other, err := he.NewParameters(plan.Params{LogN: 12, LogQ: []int{30, 20}, LogP: []int{30}, LogDefaultScale: 20})
	if err != nil {
		t.Fatal(err)
	}
	for name, tt := range map[string]struct {
		params ckks.Parameters
		data   []byte
	}{
		"other parameters": {other, data},
		"truncated":        {params, data[:len(data)-1]},
		"bad magic":        {params, append([]byte("XXXX"), data[4:]...)},
		"not ternary":      {params, append(append([]byte(nil), data[:len(data)-1]...), 0xff)},
	} {
		if _, err := client.UnmarshalSecret(tt.params, tt.data); fheserve.ErrorCode(err) != fheserve.EINVALID {
			t.Errorf("%s: got %v, want an EINVALID error", name, err)
		}
	}
}

func TestDecryptRefusesMalformed(t *testing.T) {
	params := mustParams(t)
	keys, _, err := client.GenerateKeys(params, he.TopLevelKeys(params, nil, false))
	if err != nil {
		t.Fatal(err)
	}
	cts, err := keys.Encrypt(vectors(6, 1, 4), 1, params.DefaultScale())
	if err != nil {
		t.Fatal(err)
	}
	bad := cts[0].CopyNew()
	bad.Value[1].Coeffs = bad.Value[1].Coeffs[:1]
	other, err := he.NewParameters(plan.Params{LogN: 13, LogQ: []int{36, 30}, LogP: []int{37}, LogDefaultScale: 30})
	if err != nil {
		t.Fatal(err)
	}
	big := ckks.NewCiphertext(other, 1, 0)
	for name, ct := range map[string]*rlwe.Ciphertext{"levels differ": bad, "ring degree": big, "nil": nil} {
		if _, err := keys.Decrypt([]*rlwe.Ciphertext{ct}); fheserve.ErrorCode(err) != fheserve.EINVALID {
			t.Errorf("%s: got %v, want an EINVALID error", name, err)
		}
	}
}

// TestGenerateKeysProgress checks that key generation reports each
// evaluation key once, in order, and that the count is the key set's.
func TestGenerateKeysProgress(t *testing.T) {
	params := mustParams(t)
	galEls := []uint64{params.GaloisElement(1), params.GaloisElement(2), params.GaloisElement(5)}
	for _, tc := range []struct {
		name  string
		relin bool
		gal   []uint64
	}{
		{"none", false, nil},
		{"relin", true, nil},
		{"galois", false, galEls},
		{"both", true, galEls},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keySpec := he.TopLevelKeys(params, tc.gal, tc.relin)
			var calls [][2]int
			_, evk, err := client.GenerateKeysProgress(params, keySpec, func(done, total int) {
				calls = append(calls, [2]int{done, total})
			})
			if err != nil {
				t.Fatal(err)
			}
			var wire bytes.Buffer
			if err := he.MarshalEvalKeys(&wire, params, evk); err != nil {
				t.Fatal(err)
			}
			got, err := he.UnmarshalEvalKeys(&wire, params, he.KeyLimits{MaxGalois: len(galEls)})
			if err != nil {
				t.Fatal(err)
			}
			total := len(got.Spec().Galois)
			if got.Spec().Relin {
				total++
			}
			if len(calls) != total {
				t.Fatalf("%d progress calls for %d evaluation keys: %v", len(calls), total, calls)
			}
			for i, c := range calls {
				if c != [2]int{i + 1, total} {
					t.Errorf("call %d reported %d of %d, want %d of %d", i, c[0], c[1], i+1, total)
				}
			}
		})
	}
}
