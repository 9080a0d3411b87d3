package local

import (
	"math/rand/v2"
	"runtime/debug"
	"testing"

	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/plan"
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
	for _, limit := range []int64{1 << 40, 1 << 20} {
		old := debug.SetMemoryLimit(limit)
		r, err := New(g, opts, 2)
		debug.SetMemoryLimit(old)
		if err != nil {
			t.Fatal(err)
		}
		estimates = append(estimates, r.Model.MemoryEstimate(2))
		checkEncrypted(t, r, g, x, 8)
	}
	if estimates[1] >= estimates[0] {
		t.Errorf("a call's estimate is %d bytes under the limit, %d without: the products were not relinearized", estimates[1], estimates[0])
	}
}
