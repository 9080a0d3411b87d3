package compiler

import (
	"math"
	"math/rand/v2"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/nn"
	"github.com/fheserve/fheserve/plan"
)

// maxCalibrationRows bounds the calibration work.
const maxCalibrationRows = 512

// calibration records what representative inputs do to the model.
type calibration struct {
	rows    [][]float64 // calibration inputs (synthetic when none given)
	given   bool
	actIn   map[int][]float64 // node index -> inputs seen by that activation
	bounds  []float64         // program value id -> largest magnitude seen
	outMax  float64
	program *plan.Program
	// exact holds the model's output (without its head) on each given
	// calibration row, and approxErr the program's largest difference from
	// it (outputBound measures it).
	exact     [][]float64
	approxErr float64
}

func calibrate(g *nn.Graph, data []float64, output int) (*calibration, error) {
	size := g.Input.Size()
	c := &calibration{actIn: map[int][]float64{}}
	if len(data) > 0 {
		if len(data)%size != 0 {
			return nil, fheserve.Errorf(fheserve.EINVALID, "calibration data has %d values, not a multiple of the input size %d", len(data), size)
		}
		c.given = true
		for i := 0; i+size <= len(data) && len(c.rows) < maxCalibrationRows; i += size {
			c.rows = append(c.rows, data[i:i+size])
		}
	} else {
		// Synthetic standard-normal inputs estimate value ranges only;
		// activation intervals then use the documented default.
		rng := rand.New(rand.NewPCG(1, 2))
		for i := 0; i < 32; i++ {
			row := make([]float64, size)
			for j := range row {
				row[j] = rng.NormFloat64()
			}
			c.rows = append(c.rows, row)
		}
	}
	if !c.given {
		return c, nil
	}
	var exact []float64
	opt := &nn.EvalOptions{Trace: func(node int, in []*nn.Tensor, out *nn.Tensor) {
		if _, ok := g.Nodes[node].Op.(*nn.Activation); ok {
			c.actIn[node] = append(c.actIn[node], in[0].Data...)
		}
		if node == output-1 {
			exact = append([]float64(nil), out.Data...)
		}
	}}
	for _, row := range c.rows {
		exact = nil
		if _, err := g.Eval(&nn.Tensor{Shape: g.Input, Data: row}, opt); err != nil {
			return nil, err
		}
		if output == 0 {
			exact = append([]float64(nil), row...)
		}
		c.exact = append(c.exact, exact)
	}
	return c, nil
}

// approxOutputError is the largest difference, over the given calibration
// rows, between the model's exact outputs and the program's (activations
// approximated, no encryption): the approximation error after it has
// propagated through the rest of the network. 0 without calibration data
// (each activation's own error on its interval is still reported).
func (c *compilation) approxOutputError() float64 {
	if len(c.acts) == 0 {
		return 0
	}
	return c.calib.approxErr
}

// interval returns the approximation interval for activation node idx: the
// calibrated range widened by margin times its width on each side (nil
// samples when there is no calibration data).
func (c *calibration) interval(idx int, margin float64) (lo, hi float64, samples []float64, clipped float64) {
	s, ok := c.actIn[idx]
	if !ok || len(s) == 0 {
		return 0, 0, nil, 0
	}
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, x := range s {
		lo, hi = math.Min(lo, x), math.Max(hi, x)
	}
	w := hi - lo
	if w < 1e-3 {
		w = 1
	}
	return lo - margin*w, hi + margin*w, s, 0
}

// outputBound runs the program in plaintext on the calibration inputs and
// returns 1.5 times the largest output magnitude; it also records the
// largest magnitude of every value for the noise estimate, and the
// largest difference of the outputs from the model's exact ones
// (approxErr).
func (c *calibration) outputBound(p *plan.Program) float64 {
	c.program = p
	c.bounds = make([]float64, len(p.Steps)+1)
	c.approxErr = 0
	for i, row := range c.rows {
		trace := p.Trace(row)
		for v, vals := range trace {
			for _, x := range vals {
				c.bounds[v] = math.Max(c.bounds[v], math.Abs(x))
			}
		}
		if i < len(c.exact) {
			got := trace[p.Output]
			for j, v := range c.exact[i] {
				if j < len(got) {
					c.approxErr = math.Max(c.approxErr, math.Abs(got[j]-v))
				}
			}
		}
	}
	c.outMax = c.bounds[p.Output]
	return math.Max(1.5*c.outMax, 1)
}
