package he_test

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/he"
	"github.com/fheserve/fheserve/he/client"
	"github.com/fheserve/fheserve/internal/allocs"
	"github.com/fheserve/fheserve/internal/fuzzcorpus"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
)

// The fuzz targets decode untrusted bytes for specFuzz. Their property:
// never panic, fail only with EINVALID or ETOOLARGE, allocate no more than
// the limits imply, and whatever decodes is usable by Lattigo (it decrypts,
// evaluates) and encodes back to the same bytes.
//
// The seed corpora in testdata/fuzz/<Target> hold valid encodings made with
// the test-only secret key testdata/fuzz_secret.bin, their truncations and
// bit flips. Regenerate them with: go test ./he -run TestWriteFuzzCorpus -write-corpus

var writeCorpus = flag.Bool("write-corpus", false, "rewrite the seed corpora and test key under testdata")

const fuzzSecretPath = "testdata/fuzz_secret.bin"

var (
	fuzzLimits    = he.Limits{MaxCount: 4, MaxLevel: 1}
	fuzzKeyLimits = he.KeyLimits{MaxGalois: 2}
)

var fuzzKeys struct {
	once sync.Once
	keys *client.Keys
	err  error
}

// fuzzSecret returns the committed test key for specFuzz.
func fuzzSecret(tb testing.TB) *client.Keys {
	tb.Helper()
	fuzzKeys.once.Do(func() {
		data, err := os.ReadFile(fuzzSecretPath)
		if err != nil {
			fuzzKeys.err = err
			return
		}
		fuzzKeys.keys, fuzzKeys.err = client.UnmarshalSecret(MustParams(tb, specFuzz), data)
	})
	if fuzzKeys.err != nil {
		tb.Fatalf("test key: %v (regenerate with -write-corpus)", fuzzKeys.err)
	}
	return fuzzKeys.keys
}

// checkDecodeError fails unless err is nil or a one-line EINVALID/ETOOLARGE.
func checkDecodeError(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	switch fheserve.ErrorCode(err) {
	case fheserve.EINVALID, fheserve.ETOOLARGE:
	default:
		t.Fatalf("unexpected error %v", err)
	}
	if m := fheserve.ErrorMessage(err); len(m) > 200 || bytes.ContainsRune([]byte(m), '\n') {
		t.Fatalf("message is not one short line: %q", m)
	}
}

// decodeBounded decodes data with decode, failing t if that allocates
// more than limit bytes plus the data's length, and checks the error;
// ok is whether it decoded.
func decodeBounded[T any](t *testing.T, limit uint64, data []byte, decode func(io.Reader) (T, error)) (v T, ok bool) {
	t.Helper()
	var err error
	allocs.Bound(t, limit+uint64(len(data)), func() {
		v, err = decode(bytes.NewReader(data))
	})
	checkDecodeError(t, err)
	return v, err == nil
}

// checkDecrypts fails t unless keys decrypt the decoded ciphertexts cts
// (what names them in the message), slot and coefficient encoded alike.
func checkDecrypts(t *testing.T, keys *client.Keys, cts []*rlwe.Ciphertext, what string) {
	t.Helper()
	if _, err := keys.Decrypt(filter(cts, true)); err != nil {
		t.Fatalf("decoded %s do not decrypt: %v", what, err)
	}
	if _, err := keys.DecryptCoeffs(filter(cts, false)); err != nil {
		t.Fatalf("decoded %s do not decrypt: %v", what, err)
	}
}

// ciphertextBytes is the memory of one ciphertext at the highest level.
func ciphertextBytes(params ckks.Parameters, level int) uint64 {
	return uint64(2 * (level + 1) * params.N() * 8)
}

func FuzzUnmarshalCiphertexts(f *testing.F) {
	params := MustParams(f, specFuzz)
	keys := fuzzSecret(f)
	limit := 2*uint64(fuzzLimits.MaxCount)*ciphertextBytes(params, fuzzLimits.MaxLevel) + 1<<20
	f.Fuzz(func(t *testing.T, data []byte) {
		cts, ok := decodeBounded(t, limit, data, func(r io.Reader) ([]*rlwe.Ciphertext, error) {
			return he.UnmarshalCiphertexts(r, params, fuzzLimits)
		})
		if !ok {
			return
		}
		checkDecrypts(t, keys, cts, "ciphertexts")
		var again bytes.Buffer
		if err := he.MarshalCiphertexts(&again, params, cts); err != nil {
			t.Fatalf("decoded ciphertexts do not encode: %v", err)
		}
		if data[5] == 1 && !bytes.Equal(again.Bytes(), data) {
			t.Fatal("re-encoding differs")
		}
	})
}

