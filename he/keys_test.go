package he_test

import (
	"bytes"
	"encoding/binary"
	"io"
	"math"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/he"
	"github.com/fheserve/fheserve/he/client"
	"github.com/fheserve/fheserve/plan"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/ring"
	"github.com/tuneinsight/lattigo/v6/ring/ringqp"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
)

func TestEvalKeysRoundTrip(t *testing.T) {
	params := MustParams(t, spec12)
	galEls := []uint64{params.GaloisElement(3), params.GaloisElement(1), params.GaloisElementOrderTwoOrthogonalSubgroup()}
	for _, relin := range []bool{false, true} {
		_, evk := MustKeys(t, params, galEls, relin)
		data := mustMarshal(t, func(b *bytes.Buffer) error { return he.MarshalEvalKeys(b, params, evk) })
		if want := he.EvalKeysSize(params, he.TopLevelKeys(params, galEls, relin)); len(data) != want {
			t.Fatalf("relin %v: encoded %d bytes, EvalKeysSize says %d", relin, len(data), want)
		}
		got, err := he.UnmarshalEvalKeys(bytes.NewReader(data), params, he.KeyLimits{MaxGalois: 3})
		if err != nil {
			t.Fatal(err)
		}
		if (got.Relin != nil) != relin {
			t.Fatalf("relin %v: decoded relinearization key %v", relin, got.Relin)
		}
		want := slices.Sorted(slices.Values(galEls))
		if !slices.Equal(got.GaloisElements(), want) {
			t.Fatalf("galois elements %v, want %v", got.GaloisElements(), want)
		}
		if !got.Public.Equal(evk.Public) {
			t.Fatal("public key differs after the round trip")
		}
		// The decoded keys are expanded and equal to the client's, expanded.
		set := evk.EvaluationKeySet()
		for _, g := range got.Galois {
			if g.IsCompressed() {
				t.Fatal("decoded galois key is compressed")
			}
			orig, err := set.GetGaloisKey(g.GaloisElement)
			if err != nil {
				t.Fatal(err)
			}
			if orig.GaloisElement != g.GaloisElement || !orig.GadgetCiphertext.Equal(&g.GadgetCiphertext) {
				t.Fatalf("galois key %d differs after the round trip", g.GaloisElement)
			}
		}
		if relin {
			orig, _ := set.GetRelinearizationKey()
			if !orig.GadgetCiphertext.Equal(&got.Relin.GadgetCiphertext) {
				t.Fatal("relinearization key differs after the round trip")
			}
		}
		// Decoded keys encode back to the same bytes.
		again := mustMarshal(t, func(b *bytes.Buffer) error { return he.MarshalEvalKeys(b, params, got) })
		if !bytes.Equal(again, data) {
			t.Fatal("re-encoding differs")
		}
	}
}

