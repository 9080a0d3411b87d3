//go:build !amd64 || purego

package server

import "unsafe"

// hasMAC is false: the vector kernels are amd64 assembly.
const hasMAC = false

func mac52(cols []int, ins []unsafe.Pointer, off int, w []uint64, lo, hi []uint64) {
	panic("server: mac52 without AVX-512 IFMA")
}

func mac64(cols []int, ins []unsafe.Pointer, off int, w []uint64, lo, mid, top []uint64) {
	panic("server: mac64 without AVX-512 IFMA")
}

func mac52x2(cols []int, ins []unsafe.Pointer, off int, w, v []uint64, lo, hi, lo2, hi2 []uint64) {
	panic("server: mac52x2 without AVX-512 IFMA")
}
