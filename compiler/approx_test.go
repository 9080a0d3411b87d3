package compiler

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/nn"
	"github.com/fheserve/fheserve/plan"
)

// reluGraph is x -> ReLU -> 2x: one activation node "act" between a
// scaling and the output.
func reluGraph(n int) *nn.Graph {
	return &nn.Graph{Name: "relu", Input: nn.Shape{n}, Nodes: []*nn.Node{
		{Name: "act", OpType: "Relu", Op: &nn.Activation{Func: nn.ActReLU}, Inputs: []int{0}, Shape: nn.Shape{n}},
		{Name: "double", OpType: "Mul", Op: &nn.Affine{Scale: []float64{2}, Shift: []float64{0}}, Inputs: []int{1}, Shape: nn.Shape{n}},
	}, Output: 2}
}

// uniformRows returns rows of values uniform in [-1, 1].
func uniformRows(rows, n int) []float64 {
	rng := rand.New(rand.NewPCG(3, 4))
	x := make([]float64, rows*n)
	for i := range x {
		x[i] = 2*rng.Float64() - 1
	}
	return x
}

func TestApproximated(t *testing.T) {
	g := reluGraph(4)
	res, err := Compile(g, Options{Calibration: uniformRows(64, 4), Degree: 5})
	if err != nil {
		t.Fatal(err)
	}
	a := res.Plan.Activations[0]
	x := []float64{-1, -0.3, 0.2, 0.9}
	got, err := g.Eval(&nn.Tensor{Shape: g.Input, Data: x}, Approximated(g, res.Plan))
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range x {
		want := 2 * plan.EvalPoly(plan.Chebyshev, a.Coeffs, v*a.PreScale+a.PreOffset)
		if math.Abs(got.Data[i]-want) > 1e-12 {
			t.Errorf("x=%g: approximated model %g, polynomial %g", v, got.Data[i], want)
		}
		if e := math.Abs(got.Data[i] - 2*math.Max(v, 0)); e > 2*a.MaxError+1e-12 {
			t.Errorf("x=%g: error %g above twice the stated %g", v, e, a.MaxError)
		}
	}
}

func TestDegrees(t *testing.T) {
	g := reluGraph(4)
	calib := uniformRows(16, 4)
	tests := []struct {
		name    string
		degrees map[string]int
		want    int    // degree of "act"
		wantErr string // substring of the error
	}{
		{name: "default", want: DefaultDegree},
		{name: "per node", degrees: map[string]int{"act": 13}, want: 13},
		{name: "unknown node", degrees: map[string]int{"ReLU": 13}, wantErr: `node "ReLU", which is not a non-polynomial activation of model "relu" (its activations are "act")`},
		{name: "not an activation", degrees: map[string]int{"double": 13}, wantErr: `node "double"`},
		{name: "out of range", degrees: map[string]int{"act": 64}, wantErr: "out of range 2..63"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A fit given: the degrees are not searched (search_test.go).
			res, err := Compile(g, Options{Calibration: calib, Degrees: tt.degrees, Fit: FitInterpolation})
			if tt.wantErr != "" {
				if fheserve.ErrorCode(err) != fheserve.EINVALID || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got %v, want an invalid-input error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			a := res.Plan.Activations[0]
			// The pre-map and the doubling are one level each.
			if a.Degree != tt.want || a.Depth != plan.PolyDepth(tt.want) || res.Plan.Depth != a.Depth+2 {
				t.Errorf("degree %d depth %d (plan depth %d), want degree %d", a.Degree, a.Depth, res.Plan.Depth, tt.want)
			}
		})
	}
}

// TestOutsideInterval pins down the documented behaviour of an activation
// approximation beyond its interval: the polynomial is continued, not
// clipped, so the error, small inside, grows quickly outside and faster
// for higher degrees (Chebyshev polynomials grow like
// (t + sqrt(t*t-1))^d for |t| > 1).
func TestOutsideInterval(t *testing.T) {
	g := reluGraph(1)
	calib := uniformRows(256, 1) // interval about [-1.2, 1.2]
	excursion := map[int][]float64{}
	for _, d := range []int{7, 15} {
		res, err := Compile(g, Options{Calibration: calib, Degree: d})
		if err != nil {
			t.Fatal(err)
		}
		a := &res.Plan.Activations[0]
		relu := func(x float64) float64 { return math.Max(x, 0) }
		if got := Excursion(a, relu, 0); got > a.MaxError*1.0001 {
			t.Errorf("degree %d: error at the interval's ends %g above the stated %g", d, got, a.MaxError)
		}
		prev := 0.0
		for _, frac := range []float64{0.1, 0.25, 0.5, 1} {
			e := Excursion(a, relu, frac)
			if e < prev {
				t.Errorf("degree %d: error %g at %g half-widths outside is below %g closer in", d, e, frac, prev)
			}
			prev = e
			excursion[d] = append(excursion[d], e)
		}
		t.Logf("degree %d: max error %.3g inside; outside by 0.1, 0.25, 0.5, 1 half-widths: %.3g", d, a.MaxError, excursion[d])
		// One half-width outside, the polynomial is far off: the error
		// is many times the value range of the interval.
		if e := excursion[d][3]; e < 10*a.Interval[1] {
			t.Errorf("degree %d: error %g one half-width outside; expected an explosion", d, e)
		}
	}
	if excursion[15][3] <= excursion[7][3] {
		t.Errorf("degree 15 error %g outside is not above degree 7's %g", excursion[15][3], excursion[7][3])
	}
}
