package face

import "encoding/binary"

// exifOrientation returns a JPEG's EXIF orientation, 1 to 8, or 1 when it
// has none or it cannot be read. Browsers show a photo turned as it says,
// so face-api in a page sees it that way: DecodeImage turns it too.
func exifOrientation(b []byte) int {
	if len(b) < 4 || b[0] != 0xFF || b[1] != 0xD8 {
		return 1
	}
	for i := 2; i+4 <= len(b); {
		if b[i] != 0xFF {
			return 1
		}
		marker := b[i+1]
		if marker == 0xDA || marker == 0xD9 { // image data: no more metadata
			return 1
		}
		n := int(binary.BigEndian.Uint16(b[i+2:]))
		if n < 2 || i+2+n > len(b) {
			return 1
		}
		seg := b[i+4 : i+2+n]
		if marker == 0xE1 && len(seg) > 6 && string(seg[:6]) == "Exif\x00\x00" {
			return tiffOrientation(seg[6:])
		}
		i += 2 + n
	}
	return 1
}

// tiffOrientation reads tag 0x0112 of a TIFF header's first directory.
func tiffOrientation(t []byte) int {
	if len(t) < 8 {
		return 1
	}
	var order binary.ByteOrder
	switch string(t[:2]) {
	case "II":
		order = binary.LittleEndian
	case "MM":
		order = binary.BigEndian
	default:
		return 1
	}
	off := int(order.Uint32(t[4:]))
	if off < 8 || off+2 > len(t) {
		return 1
	}
	entries := int(order.Uint16(t[off:]))
	for k := range entries {
		e := off + 2 + 12*k
		if e+12 > len(t) {
			return 1
		}
		if order.Uint16(t[e:]) == 0x0112 && order.Uint16(t[e+2:]) == 3 { // SHORT
			if v := int(order.Uint16(t[e+8:])); v >= 1 && v <= 8 {
				return v
			}
			return 1
		}
	}
	return 1
}

// orient returns img turned and flipped as EXIF orientation o says it is
// to be shown.
func orient(img *Image, o int) *Image {
	if o <= 1 || o > 8 {
		return img
	}
	w, h := img.Width, img.Height
	out := &Image{Width: w, Height: h, Pix: make([]uint8, len(img.Pix))}
	if o >= 5 { // the four that swap rows and columns
		out.Width, out.Height = h, w
	}
	for y := range out.Height {
		for x := range out.Width {
			var sx, sy int
			switch o {
			case 2: // mirrored
				sx, sy = w-1-x, y
			case 3: // turned half a turn
				sx, sy = w-1-x, h-1-y
			case 4: // upside down mirrored
				sx, sy = x, h-1-y
			case 5: // transposed
				sx, sy = y, x
			case 6: // to be turned a quarter clockwise
				sx, sy = y, h-1-x
			case 7: // transverse
				sx, sy = w-1-y, h-1-x
			case 8: // to be turned a quarter counter-clockwise
				sx, sy = w-1-y, x
			}
			copy(out.Pix[(y*out.Width+x)*3:][:3], img.Pix[(sy*w+sx)*3:])
		}
	}
	return out
}
