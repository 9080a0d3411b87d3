//go:build !amd64 || purego

package he

const hasXOF8 = false

func xof8(p *[16 + 12*16]uint64, h1 *[8]uint64, out *[8][8]uint64) { panic("he: xof8 needs AVX-512") }
