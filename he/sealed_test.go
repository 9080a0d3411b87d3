package he_test

import (
	"bytes"
	"io"
	"testing"

	"github.com/fheserve/fheserve/he"
	"github.com/fheserve/fheserve/he/client"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
)

// sealedLevels is the layout the sealed-weight fuzz target decodes for: a
// plan's list, never the bytes', bounds what a decode allocates.
var sealedLevels = []int{1, 0, 1}

// sealedBlob seals random slot and coefficient vectors at sealedLevels
// under a fresh key set's public key, as client.Seal does, and returns
// the key and the encoding.
func sealedBlob(tb testing.TB, params ckks.Parameters) (*client.Keys, []byte) {
	tb.Helper()
	keys, evk, err := client.GenerateKeys(params, he.KeySpec{})
	if err != nil {
		tb.Fatal(err)
	}
	enc := rlwe.NewEncryptor(params, evk.Public)
	ecd := ckks.NewEncoder(params)
	vals := randomVectors(11, len(sealedLevels), params.MaxSlots())
	cts := make([]*rlwe.Ciphertext, len(sealedLevels))
	for k, level := range sealedLevels {
		pt := ckks.NewPlaintext(params, level)
		pt.IsBatched = k != 1
		if err := ecd.Encode(vals[k], pt); err != nil {
			tb.Fatal(err)
		}
		if cts[k], err = enc.EncryptNew(pt); err != nil {
			tb.Fatal(err)
		}
	}
	return keys, mustMarshal(tb, func(b *bytes.Buffer) error { return he.MarshalSealed(b, params, cts) })
}

func TestSealedSize(t *testing.T) {
	params := MustParams(t, specFuzz)
	_, blob := sealedBlob(t, params)
	if got := he.SealedSize(params, sealedLevels); got != len(blob) {
		t.Errorf("SealedSize %d, encoded %d bytes", got, len(blob))
	}
}

func FuzzUnmarshalSealed(f *testing.F) {
	params := MustParams(f, specFuzz)
	keys, blob := sealedBlob(f, params)
	f.Add(blob)
	f.Add(blob[:44+25+200])
	f.Add(blob[:len(blob)-1])
	f.Add(append(append([]byte(nil), blob...), 0))
	f.Add(setByte(blob, 43, 2))        // count below the layout's
	f.Add(setByte(blob, 44, 0))        // the first record at another level
	f.Add(setByte(blob, 5, 2))         // kind: seeded
	f.Add(flip(blob, 8*(44+25+100)+7)) // a coefficient's high bit
	f.Add(flip(blob, 8*20+3))          // the parameters' fingerprint
	limit := 2*uint64(len(sealedLevels))*ciphertextBytes(params, 1) + 1<<20
	f.Fuzz(func(t *testing.T, data []byte) {
		cts, ok := decodeBounded(t, limit, data, func(r io.Reader) ([]*rlwe.Ciphertext, error) {
			return he.UnmarshalSealed(r, params, sealedLevels)
		})
		if !ok {
			return
		}
		for k, ct := range cts {
			if ct.Level() != sealedLevels[k] {
				t.Fatalf("ciphertext %d at level %d, the layout says %d", k, ct.Level(), sealedLevels[k])
			}
		}
		checkDecrypts(t, keys, cts, "ciphertexts")
		var again bytes.Buffer
		if err := he.MarshalSealed(&again, params, cts); err != nil {
			t.Fatalf("decoded ciphertexts do not encode: %v", err)
		}
		if !bytes.Equal(again.Bytes(), data) {
			t.Fatal("re-encoding differs")
		}
	})
}

// TestMarshalPublicKey: the public key alone decodes as a key set with no
// evaluation key, to the same public key, in the size EvalKeysSize states.
func TestMarshalPublicKey(t *testing.T) {
	params := MustParams(t, specFuzz)
	_, evk, err := client.GenerateKeys(params, he.KeySpec{Relin: true})
	if err != nil {
		t.Fatal(err)
	}
	pk, err := he.MarshalPublicKey(params, evk)
	if err != nil {
		t.Fatal(err)
	}
	if want := he.EvalKeysSize(params, he.KeySpec{}); len(pk) != want {
		t.Errorf("%d bytes, want %d", len(pk), want)
	}
	got, err := he.UnmarshalEvalKeys(bytes.NewReader(pk), params, he.KeyLimits{Keys: &he.KeySpec{}})
	if err != nil {
		t.Fatal(err)
	}
	if !got.Public.Equal(evk.Public) || *got.PublicSeed != *evk.PublicSeed || got.Relin != nil {
		t.Errorf("the decoded key set is not the public key alone")
	}
	if _, err := he.MarshalPublicKey(params, &he.EvalKeys{}); err == nil {
		t.Errorf("a key set without a public key encodes")
	}
}
