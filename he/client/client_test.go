package client_test

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/he"
	"github.com/fheserve/fheserve/he/client"
	"github.com/fheserve/fheserve/plan"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/ring"
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

// Encryption of many vectors on several goroutines: each ciphertext
// decrypts to its own vector, in order, through the wire and the server's
// decoder, and no two share a seed.
func TestEncryptSeededInParallel(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	params := mustParams(t)
	keys, _, err := client.GenerateKeys(params, he.TopLevelKeys(params, nil, false))
	if err != nil {
		t.Fatal(err)
	}
	const n, level = 11, 1
	for _, tt := range []struct {
		name    string
		batched bool
		length  int
		tol     float64
	}{
		{"slots", true, params.MaxSlots(), 1e-5},
		{"coefficients", false, params.N(), 1e-6},
	} {
		t.Run(tt.name, func(t *testing.T) {
			values := vectors(5, n, tt.length)
			data, err := keys.EncryptSeeded(values, level, params.DefaultScale(), tt.batched)
			if err != nil {
				t.Fatal(err)
			}
			cts, err := he.UnmarshalCiphertexts(bytes.NewReader(data), params, he.Limits{MaxCount: n, MinLevel: level, MaxLevel: level})
			if err != nil {
				t.Fatal(err)
			}
			var dec [][]float64
			if tt.batched {
				dec, err = keys.Decrypt(cts)
			} else {
				dec, err = keys.DecryptCoeffs(cts)
			}
			if err != nil {
				t.Fatal(err)
			}
			for i := range values {
				checkClose(t, fmt.Sprintf("vector %d", i), dec[i], values[i], tt.tol)
			}
			// A seeded record ends with its seed.
			header := he.CiphertextsSize(params, level, 0, true)
			rec := he.CiphertextsSize(params, level, 1, true) - header
			seen := map[string]int{}
			for i := range n {
				end := header + (i+1)*rec
				seed := string(data[end-32 : end])
				if j, ok := seen[seed]; ok {
					t.Fatalf("ciphertexts %d and %d share a seed", j, i)
				}
				seen[seed] = i
			}
		})
	}
}

// Encryption computes what Lattigo's encoder would: each ciphertext
// decrypts to Lattigo's encoding of its vector plus an error within the
// Gaussian's bound, for small values, values that wrap around a prime and
// values of 2^63 and more after scaling.
func TestEncryptMatchesLattigoEncoder(t *testing.T) {
	params := mustParams(t)
	keys, _, err := client.GenerateKeys(params, he.TopLevelKeys(params, nil, false))
	if err != nil {
		t.Fatal(err)
	}
	ecd := ckks.NewEncoder(params, he.EncodingPrecision)
	dec := rlwe.NewDecryptor(params, keys.Secret())
	bound := uint64(math.Ceil(params.Xe().(ring.DiscreteGaussian).Bound))
	big := vectors(6, 3, params.N())
	for i := range big[1] {
		big[1][i] *= 1 << 20 // up to 2^50 after scaling, above q1
		big[2][i] *= 1 << 40 // up to 2^70: Lattigo's big-integer path
	}
	for _, tt := range []struct {
		name    string
		batched bool
		values  [][]float64
	}{
		{"slots", true, vectors(7, 2, params.MaxSlots())},
		{"slots, large", true, [][]float64{big[1][:params.MaxSlots()], big[2][:params.MaxSlots()]}},
		{"coefficients", false, big},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for level := 0; level <= params.MaxLevel(); level++ {
				var cts []*rlwe.Ciphertext
				if tt.batched {
					cts, err = keys.Encrypt(tt.values, level, params.DefaultScale())
				} else {
					cts, err = keys.EncryptCoeffs(tt.values, level, params.DefaultScale())
				}
				if err != nil {
					t.Fatal(err)
				}
				ringQ := params.RingQ().AtLevel(level)
				for i, ct := range cts {
					got := dec.DecryptNew(ct)
					want := ckks.NewPlaintext(params, level)
					want.IsBatched = tt.batched
					if err := ecd.Encode(tt.values[i], want); err != nil {
						t.Fatal(err)
					}
					ringQ.Sub(got.Value, want.Value, got.Value)
					ringQ.INTT(got.Value, got.Value)
					var sum, sum2 float64
					for j, row := range got.Value.Coeffs {
						q := ringQ.SubRings[j].Modulus
						for c, e := range row {
							if min(e, q-e) > bound {
								t.Fatalf("level %d, vector %d, prime %d, coefficient %d: error %d above the bound %d", level, i, j, c, min(e, q-e), bound)
							}
							if e != got.Value.Coeffs[0][c] && q-e != ringQ.SubRings[0].Modulus-got.Value.Coeffs[0][c] {
								t.Fatalf("level %d, vector %d, coefficient %d: the error differs between primes 0 and %d", level, i, c, j)
							}
							if j == 0 {
								x := float64(e)
								if e > q/2 {
									x = -float64(q - e)
								}
								sum, sum2 = sum+x, sum2+x*x
							}
						}
					}
					// The error is Lattigo's discrete Gaussian: mean 0 and
					// its sigma, within 6 standard errors over N samples.
					n, sigma := float64(params.N()), float64(params.Xe().(ring.DiscreteGaussian).Sigma)
					if mean, std := sum/n, math.Sqrt(sum2/n); math.Abs(mean) > 6*sigma/math.Sqrt(n) || math.Abs(std-sigma) > 6*sigma/math.Sqrt(2*n) {
						t.Fatalf("level %d, vector %d: error of mean %g and standard deviation %g, want 0 and %g", level, i, mean, std, sigma)
					}
				}
			}
		})
	}
}
