package npy_test

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/internal/allocs"
	"github.com/fheserve/fheserve/npy"
)

// Files in testdata were written by NumPy 1.24 (np.save and
// np.lib.format.write_array).
func TestReadNumPyFiles(t *testing.T) {
	f32 := func(v float64) float64 { return float64(float32(v)) }
	tests := []struct {
		name string
		want *npy.Array
	}{
		{"f4", &npy.Array{Shape: []int{2, 3}, Data: []float64{1.5, -2.25, 3, 0, f32(1e-3), -7}}},
		{"f8", &npy.Array{Shape: []int{4}, Data: []float64{0.1, -0.2, 1e300, math.Copysign(0, -1)}}},
		{"i8", &npy.Array{Shape: []int{5}, Data: []float64{0, 1, 9, -3, 1 << 40}}},
		{"i1", &npy.Array{Shape: []int{3}, Data: []float64{-128, 127, 0}}},
		{"u1", &npy.Array{Shape: []int{2, 3}, Data: []float64{0, 51, 102, 153, 204, 255}}},
		{"scalar", &npy.Array{Shape: []int{}, Data: []float64{3.5}}},
		{"empty", &npy.Array{Shape: []int{2, 0, 3}, Data: []float64{}}},
		{"v2", &npy.Array{Shape: []int{4}, Data: []float64{0, 1, 2, 3}}},
		{"v3", &npy.Array{Shape: []int{3}, Data: []float64{0, 1, 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := npy.ReadFile(filepath.Join("testdata", tt.name+".npy"))
			if err != nil {
				t.Fatal(err)
			}
			mustEqual(t, got, tt.want)
		})
	}
}

// Write must produce the bytes NumPy itself writes, so that files we hand
// out look native.
func TestWriteMatchesNumPy(t *testing.T) {
	tests := []struct {
		name  string
		write func(*bytes.Buffer, *npy.Array) error
	}{
		{"f4", func(b *bytes.Buffer, a *npy.Array) error { return npy.Write(b, a) }},
		{"scalar", func(b *bytes.Buffer, a *npy.Array) error { return npy.Write(b, a) }},
		{"empty", func(b *bytes.Buffer, a *npy.Array) error { return npy.Write(b, a) }},
		{"f8", func(b *bytes.Buffer, a *npy.Array) error { return npy.WriteFloat64(b, a) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join("testdata", tt.name+".npy")
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			a := mustRead(t, want)
			var b bytes.Buffer
			if err := tt.write(&b, a); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b.Bytes(), want) {
				t.Errorf("wrote\n%q\nNumPy wrote\n%q", b.Bytes(), want)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	big := &npy.Array{Shape: []int{3, 100, 100}, Data: make([]float64, 30000)}
	for i := range big.Data {
		big.Data[i] = float64(i%977) - 400.5
	}
	tests := []struct {
		name string
		a    *npy.Array
	}{
		{"scalar", &npy.Array{Shape: []int{}, Data: []float64{-1}}},
		{"vector", &npy.Array{Shape: []int{3}, Data: []float64{1, 2.5, -3}}},
		{"zero dim", &npy.Array{Shape: []int{0, 5}, Data: []float64{}}},
		{"specials", &npy.Array{Shape: []int{1, 4}, Data: []float64{math.Inf(1), math.Inf(-1), math.NaN(), 0}}},
		{"larger than one chunk", big},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := npy.Write(&b, tt.a); err != nil {
				t.Fatal(err)
			}
			if b.Len()%64 != 4*len(tt.a.Data)%64 {
				t.Errorf("payload does not start at a multiple of 64 bytes")
			}
			mustEqual(t, mustRead(t, b.Bytes()), tt.a)

			b.Reset()
			if err := npy.WriteFloat64(&b, tt.a); err != nil {
				t.Fatal(err)
			}
			mustEqual(t, mustRead(t, b.Bytes()), tt.a)
		})
	}
}

func TestWriteFileReadFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.npy")
	a := &npy.Array{Shape: []int{2, 2}, Data: []float64{1, 2, 3, 4}}
	if err := npy.WriteFile(path, a); err != nil {
		t.Fatal(err)
	}
	got, err := npy.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, got, a)
}

func TestWriteInvalid(t *testing.T) {
	tests := []struct {
		name string
		a    *npy.Array
	}{
		{"too few elements", &npy.Array{Shape: []int{2, 2}, Data: []float64{1}}},
		{"too many elements", &npy.Array{Shape: []int{1}, Data: []float64{1, 2}}},
		{"negative dimension", &npy.Array{Shape: []int{-1}, Data: nil}},
		{"overflow", &npy.Array{Shape: []int{1 << 30, 1 << 30, 1 << 30}, Data: nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := npy.Write(&bytes.Buffer{}, tt.a)
			if code := fheserve.ErrorCode(err); code != fheserve.EINVALID {
				t.Fatalf("err = %v (code %q), want code %q", err, code, fheserve.EINVALID)
			}
		})
	}
}

