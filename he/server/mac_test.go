package server

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/fheserve/fheserve/plan"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
)

// A batch linear map's products on the vector kernels equal mulAcc's,
// residue for residue, on degree-1 and degree-2 inputs, for a prime of
// 60 bits beside primes of 50: weights below 2^52 (the 60-bit prime on
// mac64) and one above (the 60-bit prime back on mulAcc), sparse rows
// (mac52 row by row) and dense ones (mac52x2, rows in pairs; 7 rows, so
// the last alone).
func TestBatchProductsVecMatchesScalar(t *testing.T) {
	if !hasMAC {
		t.Skip("no AVX-512 IFMA on this CPU")
	}
	params, err := ckks.NewParametersFromLiteral(ckks.ParametersLiteral{
		LogN: 12, LogQ: []int{60, 50, 50}, LogP: []int{61}, LogDefaultScale: 50,
	})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name   string
		degree int
		big    float64 // one weight this large (0: none)
		dense  bool    // no zero weight: rows share their columns (mac52x2)
	}{
		{"degree 1", 1, 0, false},
		{"degree 2", 2, 0, false},
		{"a weight of 2^53", 1, 4, false},
		{"dense rows", 2, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const in, rows = 40, 7
			m := &plan.Sparse{Rows: rows, Cols: in, RowPtr: []int{0}}
			for range rows {
				for c := range in {
					if tc.dense || rng.IntN(3) > 0 { // a third of the weights zero
						m.ColIdx = append(m.ColIdx, c)
						m.Val = append(m.Val, rng.Float64()*2-1)
					}
				}
				m.RowPtr = append(m.RowPtr, len(m.Val))
			}
			if tc.big != 0 {
				m.Val[3] = tc.big
			}
			level := 2
			s := &plan.Step{Kind: plan.StepLinear, Name: "test", M: m, LevelIn: level, Level: level - 1}
			mod := &Model{params: params}
			st := &prepared{ptScale: rlwe.NewScale(float64(params.Q()[level]))}
			if err := mod.prepareBatchRows(s, st); err != nil {
				t.Fatal(err)
			}
			if st.ints52 != (tc.big == 0) {
				t.Fatalf("weights below 2^52: %v, want %v", st.ints52, tc.big == 0)
			}
			x := make([]*rlwe.Ciphertext, in)
			for c := range x {
				x[c] = ckks.NewCiphertext(params, tc.degree, level)
				for _, p := range x[c].Value {
					for i, q := range params.Q()[:level+1] {
						for j := range p.Coeffs[i] {
							p.Coeffs[i][j] = rng.Uint64N(q)
						}
					}
				}
			}
			run := func(vec bool) []*rlwe.Ciphertext {
				defer func(v bool) { useMAC = v }(useMAC)
				useMAC = vec
				out := make([]*rlwe.Ciphertext, rows)
				for r := range out {
					out[r] = ckks.NewCiphertext(params, tc.degree, level)
				}
				e := &Evaluator{m: mod, workers: 2}
				if err := e.batchProducts(s, st, x, out); err != nil {
					t.Fatal(err)
				}
				return out
			}
			want, got := run(false), run(true)
			for r := range want {
				for k := range want[r].Value {
					for i := range want[r].Value[k].Coeffs {
						if !slices.Equal(got[r].Value[k].Coeffs[i], want[r].Value[k].Coeffs[i]) {
							t.Fatalf("row %d, polynomial %d, prime %d: vector and scalar sums differ", r, k, i)
						}
					}
				}
			}
		})
	}
}

// BenchmarkBatchProducts times a dense 720-to-64 batch map (the bundled
// cnn's first dense layer) at N=2^12 and 5 primes (60 and 4 x 51 bits, its
// level there) on one core, with mulAcc and with the vector kernels;
// ns/MAC is per product of one coefficient by one weight.
func BenchmarkBatchProducts(b *testing.B) {
	params, err := ckks.NewParametersFromLiteral(ckks.ParametersLiteral{
		LogN: 12, LogQ: []int{60, 51, 51, 51, 51}, LogP: []int{61}, LogDefaultScale: 51,
	})
	if err != nil {
		b.Fatal(err)
	}
	const in, rows, level = 720, 64, 4
	rng := rand.New(rand.NewPCG(1, 2))
	m := &plan.Sparse{Rows: rows, Cols: in, RowPtr: []int{0}}
	for range rows {
		for c := range in {
			m.ColIdx = append(m.ColIdx, c)
			m.Val = append(m.Val, rng.Float64()*2-1)
		}
		m.RowPtr = append(m.RowPtr, len(m.Val))
	}
	s := &plan.Step{Kind: plan.StepLinear, Name: "dense", M: m, LevelIn: level, Level: level - 1}
	mod := &Model{params: params}
	st := &prepared{ptScale: rlwe.NewScale(float64(params.Q()[level]))}
	if err := mod.prepareBatchRows(s, st); err != nil {
		b.Fatal(err)
	}
	x := make([]*rlwe.Ciphertext, in)
	for c := range x {
		x[c] = ckks.NewCiphertext(params, 1, level)
		for _, p := range x[c].Value {
			for i, q := range params.Q()[:level+1] {
				for j := range p.Coeffs[i] {
					p.Coeffs[i][j] = rng.Uint64N(q)
				}
			}
		}
	}
	out := make([]*rlwe.Ciphertext, rows)
	for r := range out {
		out[r] = ckks.NewCiphertext(params, 1, level)
	}
	macs := float64(len(m.Val)) * float64(2*(level+1)*params.N())
	for _, vec := range []bool{false, true} {
		if vec && !hasMAC {
			continue
		}
		name := map[bool]string{false: "mulacc", true: "ifma"}[vec]
		b.Run(name, func(b *testing.B) {
			defer func(v bool) { useMAC = v }(useMAC)
			useMAC = vec
			e := &Evaluator{m: mod, workers: 1}
			for b.Loop() {
				if err := e.batchProducts(s, st, x, out); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(b.Elapsed().Seconds()*1e9/float64(b.N)/macs, "ns/MAC")
		})
	}
}