func FuzzUnmarshalResult(f *testing.F) {
	params := MustParams(f, specFuzz)
	keys := fuzzSecret(f)
	limit := 2*uint64(fuzzLimits.MaxCount)*ciphertextBytes(params, 0) + 1<<20
	f.Fuzz(func(t *testing.T, data []byte) {
		cts, ok := decodeBounded(t, limit, data, func(r io.Reader) ([]*rlwe.Ciphertext, error) {
			return he.UnmarshalResult(r, params, fuzzLimits)
		})
		if !ok {
			return
		}
		checkDecrypts(t, keys, cts, "results")
		bits := int(data[7])
		var again bytes.Buffer
		if err := he.MarshalResult(&again, params, cts, bits); err != nil {
			t.Fatalf("decoded results do not encode: %v", err)
		}
		// Switching back and forth is the identity when 2^bits < q0.
		if 1<<bits < params.Q()[0] && !bytes.Equal(again.Bytes(), data) {
			t.Fatal("re-encoding differs")
		}
	})
}

func FuzzUnmarshalEvalKeys(f *testing.F) {
	params := MustParams(f, specFuzz)
	keys := fuzzSecret(f)
	// A key expanded: rows x 2 polynomials over QP; the public key is 2.
	polyQP := uint64((params.QCount() + params.PCount()) * params.N() * 8)
	rows := uint64(params.BaseRNSDecompositionVectorSize(params.MaxLevelQ(), params.MaxLevelP()))
	limit := (2*polyQP + uint64(1+fuzzKeyLimits.MaxGalois)*2*rows*polyQP) * 3 / 2
	// A derived key set holds master keys over one more prime, with a
	// row per prime of QP (more with a base-two decomposition), instead of
	// Galois keys.
	mp, err := he.MasterParams(params)
	if err != nil {
		f.Fatal(err)
	}
	masterQP := uint64((mp.QCount() + mp.PCount()) * params.N() * 8)
	masterRows := uint64(0) // gadget entries, with the masters' base-two decomposition
	for _, n := range mp.BaseTwoDecompositionVectorSize(mp.MaxLevelQ(), mp.MaxLevelP(), he.MasterDecomposition(mp)) {
		masterRows += uint64(n)
	}
	limit = max(limit, (2*polyQP+2*rows*polyQP+uint64(fuzzKeyLimits.MaxGalois)*2*masterRows*masterQP)*3/2)
	// A ciphertext at each level: a key switches ciphertexts up to its own.
	var cts []*rlwe.Ciphertext
	for level := range params.MaxLevel() + 1 {
		ct, err := keys.Encrypt([][]float64{{1, 2, 3}}, level, params.DefaultScale())
		if err != nil {
			f.Fatal(err)
		}
		cts = append(cts, ct[0])
	}
	f.Add(leveledKeys(f, params))
	f.Add(derivedKeys(f, params))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, ok := decodeBounded(t, limit, data, func(r io.Reader) (*he.EvalKeys, error) {
			return he.UnmarshalEvalKeys(r, params, fuzzKeyLimits)
		})
		if !ok {
			return
		}
		var again bytes.Buffer
		if err := he.MarshalEvalKeys(&again, params, k); err != nil {
			t.Fatalf("decoded keys do not encode: %v", err)
		}
		if !bytes.Equal(again.Bytes(), data) {
			t.Fatal("re-encoding differs")
		}
		// Garbage keys give garbage results, but never a panic.
		eval := ckks.NewEvaluator(params, k.EvaluationKeySet())
		for _, g := range k.Galois {
			ct := cts[g.LevelQ()]
			out := ckks.NewCiphertext(params, 1, ct.Level())
			if err := eval.Automorphism(ct, g.GaloisElement, out); err != nil {
				t.Fatalf("automorphism %d: %v", g.GaloisElement, err)
			}
		}
		if k.Relin != nil {
			ct := cts[k.Relin.LevelQ()]
			if _, err := eval.MulRelinNew(ct, ct); err != nil {
				t.Fatalf("relinearization: %v", err)
			}
		}
		if _, err := he.NewSanitizer(params, k.Public); err != nil {
			t.Fatalf("sanitizer: %v", err)
		}
		// Garbage master keys derive garbage keys, but never panic.
		if spec, ok := masterTargets(params, k.Masters); ok {
			if _, err := he.DeriveGaloisKeys(params, k.Masters, spec); err != nil {
				t.Fatalf("derivation: %v", err)
			}
		}
	})
}

