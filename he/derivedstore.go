package he

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"io"

	"github.com/fheserve/fheserve"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
)

// Derived keys at rest. The server derives a derived key set's Galois
// keys once (DeriveGaloisKeys, seconds to minutes) and stores them with
// MarshalDerivedKeys, so that a later load of the key set (after its
// evaluator left the cache, on a restart or on another worker) reads them
// with UnmarshalDerivedKeys instead of deriving them again. Their a parts
// are computed, not seeded, so both parts of every row are written. The
// reader treats the bytes as untrusted like a key set's: the parameters'
// fingerprint, exactly the spec's Galois elements and levels in the
// spec's order, every coefficient below its prime, and a SHA-256 of
// everything before it at the end (a damaged blob is refused, and the
// caller derives again).
//
// Layout: "FHED", FormatVersion, logN, 2 zero bytes, the parameters'
// fingerprint (32 bytes), the number of keys (4 bytes, big-endian); per
// key its Galois element (8 bytes), its level (1 byte) and its rows, each
// row's b then a part over Q_l and P (writePolyQP); then the SHA-256.

var magicDerived = [4]byte{'F', 'H', 'E', 'D'}

const derivedHeaderLen = 44

// MarshalDerivedKeys writes derived Galois keys (DeriveGaloisKeys) for
// params, in the order given.
func MarshalDerivedKeys(w io.Writer, params ckks.Parameters, gks []*rlwe.GaloisKey) error {
	h := sha256.New()
	e := newEncoder(io.MultiWriter(w, h))
	var hd [derivedHeaderLen]byte
	copy(hd[:4], magicDerived[:])
	hd[4], hd[5] = FormatVersion, byte(params.LogN())
	fp := fingerprint(params)
	copy(hd[8:40], fp[:])
	binary.BigEndian.PutUint32(hd[40:44], uint32(len(gks)))
	e.write(hd[:])
	for _, g := range gks {
		if g == nil || g.IsCompressed() || g.LevelP() != params.MaxLevelP() || g.BaseTwoDecomposition != 0 {
			return fheserve.Errorf(fheserve.EINVALID, "derived keys: a key is missing, compressed or of another shape")
		}
		var el [galoisElemLen + levelLen]byte
		binary.BigEndian.PutUint64(el[:], g.GaloisElement)
		el[galoisElemLen] = byte(g.LevelQ())
		e.write(el[:])
		for _, row := range g.Value {
			for _, part := range row[0] {
				writePolyQP(e, params, part)
			}
		}
	}
	if err := e.flush("derived keys"); err != nil {
		return err
	}
	_, err := w.Write(h.Sum(nil))
	return err
}

// UnmarshalDerivedKeys reads derived Galois keys written by
// MarshalDerivedKeys for params: exactly spec's Galois elements at spec's
// levels, in spec's order.
func UnmarshalDerivedKeys(r io.Reader, params ckks.Parameters, spec KeySpec) ([]*rlwe.GaloisKey, error) {
	if err := spec.Validate(params); err != nil {
		return nil, err
	}
	h := sha256.New()
	d := &decoder{r: io.TeeReader(r, h), what: "derived keys"}
	hd, err := d.read(derivedHeaderLen)
	if err != nil {
		return nil, err
	}
	fp := fingerprint(params)
	switch {
	case [4]byte(hd[:4]) != magicDerived || hd[4] != FormatVersion || hd[6] != 0 || hd[7] != 0:
		return nil, d.invalid("not a derived key blob of format version %d", FormatVersion)
	case int(hd[5]) != params.LogN() || [32]byte(hd[8:40]) != fp:
		return nil, d.invalid("made for other parameters (fingerprint mismatch)")
	case int(binary.BigEndian.Uint32(hd[40:44])) != len(spec.Galois):
		return nil, d.invalid("%d keys, the plan has %d", binary.BigEndian.Uint32(hd[40:44]), len(spec.Galois))
	}
	gks := make([]*rlwe.GaloisKey, len(spec.Galois))
	for i, g := range spec.Galois {
		el, err := d.read(galoisElemLen + levelLen)
		if err != nil {
			return nil, err
		}
		l := spec.GaloisLevels[i]
		if binary.BigEndian.Uint64(el) != g || int(el[galoisElemLen]) != l {
			return nil, d.invalid("key %d: Galois element %d at level %d, the plan's is %d at level %d", i, binary.BigEndian.Uint64(el), el[galoisElemLen], g, l)
		}
		gk := rlwe.NewGaloisKey(params, rlwe.EvaluationKeyParameters{LevelQ: &l})
		gk.GaloisElement, gk.NthRoot = g, params.RingQ().NthRoot()
		for _, row := range gk.Value {
			for _, part := range row[0] {
				if err := readPolyQP(d, params, part); err != nil {
					return nil, err
				}
			}
		}
		gks[i] = gk
	}
	if err := checkDigest(d, h); err != nil {
		return nil, err
	}
	return gks, nil
}

// checkDigest reads the SHA-256 that ends a blob and compares it with h,
// the hash of what came before, then checks that nothing follows.
func checkDigest(d *decoder, h hash.Hash) error {
	want := h.Sum(nil)
	got, err := d.read(sha256.Size)
	if err != nil {
		return err
	}
	if string(got) != string(want) {
		return d.invalid("checksum mismatch: the blob is damaged")
	}
	return d.end()
}
