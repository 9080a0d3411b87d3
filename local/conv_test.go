package local

import (
	"context"
	"fmt"
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

// actPoolCNN pools after its activations, the usual Conv, activation,
// AvgPool block (PRISM's, prism-cifar's), on a c x hw x hw input: one
// block per entry of chans (output channels, padding 1; the last block's
// convolution of stride 2 when strided), then a dense layer.
func actPoolCNN(rng *rand.Rand, c, hw int, chans []int, strided bool) *nn.Graph {
	pool := &nn.AvgPool{KH: 2, KW: 2, StrideH: 2, StrideW: 2}
	g := &nn.Graph{Name: "actpoolcnn", Input: nn.Shape{c, hw, hw}}
	add := func(name, op string, o nn.Op, shape nn.Shape, in ...int) {
		g.Nodes = append(g.Nodes, &nn.Node{Name: name, OpType: op, Op: o, Inputs: in, Shape: shape})
	}
	for i, oc := range chans {
		stride := 1
		if strided && i == len(chans)-1 {
			stride = 2
		}
		hw = (hw-1)/stride + 1
		add(fmt.Sprint("conv", i), "Conv", randConv(rng, c, oc, 3, stride, 1), nn.Shape{oc, hw, hw}, len(g.Nodes))
		add(fmt.Sprint("sq", i), "Mul", &nn.Mul{}, nn.Shape{oc, hw, hw}, len(g.Nodes), len(g.Nodes))
		c, hw = oc, hw/2
		add(fmt.Sprint("pool", i), "AveragePool", pool, nn.Shape{c, hw, hw}, len(g.Nodes))
	}
	n := c * hw * hw
	add("flat", "Flatten", &nn.Reshape{To: nn.Shape{n}}, nn.Shape{n}, len(g.Nodes))
	add("fc", "Gemm", randDense(rng, n, 4, 1), nn.Shape{4}, len(g.Nodes))
	g.Output = len(g.Nodes)
	return g
}

// Poolings after activations run as sums of rotations (latency) or of
// ciphertexts (batch), costing no level: the encrypted network agrees
// with the plaintext model within the plan's stated error in latency
// packing, tiled and not, and in batch packing, with every pooling a sum
// step, the depth of the fused plan and, in batch packing, fewer scalar
// products than fused (a 2x2 pooling fused into a 3x3 convolution makes
// it 6x6).
func TestPoolingSumsEncrypted(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 17))
	big := actPoolCNN(rng, 3, 16, []int{4, 8, 6}, true)
	small := actPoolCNN(rng, 2, 8, []int{3, 4}, true)
	// Batch packing holds a ciphertext per value: a smaller network.
	tiny := actPoolCNN(rng, 1, 4, []int{2}, false)
	for _, tc := range []struct {
		name string
		g    *nn.Graph
		opts compiler.Options
		long bool // a minute each on a loaded machine
	}{
		{"latency", small, compiler.Options{NoTiles: true}, false},
		{"batch", tiny, compiler.Options{Packing: plan.Batch}, false},
		{"three blocks", big, compiler.Options{NoTiles: true}, true},
		{"tiles", big, compiler.Options{}, true},
		{"fast keys", big, compiler.Options{NoTiles: true, Keys: compiler.KeysFast}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.long && !*long {
				t.Skip("run with -long")
			}
			g, opts := tc.g, tc.opts
			opts.Calibration, opts.Pooling = uniform(rng, 16*g.Input.Size()), compiler.PoolingSum
			r, err := New(g, opts, 2)
			if err != nil {
				t.Fatal(err)
			}
			sums := 0
			for _, s := range r.Program.Steps {
				if s.Kind == plan.StepSum {
					sums++
				}
			}
			if want := (len(g.Nodes) - 2) / 3; sums != want {
				t.Fatalf("%d sum steps, want %d", sums, want)
			}
			opts.Pooling = compiler.PoolingFuse
			fused, err := compiler.Compile(g, opts)
			if err != nil {
				t.Fatal(err)
			}
			if r.Plan.Depth != fused.Plan.Depth {
				t.Errorf("depth %d with sums, %d fused", r.Plan.Depth, fused.Plan.Depth)
			}
			if r.Plan.Packing == plan.Batch && r.Plan.Ops.ConstMuls >= fused.Plan.Ops.ConstMuls {
				t.Errorf("batch: %d scalar products with sums, %d fused", r.Plan.Ops.ConstMuls, fused.Plan.Ops.ConstMuls)
			}
			t.Logf("sums: %d rotations, %d diagonals; fused: %d rotations, %d diagonals",
				r.Plan.Ops.Rotations, r.Plan.Ops.Diagonals, fused.Plan.Ops.Rotations, fused.Plan.Ops.Diagonals)
			n := r.Plan.BatchSize
			if r.Plan.Packing == plan.Batch {
				n = 8
			}
			checkEncrypted(t, r, g, uniform(rng, n*g.Input.Size()), n)
		})
	}
}

