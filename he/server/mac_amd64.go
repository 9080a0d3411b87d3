//go:build !purego

package server

import (
	"unsafe"

	"golang.org/x/sys/cpu"
)

// hasMAC: the CPU has the AVX-512 IFMA instructions of mac52 and mac64.
var hasMAC = cpu.X86.HasAVX512F && cpu.X86.HasAVX512IFMA

// mac52 writes into lo and hi, for each coefficient t (len(lo) a multiple
// of 32), sum_j x_j[t]*w[j] = lo[t] + hi[t]*2^52, x_j being the
// coefficients from byte off on of the input at ins[cols[j]], for values
// and weights below 2^52 and 1 to 4,096 terms (mac_amd64.s).
//
//go:noescape
func mac52(cols []int, ins []unsafe.Pointer, off int, w []uint64, lo, hi []uint64)

// mac64 is mac52 for values below 2^64 (weights still below 2^52, 1 to
// 2,048 terms): sum = lo[t] + mid[t]*2^52 + top[t]*2^104 (mac_amd64.s).
//
//go:noescape
func mac64(cols []int, ins []unsafe.Pointer, off int, w []uint64, lo, mid, top []uint64)

// mac52x2 is mac52 for two rows with the same columns, weights w and v,
// sums in lo, hi and lo2, hi2: each input is loaded once for both.
//
//go:noescape
func mac52x2(cols []int, ins []unsafe.Pointer, off int, w, v []uint64, lo, hi, lo2, hi2 []uint64)
