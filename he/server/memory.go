package server

import (
	"math"
	"runtime"
	"runtime/debug"
	"slices"

	"github.com/fheserve/fheserve/internal/procfs"
	"github.com/fheserve/fheserve/plan"
)

// chooseFusion decides how the batch products read only by linear maps
// are kept for them: fused (fusedProduct: three polynomials a level up),
// lazy as the compiler allowed (three polynomials), or relinearized and
// rescaled (two). Each choice holds fewer bytes per product than the one
// before and costs more relinearizations per call. The first whose call
// fits in memory bytes (MemoryEstimate, 0: no bound) is taken, the last
// when none does. None changes the result beyond the plan's noise model:
// fusing and lazy relinearization are the cheaper ways the model allows,
// relinearizing every product the one it counts.
func (m *Model) chooseFusion(memory int64) {
	threads := runtime.GOMAXPROCS(0)
	for _, c := range []struct{ fuse, lazy bool }{{true, true}, {false, true}, {false, false}} {
		for i := range m.steps {
			st := &m.steps[i]
			st.fused = c.fuse && m.fusedProduct(i)
			st.lazyRelin = c.lazy && !st.fused && m.lazyProduct(i)
		}
		if memory <= 0 || m.MemoryEstimate(threads) <= memory {
			return
		}
	}
}

// callMemory is what a call may take: the Go memory limit (GOMEMLIMIT)
// when there is one, else the machine's memory (Linux), less the bytes
// the model holds; 0 (no bound) when neither is known.
func callMemory(held int64) int64 {
	limit := debug.SetMemoryLimit(-1)
	if limit == math.MaxInt64 {
		limit = procfs.Bytes("/proc/meminfo", "MemTotal")
	}
	if limit <= 0 {
		return 0
	}
	return max(limit-held, 1)
}

// elementwise: steps that consume their inputs one ciphertext at a time
// (Evaluator.consumed).
func elementwise(kind string) bool {
	return kind == plan.StepSquare || kind == plan.StepMul || kind == plan.StepPoly
}

// uniqueInputs are the distinct values step s reads.
func uniqueInputs(s *plan.Step) []int {
	in := slices.Clone(s.In)
	slices.Sort(in)
	return slices.Compact(in)
}
