//go:build !amd64 || purego

package server

import "unsafe"

// hasMAC is false: the vector kernels are amd64 assembly.
const hasMAC = false

func mac52(xs []unsafe.Pointer, w []uint64, lo, hi []uint64) {
	panic("server: mac52 without AVX-512 IFMA")
}

func mac64(xs []unsafe.Pointer, w []uint64, lo, mid, top []uint64) {
	panic("server: mac64 without AVX-512 IFMA")
}