// masterTargets returns a spec of the rotations by the masters' powers of
// two, each at the level its master covers, if the masters cover one.
func masterTargets(params ckks.Parameters, masters []*rlwe.GaloisKey) (he.KeySpec, bool) {
	spec := he.KeySpec{Derived: true}
	for r := 1; r < params.MaxSlots(); r *= 2 {
		for _, m := range masters {
			if l := m.LevelQ() - params.PCount(); m.GaloisElement == params.GaloisElement(r) && l >= 0 {
				spec.Galois = append(spec.Galois, m.GaloisElement)
				spec.GaloisLevels = append(spec.GaloisLevels, l)
			}
		}
	}
	return spec, len(spec.Galois) > 0
}

// derivedKeys encodes a derived key set: a relinearization key and the
// masters of rotations 1 and 3 (a fresh secret key).
func derivedKeys(tb testing.TB, params ckks.Parameters) []byte {
	return encodedKeys(tb, params, he.KeySpec{
		Galois:       []uint64{params.GaloisElement(1), params.GaloisElement(3)},
		GaloisLevels: []int{0, params.MaxLevel()},
		Relin:        true,
		RelinLevel:   params.MaxLevel(),
		Derived:      true,
	})
}

// leveledKeys encodes a key set with keys below the top level (a fresh
// secret key: the fuzzer never decrypts): a relinearization key and a
// Galois key at level 0, another Galois key at the top level.
func leveledKeys(tb testing.TB, params ckks.Parameters) []byte {
	return encodedKeys(tb, params, he.KeySpec{
		Galois:       []uint64{params.GaloisElement(1), params.GaloisElement(-1)},
		GaloisLevels: []int{0, params.MaxLevel()},
		Relin:        true,
	})
}

// encodedKeys generates the keys of spec under a fresh secret key and
// encodes them.
func encodedKeys(tb testing.TB, params ckks.Parameters, spec he.KeySpec) []byte {
	tb.Helper()
	_, evk, err := client.GenerateKeys(params, spec)
	if err != nil {
		tb.Fatal(err)
	}
	return mustMarshal(tb, func(b *bytes.Buffer) error { return he.MarshalEvalKeys(b, params, evk) })
}

// The valid seeds must decode, or the fuzzers never reach the checks that
// follow a successful decode.
func TestFuzzCorpusValidSeedsDecode(t *testing.T) {
	params := MustParams(t, specFuzz)
	for _, target := range []string{"FuzzUnmarshalCiphertexts", "FuzzUnmarshalResult", "FuzzUnmarshalEvalKeys"} {
		paths, err := filepath.Glob(filepath.Join("testdata", "fuzz", target, "valid-*"))
		if err != nil || len(paths) == 0 {
			t.Fatalf("%s: no valid seeds (%v)", target, err)
		}
		for _, path := range paths {
			data := readCorpusFile(t, path)
			var err error
			switch target {
			case "FuzzUnmarshalCiphertexts":
				_, err = he.UnmarshalCiphertexts(bytes.NewReader(data), params, fuzzLimits)
			case "FuzzUnmarshalResult":
				_, err = he.UnmarshalResult(bytes.NewReader(data), params, fuzzLimits)
			default:
				_, err = he.UnmarshalEvalKeys(bytes.NewReader(data), params, fuzzKeyLimits)
			}
			if err != nil {
				t.Errorf("%s: %v", path, err)
			}
		}
	}
}

// readCorpusFile reads a "go test fuzz v1" file holding one []byte.
func readCorpusFile(t *testing.T, path string) []byte {
	t.Helper()
	e, err := fuzzcorpus.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data, ok := e.Values[0].([]byte)
	if len(e.Values) != 1 || !ok {
		t.Fatalf("%s: want one []byte", path)
	}
	return data
}

func filter(cts []*rlwe.Ciphertext, batched bool) []*rlwe.Ciphertext {
	var out []*rlwe.Ciphertext
	for _, ct := range cts {
		if ct.IsBatched == batched {
			out = append(out, ct)
		}
	}
	return out
}

