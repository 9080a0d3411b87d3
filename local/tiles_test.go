package local

import (
	"context"
	"math"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/nn"
	"github.com/fheserve/fheserve/nn/onnx"
	"github.com/fheserve/fheserve/npy"
)

// A tiled latency plan serves several samples in one call: sample t in
// tile t. Each sample's outputs match the plaintext model within the
// plan's stated error; a hostile user who fills every tile but declares k
// samples gets the k declared outputs and flooding noise in every other
// slot; a call declaring more samples than tiles is refused.
func TestTiledLatency(t *testing.T) {
	g, r, x := tiledRunner(t, compiler.Options{})
	p := r.Plan
	if p.Input.Tile == 0 || p.BatchSize < 4 || p.Untiled == nil {
		t.Fatalf("cnn_square is not tiled: tile %d, %d samples per call", p.Input.Tile, p.BatchSize)
	}
	in := g.Input.Size()
	rows := x.Data
	for len(rows) < p.BatchSize*in {
		rows = append(rows, x.Data...)
	}
	for _, k := range []int{1, 3, p.BatchSize} {
		r.Stats.Calls = 0
		checkEncrypted(t, r, g, rows[:k*in], k)
		if r.Stats.Calls != 1 {
			t.Errorf("%d samples took %d calls, want 1", k, r.Stats.Calls)
		}
	}

	// Every tile holds a different sample; the call declares 3.
	const declared = 3
	vecs, err := p.EncodeInput(rows[:p.BatchSize*in], p.BatchSize)
	if err != nil {
		t.Fatal(err)
	}
	raw := rawCall(t, r, vecs, declared)
	got, err := p.DecodeRaw(raw, declared)
	if err != nil {
		t.Fatal(err)
	}
	want, err := g.EvalBatch(rows[:declared*in], declared, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if e := math.Abs(got[i] - want[i]); e > p.Precision.OutputError {
			t.Fatalf("sample %d output %d: %.5g, want %.5g", i/p.OutputSize(), i%p.OutputSize(), got[i], want[i])
		}
	}
	checkFlood(t, 0, p, zeroedSlots(p, raw, declared))

	cts, err := r.keys.Encrypt(vecs, p.Input.Level, r.params.DefaultScale())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.eval.Evaluate(context.Background(), cts, p.BatchSize+1, nil); fheserve.ErrorCode(err) != fheserve.EINVALID {
		t.Errorf("a call of %d samples on %d tiles: got %v, want EINVALID", p.BatchSize+1, p.BatchSize, err)
	}
}

// Without tiles a latency plan takes one sample per call and costs no more
// than the tiled plan it would otherwise be.
func TestNoTiles(t *testing.T) {
	g, r, x := tiledRunner(t, compiler.Options{})
	u, err := compiler.Compile(g, compiler.Options{Calibration: x.Data, NoTiles: true})
	if err != nil {
		t.Fatal(err)
	}
	p := u.Plan
	if p.BatchSize != 1 || p.Input.Tile != 0 || p.Untiled != nil {
		t.Fatalf("NoTiles plan: %d samples per call, tile %d", p.BatchSize, p.Input.Tile)
	}
	tiled := r.Plan.Untiled
	if p.Ops.Rotations != tiled.Rotations || p.Ops.Diagonals != tiled.Diagonals || len(p.Rotations) != tiled.RotationKeys {
		t.Errorf("untiled plan: %d rotations, %d diagonals, %d keys; the tiled plan reports %d, %d, %d",
			p.Ops.Rotations, p.Ops.Diagonals, len(p.Rotations), tiled.Rotations, tiled.Diagonals, tiled.RotationKeys)
	}
}

// tiledRunner compiles the cnn_square fixture in latency packing with
// flooding (the default privacy), calibrated on its inputs.
func tiledRunner(t *testing.T, opts compiler.Options) (*nn.Graph, *Runner, *npy.Array) {
	t.Helper()
	g, err := onnx.ImportFile("../testdata/onnx/cnn_square.onnx", onnx.Options{})
	if err != nil {
		t.Fatal(err)
	}
	x := readNpy(t, "../testdata/onnx/cnn_square.x.npy")
	opts.Calibration = x.Data
	r, err := New(g, opts, 2)
	if err != nil {
		t.Fatal(err)
	}
	return g, r, x
}
