//go:build !purego

#include "textflag.h"

// Both kernels sum, for each of n coefficients (n a multiple of 32), the
// products x_j[t] * w_j over the terms j with AVX-512 IFMA: VPMADD52LUQ
// adds the low 52 bits of a 52x52-bit product to a 64-bit lane,
// VPMADD52HUQ its high 52 bits. Each pass keeps 32 coefficients' sums in
// registers over all terms, so the accumulators are written once. Term j
// reads the coefficients from byte off on of input cols[j], whose first
// coefficient is at ins[cols[j]].
//
// Registers: SI cols, R8 terms, R13 ins, DI w, DX the inputs' byte
// offset, BX the accumulators' byte offset, R10 their length in bytes,
// R9 lo, R11 hi or mid, R12 top; Z0-Z3 lo, Z4-Z7 hi or mid, Z20-Z23 top,
// Z8 the weight, Z9-Z12 32 coefficients of x, Z13-Z16 their top bits.

// ARGS loads the arguments common to both kernels.
#define ARGS \
	MOVQ cols_base+0(FP), SI \
	MOVQ cols_len+8(FP), R8 \
	MOVQ ins_base+24(FP), R13 \
	MOVQ off+48(FP), DX \
	MOVQ w_base+56(FP), DI \
	MOVQ lo_base+80(FP), R9 \
	MOVQ lo_len+88(FP), R10 \
	SHLQ $3, R10 \
	XORQ BX, BX

// ZERO4 zeroes four registers; STORE4 writes four to the accumulators at
// R, from byte BX on.
#define ZERO4(a, b, c, d) \
	VPXORQ a, a, a \
	VPXORQ b, b, b \
	VPXORQ c, c, c \
	VPXORQ d, d, d

#define STORE4(a, b, c, d, R) \
	VMOVDQU64 a, (R)(BX*1) \
	VMOVDQU64 b, 64(R)(BX*1) \
	VMOVDQU64 c, 128(R)(BX*1) \
	VMOVDQU64 d, 192(R)(BX*1)

// ZERO zeroes the low and high accumulators and the term index.
#define ZERO \
	ZERO4(Z0, Z1, Z2, Z3) \
	ZERO4(Z4, Z5, Z6, Z7) \
	XORQ CX, CX

// LOADMUL loads term CX's weight and 32 coefficients and adds the low and
// high halves of their products (of the coefficients' low 52 bits).
#define LOADMUL \
	MOVQ         (SI)(CX*8), AX \
	MOVQ         (R13)(AX*8), AX \
	VPBROADCASTQ (DI)(CX*8), Z8 \
	VMOVDQU64    (AX)(DX*1), Z9 \
	VMOVDQU64    64(AX)(DX*1), Z10 \
	VMOVDQU64    128(AX)(DX*1), Z11 \
	VMOVDQU64    192(AX)(DX*1), Z12 \
	VPMADD52LUQ  Z8, Z9, Z0 \
	VPMADD52HUQ  Z8, Z9, Z4 \
	VPMADD52LUQ  Z8, Z10, Z1 \
	VPMADD52HUQ  Z8, Z10, Z5 \
	VPMADD52LUQ  Z8, Z11, Z2 \
	VPMADD52HUQ  Z8, Z11, Z6 \
	VPMADD52LUQ  Z8, Z12, Z3 \
	VPMADD52HUQ  Z8, Z12, Z7

// STORE writes the low and high accumulators and moves to the next 32
// coefficients.
#define STORE \
	STORE4(Z0, Z1, Z2, Z3, R9) \
	STORE4(Z4, Z5, Z6, Z7, R11)

// func mac52(cols []int, ins []unsafe.Pointer, off int, w []uint64, lo, hi []uint64)
// x_j[t] and w_j below 2^52: sum = lo + hi*2^52.
TEXT ·mac52(SB), NOSPLIT, $0-128
	ARGS
	MOVQ hi_base+104(FP), R11

block52:
	CMPQ BX, R10
	JGE  done52
	ZERO

term52:
	LOADMUL
	INCQ CX
	CMPQ CX, R8
	JLT  term52
	STORE
	ADDQ $256, DX
	ADDQ $256, BX
	JMP  block52

done52:
	VZEROUPPER
	RET