func TestUnmarshalEvalKeysRefuses(t *testing.T) {
	params := MustParams(t, spec12)
	g1, g2 := params.GaloisElement(1), params.GaloisElement(2)
	_, evk := MustKeys(t, params, []uint64{g1, g2}, true)
	data := mustMarshal(t, func(b *bytes.Buffer) error { return he.MarshalEvalKeys(b, params, evk) })
	lim := he.KeyLimits{MaxGalois: 2}
	// Layout: header (48), public key (seed and poly), relinearization key
	// (seed and matrix), then per Galois key its element, seed and matrix.
	pkEnd := he.EvalKeysSize(params, he.TopLevelKeys(params, nil, false))
	firstGal := he.EvalKeysSize(params, he.TopLevelKeys(params, nil, true))
	secondGal := firstGal + 8 + (firstGal - pkEnd)
	set := func(off int, v uint64) func([]byte) []byte {
		return func(b []byte) []byte { binary.BigEndian.PutUint64(b[off:], v); return b }
	}
	tests := []struct {
		name   string
		data   []byte
		params ckks.Parameters
		lim    he.KeyLimits
		code   string
	}{
		{"empty", nil, params, lim, fheserve.EINVALID},
		{"truncated", data[:len(data)-1], params, lim, fheserve.EINVALID},
		{"truncated in header", data[:47], params, lim, fheserve.EINVALID},
		{"trailing byte", append(append([]byte(nil), data...), 1), params, lim, fheserve.EINVALID},
		{"bad magic", corrupt(data, func(b []byte) []byte { b[3] = 'C'; return b }), params, lim, fheserve.EINVALID},
		{"version", corrupt(data, func(b []byte) []byte { b[4] = 9; return b }), params, lim, fheserve.EINVALID},
		{"kind", corrupt(data, func(b []byte) []byte { b[5] = 2; return b }), params, lim, fheserve.EINVALID},
		{"flags", corrupt(data, func(b []byte) []byte { b[7] |= 4; return b }), params, lim, fheserve.EINVALID},
		{"other parameters", data, MustParams(t, specFuzz), lim, fheserve.EINVALID},
		{"levels", corrupt(data, func(b []byte) []byte { b[40] = 0; return b }), params, lim, fheserve.EINVALID},
		{"decomposition", corrupt(data, func(b []byte) []byte { b[42] = 10; return b }), params, lim, fheserve.EINVALID},
		{"too many galois keys", data, params, he.KeyLimits{MaxGalois: 1}, fheserve.ETOOLARGE},
		{"huge galois count", corrupt(data, func(b []byte) []byte { binary.BigEndian.PutUint32(b[44:], math.MaxUint32); return b }), params, lim, fheserve.ETOOLARGE},
		{"even galois element", corrupt(data, set(firstGal, 4)), params, lim, fheserve.EINVALID},
		{"identity galois element", corrupt(data, set(firstGal, 1)), params, lim, fheserve.EINVALID},
		{"galois element above 2N", corrupt(data, set(firstGal, 2*uint64(params.N())+1)), params, lim, fheserve.EINVALID},
		{"repeated galois element", corrupt(data, set(secondGal, min(g1, g2))), params, lim, fheserve.EINVALID},
		{"coefficient not reduced", corrupt(data, func(b []byte) []byte {
			copy(b[48+32:], []byte{0xff, 0xff, 0xff, 0xff, 0xff})
			return b
		}), params, lim, fheserve.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := he.UnmarshalEvalKeys(bytes.NewReader(tt.data), tt.params, tt.lim)
			if k != nil {
				t.Fatal("got keys along with the error")
			}
			wantCode(t, err, tt.code)
		})
	}
}

func TestMarshalEvalKeysRefuses(t *testing.T) {
	params := MustParams(t, spec12)
	_, evk := MustKeys(t, params, []uint64{params.GaloisElement(1)}, false)
	wantCode(t, he.MarshalEvalKeys(io.Discard, MustParams(t, specFuzz), evk), fheserve.EINVALID)

	noSeed := *evk
	noSeed.PublicSeed = nil
	wantCode(t, he.MarshalEvalKeys(io.Discard, params, &noSeed), fheserve.EINVALID)

	wrongSeed := *evk
	wrongSeed.PublicSeed = new([32]byte)
	wantCode(t, he.MarshalEvalKeys(io.Discard, params, &wrongSeed), fheserve.EINVALID)

	dup := *evk
	dup.Galois = []*rlwe.GaloisKey{evk.Galois[0], evk.Galois[0]}
	wantCode(t, he.MarshalEvalKeys(io.Discard, params, &dup), fheserve.EINVALID)

	unseeded := *evk
	gk := *evk.Galois[0]
	gk.Seed = nil
	unseeded.Galois = []*rlwe.GaloisKey{&gk}
	wantCode(t, he.MarshalEvalKeys(io.Discard, params, &unseeded), fheserve.EINVALID)
}

func TestCheckGaloisElements(t *testing.T) {
	params := MustParams(t, spec12)
	if err := he.CheckGaloisElements(params, params.GaloisElements([]int{1, 2, -1, 100})); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]uint64{{2}, {1}, {8193}, {5, 5}, {0}} {
		wantCode(t, he.CheckGaloisElements(params, bad), fheserve.EINVALID)
	}
}

// A key set header promising many keys must not make the decoder allocate
// them before their bytes arrive.
func TestUnmarshalEvalKeysAllocatesForWhatArrives(t *testing.T) {
	params := MustParams(t, spec12)
	_, evk := MustKeys(t, params, nil, false)
	data := mustMarshal(t, func(b *bytes.Buffer) error { return he.MarshalEvalKeys(b, params, evk) })
	binary.BigEndian.PutUint32(data[44:], 1000)
	lim := he.KeyLimits{MaxGalois: 1000}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := he.UnmarshalEvalKeys(bytes.NewReader(data), params, lim)
	runtime.ReadMemStats(&after)
	wantCode(t, err, fheserve.EINVALID)
	// The public key (2 x 3 x 4096 words) and buffers: well under 2 MB;
	// 1000 Galois keys would be 400 MB.
	if n := after.TotalAlloc - before.TotalAlloc; n > 2<<20 {
		t.Fatalf("allocated %d bytes", n)
	}
}