// TestWriteFuzzCorpus regenerates the test key and the seed corpora.
func TestWriteFuzzCorpus(t *testing.T) {
	if !*writeCorpus {
		t.Skip("run with -write-corpus to regenerate the seed corpora")
	}
	params := MustParams(t, specFuzz)
	g1, g2 := params.GaloisElement(1), params.GaloisElement(-1)
	keys, evk, err := client.GenerateKeys(params, he.TopLevelKeys(params, []uint64{g1, g2}, true))
	if err != nil {
		t.Fatal(err)
	}
	secret, err := keys.MarshalSecret()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fuzzSecretPath, secret, 0o644); err != nil {
		t.Fatal(err)
	}
	vals := randomVectors(10, 2, 64)
	enc := func(level int, coeffs bool) []*rlwe.Ciphertext {
		f := keys.Encrypt
		if coeffs {
			f = keys.EncryptCoeffs
		}
		cts, err := f(vals, level, params.DefaultScale())
		if err != nil {
			t.Fatal(err)
		}
		return cts
	}
	full0 := mustMarshal(t, func(b *bytes.Buffer) error { return he.MarshalCiphertexts(b, params, enc(0, false)[:1]) })
	seeded1 := mustMarshal(t, func(b *bytes.Buffer) error { return he.MarshalSeededCiphertexts(b, params, enc(1, false)) })
	seededCoeffs := mustMarshal(t, func(b *bytes.Buffer) error { return he.MarshalSeededCiphertexts(b, params, enc(0, true)[:1]) })
	writeCorpusFiles(t, "FuzzUnmarshalCiphertexts", map[string][]byte{
		"valid-full-level0":      full0,
		"valid-seeded-level1":    seeded1,
		"valid-seeded-coeffs":    seededCoeffs,
		"truncated-header":       full0[:30],
		"truncated-record":       seeded1[:44+25+64],
		"truncated-seed":         seeded1[:len(seeded1)-8],
		"flip-fingerprint":       flip(seededCoeffs, 8*20+3),
		"flip-flags":             flip(seededCoeffs, 8*(44+2)+1),
		"flip-coefficient-high":  flip(seededCoeffs, 8*(44+25)+30),
		"trailing-byte":          append(append([]byte(nil), seededCoeffs...), 0),
		"count-above-limit":      setByte(seededCoeffs[:44+25], 43, 200),
		"level-above-parameters": setByte(seededCoeffs[:44+25], 44, 7),
	})

	res8 := mustMarshal(t, func(b *bytes.Buffer) error { return he.MarshalResult(b, params, enc(0, false), 8) })
	res31 := mustMarshal(t, func(b *bytes.Buffer) error { return he.MarshalResult(b, params, enc(0, true)[:1], 31) })
	writeCorpusFiles(t, "FuzzUnmarshalResult", map[string][]byte{
		"valid-bits8":      res8,
		"valid-bits31":     res31,
		"truncated-header": res8[:40],
		"truncated-record": res8[:44+25+100],
		"flip-bits":        flip(res8, 8*7+5),
		"flip-scale":       flip(res8, 8*(44+9)+7),
		"trailing-byte":    append(append([]byte(nil), res8...), 0xff),
		"kind-input":       setByte(res8, 5, 1),
	})

	pkOnly := mustMarshal(t, func(b *bytes.Buffer) error {
		return he.MarshalEvalKeys(b, params, he.NewEvalKeys(params, evk.Public, *evk.PublicSeed, nil, nil))
	})
	oneGalois := mustMarshal(t, func(b *bytes.Buffer) error {
		return he.MarshalEvalKeys(b, params, he.NewEvalKeys(params, evk.Public, *evk.PublicSeed, nil, evk.Galois[:1]))
	})
	relinGalois := mustMarshal(t, func(b *bytes.Buffer) error {
		return he.MarshalEvalKeys(b, params, he.NewEvalKeys(params, evk.Public, *evk.PublicSeed, evk.Relin, evk.Galois[1:]))
	})
	// Damaged copies are cut short where they can, to keep the corpus small.
	galoisPrefix := oneGalois[:len(pkOnly)+8+32+100]
	// A public key whose b part is 0, as with the secret key 0 and no noise.
	zeroPublic := append([]byte(nil), pkOnly...)
	clear(zeroPublic[48+32:])
	writeCorpusFiles(t, "FuzzUnmarshalEvalKeys", map[string][]byte{
		"valid-public-only":  pkOnly,
		"valid-relin-galois": relinGalois,
		"zero-public-b":      zeroPublic,
		"truncated-header":   pkOnly[:20],
		"truncated-public":   pkOnly[:48+32+100],
		"truncated-galois":   galoisPrefix,
		"flip-fingerprint":   flip(pkOnly[:200], 8*30),
		"flip-relin-flag":    flip(pkOnly, 8*7),
		"flip-galois-elem":   flip(galoisPrefix, 8*len(pkOnly)+60),
		"count-above-limit":  setByte(pkOnly[:48], 47, 3),
		"trailing-byte":      append(append([]byte(nil), pkOnly...), 0),
	})
}

func flip(data []byte, bit int) []byte {
	out := append([]byte(nil), data...)
	out[bit/8] ^= 1 << (bit % 8)
	return out
}

func setByte(data []byte, i int, v byte) []byte {
	out := append([]byte(nil), data...)
	out[i] = v
	return out
}

// writeCorpusFiles replaces the seed corpus of a fuzz target, in the format
// of "go test fuzz v1" files.
func writeCorpusFiles(t *testing.T, target string, entries map[string][]byte) {
	dir := filepath.Join("testdata", "fuzz", target)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range entries {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(data)))
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
