package he_test

import (
	"bytes"
	"encoding/binary"
	"io"
	"math"
	"runtime"
	"sync"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/he"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
)

func TestCiphertextsRoundTrip(t *testing.T) {
	params := MustParams(t, spec12)
	keys, _ := MustKeys(t, params, nil, false)
	values := randomVectors(1, 3, params.MaxSlots())
	for _, tt := range []struct {
		name    string
		level   int
		seeded  bool
		marshal func(io.Writer, ckks.Parameters, []*rlwe.Ciphertext) error
	}{
		{"full level 1", 1, false, he.MarshalCiphertexts},
		{"full level 0", 0, false, he.MarshalCiphertexts},
		{"seeded level 1", 1, true, he.MarshalSeededCiphertexts},
		{"seeded level 0", 0, true, he.MarshalSeededCiphertexts},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cts, err := keys.Encrypt(values, tt.level, scaleOf(params))
			if err != nil {
				t.Fatal(err)
			}
			data := mustMarshal(t, func(b *bytes.Buffer) error { return tt.marshal(b, params, cts) })
			if want := he.CiphertextsSize(params, tt.level, len(cts), tt.seeded); len(data) != want {
				t.Fatalf("encoded %d bytes, CiphertextsSize says %d", len(data), want)
			}
			got, err := he.UnmarshalCiphertexts(bytes.NewReader(data), params, he.Limits{MaxCount: 3, MaxLevel: 1})
			if err != nil {
				t.Fatal(err)
			}
			for i := range cts {
				if !got[i].Equal(cts[i]) {
					t.Fatalf("ciphertext %d differs after the round trip", i)
				}
			}
			dec, err := keys.Decrypt(got)
			if err != nil {
				t.Fatal(err)
			}
			for i := range values {
				if d := maxDiff(t, dec[i], values[i]); d > 1e-5 {
					t.Errorf("vector %d decrypts with error %g", i, d)
				}
			}
			// Full re-encoding of decoded ciphertexts is canonical.
			if !tt.seeded {
				again := mustMarshal(t, func(b *bytes.Buffer) error { return he.MarshalCiphertexts(b, params, got) })
				if !bytes.Equal(again, data) {
					t.Fatal("re-encoding differs")
				}
			}
		})
	}
}

func TestSeededNeedsFreshEncryption(t *testing.T) {
	params := MustParams(t, spec12)
	keys, _ := MustKeys(t, params, nil, false)
	cts, err := keys.Encrypt(randomVectors(2, 2, 8), 1, scaleOf(params))
	if err != nil {
		t.Fatal(err)
	}
	copied := []*rlwe.Ciphertext{cts[0].CopyNew()}
	wantCode(t, he.MarshalSeededCiphertexts(io.Discard, params, copied), fheserve.EINVALID)

	eval := ckks.NewEvaluator(params, nil)
	if err := eval.Add(cts[1], cts[0], cts[1]); err != nil {
		t.Fatal(err)
	}
	wantCode(t, he.MarshalSeededCiphertexts(io.Discard, params, cts[1:]), fheserve.EINVALID)
	// The unmodified one still goes seeded, and any can go in full.
	if err := he.MarshalSeededCiphertexts(io.Discard, params, cts[:1]); err != nil {
		t.Fatal(err)
	}
	if err := he.MarshalCiphertexts(io.Discard, params, cts); err != nil {
		t.Fatal(err)
	}
}