// keyParts returns the b and a parts of every key in k: the public key,
// then the relinearization key's and each Galois key's gadget entries.
func keyParts(k *he.EvalKeys) (bs, as []ringqp.Poly) {
	bs, as = []ringqp.Poly{k.Public.Value[0]}, []ringqp.Poly{k.Public.Value[1]}
	var evks []*rlwe.EvaluationKey
	if k.Relin != nil {
		evks = append(evks, &k.Relin.EvaluationKey)
	}
	for _, g := range k.Galois {
		evks = append(evks, &g.EvaluationKey)
	}
	for _, evk := range evks {
		for _, row := range evk.Value {
			bs, as = append(bs, row[0][0]), append(as, row[0][1])
		}
	}
	return bs, as
}

// rows returns the rows of p over QP, with their primes.
func rows(params ckks.Parameters, p ringqp.Poly) ([][]uint64, []uint64) {
	return append(slices.Clip(p.Q.Coeffs), p.P.Coeffs...), append(params.Q(), params.P()...)
}

// craftKeys decodes an honest key set, lets f change the decoded keys as a
// hostile client would, and returns their encoding.
func craftKeys(t *testing.T, params ckks.Parameters, data []byte, f func(*he.EvalKeys)) []byte {
	t.Helper()
	k := mustDecode(t, params, data)
	f(k)
	return mustMarshal(t, func(b *bytes.Buffer) error { return he.MarshalEvalKeys(b, params, k) })
}

func mustDecode(t *testing.T, params ckks.Parameters, data []byte) *he.EvalKeys {
	t.Helper()
	k, err := he.UnmarshalEvalKeys(bytes.NewReader(data), params, he.KeyLimits{MaxGalois: 8})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// zeroSecretKeys returns a key set made by Lattigo's key generator for the
// secret key 0: every b part is its noise e alone.
func zeroSecretKeys(t *testing.T, params ckks.Parameters, galEls []uint64) []byte {
	t.Helper()
	sk := rlwe.NewSecretKey(params)
	kgen := rlwe.NewKeyGenerator(params)
	pk := kgen.GenPublicKeyNew(sk)
	var seed [32]byte
	he.ExpandSeed(params, seed, pk.Value[1]) // b = e does not depend on a
	evkParams := rlwe.EvaluationKeyParameters{Compressed: true}
	k := he.NewEvalKeys(params, pk, seed, kgen.GenRelinearizationKeyNew(sk, evkParams), kgen.GenGaloisKeysNew(galEls, sk, evkParams))
	return mustMarshal(t, func(b *bytes.Buffer) error { return he.MarshalEvalKeys(b, params, k) })
}

// Keys that no honest key generator makes are refused: b parts that are
// zero (secret key 0 and no noise), noise alone (secret key 0), constant,
// or equal to plus or minus the a part.
func TestUnmarshalEvalKeysRefusesDegenerate(t *testing.T) {
	params := MustParams(t, spec12)
	galEls := []uint64{params.GaloisElement(1), params.GaloisElement(-1)}
	_, evk := MustKeys(t, params, galEls, true)
	honest := mustMarshal(t, func(b *bytes.Buffer) error { return he.MarshalEvalKeys(b, params, evk) })
	// set changes, row by row, the b part number which of keyParts (-1: all).
	set := func(which int, f func(b, a []uint64, q uint64)) func(*he.EvalKeys) {
		return func(k *he.EvalKeys) {
			bs, as := keyParts(k)
			for i := range bs {
				if which >= 0 && i != which {
					continue
				}
				rowsB, primes := rows(params, bs[i])
				rowsA, _ := rows(params, as[i])
				for j, q := range primes {
					f(rowsB[j], rowsA[j], q)
				}
			}
		}
	}
	zero := func(b, _ []uint64, _ uint64) { clear(b) }
	bs, _ := keyParts(mustDecode(t, params, honest))
	last := len(bs) - 1
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"all b parts zero (secret key 0, no noise)", craftKeys(t, params, honest, set(-1, zero)), "public key is degenerate"},
		{"public key b zero", craftKeys(t, params, honest, set(0, zero)), "public key is degenerate"},
		{"relinearization key b zero", craftKeys(t, params, honest, set(1, zero)), "relinearization key (entry 0) is degenerate"},
		{"last galois key b zero", craftKeys(t, params, honest, set(last, zero)), "galois key 1 (entry 1) is degenerate"},
		{"secret key 0 with noise", zeroSecretKeys(t, params, galEls), "as with a zero secret key"},
		{"constant b", craftKeys(t, params, honest, set(last, func(b, _ []uint64, q uint64) {
			for i := range b {
				b[i] = q / 3
			}
		})), "mostly repeated values in the NTT domain"},
		{"b equal to a", craftKeys(t, params, honest, set(last, func(b, a []uint64, _ uint64) { copy(b, a) })), "plus or minus the a part"},
		{"b equal to -a", craftKeys(t, params, honest, set(0, func(b, a []uint64, q uint64) {
			for i := range b {
				b[i] = (q - a[i]) % q
			}
		})), "plus or minus the a part"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := he.UnmarshalEvalKeys(bytes.NewReader(tt.data), params, he.KeyLimits{MaxGalois: 8})
			if k != nil {
				t.Fatal("got keys along with the error")
			}
			wantCode(t, err, fheserve.EINVALID)
			if msg := fheserve.ErrorMessage(err); !strings.Contains(msg, tt.want) || !strings.Contains(msg, "client.GenerateKeys") || len(msg) > 200 {
				t.Fatalf("message %q does not say %q and how to fix it in one line", msg, tt.want)
			}
		})
	}
}

