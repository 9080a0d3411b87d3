package he

import (
	"encoding/binary"
	"io"
	"math/bits"

	"golang.org/x/crypto/blake2b"
)

// Seeds expand through BLAKE2Xb keyed by the seed, the stream that
// blake2b.NewXOF(blake2b.OutputLengthUnknown, seed) reads (Lattigo's
// sampling.NewKeyedPRNG): a seed of a ciphertext at N=2^15 and 7 primes
// reads 1.8 MB of it, one BLAKE2b compression per 64 bytes, which made seed
// expansion more than half of a fresh encryption's cost. Its output blocks
// are independent compressions of the same message (the root hash) that
// differ in one word of their initial state, so on CPUs with AVX-512
// seedStream computes eight at once, one per 64-bit lane (xof8,
// xof_amd64.s); elsewhere it reads x/crypto's XOF. TestSeedStream checks
// that both give x/crypto's bytes.

// blake2bIV is BLAKE2b's initial state.
var blake2bIV = [8]uint64{
	0x6a09e667f3bcc908, 0xbb67ae8584caa73b, 0x3c6ef372fe94f82b, 0xa54ff53a5f1d36f1,
	0x510e527fade682d1, 0x9b05688c2b3e6c1f, 0x1f83d9abfb41bd6b, 0x5be0cd19137e2179,
}

var blake2bSigma = [10][16]byte{
	{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
	{14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
	{11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
	{7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
	{9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
	{2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
	{12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
	{13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
	{6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
	{10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
}

// xofLength is the parameter block's XOF length of an unknown length.
const xofLength = 1<<32 - 1

// compressFinal is BLAKE2b's compression of the last block m of a message
// of t bytes into h.
func compressFinal(h *[8]uint64, m *[16]uint64, t uint64) {
	var v [16]uint64
	copy(v[:8], h[:])
	copy(v[8:], blake2bIV[:])
	v[12] ^= t
	v[14] = ^v[14]
	g := func(a, b, c, d int, x, y uint64) {
		v[a] += v[b] + x
		v[d] = bits.RotateLeft64(v[d]^v[a], -32)
		v[c] += v[d]
		v[b] = bits.RotateLeft64(v[b]^v[c], -24)
		v[a] += v[b] + y
		v[d] = bits.RotateLeft64(v[d]^v[a], -16)
		v[c] += v[d]
		v[b] = bits.RotateLeft64(v[b]^v[c], -63)
	}
	for r := range 12 {
		s := &blake2bSigma[r%10]
		g(0, 4, 8, 12, m[s[0]], m[s[1]])
		g(1, 5, 9, 13, m[s[2]], m[s[3]])
		g(2, 6, 10, 14, m[s[4]], m[s[5]])
		g(3, 7, 11, 15, m[s[6]], m[s[7]])
		g(0, 5, 10, 15, m[s[8]], m[s[9]])
		g(1, 6, 11, 12, m[s[10]], m[s[11]])
		g(2, 7, 8, 13, m[s[12]], m[s[13]])
		g(3, 4, 9, 14, m[s[14]], m[s[15]])
	}
	for i := range h {
		h[i] ^= v[i] ^ v[i+8]
	}
}

// seedStream is BLAKE2Xb's output for one key, eight blocks at a time.
type seedStream struct {
	p    [16 + 12*16]uint64 // an output block's initial state, v8-v15, the message words of each round
	node uint32             // the next block
	out  [8][8]uint64
	buf  [8 * blake2b.Size]byte
	off  int // bytes of buf read
}

// newSeedStream returns the stream of BLAKE2Xb keyed by seed.
func newSeedStream(seed [seedLen]byte) io.Reader {
	if !hasXOF8 {
		x, err := blake2b.NewXOF(blake2b.OutputLengthUnknown, seed[:])
		if err != nil {
			panic(err) // only for keys longer than 64 bytes
		}
		return x
	}
	// The root: the keyed hash of the empty message, its parameter block
	// giving the XOF length.
	root := blake2bIV
	root[0] ^= blake2b.Size | seedLen<<8 | 1<<16 | 1<<24
	root[1] ^= xofLength << 32
	var key [16]uint64
	for i := range seedLen / 8 {
		key[i] = binary.LittleEndian.Uint64(seed[8*i:])
	}
	compressFinal(&root, &key, blake2b.BlockSize)
	// Output block i: the root hashed under a parameter block with node
	// offset i, leaf and inner length 64.
	s := &seedStream{off: len(seedStream{}.buf)}
	copy(s.p[:8], blake2bIV[:])
	s.p[0] ^= blake2b.Size | blake2b.Size<<32
	s.p[2] ^= blake2b.Size << 8
	copy(s.p[8:16], blake2bIV[:])
	s.p[12] ^= blake2b.Size // the message: 64 bytes
	s.p[14] = ^s.p[14]      // the last block
	// The message is the root hash and 64 zero bytes, in the order each
	// round reads it.
	for r := range 12 {
		for i, w := range blake2bSigma[r%10] {
			if w < 8 {
				s.p[16+16*r+i] = root[w]
			}
		}
	}
	return s
}

func (s *seedStream) Read(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if s.off == len(s.buf) {
			s.fill()
		}
		c := copy(p, s.buf[s.off:])
		s.off += c
		p = p[c:]
	}
	return n, nil
}

// fill computes the next eight output blocks.
func (s *seedStream) fill() {
	var h1 [8]uint64
	for k := range h1 {
		h1[k] = blake2bIV[1] ^ (uint64(s.node+uint32(k)) | xofLength<<32)
	}
	s.node += 8
	xof8(&s.p, &h1, &s.out)
	for k := range 8 {
		for j := range 8 {
			binary.LittleEndian.PutUint64(s.buf[k*blake2b.Size+8*j:], s.out[j][k])
		}
	}
	s.off = 0
}
