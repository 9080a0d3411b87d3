// Package npy reads and writes NumPy .npy files: the format in which users
// hand fheserve inputs, labels and calibration data, and get outputs back.
//
// Read accepts format versions 1.0, 2.0 and 3.0, little-endian float and
// integer dtypes, and C order only. The header is parsed as the small subset
// of Python literal syntax that NumPy writes, never evaluated. Every size is
// checked against the caller's limit before anything is allocated, because
// files come from untrusted users.
package npy

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/fheserve/fheserve"
)

// Array is a dense tensor in row-major (C) order. A 0-d array (a scalar)
// has an empty Shape and one element.
type Array struct {
	Shape []int
	Data  []float64
}

// Size is the number of elements the shape describes.
func (a *Array) Size() int {
	n := 1
	for _, d := range a.Shape {
		n *= d
	}
	return n
}

const (
	magic = "\x93NUMPY"
	// MaxFileBytes is the payload limit of ReadFile.
	MaxFileBytes = 1 << 30
	// NumPy refuses headers above 10000 bytes by default; allow more, but
	// not enough to be a way to exhaust memory.
	maxHeaderBytes = 1 << 16
	// NumPy 2 allows 64 dimensions.
	maxDims = 64
	// Payloads are read in chunks so that a header that lies about the
	// size costs no more memory than the bytes actually sent.
	chunkBytes = 1 << 16
)

// dtype says how to decode one element.
type dtype struct {
	size   int
	decode func(b []byte) float64
}

var dtypes = map[string]dtype{
	"<f4": {4, func(b []byte) float64 { return float64(math.Float32frombits(binary.LittleEndian.Uint32(b))) }},
	"<f8": {8, func(b []byte) float64 { return math.Float64frombits(binary.LittleEndian.Uint64(b)) }},
	"<i1": {1, func(b []byte) float64 { return float64(int8(b[0])) }},
	"|i1": {1, func(b []byte) float64 { return float64(int8(b[0])) }},
	"<u1": {1, func(b []byte) float64 { return float64(b[0]) }},
	"|u1": {1, func(b []byte) float64 { return float64(b[0]) }},
	"<i2": {2, func(b []byte) float64 { return float64(int16(binary.LittleEndian.Uint16(b))) }},
	"<i4": {4, func(b []byte) float64 { return float64(int32(binary.LittleEndian.Uint32(b))) }},
	"<i8": {8, func(b []byte) float64 { return float64(int64(binary.LittleEndian.Uint64(b))) }},
}

func invalid(format string, args ...any) error {
	return fheserve.Errorf(fheserve.EINVALID, "npy: "+format, args...)
}

// Read decodes one .npy array from r. maxBytes bounds the payload (the
// element bytes, not counting the header); a larger array is refused with
// ETOOLARGE before it is read. Bytes after the payload are an error.
func Read(r io.Reader, maxBytes int64) (*Array, error) {
	h, err := readHeader(r)
	if err != nil {
		return nil, err
	}
	dt, ok := dtypes[h.descr]
	if !ok {
		return nil, invalid("unsupported dtype %q (want <f4, <f8, <i1, <i2, <i4, <i8 or <u1)", h.descr)
	}
	if h.fortran {
		return nil, invalid("fortran_order True is not supported: save the array in C order (numpy.ascontiguousarray)")
	}
	count := int64(1)
	for _, d := range h.shape {
		if d != 0 && count > math.MaxInt64/int64(dt.size)/int64(d) {
			return nil, fheserve.Errorf(fheserve.ETOOLARGE, "npy: shape %v is too large", h.shape)
		}
		count *= int64(d)
	}
	if nbytes := count * int64(dt.size); nbytes > maxBytes {
		return nil, fheserve.Errorf(fheserve.ETOOLARGE, "npy: array of shape %v is %d bytes, above the limit of %d", h.shape, nbytes, maxBytes)
	}
	data, err := readPayload(r, dt, count)
	if err != nil {
		return nil, err
	}
	return &Array{Shape: h.shape, Data: data}, nil
}

func readPayload(r io.Reader, dt dtype, count int64) ([]float64, error) {
	data := make([]float64, 0, min(count, chunkBytes/int64(dt.size)))
	buf := make([]byte, chunkBytes)
	for left := count; left > 0; {
		n := min(left, int64(len(buf)/dt.size))
		b := buf[:n*int64(dt.size)]
		if _, err := io.ReadFull(r, b); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, invalid("payload is truncated: shape needs %d elements", count)
			}
			return nil, fmt.Errorf("npy: %w", err)
		}
		for i := 0; i < len(b); i += dt.size {
			data = append(data, dt.decode(b[i:i+dt.size]))
		}
		left -= n
	}
	var one [1]byte
	switch _, err := io.ReadFull(r, one[:]); {
	case err == nil:
		return nil, invalid("payload is longer than shape says (%d elements)", count)
	case !errors.Is(err, io.EOF):
		return nil, fmt.Errorf("npy: %w", err)
	}
	return data, nil
}