// A Galois key with 2^30 added to its b part is as pseudo-random as an
// honest one: the decoder cannot tell, and accepts it. Every rotation with
// it then adds 2^30/P times the sum of the rotated c1's RNS digits to the
// result: terms of the computation that no flood sized for honest noise
// hides. Only a proof of well-formed keys rules this out (docs/security.md).
func TestUnmarshalEvalKeysAcceptsOffsetKey(t *testing.T) {
	params := MustParams(t, spec12)
	g := params.GaloisElement(1)
	keys, evk := MustKeys(t, params, []uint64{g}, false)
	honest := mustMarshal(t, func(b *bytes.Buffer) error { return he.MarshalEvalKeys(b, params, evk) })
	const offset = 1 << 30
	crafted := craftKeys(t, params, honest, func(k *he.EvalKeys) {
		for _, row := range k.Galois[0].Value {
			// 2^30 added to the constant coefficient is 2^30 added to every
			// NTT coefficient, in Montgomery form as keys are held.
			rowsB, primes := rows(params, row[0][0])
			for j, q := range primes {
				o := ring.MForm(offset%q, q, ring.GenBRedConstant(q))
				for i, x := range rowsB[j] {
					rowsB[j][i] = (x + o) % q
				}
			}
		}
	})
	vals := randomVectors(3, 1, params.MaxSlots())
	ct, err := keys.Encrypt(vals, params.MaxLevel(), params.DefaultScale())
	if err != nil {
		t.Fatal(err)
	}
	rotErr := func(data []byte) float64 {
		k, err := he.UnmarshalEvalKeys(bytes.NewReader(data), params, he.KeyLimits{MaxGalois: 1})
		if err != nil {
			t.Fatalf("offset key refused: %v", err)
		}
		out, err := ckks.NewEvaluator(params, k.EvaluationKeySet()).RotateNew(ct[0], 1)
		if err != nil {
			t.Fatal(err)
		}
		got, err := keys.Decrypt([]*rlwe.Ciphertext{out})
		if err != nil {
			t.Fatal(err)
		}
		want := append(slices.Clone(vals[0][1:]), vals[0][0])
		return maxDiff(t, got[0], want)
	}
	honestErr, craftedErr := rotErr(honest), rotErr(crafted)
	t.Logf("rotation error: honest key %.3g, key with b + 2^30 %.3g", honestErr, craftedErr)
	if honestErr > 1e-3 || craftedErr < 1e3*honestErr {
		t.Fatalf("rotation errors %.3g (honest) and %.3g (offset): the offset should dominate", honestErr, craftedErr)
	}
}

// Honest keys always pass the checks: the probability that they fail is
// below 2^-14000 (see keyChecker), so any failure here is a bug.
func TestUnmarshalEvalKeysAcceptsHonestKeys(t *testing.T) {
	params := MustParams(t, spec12)
	galEls := []uint64{params.GaloisElement(1), params.GaloisElement(-1)}
	n := 64
	if testing.Short() {
		n = 8
	}
	for i := range n {
		_, evk := MustKeys(t, params, galEls, true)
		data := mustMarshal(t, func(b *bytes.Buffer) error { return he.MarshalEvalKeys(b, params, evk) })
		if _, err := he.UnmarshalEvalKeys(bytes.NewReader(data), params, he.KeyLimits{MaxGalois: 2}); err != nil {
			t.Fatalf("honest key set %d refused: %v", i, err)
		}
	}
}