// func mac64(cols []int, ins []unsafe.Pointer, off int, w []uint64, lo, mid, top []uint64)
// x_j[t] below 2^64, w_j below 2^52: with x = x0 + x1*2^52 (x0 the low 52
// bits), sum = lo + mid*2^52 + top*2^104, where lo sums the low halves of
// x0*w, mid the high halves of x0*w and the low halves of x1*w, and top
// the high halves of x1*w.
TEXT ·mac64(SB), NOSPLIT, $0-152
	ARGS
	MOVQ mid_base+104(FP), R11
	MOVQ top_base+128(FP), R12

block64:
	CMPQ   BX, R10
	JGE    done64
	ZERO
	ZERO4(Z20, Z21, Z22, Z23)

term64:
	LOADMUL
	VPSRLQ      $52, Z9, Z13
	VPSRLQ      $52, Z10, Z14
	VPSRLQ      $52, Z11, Z15
	VPSRLQ      $52, Z12, Z16
	VPMADD52LUQ Z8, Z13, Z4
	VPMADD52HUQ Z8, Z13, Z20
	VPMADD52LUQ Z8, Z14, Z5
	VPMADD52HUQ Z8, Z14, Z21
	VPMADD52LUQ Z8, Z15, Z6
	VPMADD52HUQ Z8, Z15, Z22
	VPMADD52LUQ Z8, Z16, Z7
	VPMADD52HUQ Z8, Z16, Z23
	INCQ        CX
	CMPQ        CX, R8
	JLT         term64
	STORE
	STORE4(Z20, Z21, Z22, Z23, R12)
	ADDQ        $256, DX
	ADDQ        $256, BX
	JMP         block64

done64:
	VZEROUPPER
	RET

// func mac52x2(cols []int, ins []unsafe.Pointer, off int, w, v []uint64, lo, hi, lo2, hi2 []uint64)
// mac52 for two rows with the same columns, weights w and v, sharing the
// loads of the inputs: the second row's sums go to Z12-Z19, lo2 and hi2.
TEXT ·mac52x2(SB), NOSPLIT, $0-200
	MOVQ cols_base+0(FP), SI
	MOVQ cols_len+8(FP), R8
	MOVQ ins_base+24(FP), R13
	MOVQ off+48(FP), DX
	MOVQ w_base+56(FP), DI
	MOVQ v_base+80(FP), R14
	MOVQ lo_base+104(FP), R9
	MOVQ lo_len+112(FP), R10
	MOVQ hi_base+128(FP), R11
	MOVQ lo2_base+152(FP), R12
	SHLQ $3, R10
	XORQ BX, BX

block52x2:
	CMPQ   BX, R10
	JGE    done52x2
	ZERO
	ZERO4(Z12, Z13, Z14, Z15)
	ZERO4(Z16, Z17, Z18, Z19)

term52x2:
	MOVQ         (SI)(CX*8), AX
	MOVQ         (R13)(AX*8), AX
	VPBROADCASTQ (DI)(CX*8), Z8
	VPBROADCASTQ (R14)(CX*8), Z24
	VMOVDQU64    (AX)(DX*1), Z9
	VMOVDQU64    64(AX)(DX*1), Z10
	VMOVDQU64    128(AX)(DX*1), Z11
	VMOVDQU64    192(AX)(DX*1), Z25
	VPMADD52LUQ  Z8, Z9, Z0
	VPMADD52HUQ  Z8, Z9, Z4
	VPMADD52LUQ  Z8, Z10, Z1
	VPMADD52HUQ  Z8, Z10, Z5
	VPMADD52LUQ  Z8, Z11, Z2
	VPMADD52HUQ  Z8, Z11, Z6
	VPMADD52LUQ  Z8, Z25, Z3
	VPMADD52HUQ  Z8, Z25, Z7
	VPMADD52LUQ  Z24, Z9, Z12
	VPMADD52HUQ  Z24, Z9, Z16
	VPMADD52LUQ  Z24, Z10, Z13
	VPMADD52HUQ  Z24, Z10, Z17
	VPMADD52LUQ  Z24, Z11, Z14
	VPMADD52HUQ  Z24, Z11, Z18
	VPMADD52LUQ  Z24, Z25, Z15
	VPMADD52HUQ  Z24, Z25, Z19
	INCQ         CX
	CMPQ         CX, R8
	JLT          term52x2
	STORE
	STORE4(Z12, Z13, Z14, Z15, R12)
	MOVQ         hi2_base+176(FP), AX
	STORE4(Z16, Z17, Z18, Z19, AX)
	ADDQ         $256, DX
	ADDQ         $256, BX
	JMP          block52x2

done52x2:
	VZEROUPPER
	RET