// ReadFile reads a .npy file of at most MaxFileBytes of payload.
func ReadFile(path string) (*Array, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, invalid("%v", err)
	}
	defer f.Close()
	a, err := Read(bufio.NewReader(f), MaxFileBytes)
	if e := (*fheserve.Error)(nil); errors.As(err, &e) {
		return nil, fheserve.Errorf(e.Code, "npy: %s: %s", path, strings.TrimPrefix(e.Message, "npy: "))
	}
	return a, err
}

type header struct {
	descr   string
	fortran bool
	shape   []int
}

func readHeader(r io.Reader) (*header, error) {
	var pre [10]byte
	if _, err := io.ReadFull(r, pre[:8]); err != nil {
		return nil, invalid("not a .npy file: too short")
	}
	if string(pre[:6]) != magic {
		return nil, invalid("not a .npy file: bad magic")
	}
	var n int64
	switch major, minor := pre[6], pre[7]; {
	case major == 1 && minor == 0:
		if _, err := io.ReadFull(r, pre[8:10]); err != nil {
			return nil, invalid("truncated header")
		}
		n = int64(binary.LittleEndian.Uint16(pre[8:10]))
	case (major == 2 || major == 3) && minor == 0:
		var l [4]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return nil, invalid("truncated header")
		}
		n = int64(binary.LittleEndian.Uint32(l[:]))
	default:
		return nil, invalid("unsupported format version %d.%d (want 1.0, 2.0 or 3.0)", major, minor)
	}
	if n > maxHeaderBytes {
		return nil, invalid("header is %d bytes, above the limit of %d", n, maxHeaderBytes)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, invalid("truncated header")
	}
	return parseHeader(string(b))
}

// parseHeader parses the header dict, for example
// {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
// followed by space padding and a newline.
func parseHeader(s string) (*header, error) {
	p := &parser{s: s}
	h, err := p.dict()
	if err != nil {
		return nil, invalid("bad header: %v", err)
	}
	if rest := strings.TrimRight(p.s[p.i:], " \t\r\n\x00"); rest != "" {
		return nil, invalid("bad header: unexpected %q after the dict", clip(rest))
	}
	return h, nil
}

type parser struct {
	s string
	i int
}

func (p *parser) skipSpace() {
	for p.i < len(p.s) && strings.IndexByte(" \t\r\n", p.s[p.i]) >= 0 {
		p.i++
	}
}

// accept consumes c after optional space and reports whether it was there.
func (p *parser) accept(c byte) bool {
	p.skipSpace()
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *parser) expect(c byte) error {
	if !p.accept(c) {
		return p.unexpected(fmt.Sprintf("%q", c))
	}
	return nil
}

func (p *parser) unexpected(want string) error {
	if p.i >= len(p.s) {
		return fmt.Errorf("want %s, got end of header", want)
	}
	return fmt.Errorf("want %s at offset %d, got %q", want, p.i, clip(p.s[p.i:]))
}

func clip(s string) string {
	if len(s) > 16 {
		return s[:16] + "..."
	}
	return s
}

func (p *parser) dict() (*header, error) {
	if err := p.expect('{'); err != nil {
		return nil, err
	}
	h := &header{}
	seen := map[string]bool{}
	for !p.accept('}') {
		key, err := p.str()
		if err != nil {
			return nil, err
		}
		if seen[key] {
			return nil, fmt.Errorf("duplicate key %q", clip(key))
		}
		seen[key] = true
		if err := p.expect(':'); err != nil {
			return nil, err
		}
		switch key {
		case "descr":
			if h.descr, err = p.str(); err != nil {
				return nil, fmt.Errorf("descr: %v (structured dtypes are not supported)", err)
			}
		case "fortran_order":
			h.fortran, err = p.boolean()
		case "shape":
			h.shape, err = p.tuple()
		default:
			return nil, fmt.Errorf("unknown key %q", clip(key))
		}
		if err != nil {
			return nil, err
		}
		if !p.accept(',') {
			if err := p.expect('}'); err != nil {
				return nil, err
			}
			break
		}
	}
	for _, k := range []string{"descr", "fortran_order", "shape"} {
		if !seen[k] {
			return nil, fmt.Errorf("missing key %q", k)
		}
	}
	return h, nil
}

// str parses a quoted string without escapes, which NumPy never writes in
// the keys and dtypes this package accepts.
func (p *parser) str() (string, error) {
	p.skipSpace()
	if p.i >= len(p.s) || (p.s[p.i] != '\'' && p.s[p.i] != '"') {
		return "", p.unexpected("a string")
	}
	q := p.s[p.i]
	end := strings.IndexByte(p.s[p.i+1:], q)
	if end < 0 {
		return "", fmt.Errorf("unterminated string at offset %d", p.i)
	}
	v := p.s[p.i+1 : p.i+1+end]
	if strings.IndexByte(v, '\\') >= 0 {
		return "", fmt.Errorf("escapes in strings are not supported")
	}
	p.i += end + 2
	return v, nil
}