// TestLeveledEvalKeys round-trips keys generated below the top level: the
// size is exact, each key keeps its level and its b parts, and the decoder
// given the keys wanted refuses a key set whose keys or levels differ.
func TestLeveledEvalKeys(t *testing.T) {
	params := MustParams(t, plan.Params{LogN: 12, LogQ: []int{30, 20, 20}, LogP: []int{31}, LogDefaultScale: 20})
	g1, g2, g3 := params.GaloisElement(1), params.GaloisElement(2), params.GaloisElement(-1)
	spec := he.KeySpec{Galois: []uint64{g1, g2, g3}, GaloisLevels: []int{1, 0, 2}, Relin: true, RelinLevel: 1}
	_, evk, err := client.GenerateKeys(params, spec)
	if err != nil {
		t.Fatal(err)
	}
	data := mustMarshal(t, func(b *bytes.Buffer) error { return he.MarshalEvalKeys(b, params, evk) })
	top := he.EvalKeysSize(params, he.TopLevelKeys(params, spec.Galois, true))
	if want := he.EvalKeysSize(params, spec); len(data) != want || want >= top {
		t.Fatalf("encoded %d bytes, EvalKeysSize says %d (%d at the top level)", len(data), want, top)
	}
	got, err := he.UnmarshalEvalKeys(bytes.NewReader(data), params, he.KeyLimits{Keys: &spec})
	if err != nil {
		t.Fatal(err)
	}
	if s := got.Spec(); !slices.Equal(s.GaloisLevels, []int{1, 0, 2}) || !slices.Equal(s.Galois, spec.Galois) || s.RelinLevel != 1 {
		t.Fatalf("decoded %+v, want %+v", s, spec)
	}
	set := evk.EvaluationKeySet()
	for _, g := range got.Galois {
		orig, err := set.GetGaloisKey(g.GaloisElement)
		if err != nil || !orig.GadgetCiphertext.Equal(&g.GadgetCiphertext) {
			t.Fatalf("galois key %d differs after the round trip (%v)", g.GaloisElement, err)
		}
	}
	if again := mustMarshal(t, func(b *bytes.Buffer) error { return he.MarshalEvalKeys(b, params, got) }); !bytes.Equal(again, data) {
		t.Fatal("re-encoding differs")
	}

	other := func(f func(s *he.KeySpec)) *he.KeySpec {
		s := spec
		s.GaloisLevels = slices.Clone(spec.GaloisLevels)
		f(&s)
		return &s
	}
	topData := mustMarshal(t, func(b *bytes.Buffer) error {
		_, evk, err := client.GenerateKeys(params, he.TopLevelKeys(params, spec.Galois, true))
		if err != nil {
			t.Fatal(err)
		}
		return he.MarshalEvalKeys(b, params, evk)
	})
	// The relinearization key's level byte follows the header and the
	// public key (its seed and b part over all of QP).
	relinLevel := he.EvalKeysSize(params, he.KeySpec{})
	tests := []struct {
		name string
		data []byte
		want *he.KeySpec
		code string
	}{
		{"galois key at another level", data, other(func(s *he.KeySpec) { s.GaloisLevels[1] = 1 }), fheserve.EINVALID},
		{"relinearization key at another level", data, other(func(s *he.KeySpec) { s.RelinLevel = 2 }), fheserve.EINVALID},
		{"relinearization key not wanted", data, other(func(s *he.KeySpec) { s.Relin = false }), fheserve.EINVALID},
		{"galois key not wanted", data, other(func(s *he.KeySpec) { s.Galois[2] = params.GaloisElement(3) }), fheserve.EINVALID},
		// More keys than wanted: too large, as with MaxGalois (fewer
		// are for the caller to name).
		{"fewer galois keys wanted", data, other(func(s *he.KeySpec) { s.Galois, s.GaloisLevels = s.Galois[:2], s.GaloisLevels[:2] }), fheserve.ETOOLARGE},
		{"top-level keys", topData, &spec, fheserve.EINVALID},
		{"level above the parameters", corrupt(data, func(b []byte) []byte { b[relinLevel] = 3; return b }), nil, fheserve.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := he.UnmarshalEvalKeys(bytes.NewReader(tt.data), params, he.KeyLimits{MaxGalois: 3, Keys: tt.want})
			if k != nil {
				t.Fatal("got keys along with the error")
			}
			wantCode(t, err, tt.code)
		})
	}
}
