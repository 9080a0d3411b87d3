package local

import (
	"context"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"testing"

	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/plan"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
)

// TestBatchWithinMemory: under a memory limit a batch call would exceed
// with its squares fused into the linear map that reads them (the pooling
// fused into the dense layer, its only reader), the model
// relinearizes them instead (server.Model.chooseFusion): the call's
// estimate is smaller and the outputs still agree with the plaintext
// model within the plan's stated error, as they do fused.
func TestBatchWithinMemory(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 23))
	g := actPoolCNN(rng, 1, 4, []int{2}, false)
	opts := compiler.Options{Packing: plan.Batch, Pooling: compiler.PoolingFuse, Calibration: uniform(rng, 16*g.Input.Size())}
	x := uniform(rng, 8*g.Input.Size())
	var estimates []int64
	for _, limit := range []int64{1 << 40, 0} {
		if limit == 0 {
			// Just below what the fused call is estimated to take.
			limit = estimates[0] - 1
		}
		old := debug.SetMemoryLimit(limit)
		r, err := New(g, opts, 2)
		debug.SetMemoryLimit(old)
		if err != nil {
			t.Fatal(err)
		}
		estimates = append(estimates, r.Model.MemoryEstimate(2))
		// Through Runner.serve: EvaluateOwned.
		checkEncrypted(t, r, g, x, 8)
		if limit == 1<<40 {
			checkOwned(t, r, x, 8)
		}
	}
	if estimates[1] >= estimates[0] {
		t.Errorf("a call's estimate is %d bytes under the limit, %d without: the products were not relinearized", estimates[1], estimates[0])
	}
}

// checkOwned: EvaluateOwned drops the input ciphertexts once no step reads
// them (all, when only the first step does), Evaluate leaves them to the
// caller.
func checkOwned(t *testing.T, r *Runner, x []float64, n int) {
	t.Helper()
	cts := encryptInput(t, r, x, n)
	for _, owned := range []bool{false, true} {
		evaluate := r.eval.Evaluate
		if owned {
			evaluate = r.eval.EvaluateOwned
		}
		in := slices.Clone(cts)
		if _, err := evaluate(context.Background(), in, n, nil); err != nil {
			t.Fatal(err)
		}
		kept := slices.IndexFunc(in, func(ct *rlwe.Ciphertext) bool { return ct != nil }) >= 0
		if dropped := slices.Contains(in, nil); dropped != owned || owned && kept {
			t.Errorf("owned %v: %d input ciphertexts, %v after the call", owned, len(in), in)
		}
	}
}

// encryptInput encodes and encrypts the input of n samples x as a call's
// input ciphertexts.
func encryptInput(tb testing.TB, r *Runner, x []float64, n int) []*rlwe.Ciphertext {
	tb.Helper()
	vecs, err := r.Plan.EncodeInput(x, n)
	if err != nil {
		tb.Fatal(err)
	}
	cts, err := r.keys.Encrypt(vecs, r.Plan.Input.Level, r.params.DefaultScale())
	if err != nil {
		tb.Fatal(err)
	}
	return cts
}