// header builds a version 1.0 file from a header dict and payload.
func header(dict string, payload ...byte) []byte {
	b := []byte("\x93NUMPY\x01\x00")
	b = binary.LittleEndian.AppendUint16(b, uint16(len(dict)+1))
	b = append(b, dict+"\n"...)
	return append(b, payload...)
}

func TestReadHeaders(t *testing.T) {
	f4 := func(vs ...float32) []byte {
		var b []byte
		for _, v := range vs {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		}
		return b
	}
	tests := []struct {
		name string
		file []byte
		want *npy.Array
	}{
		{"double quotes and no spaces", header(`{"descr":"<f4","fortran_order":False,"shape":(2,)}`, f4(1, 2)...),
			&npy.Array{Shape: []int{2}, Data: []float64{1, 2}}},
		{"keys in any order", header(`{'shape': (1, 1), 'descr': '<f4', 'fortran_order': False}`, f4(7)...),
			&npy.Array{Shape: []int{1, 1}, Data: []float64{7}}},
		{"trailing comma in shape", header(`{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2,), }`, f4(1, 2)...),
			&npy.Array{Shape: []int{1, 2}, Data: []float64{1, 2}}},
		{"i2", header(`{'descr': '<i2', 'fortran_order': False, 'shape': (2,), }`, 0xff, 0xff, 0x02, 0x01),
			&npy.Array{Shape: []int{2}, Data: []float64{-1, 258}}},
		{"i4", header(`{'descr': '<i4', 'fortran_order': False, 'shape': (1,), }`, 0xfe, 0xff, 0xff, 0xff),
			&npy.Array{Shape: []int{1}, Data: []float64{-2}}},
		{"<u1", header(`{'descr': '<u1', 'fortran_order': False, 'shape': (1,), }`, 200),
			&npy.Array{Shape: []int{1}, Data: []float64{200}}},
		{"|i1", header(`{'descr': '|i1', 'fortran_order': False, 'shape': (1,), }`, 200),
			&npy.Array{Shape: []int{1}, Data: []float64{-56}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustEqual(t, mustRead(t, tt.file), tt.want)
		})
	}
}

func TestReadErrors(t *testing.T) {
	fortran, err := os.ReadFile(filepath.Join("testdata", "fortran.npy"))
	if err != nil {
		t.Fatal(err)
	}
	bigEndian, err := os.ReadFile(filepath.Join("testdata", "big.npy"))
	if err != nil {
		t.Fatal(err)
	}
	ok := `{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }`
	tests := []struct {
		name     string
		file     []byte
		maxBytes int64
		code     string
		msg      string
	}{
		{"empty", nil, 100, fheserve.EINVALID, "too short"},
		{"bad magic", []byte("\x93NUMPX\x01\x00\x00\x00"), 100, fheserve.EINVALID, "bad magic"},
		{"version", []byte("\x93NUMPY\x04\x00\x00\x00"), 100, fheserve.EINVALID, "version 4.0"},
		{"truncated header", []byte("\x93NUMPY\x01\x00\x50\x00{'descr'"), 100, fheserve.EINVALID, "truncated header"},
		{"huge header", []byte("\x93NUMPY\x02\x00\xff\xff\xff\xff"), 100, fheserve.EINVALID, "header is"},
		{"fortran order", fortran, 100, fheserve.EINVALID, "fortran_order True"},
		{"big endian", bigEndian, 100, fheserve.EINVALID, `dtype ">f4"`},
		{"object", header(`{'descr': '|O', 'fortran_order': False, 'shape': (1,), }`, 0), 100, fheserve.EINVALID, "unsupported dtype"},
		{"structured", header(`{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }`), 100, fheserve.EINVALID, "structured"},
		{"missing key", header(`{'descr': '<f4', 'shape': (1,), }`, 0, 0, 0, 0), 100, fheserve.EINVALID, `missing key "fortran_order"`},
		{"unknown key", header(`{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}`), 100, fheserve.EINVALID, `unknown key "x"`},
		{"duplicate key", header(`{'descr': '<f4', 'descr': '<f4'}`), 100, fheserve.EINVALID, "duplicate"},
		{"leading zero", header(`{'descr': '<f4', 'fortran_order': False, 'shape': (01,), }`, 0, 0, 0, 0), 100, fheserve.EINVALID, "leading zero"},
		{"negative dim", header(`{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }`), 100, fheserve.EINVALID, "dimension"},
		{"python call", header(`{'descr': '<f4', 'fortran_order': False, 'shape': __import__('os'), }`), 100, fheserve.EINVALID, "want '('"},
		{"junk after dict", header(ok+" x", 0, 0, 0, 0), 100, fheserve.EINVALID, "after the dict"},
		{"unterminated", header(`{'descr`), 100, fheserve.EINVALID, "unterminated"},
		{"truncated payload", header(ok, 0, 0), 100, fheserve.EINVALID, "truncated"},
		{"trailing bytes", header(ok, 0, 0, 0, 0, 0), 100, fheserve.EINVALID, "longer than shape"},
		{"above limit", header(ok, 0, 0, 0, 0), 3, fheserve.ETOOLARGE, "above the limit of 3"},
		{"overflow", header(`{'descr': '<f8', 'fortran_order': False, 'shape': (2147483647, 2147483647, 2147483647), }`), 1 << 40, fheserve.ETOOLARGE, "too large"},
		{"huge dim", header(`{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999999,), }`), 1 << 40, fheserve.EINVALID, "too large"},
		{"lying header", header(`{'descr': '<f8', 'fortran_order': False, 'shape': (100000000,), }`, 1, 2, 3), 1 << 40, fheserve.EINVALID, "truncated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := npy.Read(bytes.NewReader(tt.file), tt.maxBytes)
			if err == nil {
				t.Fatalf("Read = %v, want error", a)
			}
			if code := fheserve.ErrorCode(err); code != tt.code {
				t.Errorf("code = %q, want %q (%v)", code, tt.code, err)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "npy: ") || !strings.Contains(msg, tt.msg) || strings.Contains(msg, "\n") {
				t.Errorf("message %q: want one line starting with \"npy: \" containing %q", msg, tt.msg)
			}
		})
	}
}

