package onnx

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/npy"
)

// refused lists the PyTorch fixtures that must fail to import, with a
// word the message must contain.
var refused = map[string]string{
	"maxpool": "AveragePool",
}

// TestPyTorchFixtures imports every model under testdata/onnx and compares
// the reference evaluator with PyTorch's output for the stored batch.
func TestPyTorchFixtures(t *testing.T) {
	paths, _ := filepath.Glob("../../testdata/onnx/*.onnx")
	if len(paths) == 0 {
		t.Skip("no fixtures under testdata/onnx")
	}
	for _, path := range paths {
		name := strings.TrimSuffix(filepath.Base(path), ".onnx")
		t.Run(name, func(t *testing.T) {
			g, err := ImportFile(path, Options{})
			if want, ok := refused[name]; ok {
				if fheserve.ErrorCode(err) != fheserve.EUNSUPPORTED || !strings.Contains(err.Error(), want) {
					t.Fatalf("import error = %v, want %s mentioning %q", err, fheserve.EUNSUPPORTED, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			base := strings.TrimSuffix(path, ".onnx")
			x, err := npy.ReadFile(base + ".x.npy")
			if err != nil {
				t.Fatal(err)
			}
			y, err := npy.ReadFile(base + ".y.npy")
			if err != nil {
				t.Fatal(err)
			}
			batch := x.Shape[0]
			got, err := g.EvalBatch(x.Data, batch, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(y.Data) {
				t.Fatalf("output has %d values, PyTorch %d (shape %v)", len(got), len(y.Data), y.Shape)
			}
			// PyTorch computes in float32.
			for i := range got {
				if math.Abs(got[i]-y.Data[i]) > 1e-5*max(1, math.Abs(y.Data[i])) {
					t.Fatalf("value %d: got %v, PyTorch %v", i, got[i], y.Data[i])
				}
			}
		})
	}
	if _, err := os.Stat("../../testdata/onnx/gelu.onnx"); err == nil {
		g, err := ImportFile("../../testdata/onnx/gelu.onnx", Options{})
		if err != nil {
			t.Fatal(err)
		}
		var kinds []string
		for _, n := range g.Nodes {
			kinds = append(kinds, n.Op.Kind())
		}
		if got := strings.Join(kinds, " "); got != "dense activation dense" {
			t.Errorf("gelu imports as %q, want one activation between two dense", got)
		}
	}
}
