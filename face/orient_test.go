package face

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/jpeg"
	"testing"
)

// withOrientation returns a JPEG with an EXIF block (big-endian TIFF, one
// entry) saying orientation o, inserted after the start marker.
func withOrientation(jpg []byte, o int) []byte {
	tiff := []byte("MM\x00\x2a\x00\x00\x00\x08")
	tiff = binary.BigEndian.AppendUint16(tiff, 1)
	tiff = binary.BigEndian.AppendUint16(tiff, 0x0112)
	tiff = binary.BigEndian.AppendUint16(tiff, 3)
	tiff = binary.BigEndian.AppendUint32(tiff, 1)
	tiff = binary.BigEndian.AppendUint16(tiff, uint16(o))
	tiff = append(tiff, 0, 0, 0, 0, 0, 0) // value padding, next directory 0
	seg := append([]byte("Exif\x00\x00"), tiff...)
	app1 := []byte{0xFF, 0xE1}
	app1 = binary.BigEndian.AppendUint16(app1, uint16(len(seg)+2))
	app1 = append(app1, seg...)
	return append(append(append([]byte{}, jpg[:2]...), app1...), jpg[2:]...)
}

// TestDecodeImageOrientation encodes a 32 x 16 grey image of four flat
// quarters (a b over c d) and checks, for each EXIF orientation, which
// quarter lands where and the size, as the EXIF specification draws them.
func TestDecodeImageOrientation(t *testing.T) {
	const a, b, c, d = 0, 250, 120, 60
	src := image.NewGray(image.Rect(0, 0, 32, 16))
	for y := range 16 {
		for x := range 32 {
			v := [2][2]uint8{{a, b}, {c, d}}[y/8][x/16]
			src.SetGray(x, y, color.Gray{Y: v})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, src, &jpeg.Options{Quality: 100}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		o              int
		tl, tr, bl, br uint8
	}{
		{1, a, b, c, d}, {2, b, a, d, c}, {3, d, c, b, a}, {4, c, d, a, b},
		{5, a, c, b, d}, {6, c, a, d, b}, {7, d, b, c, a}, {8, b, d, a, c},
	}
	for _, tt := range tests {
		img, err := DecodeImage(bytes.NewReader(withOrientation(buf.Bytes(), tt.o)))
		if err != nil {
			t.Fatalf("orientation %d: %v", tt.o, err)
		}
		w, h := 32, 16
		if tt.o >= 5 {
			w, h = 16, 32
		}
		if img.Width != w || img.Height != h {
			t.Fatalf("orientation %d: %d x %d, want %d x %d", tt.o, img.Width, img.Height, w, h)
		}
		at := func(x, y int) uint8 { return img.Pix[(y*w+x)*3] }
		got := [4]uint8{at(w/4, h/4), at(3*w/4, h/4), at(w/4, 3*h/4), at(3*w/4, 3*h/4)}
		want := [4]uint8{tt.tl, tt.tr, tt.bl, tt.br}
		for i := range got {
			if diff := int(got[i]) - int(want[i]); diff < -3 || diff > 3 {
				t.Errorf("orientation %d: quarters %v, want %v", tt.o, got, want)
				break
			}
		}
	}
}

// FuzzExifOrientation: reading the orientation of any bytes never panics
// and gives 1 to 8.
func FuzzExifOrientation(f *testing.F) {
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x08, 'E', 'x', 'i', 'f', 0, 0})
	f.Add(withOrientation([]byte{0xFF, 0xD8, 0xFF, 0xD9}, 6))
	f.Fuzz(func(t *testing.T, b []byte) {
		if o := exifOrientation(b); o < 1 || o > 8 {
			t.Fatalf("orientation %d", o)
		}
	})
}