func TestReadFileNamesFile(t *testing.T) {
	path := filepath.Join("testdata", "fortran.npy")
	_, err := npy.ReadFile(path)
	if err == nil || !strings.HasPrefix(err.Error(), "npy: "+path+": fortran_order") {
		t.Errorf("err = %v, want it to name %s", err, path)
	}
	_, err = npy.ReadFile(filepath.Join(t.TempDir(), "missing.npy"))
	if fheserve.ErrorCode(err) != fheserve.EINVALID || !strings.Contains(err.Error(), "missing.npy") {
		t.Errorf("err = %v, want EINVALID naming the file", err)
	}
}

// FuzzRead checks that Read never panics, that it allocates at most
// fuzzReadBound, that what it accepts is consistent, and that it survives
// a lossless round trip.
func FuzzRead(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.npy"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var a *npy.Array
		var err error
		allocs.Bound(t, fuzzReadBound(len(b)), func() { a, err = npy.Read(bytes.NewReader(b), 1<<20) })
		if err != nil {
			if _, ok := err.(*fheserve.Error); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		if a.Size() != len(a.Data) {
			t.Fatalf("shape %v with %d elements", a.Shape, len(a.Data))
		}
		var out bytes.Buffer
		if err := npy.WriteFloat64(&out, a); err != nil {
			t.Fatalf("cannot write what was read: %v", err)
		}
		mustEqual(t, mustRead(t, out.Bytes()), a)
	})
}

// fuzzReadBound is the allocation FuzzRead allows Read for n bytes of
// input with a payload limit of 1 MiB: the payload as float64s (8 bytes
// for each 1-byte element at worst: 8 MiB), the raw payload (1 MiB), the
// header (its length field is read as is: at most 64 KiB, checked) and
// slack for the parser.
func fuzzReadBound(n int) uint64 { return 9<<20 + 64<<10 + 4*uint64(n) + 64<<10 }

func mustRead(tb testing.TB, b []byte) *npy.Array {
	tb.Helper()
	a, err := npy.Read(bytes.NewReader(b), 1<<30)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

// mustEqual compares bit patterns, so that NaNs and signed zeros count.
func mustEqual(tb testing.TB, got, want *npy.Array) {
	tb.Helper()
	if !reflect.DeepEqual(got.Shape, want.Shape) {
		tb.Fatalf("shape = %#v, want %#v", got.Shape, want.Shape)
	}
	if len(got.Data) != len(want.Data) {
		tb.Fatalf("%d elements, want %d", len(got.Data), len(want.Data))
	}
	for i := range got.Data {
		g, w := got.Data[i], want.Data[i]
		if math.Float64bits(g) != math.Float64bits(w) && !(math.IsNaN(g) && math.IsNaN(w)) {
			tb.Fatalf("element %d = %v, want %v", i, g, w)
		}
	}
}
