package server_test

import (
	"context"
	"math"
	"testing"

	"github.com/fheserve/fheserve/bundled"
	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/he/server"
	"github.com/fheserve/fheserve/local"
)

// TestHornerBundled evaluates the bundled mlp and cnn compiled for small
// keys, whose linear maps run by Horner giant steps and baby steps from
// a few keys, under encryption with exactly the plan's key set: a full
// call (every tile) and a call of one sample (the last map re-prepared
// for it), against the plaintext reference within the plan's stated
// error.
func TestHornerBundled(t *testing.T) {
	for _, name := range []string{"mlp", "cnn"} {
		t.Run(name, func(t *testing.T) {
			g, calib, inputs := compileBundled(t, name)
			r, err := local.New(g, compiler.Options{Calibration: calib, Keys: compiler.KeysSmall}, 2)
			if err != nil {
				t.Fatal(err)
			}
			p := r.Plan
			horner := 0
			for _, s := range p.Steps {
				if s.Horner > 0 {
					horner++
				}
			}
			if horner == 0 {
				t.Fatalf("no linear map by Horner giant steps: %+v", p.Steps)
			}
			if r.Stats.EvalKeyByte != p.Sizes.EvalKeys {
				t.Fatalf("uploaded %d bytes of keys, the plan says %d", r.Stats.EvalKeyByte, p.Sizes.EvalKeys)
			}
			size := g.Input.Size()
			var maxErr float64
			for _, n := range []int{p.BatchSize, 1} {
				x := inputs[:n*size]
				got, err := r.Predict(context.Background(), x, n)
				if err != nil {
					t.Fatal(err)
				}
				want, err := g.EvalBatch(x, n, nil)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(want) {
					t.Fatalf("%d outputs, want %d", len(got), len(want))
				}
				for j := range want {
					maxErr = math.Max(maxErr, math.Abs(got[j]-want[j]))
				}
			}
			t.Logf("%d Horner maps, %d keys (%.1f MB), %d rotations, max error %.3g (stated %.3g)", horner, len(p.GaloisElements), float64(p.Sizes.EvalKeys)/1e6, p.Ops.Rotations, maxErr, p.Precision.OutputError)
			if maxErr > p.Precision.OutputError {
				t.Fatalf("max error %g above the plan's stated %g", maxErr, p.Precision.OutputError)
			}
		})
	}
}

// TestHornerShape checks the Horner layout against a direct sum: every
// diagonal is read by exactly one baby step and one signed giant step
// whose sum is the diagonal modulo the slots, and the rotations the
// shape lists produce every baby step.
func TestHornerShape(t *testing.T) {
	slots := 64
	diags := []int{0, 1, 3, 9, 17, 40, 62, 63, -5}
	for n1 := 1; n1 <= slots; n1 *= 2 {
		for _, seq := range []bool{true, false} {
			h := server.Horner(diags, slots, n1, seq)
			have := map[int]bool{0: true}
			for k, from := range h.BabyFrom {
				if !have[from] {
					t.Fatalf("n1 %d seq %v: baby %d from %d, not yet computed", n1, seq, from+h.BabyBy[k], from)
				}
				have[from+h.BabyBy[k]] = true
			}
			for _, b := range h.Babies {
				if !have[b] {
					t.Errorf("n1 %d seq %v: baby step %d never computed", n1, seq, b)
				}
			}
			// Giant indices cover -Neg..Pos; each diagonal's is in range.
			m := slots / n1
			for _, d := range diags {
				dm := ((d % slots) + slots) % slots
				g := dm / n1
				if g > h.Pos && m-g > h.Neg {
					t.Errorf("n1 %d: diagonal %d (giant %d) outside -%d..%d", n1, d, g, h.Neg, h.Pos)
				}
			}
			if h.Pos+h.Neg > m {
				t.Errorf("n1 %d: %d giant rotations for %d giant indices", n1, h.Pos+h.Neg, m)
			}
		}
	}
}

// BenchmarkPlaintexts times one full call of the bundled cnn compiled for
// small keys (its maps by Horner giant steps) with every diagonal held
// encoded, and with every Horner map's diagonals encoded by the call
// (server.PrepareWithin): what encoding on demand costs a call.
func BenchmarkPlaintexts(b *testing.B) {
	g, calib, inputs, _, err := bundled.Load("cnn")
	if err != nil {
		b.Fatal(err)
	}
	r, err := local.New(g, compiler.Options{Calibration: calib, Keys: compiler.KeysSmall}, 2)
	if err != nil {
		b.Fatal(err)
	}
	n := r.Plan.BatchSize
	x := inputs[:n*g.Input.Size()]
	for _, held := range []int64{0, 1} {
		if err := r.PrepareWithin(held); err != nil {
			b.Fatal(err)
		}
		kept, perCall := r.Model.Plaintexts()
		name := "held"
		if held > 0 {
			name = "per-call"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := r.Predict(context.Background(), x, n); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(kept)/1e6, "MB-held")
			b.ReportMetric(float64(perCall)/1e6, "MB-per-call")
		})
	}
}
