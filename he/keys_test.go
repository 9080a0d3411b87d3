package he_test

import (
	"bytes"
	"encoding/binary"
	"io"
	"math"
	"runtime"
	"slices"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/he"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
)

func TestEvalKeysRoundTrip(t *testing.T) {
	params := MustParams(t, spec12)
	galEls := []uint64{params.GaloisElement(3), params.GaloisElement(1), params.GaloisElementOrderTwoOrthogonalSubgroup()}
	for _, relin := range []bool{false, true} {
		_, evk := MustKeys(t, params, galEls, relin)
		data := mustMarshal(t, func(b *bytes.Buffer) error { return he.MarshalEvalKeys(b, params, evk) })
		if want := he.EvalKeysSize(params, galEls, relin); len(data) != want {
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
	pkEnd := he.EvalKeysSize(params, nil, false)
	firstGal := he.EvalKeysSize(params, nil, true)
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
