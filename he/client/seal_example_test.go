package client_test

import (
	"bytes"
	"fmt"

	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/he"
	"github.com/fheserve/fheserve/he/client"
	"github.com/fheserve/fheserve/nn"
)

// A model owner compiles a model for sealed weights and seals them for one
// user's public key; the server reads them for the plan's layout and holds
// the program without its weights.
func ExampleSeal() {
	g := &nn.Graph{Name: "dense", Input: nn.Shape{4}, Output: 1, Nodes: []*nn.Node{{
		Name: "fc", OpType: "Gemm", Inputs: []int{0}, Shape: nn.Shape{2},
		Op: &nn.Dense{In: 4, Out: 2, W: []float64{0.5, -1, 0.25, 2, 1, 0, -0.5, 0.75}, B: []float64{0.1, -0.2}},
	}}}
	res, err := compiler.Compile(g, compiler.Options{Sealed: true, Calibration: []float64{1, -1, 0.5, 0, -0.5, 1, 1, -1}})
	if err != nil {
		panic(err)
	}
	p := res.Plan
	params, err := he.NewParameters(p.Params)
	if err != nil {
		panic(err)
	}
	// The user's key set, as the server stores it: the owner reads its
	// public key.
	_, evk, err := client.GenerateKeys(params, he.PlanKeys(p))
	if err != nil {
		panic(err)
	}
	var sealed bytes.Buffer
	if err := client.Seal(&sealed, params, p, res.Program, evk.Public); err != nil {
		panic(err)
	}
	fmt.Println("size as the plan states:", sealed.Len() == p.Sizes.SealedWeights)

	// Server side: the layout comes from the plan and the weight-free program.
	stripped := he.StripWeights(res.Program)
	items, err := he.SealedLayout(params, p, stripped)
	if err != nil {
		panic(err)
	}
	cts, err := he.UnmarshalSealed(&sealed, params, he.SealedLevels(items))
	if err != nil {
		panic(err)
	}
	fmt.Println("ciphertexts:", len(cts), "weights left in the program:", he.HasWeights(stripped) != "")
	// Output:
	// size as the plan states: true
	// ciphertexts: 2 weights left in the program: false
}
