package local

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/nn"
	"github.com/fheserve/fheserve/plan"
)

// randConv is a convolution with random weights and biases.
func randConv(rng *rand.Rand, inC, outC, k, stride, pad int) *nn.Conv {
	c := &nn.Conv{InC: inC, OutC: outC, KH: k, KW: k, StrideH: stride, StrideW: stride,
		PadT: pad, PadL: pad, PadB: pad, PadR: pad, W: make([]float64, outC*inC*k*k), B: make([]float64, outC)}
	for i := range c.W {
		c.W[i] = rng.NormFloat64() / math.Sqrt(float64(inC*k*k))
	}
	for i := range c.B {
		c.B[i] = rng.NormFloat64() * 0.1
	}
	return c
}

// poolCNN is a small network of the CIFAR kind: several channels, x*x
// activations, padding, a convolution, average pooling and a convolution
// fused into one map (of stride 2 and a 7x7 field), a strided convolution
// on the gaps that map leaves, and a dense layer.
func poolCNN(rng *rand.Rand) *nn.Graph {
	pool := &nn.AvgPool{KH: 2, KW: 2, StrideH: 2, StrideW: 2}
	return &nn.Graph{
		Name:  "poolcnn",
		Input: nn.Shape{2, 16, 16},
		Nodes: []*nn.Node{
			{Name: "conv1", OpType: "Conv", Op: randConv(rng, 2, 4, 3, 1, 1), Inputs: []int{0}, Shape: nn.Shape{4, 16, 16}},
			{Name: "pool1", OpType: "AveragePool", Op: pool, Inputs: []int{1}, Shape: nn.Shape{4, 8, 8}},
			{Name: "conv2", OpType: "Conv", Op: randConv(rng, 4, 4, 3, 1, 1), Inputs: []int{2}, Shape: nn.Shape{4, 8, 8}},
			{Name: "sq2", OpType: "Mul", Op: &nn.Mul{}, Inputs: []int{3, 3}, Shape: nn.Shape{4, 8, 8}},
			{Name: "conv3", OpType: "Conv", Op: randConv(rng, 4, 6, 3, 2, 1), Inputs: []int{4}, Shape: nn.Shape{6, 4, 4}},
			{Name: "sq3", OpType: "Mul", Op: &nn.Mul{}, Inputs: []int{5, 5}, Shape: nn.Shape{6, 4, 4}},
			{Name: "flat", OpType: "Flatten", Op: &nn.Reshape{To: nn.Shape{96}}, Inputs: []int{6}, Shape: nn.Shape{96}},
			{Name: "fc", OpType: "Gemm", Op: randDense(rng, 96, 4, 1), Inputs: []int{7}, Shape: nn.Shape{4}},
		},
		Output: 8,
	}
}

// Convolutions after pooling and strided convolutions place their outputs
// next to their receptive fields in their input's layout, gaps included:
// each has at most half the diagonals of the natural order, and the
// encrypted network agrees with the plaintext model within the plan's
// stated error, tiled and untiled.
func TestPooledConvolutionsEncrypted(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 15))
	g := poolCNN(rng)
	calib := uniform(rng, 16*g.Input.Size())
	for _, noTiles := range []bool{false, true} {
		r, err := New(g, compiler.Options{Calibration: calib, NoTiles: noTiles}, 2)
		if err != nil {
			t.Fatal(err)
		}
		convs := 0
		for i := range r.Program.Steps {
			s := r.Program.Steps[i]
			if s.Kind != plan.StepLinear || s.OutPos == nil {
				continue
			}
			convs++
			s.Tile = 0
			placed := len(s.DiagonalIndices())
			s.OutPos, s.Pout = nil, plan.NextPow2(s.Length)
			if natural := len(s.DiagonalIndices()); 2*placed > natural {
				t.Errorf("step %s: %d diagonals placed, %d in natural order", s.Name, placed, natural)
			}
		}
		if convs < 2 {
			t.Errorf("tiles off %v: %d convolutions placed by their grid, want 2", noTiles, convs)
		}
		x := uniform(rng, r.Plan.BatchSize*g.Input.Size())
		checkEncrypted(t, r, g, x, r.Plan.BatchSize)
	}
}

// A model over its plaintext budget keeps its Horner maps' diagonals as
// slot vectors and encodes them as each call uses them: the results still
// agree with the plaintext model within the stated error, full calls and
// a call of one sample (the last map re-prepared for it) alike.
func TestOnDemandDiagonals(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 16))
	g := poolCNN(rng)
	r, err := New(g, compiler.Options{Calibration: uniform(rng, 16*g.Input.Size()), Keys: compiler.KeysSmall}, 2)
	if err != nil {
		t.Fatal(err)
	}
	all, none := r.Model.Plaintexts()
	if all == 0 || none != 0 {
		t.Fatalf("without a budget: %d bytes held, %d per call", all, none)
	}
	if err := r.PrepareWithin(1); err != nil {
		t.Fatal(err)
	}
	held, perCall := r.Model.Plaintexts()
	if perCall == 0 || held+perCall != all {
		t.Fatalf("within 1 byte: %d bytes held, %d per call, of %d", held, perCall, all)
	}
	for _, n := range []int{r.Plan.BatchSize, 1} {
		checkEncrypted(t, r, g, uniform(rng, n*g.Input.Size()), n)
	}
}
