//go:build !purego

#include "textflag.h"

// func xof8(p *[208]uint64, h1 *[8]uint64, out *[8][8]uint64)
//
// Eight BLAKE2b compressions that differ only in the state word h[1] (one
// per 64-bit lane). Z0-Z15 are the working vector v0-v15 of all eight, Z16
// their h[1]; p holds h (h[1] ignored), v8-v15, then the message words of
// the 12 rounds in the order G reads them (16 per round, broadcast to the
// lanes); out[j] gets word j of the eight results.

// HALF is half of BLAKE2b's mixing function G on four vectors of lanes,
// with the message word at byte offset m of SI and rotations r1 and r2.
#define HALF(a, b, c, d, m, r1, r2) \
	VPADDQ b, a, a \
	VPADDQ.BCST m(SI), a, a \
	VPXORQ a, d, d \
	VPRORQ $r1, d, d \
	VPADDQ d, c, c \
	VPXORQ c, b, b \
	VPRORQ $r2, b, b

#define G(a, b, c, d, mx, my) \
	HALF(a, b, c, d, mx, 32, 24) \
	HALF(a, b, c, d, my, 16, 63)

// FINAL writes word j of the results: h_j ^ v_j ^ v_(j+8).
#define FINAL(vj, vj8, j) \
	VPXORQ vj8, vj, vj \
	VPXORQ.BCST (8*j)(AX), vj, vj \
	VMOVDQU64 vj, (64*j)(DI)

TEXT ·xof8(SB), NOSPLIT, $0-24
	MOVQ p+0(FP), AX
	MOVQ h1+8(FP), BX
	MOVQ out+16(FP), DI
	VMOVDQU64 (BX), Z16
	VPBROADCASTQ 0(AX), Z0
	VMOVDQA64 Z16, Z1
	VPBROADCASTQ 16(AX), Z2
	VPBROADCASTQ 24(AX), Z3
	VPBROADCASTQ 32(AX), Z4
	VPBROADCASTQ 40(AX), Z5
	VPBROADCASTQ 48(AX), Z6
	VPBROADCASTQ 56(AX), Z7
	VPBROADCASTQ 64(AX), Z8
	VPBROADCASTQ 72(AX), Z9
	VPBROADCASTQ 80(AX), Z10
	VPBROADCASTQ 88(AX), Z11
	VPBROADCASTQ 96(AX), Z12
	VPBROADCASTQ 104(AX), Z13
	VPBROADCASTQ 112(AX), Z14
	VPBROADCASTQ 120(AX), Z15
	LEAQ 128(AX), SI
	MOVQ $12, CX

round:
	G(Z0, Z4, Z8, Z12, 0, 8)
	G(Z1, Z5, Z9, Z13, 16, 24)
	G(Z2, Z6, Z10, Z14, 32, 40)
	G(Z3, Z7, Z11, Z15, 48, 56)
	G(Z0, Z5, Z10, Z15, 64, 72)
	G(Z1, Z6, Z11, Z12, 80, 88)
	G(Z2, Z7, Z8, Z13, 96, 104)
	G(Z3, Z4, Z9, Z14, 112, 120)
	ADDQ $128, SI
	DECQ CX
	JNZ  round

	FINAL(Z0, Z8, 0)
	VPXORQ Z9, Z1, Z1
	VPXORQ Z16, Z1, Z1
	VMOVDQU64 Z1, 64(DI)
	FINAL(Z2, Z10, 2)
	FINAL(Z3, Z11, 3)
	FINAL(Z4, Z12, 4)
	FINAL(Z5, Z13, 5)
	FINAL(Z6, Z14, 6)
	FINAL(Z7, Z15, 7)
	VZEROUPPER
	RET
