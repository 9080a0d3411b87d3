package he

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"math/bits"

	"github.com/fheserve/fheserve"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
)

// packedLen is the number of bytes that n values of b bits take.
func packedLen(n, b int) int { return (n*b + 7) / 8 }

// pack writes the low b bits (1 <= b <= 63) of each value into dst,
// least significant bit first, as one little-endian bit stream; dst must
// have packedLen(len(vals), b) bytes.
func pack(dst []byte, vals []uint64, b int) {
	var acc uint64
	nbits, pos := 0, 0
	mask := uint64(1)<<b - 1
	for _, v := range vals {
		v &= mask
		acc |= v << nbits
		if nbits+b >= 64 {
			binary.LittleEndian.PutUint64(dst[pos:], acc)
			pos += 8
			acc = v >> (64 - nbits) // Go defines a shift by 64 as 0.
			nbits += b - 64
		} else {
			nbits += b
		}
	}
	for ; nbits > 0; nbits -= 8 {
		dst[pos] = byte(acc)
		acc >>= 8
		pos++
	}
}

// unpack reads len(dst) values of b bits (1 <= b <= 63) from src, written by
// pack, and reports whether all of them are below bound.
func unpack(dst []uint64, src []byte, b int, bound uint64) bool {
	var acc uint64
	nbits, pos := 0, 0
	mask := uint64(1)<<b - 1
	ok := true
	for i := range dst {
		var v uint64
		if nbits >= b {
			v = acc & mask
			acc >>= b
			nbits -= b
		} else {
			var w uint64
			if pos+8 <= len(src) {
				w = binary.LittleEndian.Uint64(src[pos:])
				pos += 8
			} else {
				for k := 0; pos < len(src); k += 8 {
					w |= uint64(src[pos]) << k
					pos++
				}
			}
			v = (acc | w<<nbits) & mask
			acc = w >> (b - nbits)
			nbits = 64 - (b - nbits)
		}
		if v >= bound {
			ok = false
		}
		dst[i] = v
	}
	return ok
}

// bitLen is the packing width of coefficients modulo q.
func bitLen(q uint64) int { return bits.Len64(q - 1) }

// scaleLen is the encoded size of a scale: a 2-byte exponent E and a
// 16-byte mantissa M with its top bit set, for the value M * 2^(E-128),
// which lies in [2^(E-1), 2^E).
const scaleLen = 18

// Exponent range of an encoded scale: values in [1, 2^1024).
const (
	minScaleExp = 1
	maxScaleExp = 1024
)

// encodeScale encodes the value of s, rounded to 128 bits of mantissa (the
// precision Lattigo tracks scales with).
func encodeScale(s rlwe.Scale) (out [scaleLen]byte, err error) {
	if s.Mod != nil {
		return out, fheserve.Errorf(fheserve.EINVALID, "modular scales are not supported")
	}
	if s.Value.Sign() <= 0 || s.Value.IsInf() {
		return out, fheserve.Errorf(fheserve.EINVALID, "scale must be finite and positive")
	}
	v := new(big.Float).SetPrec(128).SetMode(big.ToNearestEven).Set(&s.Value)
	mant := new(big.Float)
	exp := v.MantExp(mant) // v = mant * 2^exp, mant in [0.5, 1)
	if exp < minScaleExp || exp > maxScaleExp {
		return out, fheserve.Errorf(fheserve.EINVALID, "scale 2^%d is outside 2^%d..2^%d", exp-1, minScaleExp-1, maxScaleExp)
	}
	m, _ := mant.SetMantExp(mant, 128).Int(nil)
	binary.BigEndian.PutUint16(out[:2], uint16(exp))
	m.FillBytes(out[2:])
	return out, nil
}

func decodeScale(b []byte) (rlwe.Scale, bool) {
	exp := int(binary.BigEndian.Uint16(b[:2]))
	if exp < minScaleExp || exp > maxScaleExp || b[2]&0x80 == 0 {
		return rlwe.Scale{}, false
	}
	m := new(big.Int).SetBytes(b[2:scaleLen])
	v := new(big.Float).SetPrec(rlwe.ScalePrecision).SetInt(m)
	v.SetMantExp(v, exp-128)
	return rlwe.Scale{Value: *v}, true
}

// decoder reads a wire object from an untrusted reader. Every failure is an
// EINVALID *fheserve.Error naming what was decoded, except errors of the
// underlying reader, which are wrapped as they are.
type decoder struct {
	r    io.Reader
	what string
	buf  []byte
}

func (d *decoder) invalid(format string, args ...any) error {
	return fheserve.Errorf(fheserve.EINVALID, "%s: %s", d.what, fmt.Sprintf(format, args...))
}

func (d *decoder) tooLarge(format string, args ...any) error {
	return fheserve.Errorf(fheserve.ETOOLARGE, "%s: %s", d.what, fmt.Sprintf(format, args...))
}

// read returns the next n bytes; the slice is valid until the next call.
func (d *decoder) read(n int) ([]byte, error) {
	if cap(d.buf) < n {
		d.buf = make([]byte, n)
	}
	b := d.buf[:n]
	if _, err := io.ReadFull(d.r, b); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, d.invalid("truncated input")
		}
		return nil, fmt.Errorf("cannot read %s: %w", d.what, err)
	}
	return b, nil
}

// end checks that the input holds nothing more.
func (d *decoder) end() error {
	var b [1]byte
	n, err := io.ReadFull(d.r, b[:])
	switch {
	case n > 0:
		return d.invalid("trailing bytes after the last object")
	case errors.Is(err, io.EOF):
		return nil
	default:
		return fmt.Errorf("cannot read %s: %w", d.what, err)
	}
}

// readRow reads one packed row of len(dst) coefficients of b bits each and
// checks that every coefficient is below bound.
func (d *decoder) readRow(dst []uint64, b int, bound uint64) error {
	src, err := d.read(packedLen(len(dst), b))
	if err != nil {
		return err
	}
	if !unpack(dst, src, b, bound) {
		return d.invalid("coefficient not reduced modulo its prime")
	}
	return nil
}

// encoder writes a wire object, packing rows in a reused buffer.
type encoder struct {
	w   *bufio.Writer
	buf []byte
	err error
}

func newEncoder(w io.Writer) *encoder {
	return &encoder{w: bufio.NewWriterSize(w, 64<<10)}
}

func (e *encoder) write(b []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(b)
	}
}

func (e *encoder) writeRow(vals []uint64, b int) {
	n := packedLen(len(vals), b)
	if cap(e.buf) < n {
		e.buf = make([]byte, n)
	}
	pack(e.buf[:n], vals, b)
	e.write(e.buf[:n])
}

func (e *encoder) flush(what string) error {
	if e.err == nil {
		e.err = e.w.Flush()
	}
	if e.err != nil {
		return fmt.Errorf("cannot write %s: %w", what, e.err)
	}
	return nil
}
