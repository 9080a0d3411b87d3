package client_test

import (
	"bytes"
	"runtime"
	"testing"

	"github.com/fheserve/fheserve/he"
	"github.com/fheserve/fheserve/he/client"
	"github.com/fheserve/fheserve/plan"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
)

// specBatch is the bundled cnn's batch plan: N=2^15, inputs at level 6 and
// scale 2^51 (`fheserve compile --model bundled/cnn.onnx --packing batch`).
var specBatch = plan.Params{LogN: 15, LogQ: []int{60, 51, 51, 51, 51, 51, 51}, LogP: []int{61}, LogDefaultScale: 51}

// benchCount is the ciphertexts per benchmark iteration: a slice of the
// cnn's 784 input ciphertexts, 4 MB each at level 6 before upload.
const benchCount = 16

func batchKeys(b *testing.B) (ckks.Parameters, *client.Keys) {
	b.Helper()
	params, err := he.NewParameters(specBatch)
	if err != nil {
		b.Fatal(err)
	}
	keys, _, err := client.GenerateKeys(params, he.TopLevelKeys(params, nil, false))
	if err != nil {
		b.Fatal(err)
	}
	return params, keys
}

// BenchmarkEncryptBatch is the client's half of a batch call's upload:
// encode, encrypt and write benchCount full-slot ciphertexts seeded, as
// sdk.Keys.Encrypt does (seeded: EncryptSeeded, on every core and on one),
// and as it did before (marshal: Encrypt, then
// he.MarshalSeededCiphertexts); then the server's decoding of the upload
// (unmarshal: the seeds expanded). -cpuprofile shows where the time goes.
func BenchmarkEncryptBatch(b *testing.B) {
	params, keys := batchKeys(b)
	values := vectors(1, benchCount, params.MaxSlots())
	level, scale := params.MaxLevel(), params.DefaultScale()
	size := int64(he.CiphertextsSize(params, level, benchCount, true))
	seeded := func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			if _, err := keys.EncryptSeeded(values, level, scale, true); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("seeded", seeded)
	b.Run("seeded-1core", func(b *testing.B) {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
		seeded(b)
	})
	b.Run("marshal", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			cts, err := keys.Encrypt(values, level, scale)
			if err != nil {
				b.Fatal(err)
			}
			var buf bytes.Buffer
			if err := he.MarshalSeededCiphertexts(&buf, params, cts); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("unmarshal", func(b *testing.B) {
		data, err := keys.EncryptSeeded(values, level, scale, true)
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(size)
		lim := he.Limits{MaxCount: benchCount, MinLevel: level, MaxLevel: level}
		for b.Loop() {
			if _, err := he.UnmarshalCiphertexts(bytes.NewReader(data), params, lim); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDecryptBatch decrypts and decodes benchCount level-0
// ciphertexts, as a batch call's result comes back.
func BenchmarkDecryptBatch(b *testing.B) {
	params, keys := batchKeys(b)
	cts, err := keys.Encrypt(vectors(2, benchCount, params.MaxSlots()), 0, params.DefaultScale())
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := keys.Decrypt(cts); err != nil {
			b.Fatal(err)
		}
	}
}