// A SeededBatch filled record by record, concurrently and out of order,
// holds the bytes MarshalSeededCiphertexts writes of the same ciphertexts.
func TestSeededBatchMatchesMarshal(t *testing.T) {
	params := MustParams(t, spec12)
	keys, _ := MustKeys(t, params, nil, false)
	cts, err := keys.Encrypt(randomVectors(4, 5, params.MaxSlots()), 1, scaleOf(params))
	if err != nil {
		t.Fatal(err)
	}
	want := mustMarshal(t, func(b *bytes.Buffer) error { return he.MarshalSeededCiphertexts(b, params, cts) })
	b, err := he.NewSeededBatch(params, 1, len(cts))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := len(cts) - 1; i >= 0; i-- {
		seed, ok := he.SeedOf(cts[i])
		if !ok {
			t.Fatalf("ciphertext %d has no seed", i)
		}
		wg.Go(func() {
			if err := b.Put(i, cts[i], seed); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if !bytes.Equal(b.Bytes(), want) {
		t.Fatal("the batch differs from MarshalSeededCiphertexts' bytes")
	}
	low, err := keys.Encrypt(randomVectors(5, 1, 4), 0, scaleOf(params))
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := he.SeedOf(low[0])
	wantCode(t, b.Put(0, low[0], seed), fheserve.EINVALID) // level 0 in a batch at level 1
	wantCode(t, b.Put(len(cts), cts[0], seed), fheserve.EINVALID)
	for _, c := range []struct{ level, count int }{{-1, 1}, {2, 1}, {0, 0}} {
		if _, err := he.NewSeededBatch(params, c.level, c.count); fheserve.ErrorCode(err) != fheserve.EINVALID {
			t.Errorf("NewSeededBatch(level %d, count %d): %v", c.level, c.count, err)
		}
	}
}

func TestSeedRegistryDoesNotLeak(t *testing.T) {
	params := MustParams(t, spec12)
	keys, _ := MustKeys(t, params, nil, false)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range 50 {
		if _, err := keys.Encrypt(randomVectors(3, 1, 4), 1, scaleOf(params)); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	// 50 ciphertexts of 128 KiB would hold 6.4 MB if the registry kept them.
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 2<<20 {
		t.Fatalf("heap grew by %d bytes after the ciphertexts became garbage", grown)
	}
}

// corrupt returns a copy of data with f applied.
func corrupt(data []byte, f func([]byte) []byte) []byte {
	return f(append([]byte(nil), data...))
}

func TestUnmarshalCiphertextsRefuses(t *testing.T) {
	params := MustParams(t, spec12)
	other := MustParams(t, specFuzz)
	keys, _ := MustKeys(t, params, nil, false)
	cts, err := keys.Encrypt(randomVectors(4, 2, 8), 1, scaleOf(params))
	if err != nil {
		t.Fatal(err)
	}
	full := mustMarshal(t, func(b *bytes.Buffer) error { return he.MarshalCiphertexts(b, params, cts) })
	seeded := mustMarshal(t, func(b *bytes.Buffer) error { return he.MarshalSeededCiphertexts(b, params, cts) })
	lim := he.Limits{MaxCount: 2, MaxLevel: 1}
	const rec = 44 // first record header
	// Offset of the first coefficient row of the first ciphertext.
	const row0 = rec + 25
	tests := []struct {
		name   string
		data   []byte
		params ckks.Parameters
		lim    he.Limits
		code   string
	}{
		{"empty", nil, params, lim, fheserve.EINVALID},
		{"header only", full[:44], params, lim, fheserve.EINVALID},
		{"truncated", full[:len(full)-1], params, lim, fheserve.EINVALID},
		{"truncated seed", seeded[:len(seeded)-5], params, lim, fheserve.EINVALID},
		{"trailing byte", append(append([]byte(nil), full...), 0), params, lim, fheserve.EINVALID},
		{"bad magic", corrupt(full, func(b []byte) []byte { b[0] = 'X'; return b }), params, lim, fheserve.EINVALID},
		{"version 2", corrupt(full, func(b []byte) []byte { b[4] = 2; return b }), params, lim, fheserve.EINVALID},
		{"result kind", corrupt(full, func(b []byte) []byte { b[5] = 3; return b }), params, lim, fheserve.EINVALID},
		{"other parameters", full, other, lim, fheserve.EINVALID},
		{"fingerprint flipped", corrupt(full, func(b []byte) []byte { b[20] ^= 1; return b }), params, lim, fheserve.EINVALID},
		{"too many", full, params, he.Limits{MaxCount: 1, MaxLevel: 1}, fheserve.ETOOLARGE},
		{"huge count", corrupt(full, func(b []byte) []byte { binary.BigEndian.PutUint32(b[40:], math.MaxUint32); return b }), params, lim, fheserve.ETOOLARGE},
		{"zero count", corrupt(full, func(b []byte) []byte { binary.BigEndian.PutUint32(b[40:], 0); return b[:44] }), params, lim, fheserve.EINVALID},
		{"level above limit", full, params, he.Limits{MaxCount: 2, MaxLevel: 0}, fheserve.EINVALID},
		{"level below limit", full, params, he.Limits{MaxCount: 2, MaxLevel: 1, MinLevel: 2}, fheserve.EINVALID},
		{"level above parameters", corrupt(full, func(b []byte) []byte { b[rec] = 2; return b }), params, he.Limits{MaxCount: 2, MaxLevel: 9}, fheserve.EINVALID},
		{"degree 2", corrupt(full, func(b []byte) []byte { b[rec+1] = 2; return b }), params, lim, fheserve.EINVALID},
		{"not NTT", corrupt(full, func(b []byte) []byte { b[rec+2] &^= 1; return b }), params, lim, fheserve.EINVALID},
		{"Montgomery", corrupt(full, func(b []byte) []byte { b[rec+2] |= 2; return b }), params, lim, fheserve.EINVALID},
		{"unknown flag", corrupt(full, func(b []byte) []byte { b[rec+2] |= 0x80; return b }), params, lim, fheserve.EINVALID},
		{"too many slots", corrupt(full, func(b []byte) []byte { b[rec+4] = 12; return b }), params, lim, fheserve.EINVALID},
		{"scale zero", corrupt(full, func(b []byte) []byte { clear(b[rec+7 : rec+25]); return b }), params, lim, fheserve.EINVALID},
		{"scale not normalized", corrupt(full, func(b []byte) []byte { b[rec+9] &^= 0x80; return b }), params, lim, fheserve.EINVALID},
		{"coefficient not reduced", corrupt(full, func(b []byte) []byte {
			// q0 is a 37-bit prime: make the first coefficient 2^37-1.
			copy(b[row0:], []byte{0xff, 0xff, 0xff, 0xff, 0xff})
			return b
		}), params, lim, fheserve.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cts, err := he.UnmarshalCiphertexts(bytes.NewReader(tt.data), tt.params, tt.lim)
			if cts != nil {
				t.Fatal("got ciphertexts along with the error")
			}
			wantCode(t, err, tt.code)
			if len(fheserve.ErrorMessage(err)) > 200 || bytes.ContainsRune([]byte(fheserve.ErrorMessage(err)), '\n') {
				t.Errorf("message is not one short line: %q", fheserve.ErrorMessage(err))
			}
		})
	}
}

// A header that promises the largest batch must not make the decoder
// allocate for it before the bytes arrive.
func TestUnmarshalAllocatesForWhatArrives(t *testing.T) {
	params := MustParams(t, spec12)
	keys, _ := MustKeys(t, params, nil, false)
	cts, err := keys.Encrypt(randomVectors(5, 1, 8), 1, scaleOf(params))
	if err != nil {
		t.Fatal(err)
	}
	data := mustMarshal(t, func(b *bytes.Buffer) error { return he.MarshalCiphertexts(b, params, cts) })
	binary.BigEndian.PutUint32(data[40:], 1<<20)
	data = data[:44+25+100]
	lim := he.Limits{MaxCount: 1 << 20, MaxLevel: 1}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = he.UnmarshalCiphertexts(bytes.NewReader(data), params, lim)
	runtime.ReadMemStats(&after)
	wantCode(t, err, fheserve.EINVALID)
	// One ciphertext at level 1 is 128 KiB; 2^20 of them would be 128 GiB.
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Fatalf("allocated %d bytes for a truncated input", n)
	}
}

func TestResultRoundTrip(t *testing.T) {
	params := MustParams(t, spec12)
	keys, _ := MustKeys(t, params, nil, false)
	values := randomVectors(6, 2, params.MaxSlots())
	cts, err := keys.Encrypt(values, 0, scaleOf(params))
	if err != nil {
		t.Fatal(err)
	}
	// The predicted error is checked where it dominates the fresh
	// encryption noise (bits 24) and where it is negligible (bits 35).
	for _, bits := range []int{24, 28, 35} {
		data := mustMarshal(t, func(b *bytes.Buffer) error { return he.MarshalResult(b, params, cts, bits) })
		if want := he.ResultSize(params, len(cts), bits); len(data) != want {
			t.Fatalf("bits %d: encoded %d bytes, ResultSize says %d", bits, len(data), want)
		}
		got, err := he.UnmarshalResult(bytes.NewReader(data), params, he.Limits{MaxCount: 2})
		if err != nil {
			t.Fatal(err)
		}
		dec, err := keys.Decrypt(got)
		if err != nil {
			t.Fatal(err)
		}
		var sum float64
		var n int
		for i := range values {
			for j := range values[i] {
				d := dec[i][j] - values[i][j]
				sum += d * d
				n++
			}
		}
		std := math.Sqrt(sum / float64(n))
		want := he.ResultErrorStd(params, bits)
		// Add the fresh encryption noise, which matters at 35 bits.
		want = math.Hypot(want, params.NoiseFreshSK()*math.Sqrt(float64(params.N())/2)/params.DefaultScale().Float64())
		t.Logf("bits %d: %d bytes, error std %.3g, predicted %.3g", bits, len(data), std, want)
		if std < want/1.3 || std > want*1.3 {
			t.Errorf("bits %d: error std %.3g, predicted %.3g", bits, std, want)
		}
	}
	// Results are level 0 only, and a result is not an input batch.
	above, err := keys.Encrypt(values[:1], 1, scaleOf(params))
	if err != nil {
		t.Fatal(err)
	}
	wantCode(t, he.MarshalResult(io.Discard, params, above, 30), fheserve.EINVALID)
	wantCode(t, he.MarshalResult(io.Discard, params, cts, 0), fheserve.EINVALID)
	wantCode(t, he.MarshalResult(io.Discard, params, cts, 38), fheserve.EINVALID) // q0 has 37 bits
	data := mustMarshal(t, func(b *bytes.Buffer) error { return he.MarshalResult(b, params, cts, 30) })
	_, err = he.UnmarshalCiphertexts(bytes.NewReader(data), params, he.Limits{MaxCount: 2})
	wantCode(t, err, fheserve.EINVALID)
	data[7] = 40 // bits above log2 q0
	_, err = he.UnmarshalResult(bytes.NewReader(data), params, he.Limits{MaxCount: 2})
	wantCode(t, err, fheserve.EINVALID)
}

func TestCoefficientEncodingRoundTrip(t *testing.T) {
	params := MustParams(t, spec12)
	keys, _ := MustKeys(t, params, nil, false)
	values := randomVectors(7, 2, params.N())
	cts, err := keys.EncryptCoeffs(values, 1, scaleOf(params))
	if err != nil {
		t.Fatal(err)
	}
	data := mustMarshal(t, func(b *bytes.Buffer) error { return he.MarshalSeededCiphertexts(b, params, cts) })
	got, err := he.UnmarshalCiphertexts(bytes.NewReader(data), params, he.Limits{MaxCount: 2, MaxLevel: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].IsBatched {
		t.Fatal("coefficient encoding lost on the wire")
	}
	if _, err := keys.Decrypt(got); err == nil {
		t.Fatal("Decrypt accepted coefficient-encoded ciphertexts")
	}
	dec, err := keys.DecryptCoeffs(got)
	if err != nil {
		t.Fatal(err)
	}
	for i := range values {
		if d := maxDiff(t, dec[i], values[i]); d > 1e-6 {
			t.Errorf("vector %d decrypts with error %g", i, d)
		}
	}
}

func TestSizesLogN13(t *testing.T) {
	params := MustParams(t, spec13)
	for level := 1; level <= 6; level++ {
		t.Logf("logN 13, level %d: seeded ciphertext %d bytes, full %d bytes",
			level, he.CiphertextsSize(params, level, 1, true), he.CiphertextsSize(params, level, 1, false))
	}
	res := he.ResultSize(params, 1, 31)
	t.Logf("logN 13: result at 31 bits %d bytes (error std %.3g at the default scale)", res, he.ResultErrorStd(params, 31))
	if res >= 64<<10 {
		t.Errorf("result at 31 bits is %d bytes, not under 64 KiB", res)
	}
	gal := he.EvalKeysSize(params, he.TopLevelKeys(params, []uint64{5}, false)) - he.EvalKeysSize(params, he.TopLevelKeys(params, nil, false))
	t.Logf("logN 13: one Galois key %d bytes, public key %d bytes, relinearization key %d bytes",
		gal, he.EvalKeysSize(params, he.TopLevelKeys(params, nil, false)), he.EvalKeysSize(params, he.TopLevelKeys(params, nil, true))-he.EvalKeysSize(params, he.TopLevelKeys(params, nil, false)))
	if he.CiphertextsSize(params, 7, 1, true) != 0 || he.CiphertextsSize(params, -1, 1, true) != 0 {
		t.Error("CiphertextsSize accepted a level the parameters do not have")
	}
}
