package onnx

import (
	"strings"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/nn"
)

// FuzzImport checks that Import never panics and never allocates without
// bound on untrusted bytes, and that every graph it returns is valid and,
// when small, evaluates.
func FuzzImport(f *testing.F) {
	for _, tt := range importCases {
		f.Add(tt.model().bytes(f))
	}
	for _, tt := range refusalCases {
		f.Add(mustMarshal(f, tt.model()))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := Import(data, Options{})
		if err != nil {
			if fheserve.ErrorMessage(err) == "internal error" || fheserve.ErrorCode(err) == fheserve.EINTERNAL {
				t.Fatalf("error is not a checked *fheserve.Error: %v", err)
			}
			return
		}
		if err := g.Validate(); err != nil {
			t.Fatalf("Import returned an invalid graph: %v", err)
		}
		if cheapToEval(g) {
			x := make([]float64, g.Input.Size())
			if _, err := g.Eval(&nn.Tensor{Shape: g.Input, Data: x}, nil); err != nil {
				t.Fatalf("Eval of an imported graph: %v", err)
			}
		}
	})
}

// cheapToEval bounds the work of evaluating g, so the fuzzer stays fast.
func cheapToEval(g *nn.Graph) bool {
	work := g.Input.Size()
	for _, n := range g.Nodes {
		per := 1
		switch op := n.Op.(type) {
		case *nn.Dense:
			per = op.In
		case *nn.Conv:
			per = op.InC * op.KH * op.KW
		case *nn.AvgPool:
			per = op.KH * op.KW
		case *nn.Poly:
			per = len(op.Coeffs)
		}
		work += n.Shape.Size() * per
		if work > 1<<20 {
			return false
		}
	}
	return true
}

// TestImportBoundsMemory checks that a tiny model cannot make the importer
// expand a constant to a huge tensor.
func TestImportBoundsMemory(t *testing.T) {
	// Input [N, 4096, 4096] times a [4096] constant (one value per column)
	// would need a full-size vector of 2^24 values.
	c := make([]float32, 4096)
	m := newModel(13, "N", 4096, 4096).
		init(floatT("c", []int{4096}, c...)).
		node("Mul", ins("x", "c"), ins("y"))
	_, err := Import(m.bytes(t), Options{})
	if fheserve.ErrorCode(err) != fheserve.ETOOLARGE || !strings.Contains(err.Error(), "too much memory") {
		t.Fatalf("error %v, want %s", err, fheserve.ETOOLARGE)
	}
	// Inputs above nn.MaxSize are refused before any node is converted.
	m = newModel(13, "N", 1<<13, 1<<13).node("Relu", ins("x"), ins("y"))
	if _, err := Import(m.bytes(t), Options{}); fheserve.ErrorCode(err) != fheserve.EUNSUPPORTED {
		t.Fatalf("error %v, want %s", err, fheserve.EUNSUPPORTED)
	}
}
