package server

import (
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
	bred      [2]uint64
	mred      uint64
	c52, c104 uint64 // 2^52 and 2^104 mod q, in Montgomery form
}

func newMacPrime(q uint64) *macPrime {
	bred := ring.GenBRedConstant(q)
	c52 := ring.BRedAdd(1<<52, q, bred)
	c104 := ring.BRed(c52, c52, q, bred)
	return &macPrime{q: q, bred: bred, mred: ring.GenMRedConstant(q),
		c52: ring.MForm(c52, q, bred), c104: ring.MForm(c104, q, bred)}
}

// reduce returns lo + mid*2^52 + top*2^104 mod q.
func (p *macPrime) reduce(lo, mid, top uint64) uint64 {
	r := ring.BRedAdd(lo, p.q, p.bred) + ring.MRed(mid, p.c52, p.q, p.mred)
	if r >= p.q {
		r -= p.q
	}
	if top != 0 {
		r += ring.MRed(top, p.c104, p.q, p.mred)
		if r >= p.q {
			r -= p.q
		}
	}
	return r
}

// vecProducts is batchProducts' task for prime i, polynomial k and
// coefficients [a, b) on the vector kernels; the caller checks that they
// run here and that b-a is a multiple of 32 (and of macChunk, if larger).
func (e *Evaluator) vecProducts(s *plan.Step, st *prepared, x, out []*rlwe.Ciphertext, i, k, a, b int) {
	nl := x[0].Level() + 1
	p := newMacPrime(e.m.params.RingQ().SubRings[i].Modulus)
	wide := p.q >= 1<<52
	n := min(b-a, macChunk)
	acc := make([]uint64, 3*n)
	lo, mid, top := acc[:n], acc[n:2*n], acc[2*n:]
	if !wide {
		top = nil
	}
	var xs []unsafe.Pointer
	var w []uint64
	for a := a; a < b; a += macChunk {
		b := min(a+macChunk, b)
		for r := range out {
			cols, _ := s.M.Row(r)
			o := out[r].Value[k].Coeffs[i][a:b]
			clear(o)
			if !wide {
				xs, w = xs[:0], w[:0]
				for j, c := range cols {
					xs = append(xs, unsafe.Pointer(&x[c].Value[k].Coeffs[i][a]))
					w = append(w, st.rows[r][j*nl+i])
				}
				macInto(o, xs, w, lo[:b-a], mid[:b-a], nil, p, false)
				continue
			}
			for _, neg := range []bool{false, true} {
				xs, w = xs[:0], w[:0]
				for j, c := range cols {
					if v := st.ints[r][j]; (v < 0) == neg && v != 0 {
						xs = append(xs, unsafe.Pointer(&x[c].Value[k].Coeffs[i][a]))
						w = append(w, uint64(max(v, -v)))
					}
				}
				macInto(o, xs, w, lo[:b-a], mid[:b-a], top[:b-a], p, neg)
			}
		}
	}
}

// macInto adds sum_j xs[j][t]*w[j] (subtracts it, if neg) to o[t] modulo
// p.q, with mac52 (top nil) or mac64, in runs of terms their accumulators
// hold.
func macInto(o []uint64, xs []unsafe.Pointer, w []uint64, lo, mid, top []uint64, p *macPrime, neg bool) {
	limit := macLimit52
	if top != nil {
		limit = macLimit64
	}
	for s := 0; s < len(xs); s += limit {
		e := min(s+limit, len(xs))
		if top == nil {
			mac52(xs[s:e], w[s:e], lo, mid)
		} else {
			mac64(xs[s:e], w[s:e], lo, mid, top)
		}
		for t := range o {
			var v uint64
			if top == nil {
				v = p.reduce(lo[t], mid[t], 0)
			} else {
				v = p.reduce(lo[t], mid[t], top[t])
			}
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