func (p *parser) boolean() (bool, error) {
	p.skipSpace()
	for _, w := range []string{"True", "False"} {
		if strings.HasPrefix(p.s[p.i:], w) {
			p.i += len(w)
			return w == "True", nil
		}
	}
	return false, p.unexpected("True or False")
}

// tuple parses a shape: (), (n,) or (n, m, ...) with an optional trailing
// comma.
func (p *parser) tuple() ([]int, error) {
	if err := p.expect('('); err != nil {
		return nil, err
	}
	shape := []int{}
	for !p.accept(')') {
		d, err := p.dim()
		if err != nil {
			return nil, err
		}
		if len(shape) == maxDims {
			return nil, fmt.Errorf("more than %d dimensions", maxDims)
		}
		shape = append(shape, d)
		if !p.accept(',') {
			if err := p.expect(')'); err != nil {
				return nil, err
			}
			break
		}
	}
	return shape, nil
}

func (p *parser) dim() (int, error) {
	p.skipSpace()
	start := p.i
	for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		p.i++
	}
	if start == p.i {
		return 0, p.unexpected("a dimension")
	}
	if p.s[start] == '0' && p.i-start > 1 {
		return 0, fmt.Errorf("dimension %s has a leading zero", clip(p.s[start:p.i]))
	}
	d, err := strconv.ParseInt(p.s[start:p.i], 10, 64)
	if err != nil || d > math.MaxInt32 {
		return 0, fmt.Errorf("dimension %s is too large", clip(p.s[start:p.i]))
	}
	return int(d), nil
}

// Write encodes a as little-endian float32 ('<f4'), format version 1.0.
// Values outside the float32 range become infinities.
func Write(w io.Writer, a *Array) error {
	return write(w, a, "<f4", 4, func(b []byte, v float64) {
		binary.LittleEndian.PutUint32(b, math.Float32bits(float32(v)))
	})
}

// WriteFloat64 encodes a as little-endian float64 ('<f8'), losslessly.
func WriteFloat64(w io.Writer, a *Array) error {
	return write(w, a, "<f8", 8, func(b []byte, v float64) {
		binary.LittleEndian.PutUint64(b, math.Float64bits(v))
	})
}

// WriteFile writes a to path as float32, like Write.
func WriteFile(path string, a *Array) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("npy: %w", err)
	}
	bw := bufio.NewWriter(f)
	if err := Write(bw, a); err != nil {
		f.Close()
		return err
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("npy: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("npy: %w", err)
	}
	return nil
}

func write(w io.Writer, a *Array, descr string, size int, put func([]byte, float64)) error {
	if err := a.validate(); err != nil {
		return err
	}
	if _, err := io.WriteString(w, encodeHeader(descr, a.Shape)); err != nil {
		return fmt.Errorf("npy: %w", err)
	}
	buf := make([]byte, chunkBytes)
	for data := a.Data; len(data) > 0; {
		n := min(len(data), len(buf)/size)
		for i, v := range data[:n] {
			put(buf[i*size:], v)
		}
		if _, err := w.Write(buf[:n*size]); err != nil {
			return fmt.Errorf("npy: %w", err)
		}
		data = data[n:]
	}
	return nil
}

func (a *Array) validate() error {
	if len(a.Shape) > maxDims {
		return invalid("%d dimensions, above the limit of %d", len(a.Shape), maxDims)
	}
	n := 1
	for _, d := range a.Shape {
		if d < 0 || d > math.MaxInt32 {
			return invalid("bad dimension %d in shape %v", d, a.Shape)
		}
		if d != 0 && n > math.MaxInt/d {
			return invalid("shape %v is too large", a.Shape)
		}
		n *= d
	}
	if n != len(a.Data) {
		return invalid("shape %v needs %d elements, have %d", a.Shape, n, len(a.Data))
	}
	return nil
}

// encodeHeader returns magic, version 1.0, length and the header dict
// padded with spaces so that the payload starts at a multiple of 64 bytes,
// as NumPy writes it.
func encodeHeader(descr string, shape []int) string {
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = strconv.Itoa(d)
	}
	tuple := "(" + strings.Join(dims, ", ") + ")"
	if len(shape) == 1 {
		tuple = "(" + dims[0] + ",)"
	}
	dict := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, tuple)
	total := len(magic) + 4 + len(dict) + 1
	pad := (64 - total%64) % 64
	n := len(dict) + pad + 1
	return magic + "\x01\x00" + string([]byte{byte(n), byte(n >> 8)}) + dict + strings.Repeat(" ", pad) + "\n"
}
