package onnx

import (
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/npy"
)

// refused lists the PyTorch fixtures that must fail to import, with the
// words the message must contain. Those under testdata/onnx/refused/ are
// kept apart from the fixtures the encrypted tests run.
var refused = map[string][]string{
	"maxpool":   {"AveragePool"},
	"layernorm": {"(ReduceMean)", "LayerNorm", "use BatchNorm"},
}

// TestRefusedFixtures imports the models under testdata/onnx/refused/.
func TestRefusedFixtures(t *testing.T) {
	paths, _ := filepath.Glob("../../testdata/onnx/refused/*.onnx")
	if len(paths) == 0 {
		t.Fatal("no fixtures under testdata/onnx/refused")
	}
	for _, path := range paths {
		name := strings.TrimSuffix(filepath.Base(path), ".onnx")
		t.Run(name, func(t *testing.T) {
			want, ok := refused[name]
			if !ok {
				t.Fatalf("%s is not listed in refused", path)
			}
			_, err := ImportFile(path, Options{})
			checkRefusal(t, err, want)
		})
	}
}

func checkRefusal(t *testing.T, err error, want []string) {
	t.Helper()
	if fheserve.ErrorCode(err) != fheserve.EUNSUPPORTED {
		t.Fatalf("import error = %v, want %s", err, fheserve.EUNSUPPORTED)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("import error %q does not mention %q", err, w)
		}
	}
}

// TestPyTorchFixtures imports every model under testdata/onnx and compares
// the reference evaluator with PyTorch's output for the stored batch.
func TestPyTorchFixtures(t *testing.T) {
	paths, _ := filepath.Glob("../../testdata/onnx/*.onnx")
	if len(paths) == 0 {
		t.Fatal("no fixtures under testdata/onnx")
	}
	for _, path := range paths {
		name := strings.TrimSuffix(filepath.Base(path), ".onnx")
		t.Run(name, func(t *testing.T) {
			g, err := ImportFile(path, Options{})
			if want, ok := refused[name]; ok {
				checkRefusal(t, err, want)
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
	for _, c := range []struct{ name, kinds, why string }{
		{"gelu", "dense activation dense", "one activation between two dense"},
		{"cnn1d", "reshape conv reshape mul reshape dense", "the BatchNorm1d folded into the Conv1d"},
	} {
		g, err := ImportFile("../../testdata/onnx/"+c.name+".onnx", Options{})
		if err != nil {
			t.Fatal(err)
		}
		var kinds []string
		for _, n := range g.Nodes {
			kinds = append(kinds, n.Op.Kind())
		}
		if got := strings.Join(kinds, " "); got != c.kinds {
			t.Errorf("%s imports as %q, want %q: %s", c.name, got, c.kinds, c.why)
		}
	}
}
