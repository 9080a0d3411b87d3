package he_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/fheserve/fheserve/he"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
)

// Benchmarks at logN=13 (spec13): one ciphertext at level 6, one result at
// 31 bits, one Galois key (the public key alone is subtracted out by
// comparing with BenchmarkEvalKeys/public).

func benchCiphertexts(b *testing.B) (*bytes.Buffer, []*rlwe.Ciphertext) {
	params := MustParams(b, spec13)
	keys, _ := MustKeys(b, params, nil, false)
	cts, err := keys.Encrypt(randomVectors(1, 1, params.MaxSlots()), 6, params.DefaultScale())
	if err != nil {
		b.Fatal(err)
	}
	return new(bytes.Buffer), cts
}

func BenchmarkMarshalCiphertext(b *testing.B) {
	params := MustParams(b, spec13)
	buf, cts := benchCiphertexts(b)
	for _, tt := range []struct {
		name    string
		marshal func(io.Writer, ckks.Parameters, []*rlwe.Ciphertext) error
	}{
		{"full", he.MarshalCiphertexts},
		{"seeded", he.MarshalSeededCiphertexts},
	} {
		b.Run(tt.name, func(b *testing.B) {
			b.SetBytes(int64(he.CiphertextsSize(params, 6, 1, tt.name == "seeded")))
			for b.Loop() {
				buf.Reset()
				if err := tt.marshal(buf, params, cts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkUnmarshalCiphertext(b *testing.B) {
	params := MustParams(b, spec13)
	_, cts := benchCiphertexts(b)
	lim := he.Limits{MaxCount: 1, MaxLevel: 6}
	for _, tt := range []struct {
		name    string
		marshal func(io.Writer, ckks.Parameters, []*rlwe.Ciphertext) error
	}{
		{"full", he.MarshalCiphertexts},
		{"seeded", he.MarshalSeededCiphertexts},
	} {
		b.Run(tt.name, func(b *testing.B) {
			data := mustMarshal(b, func(w *bytes.Buffer) error { return tt.marshal(w, params, cts) })
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := he.UnmarshalCiphertexts(bytes.NewReader(data), params, lim); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkResult(b *testing.B) {
	params := MustParams(b, spec13)
	keys, _ := MustKeys(b, params, nil, false)
	cts, err := keys.Encrypt(randomVectors(1, 1, params.MaxSlots()), 0, params.DefaultScale())
	if err != nil {
		b.Fatal(err)
	}
	data := mustMarshal(b, func(w *bytes.Buffer) error { return he.MarshalResult(w, params, cts, 31) })
	b.Run("marshal", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		var buf bytes.Buffer
		for b.Loop() {
			buf.Reset()
			if err := he.MarshalResult(&buf, params, cts, 31); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("unmarshal", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := he.UnmarshalResult(bytes.NewReader(data), params, he.Limits{MaxCount: 1}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkEvalKeys(b *testing.B) {
	params := MustParams(b, spec13)
	galEls := []uint64{params.GaloisElement(1)}
	_, evk := MustKeys(b, params, galEls, false)
	public := he.NewEvalKeys(params, evk.Public, *evk.PublicSeed, nil, nil)
	for _, tt := range []struct {
		name string
		keys *he.EvalKeys
	}{
		{"public", public},
		{"public+galois", evk},
	} {
		data := mustMarshal(b, func(w *bytes.Buffer) error { return he.MarshalEvalKeys(w, params, tt.keys) })
		b.Run("marshal/"+tt.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			var buf bytes.Buffer
			for b.Loop() {
				buf.Reset()
				if err := he.MarshalEvalKeys(&buf, params, tt.keys); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("unmarshal/"+tt.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := he.UnmarshalEvalKeys(bytes.NewReader(data), params, he.KeyLimits{MaxGalois: 1}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
