package nn

import (
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
)

// testGraph is x[2] -> dense 3x2 -> relu -> combine with itself squared -> dense 3->1.
func testGraph() *Graph {
	return &Graph{
		Name:  "test",
		Input: Shape{2},
		Nodes: []*Node{
			{Name: "fc1", OpType: "Gemm", Op: &Dense{In: 2, Out: 3, W: []float64{1, 0, 0, 1, 1, -1}, B: []float64{0, 0, 1}}, Inputs: []int{0}, Shape: Shape{3}},
			{Name: "act", OpType: "Relu", Op: &Activation{Func: ActReLU}, Inputs: []int{1}, Shape: Shape{3}},
			{Name: "sq", OpType: "Mul", Op: &Mul{}, Inputs: []int{2, 2}, Shape: Shape{3}},
			{Name: "res", OpType: "Add", Op: &Combine{A: 1, B: 1}, Inputs: []int{2, 3}, Shape: Shape{3}},
			{Name: "fc2", OpType: "Gemm", Op: &Dense{In: 3, Out: 1, W: []float64{1, 1, 1}}, Inputs: []int{4}, Shape: Shape{1}},
		},
		Output: 5,
	}
}

// testGraphByHand computes testGraph directly.
func testGraphByHand(x0, x1 float64) float64 {
	h := []float64{x0, x1, x0 - x1 + 1}
	var y float64
	for _, v := range h {
		v = max(v, 0)
		y += v + v*v
	}
	return y
}

func TestGraphEval(t *testing.T) {
	g := testGraph()
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	y, err := g.Eval(tensor(Shape{2}, 2, -3), nil)
	if err != nil {
		t.Fatal(err)
	}
	assertClose(t, y.Data, []float64{testGraphByHand(2, -3)}, 1e-12)

	// A shape of the same size is accepted; a different size is not.
	if _, err := g.Eval(tensor(Shape{1, 2}, 2, -3), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Eval(tensor(Shape{3}, 1, 2, 3), nil); err == nil {
		t.Fatal("wrong input size accepted")
	}
	if _, err := g.Eval(tensor(nil, 1), nil); err == nil {
		t.Fatal("wrong data length accepted")
	}
}

func TestGraphEvalHooks(t *testing.T) {
	g := testGraph()
	var traced []int
	opt := &EvalOptions{
		Activation: func(node int, a *Activation) func(float64) float64 {
			if node != 1 || a.Func != ActReLU {
				t.Errorf("hook called for node %d %v", node, a)
			}
			return func(x float64) float64 { return x } // identity instead of relu
		},
		Trace: func(node int, in []*Tensor, out *Tensor) {
			traced = append(traced, node)
			if !out.Shape.Equal(g.Nodes[node].Shape) || len(in) != len(g.Nodes[node].Inputs) {
				t.Errorf("trace node %d: out %v, %d inputs", node, out.Shape, len(in))
			}
		},
	}
	y, err := g.Eval(tensor(Shape{2}, 2, -3), opt)
	if err != nil {
		t.Fatal(err)
	}
	// Without relu: h = [2, -3, 6], y = sum h + h^2 = 5 + 4+9+36.
	assertClose(t, y.Data, []float64{54}, 1e-12)
	if !slices.Equal(traced, []int{0, 1, 2, 3, 4}) {
		t.Fatalf("traced %v", traced)
	}

	// A hook returning nil keeps the exact function.
	opt = &EvalOptions{Activation: func(int, *Activation) func(float64) float64 { return nil }}
	y, err = g.Eval(tensor(Shape{2}, 2, -3), opt)
	if err != nil {
		t.Fatal(err)
	}
	assertClose(t, y.Data, []float64{testGraphByHand(2, -3)}, 1e-12)
}

func TestGraphEvalInputIsOutput(t *testing.T) {
	g := &Graph{Input: Shape{2}}
	y, err := g.Eval(tensor(Shape{2}, 1, 2), nil)
	if err != nil {
		t.Fatal(err)
	}
	assertClose(t, y.Data, []float64{1, 2}, 0)
}

func TestEvalBatch(t *testing.T) {
	g := testGraph()
	r := rand.New(rand.NewPCG(3, 4))
	const batch = 37
	x := randData(r, batch*2)
	var calls atomic.Int64
	opt := &EvalOptions{Trace: func(int, []*Tensor, *Tensor) { calls.Add(1) }}
	y, err := g.EvalBatch(x, batch, opt)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]float64, batch)
	for i := range batch {
		want[i] = testGraphByHand(x[2*i], x[2*i+1])
	}
	assertClose(t, y, want, 1e-12)
	if calls.Load() != batch*int64(len(g.Nodes)) {
		t.Fatalf("trace called %d times", calls.Load())
	}

	if y, err := g.EvalBatch(nil, 0, nil); err != nil || len(y) != 0 {
		t.Fatalf("empty batch: %v, %v", y, err)
	}
	if _, err := g.EvalBatch(x[:5], 3, nil); err == nil {
		t.Fatal("short batch accepted")
	}
	if _, err := g.EvalBatch(x, -1, nil); err == nil {
		t.Fatal("negative batch accepted")
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(g *Graph)
		want   string
	}{
		{"forward reference", func(g *Graph) { g.Nodes[1].Inputs = []int{3} }, "not defined before"},
		{"self reference", func(g *Graph) { g.Nodes[1].Inputs = []int{2} }, "not defined before"},
		{"negative id", func(g *Graph) { g.Nodes[1].Inputs = []int{-1} }, "not defined before"},
		{"wrong recorded shape", func(g *Graph) { g.Nodes[2].Shape = Shape{4} }, "recorded shape"},
		{"weights do not match dims", func(g *Graph) { g.Nodes[0].Op.(*Dense).W = []float64{1} }, "weights"},
		{"output out of range", func(g *Graph) { g.Output = 6 }, "does not exist"},
		{"nil node", func(g *Graph) { g.Nodes[3] = nil }, "missing"},
		{"nil op", func(g *Graph) { g.Nodes[3].Op = nil }, "missing operation"},
		{"bad input shape", func(g *Graph) { g.Input = Shape{0} }, "graph input"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := testGraph()
			tt.modify(g)
			err := g.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.want)
			}
			if _, err := g.Eval(tensor(Shape{2}, 1, 1), nil); err == nil {
				t.Fatal("Eval accepted an invalid graph")
			}
		})
	}
	var nilGraph *Graph
	if nilGraph.Validate() == nil {
		t.Fatal("nil graph accepted")
	}
}
