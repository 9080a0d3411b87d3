package server

import (
	"sort"

	"github.com/fheserve/fheserve/plan"
)

// plaintextBytes is what step i's prepared diagonals take encoded: one
// plaintext per diagonal at the step's input level (a Horner map), or
// with the key-switching primes too (lintrans's baby-step giant-step
// encoding). Zero for other steps and packings.
func (m *Model) plaintextBytes(i int) int64 {
	s := &m.prog.Steps[i]
	if s.Kind != plan.StepLinear || m.Plan.Packing != plan.Latency || s.Coeffs || m.sealed != nil {
		return 0
	}
	primes := s.LevelIn + 1
	if s.Horner == 0 {
		primes += m.params.MaxLevelP() + 1
	}
	return int64(len(s.DiagonalIndices())) * int64(primes) * int64(m.params.N()) * 8
}

// chooseOnDemand records each step's plaintext bytes and marks the
// Horner maps whose diagonals each call encodes, largest first, until the
// plaintexts held take at most held bytes (0: none is marked).
func (m *Model) chooseOnDemand(held int64) {
	m.ptBytes = make([]int64, len(m.prog.Steps))
	var total int64
	var horner []int
	for i := range m.prog.Steps {
		m.ptBytes[i] = m.plaintextBytes(i)
		total += m.ptBytes[i]
		if m.ptBytes[i] > 0 && m.prog.Steps[i].Horner > 0 {
			horner = append(horner, i)
		}
	}
	if held <= 0 {
		return
	}
	sort.SliceStable(horner, func(a, b int) bool { return m.ptBytes[horner[a]] > m.ptBytes[horner[b]] })
	for _, i := range horner {
		if total <= held {
			return
		}
		m.steps[i].onDemand = true
		total -= m.ptBytes[i]
	}
}

// Plaintexts reports the bytes of the linear maps' diagonals the model
// holds encoded, and the bytes each call encodes instead (maps over the
// budget of PrepareWithin, held as slot vectors).
func (m *Model) Plaintexts() (held, perCall int64) {
	for i, b := range m.ptBytes {
		if m.steps[i].onDemand {
			perCall += b
		} else {
			held += b
		}
	}
	return held, perCall
}