// BenchmarkPoolingSums evaluates the three-block network of
// TestPoolingSumsEncrypted with its poolings fused and as sums, one
// sample per call (latency packing, small keys, no tiles); eval-ms is the
// server's evaluation alone.
func BenchmarkPoolingSums(b *testing.B) {
	rng := rand.New(rand.NewPCG(7, 17))
	g := actPoolCNN(rng, 3, 16, []int{4, 8, 6}, true)
	calib := uniform(rng, 16*g.Input.Size())
	x := uniform(rng, g.Input.Size())
	for _, pooling := range []string{compiler.PoolingFuse, compiler.PoolingSum} {
		b.Run(pooling, func(b *testing.B) {
			r, err := New(g, compiler.Options{Calibration: calib, NoTiles: true, Pooling: pooling}, 2)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				if _, err := r.Predict(context.Background(), x, 1); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(r.Stats.Evaluate.Milliseconds())/float64(b.N), "eval-ms")
			b.ReportMetric(float64(r.Plan.Ops.Rotations), "rotations")
			b.ReportMetric(float64(r.Plan.Ops.Diagonals), "diagonals")
		})
	}
}

// Convolutions compiled for one sample per call may put their output
// channels on copies of the input period (plan.Grid.Multiplexed), fewer
// diagonals for a wider output: small random networks (one or several
// input channels, stride 1 and 2, padding, a pooling fused into a
// convolution) with fast keys agree with the plaintext model
// within the plan's stated error, at least one of them multiplexes and
// one folds its blocks in hoisted stages (plan.Step.FoldWidth).
func TestMultiplexedConvolutionsEncrypted(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 21))
	pool := &nn.AvgPool{KH: 2, KW: 2, StrideH: 2, StrideW: 2}
	nets := []*nn.Graph{
		{
			Name:  "one-channel",
			Input: nn.Shape{1, 12, 12},
			Nodes: []*nn.Node{
				{Name: "conv1", OpType: "Conv", Op: randConv(rng, 1, 5, 3, 1, 1), Inputs: []int{0}, Shape: nn.Shape{5, 12, 12}},
				{Name: "sq1", OpType: "Mul", Op: &nn.Mul{}, Inputs: []int{1, 1}, Shape: nn.Shape{5, 12, 12}},
				{Name: "conv2", OpType: "Conv", Op: randConv(rng, 5, 3, 3, 2, 1), Inputs: []int{2}, Shape: nn.Shape{3, 6, 6}},
				{Name: "sq2", OpType: "Mul", Op: &nn.Mul{}, Inputs: []int{3, 3}, Shape: nn.Shape{3, 6, 6}},
				{Name: "flat", OpType: "Flatten", Op: &nn.Reshape{To: nn.Shape{108}}, Inputs: []int{4}, Shape: nn.Shape{108}},
				{Name: "fc", OpType: "Gemm", Op: randDense(rng, 108, 4, 1), Inputs: []int{5}, Shape: nn.Shape{4}},
			},
			Output: 6,
		},
		{
			Name:  "pooled",
			Input: nn.Shape{2, 10, 10},
			Nodes: []*nn.Node{
				{Name: "conv1", OpType: "Conv", Op: randConv(rng, 2, 6, 3, 1, 0), Inputs: []int{0}, Shape: nn.Shape{6, 8, 8}},
				{Name: "pool1", OpType: "AveragePool", Op: pool, Inputs: []int{1}, Shape: nn.Shape{6, 4, 4}},
				{Name: "sq1", OpType: "Mul", Op: &nn.Mul{}, Inputs: []int{2, 2}, Shape: nn.Shape{6, 4, 4}},
				{Name: "flat", OpType: "Flatten", Op: &nn.Reshape{To: nn.Shape{96}}, Inputs: []int{3}, Shape: nn.Shape{96}},
				{Name: "fc", OpType: "Gemm", Op: randDense(rng, 96, 3, 1), Inputs: []int{4}, Shape: nn.Shape{3}},
			},
			Output: 5,
		},
	}
	multiplexed, staged := 0, 0
	for _, g := range nets {
		t.Run(g.Name, func(t *testing.T) {
			calib := uniform(rng, 16*g.Input.Size())
			r, err := New(g, compiler.Options{Calibration: calib, NoTiles: true, Keys: compiler.KeysFast}, 2)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range r.Program.Steps {
				if s.Kind == plan.StepLinear && s.OutPos != nil && s.Pout > s.Pin {
					multiplexed++
				}
				if s.Kind == plan.StepLinear && s.FoldWidth > 2 {
					staged++
				}
			}
			x := uniform(rng, g.Input.Size())
			maxErr := checkEncrypted(t, r, g, x, 1)
			t.Logf("%d rotations, %d diagonals, max error %.3g (stated %.3g)", r.Plan.Ops.Rotations, r.Plan.Ops.Diagonals, maxErr, r.Plan.Precision.OutputError)
		})
	}
	if multiplexed == 0 {
		t.Error("no convolution multiplexed over copies of its input period")
	}
	if staged == 0 {
		t.Error("no map folds its blocks in hoisted stages")
	}
}
