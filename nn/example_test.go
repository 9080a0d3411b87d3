package nn_test

import (
	"fmt"

	"github.com/fheserve/fheserve/nn"
)

func ExampleGraph_Eval() {
	// y = relu(W x + b) for a 2-feature input.
	g := &nn.Graph{
		Input: nn.Shape{2},
		Nodes: []*nn.Node{
			{Name: "fc", OpType: "Gemm", Op: &nn.Dense{In: 2, Out: 2, W: []float64{1, 1, 1, -1}, B: []float64{0, -5}},
				Inputs: []int{0}, Shape: nn.Shape{2}},
			{Name: "act", OpType: "Relu", Op: &nn.Activation{Func: nn.ActReLU}, Inputs: []int{1}, Shape: nn.Shape{2}},
		},
		Output: 2,
	}
	y, err := g.Eval(&nn.Tensor{Shape: nn.Shape{2}, Data: []float64{3, 1}}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(y.Shape, y.Data)

	// The same graph with the activation replaced, as a polynomial
	// approximation would be, on a batch of two samples.
	square := &nn.EvalOptions{Activation: func(int, *nn.Activation) func(float64) float64 {
		return func(x float64) float64 { return x * x }
	}}
	ys, err := g.EvalBatch([]float64{3, 1, 0, 2}, 2, square)
	fmt.Println(ys, err)
	// Output:
	// [2] [4 0]
	// [16 9 4 49] <nil>
}
