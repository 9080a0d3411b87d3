//go:build !purego

package he

import "golang.org/x/sys/cpu"

var hasXOF8 = cpu.X86.HasAVX512F

// xof8 computes eight BLAKE2Xb output blocks (xof_amd64.s).
//
//go:noescape
func xof8(p *[16 + 12*16]uint64, h1 *[8]uint64, out *[8][8]uint64)
