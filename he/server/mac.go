package server

import (
	"math/bits"
	"slices"
	"unsafe"

	"github.com/fheserve/fheserve/plan"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/ring"
)

// The batch linear maps' products on the vector kernels (mac52, mac64):
// 8 coefficients per instruction where mulAcc does one. A prime below
// 2^52 takes its weights' residues; a wider one (q0 is 60 bits) takes
// their absolute values, which must be below 2^52, positive and negative
// terms summed apart.

// useMAC: batch linear maps use the vector kernels (tests turn it off to
// compare with mulAcc).
var useMAC = hasMAC

// macChunk is how many coefficients of every input the vector kernels
// sum at a time for all rows: the inputs' chunks (720 inputs of the cnn's
// dense layer: 360 KB) stay in the core's second-level cache while every
// row reads them.
var macChunk = 64

// macLimit52 and macLimit64 are the most terms one call of mac52 and
// mac64 sums without overflowing its accumulators (2^64 over 2^52 per
// term; mac64's mid takes two such halves per term).
const (
	macLimit52 = 1 << 12
	macLimit64 = 1 << 11
)

// macPrime holds what reducing the kernels' sums modulo q takes.
type macPrime struct {
	q         uint64
	bred      uint64 // floor(2^128/q) / 2^64, Barrett's constant
	mred      uint64 // -1/q mod 2^64, Montgomery's
	c52, c104 uint64 // 2^52 and 2^104 mod q, in Montgomery form
}

func newMacPrime(q uint64) *macPrime {
	bred := ring.GenBRedConstant(q)
	c52 := ring.BRedAdd(1<<52, q, bred)
	c104 := ring.BRed(c52, c52, q, bred)
	return &macPrime{q: q, bred: bred[0], mred: ring.GenMRedConstant(q),
		c52: ring.MForm(c52, q, bred), c104: ring.MForm(c104, q, bred)}
}

// The reductions below are Lattigo's lazy Barrett (BRedAddLazy, below
// 2q) and Montgomery (MRedLazy, below 2q) steps written out so that they
// inline, summed (below 6q < 2^64 for the primes up to 61 bits of the
// engine) and reduced once (BRedAdd).

// lazy returns a value congruent to a mod q, below 2q.
func (p *macPrime) lazy(a uint64) uint64 {
	s, _ := bits.Mul64(a, p.bred)
	return a - s*p.q
}

// lazyMul returns a value congruent to a*c*2^-64 mod q, below 2q, for c
// below q.
func (p *macPrime) lazyMul(a, c uint64) uint64 {
	h, l := bits.Mul64(a, c)
	m, _ := bits.Mul64(l*p.mred, p.q)
	return h - m + p.q
}

// final returns a mod q.
func (p *macPrime) final(a uint64) uint64 {
	if a = p.lazy(a); a >= p.q {
		a -= p.q
	}
	return a
}

// macRow is one row of a batch linear map as the vector kernels take it.
type macRow struct {
	// w: per prime below 2^52, the weights' residues (the row's
	// columns in order); nil for wider primes.
	w [][]uint64
	// pos, neg: the columns of the positive and negative weights, and
	// posW, negW their absolute values, for wider primes.
	pos, neg   []int
	posW, negW []uint64
}

// macRows lays out the weights of every row for the vector kernels, from
// their residues (rows, nl primes) and integers (ints).
func macRows(s *plan.Step, rows [][]uint64, ints [][]int64, sub []*ring.SubRing) []macRow {
	nl := len(sub)
	out := make([]macRow, len(rows))
	for r := range out {
		cols, _ := s.M.Row(r)
		row := &out[r]
		row.w = make([][]uint64, nl)
		for i := range nl {
			if sub[i].Modulus >= 1<<52 {
				continue
			}
			row.w[i] = make([]uint64, len(cols))
			for j := range cols {
				row.w[i][j] = rows[r][j*nl+i]
			}
		}
		for j, c := range cols {
			switch v := ints[r][j]; {
			case v > 0:
				row.pos, row.posW = append(row.pos, c), append(row.posW, uint64(v))
			case v < 0:
				row.neg, row.negW = append(row.neg, c), append(row.negW, uint64(-v))
			}
		}
	}
	return out
}

