package he

import (
	"bytes"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/fheserve/fheserve/plan"
	"github.com/tuneinsight/lattigo/v6/ring/ringqp"
	"github.com/tuneinsight/lattigo/v6/utils/sampling"
	"golang.org/x/crypto/blake2b"
)

// The seed stream is x/crypto's BLAKE2Xb byte for byte, whatever the sizes
// of the reads (the uniform sampler reads 1,024 bytes at a time).
func TestSeedStream(t *testing.T) {
	if !hasXOF8 {
		t.Log("no AVX-512: the stream is x/crypto's own")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 8 {
		var seed [seedLen]byte
		for i := range seed {
			seed[i] = byte(rng.Uint32())
		}
		want := xcryptoStream(t, seed, 70_000)
		got := make([]byte, len(want))
		s := newSeedStream(seed)
		for off := 0; off < len(got); {
			n := 1024
			if trial%2 == 1 {
				n = 1 + rng.IntN(700)
			}
			n = min(n, len(got)-off)
			if _, err := s.Read(got[off : off+n]); err != nil {
				t.Fatal(err)
			}
			off += n
		}
		if !bytes.Equal(got, want) {
			i := 0
			for got[i] == want[i] {
				i++
			}
			t.Fatalf("seed %d: the stream differs from x/crypto's from byte %d", trial, i)
		}
	}
}

// A seed expands to the polynomial Lattigo's uniform sampler reads from
// sampling.NewKeyedPRNG(seed), as before seedStream: ciphertexts and keys
// uploaded seeded keep their meaning.
func TestExpandSeedAsLattigo(t *testing.T) {
	params, err := NewParameters(plan.Params{LogN: 12, LogQ: []int{36, 30}, LogP: []int{37}, LogDefaultScale: 30})
	if err != nil {
		t.Fatal(err)
	}
	for i, levels := range [][2]int{{1, 0}, {0, -1}, {1, -1}} {
		seed := [seedLen]byte{1, 2, byte(i)}
		ringQP := params.RingQP().AtLevel(levels[0], levels[1])
		got, want := ringQP.NewPoly(), ringQP.NewPoly()
		ExpandSeed(params, seed, got)
		prng, err := sampling.NewKeyedPRNG(seed[:])
		if err != nil {
			t.Fatal(err)
		}
		ringqp.NewUniformSampler(prng, *params.RingQP()).AtLevel(levels[0], levels[1]).Read(want)
		if !got.Equal(&want) {
			t.Fatalf("levels %v: the seed expands to another polynomial than Lattigo's keyed PRNG gives", levels)
		}
	}
}

// FuzzSeedStream: for any seed, the first bytes of the seed stream, read in
// pieces of the fuzzed sizes, are x/crypto's BLAKE2Xb.
func FuzzSeedStream(f *testing.F) {
	f.Add(make([]byte, seedLen), uint16(1024), uint16(1))
	f.Add(bytes.Repeat([]byte{0xff}, seedLen), uint16(63), uint16(513))
	f.Add([]byte("fheserve seed stream, any bytes."), uint16(4096), uint16(65))
	f.Fuzz(func(t *testing.T, in []byte, a, b uint16) {
		var seed [seedLen]byte
		copy(seed[:], in)
		want := xcryptoStream(t, seed, 9000)
		got := make([]byte, len(want))
		s := newSeedStream(seed)
		sizes := [2]int{1 + int(a)%5000, 1 + int(b)%5000}
		for off, k := 0, 0; off < len(got); k++ {
			n := min(sizes[k%2], len(got)-off)
			if _, err := s.Read(got[off : off+n]); err != nil {
				t.Fatal(err)
			}
			off += n
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("seed %x, reads of %v bytes: the stream differs from x/crypto's", seed, sizes)
		}
	})
}

// xcryptoStream is the first n bytes of x/crypto's BLAKE2Xb keyed by seed.
func xcryptoStream(t *testing.T, seed [seedLen]byte, n int) []byte {
	t.Helper()
	x, err := blake2b.NewXOF(blake2b.OutputLengthUnknown, seed[:])
	if err != nil {
		t.Fatal(err)
	}
	out := make([]byte, n)
	if _, err := io.ReadFull(x, out); err != nil {
		t.Fatal(err)
	}
	return out
}
