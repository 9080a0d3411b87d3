package local

import (
	"math/rand/v2"
	"testing"

	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/nn"
)

// smallCNN is a convolution, a square and a dense layer on a 1x6x6 image.
func smallCNN(rng *rand.Rand) *nn.Graph {
	conv := &nn.Conv{InC: 1, OutC: 2, KH: 3, KW: 3, StrideH: 1, StrideW: 1, PadT: 1, PadL: 1, PadB: 1, PadR: 1,
		W: make([]float64, 2*9), B: []float64{0.1, -0.2}}
	for i := range conv.W {
		conv.W[i] = rng.NormFloat64() / 3
	}
	return &nn.Graph{
		Name:  "cnn",
		Input: nn.Shape{1, 6, 6},
		Nodes: []*nn.Node{
			{Name: "conv", OpType: "Conv", Op: conv, Inputs: []int{0}, Shape: nn.Shape{2, 6, 6}},
			{Name: "sq", OpType: "Mul", Op: &nn.Mul{}, Inputs: []int{1, 1}, Shape: nn.Shape{2, 6, 6}},
			{Name: "fc", OpType: "Gemm", Op: randDense(rng, 72, 4, 1), Inputs: []int{2}, Shape: nn.Shape{4}},
		},
		Output: 3,
	}
}

// TestSealedEncrypted compiles small models for sealed weights, seals them
// under a user's public key on the owner's side, evaluates them on the
// server's side from the stripped program and the sealed weights, and
// checks the user's decrypted outputs against the plaintext reference
// within the plan's stated error.
func TestSealedEncrypted(t *testing.T) {
	for _, tt := range []struct {
		name  string
		graph func(*rand.Rand) *nn.Graph
	}{
		{"mlp", mlp},
		{"cnn", smallCNN},
		{"dense", func(rng *rand.Rand) *nn.Graph { // one linear map: coefficient encoding
			return &nn.Graph{Name: "dense", Input: nn.Shape{16}, Output: 1, Nodes: []*nn.Node{
				{Name: "fc", OpType: "Gemm", Op: randDense(rng, 16, 4, 1), Inputs: []int{0}, Shape: nn.Shape{4}}}}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(3, 4))
			g := tt.graph(rng)
			const n = 3
			x := make([]float64, n*g.Input.Size())
			for i := range x {
				x[i] = rng.Float64()*2 - 1
			}
			r, st, err := NewSealed(g, compiler.Options{Calibration: x}, 2)
			if err != nil {
				t.Fatal(err)
			}
			p := r.Plan
			if !p.Sealed || !p.Relin || p.Ops.SealedMuls == 0 || p.Sizes.SealedWeights != st.SealedBytes {
				t.Fatalf("plan: sealed %v relin %v sealed products %d, sealed weights %d bytes (sealed %d)", p.Sealed, p.Relin, p.Ops.SealedMuls, p.Sizes.SealedWeights, st.SealedBytes)
			}
			t.Logf("plan: %s, %d sealed products, %d relinearizations, sealed weights %d bytes, precision %+v", p, p.Ops.SealedMuls, p.Ops.SealedRelins, p.Sizes.SealedWeights, p.Precision)
			maxErr := checkEncrypted(t, r, g, x, n)
			t.Logf("max error %.3g (stated %.3g)", maxErr, p.Precision.OutputError)
		})
	}
}