// vecProducts is batchProducts' task for prime i, polynomial k and
// coefficients [a, b) on the vector kernels; the caller checks that they
// run here and that b-a is a multiple of 32 (and of macChunk, if larger).
func (e *Evaluator) vecProducts(s *plan.Step, st *prepared, x, out []*rlwe.Ciphertext, i, k, a, b int) {
	p := newMacPrime(e.m.params.RingQ().SubRings[i].Modulus)
	wide := p.q >= 1<<52
	ins := make([]unsafe.Pointer, len(x))
	for c := range x {
		ins[c] = unsafe.Pointer(&x[c].Value[k].Coeffs[i][0])
	}
	n := min(b-a, macChunk)
	acc, acc2 := make([]uint64, 3*n), make([]uint64, 2*n)
	for a := a; a < b; a += macChunk {
		b := min(a+macChunk, b)
		lo, mid, top := acc[:b-a], acc[n:n+b-a], acc[2*n:2*n+b-a]
		for r := 0; r < len(out); r++ {
			o := out[r].Value[k].Coeffs[i][a:b]
			clear(o)
			row := &st.mac[r]
			if !wide {
				cols, _ := s.M.Row(r)
				if r+1 < len(out) && len(cols) <= macLimit52 && slices.Equal(cols, colsOf(s, r+1)) {
					// Dense rows, two at a time.
					o2 := out[r+1].Value[k].Coeffs[i][a:b]
					mac52x2(cols, ins, a*8, row.w[i], st.mac[r+1].w[i], lo, mid, acc2[:b-a], acc2[n:n+b-a])
					for t := range o {
						o[t] = p.final(p.lazy(lo[t]) + p.lazyMul(mid[t], p.c52))
						o2[t] = p.final(p.lazy(acc2[t]) + p.lazyMul(acc2[n+t], p.c52))
					}
					r++
					continue
				}
				macInto(o, cols, ins, a*8, row.w[i], lo, mid, nil, p, false)
				continue
			}
			macInto(o, row.pos, ins, a*8, row.posW, lo, mid, top, p, false)
			macInto(o, row.neg, ins, a*8, row.negW, lo, mid, top, p, true)
		}
	}
}

func colsOf(s *plan.Step, r int) []int {
	cols, _ := s.M.Row(r)
	return cols
}

// macInto adds sum_j x_j[t]*w[j] (subtracts it, if neg) to o[t] modulo
// p.q, x_j being the coefficients from byte off on of input cols[j], with
// mac52 (top nil) or mac64, in runs of terms their accumulators hold.
func macInto(o []uint64, cols []int, ins []unsafe.Pointer, off int, w []uint64, lo, mid, top []uint64, p *macPrime, neg bool) {
	limit := macLimit52
	if top != nil {
		limit = macLimit64
	}
	for s := 0; s < len(cols); s += limit {
		e := min(s+limit, len(cols))
		if top == nil {
			mac52(cols[s:e], ins, off, w[s:e], lo, mid)
		} else {
			mac64(cols[s:e], ins, off, w[s:e], lo, mid, top)
		}
		for t := range o {
			// lo + mid*2^52 (+ top*2^104) mod q
			v := p.lazy(lo[t]) + p.lazyMul(mid[t], p.c52)
			if top != nil {
				v += p.lazyMul(top[t], p.c104)
			}
			v = p.final(v)
			if neg && v != 0 {
				v = p.q - v
			}
			if v += o[t]; v >= p.q {
				v -= p.q
			}
			o[t] = v
		}
	}
}
