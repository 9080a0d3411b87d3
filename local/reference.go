package local

import (
	"context"
	"math"

	"github.com/fheserve/fheserve/nn"
)

// CompareReference predicts the n samples of x encrypted and evaluates
// them with g's plaintext reference (the exact model). It returns both
// outputs and the largest absolute difference between them: the error to
// hold against the plan's stated precision.
func (r *Runner) CompareReference(ctx context.Context, g *nn.Graph, x []float64, n int) (got, want []float64, maxErr float64, err error) {
	if got, err = r.Predict(ctx, x, n); err != nil {
		return nil, nil, 0, err
	}
	if want, err = g.EvalBatch(x, n, nil); err != nil {
		return nil, nil, 0, err
	}
	for i := range want {
		maxErr = math.Max(maxErr, math.Abs(got[i]-want[i]))
	}
	return got, want, maxErr, nil
}
