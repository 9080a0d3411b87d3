package bundled_test

import (
	"bytes"
	"slices"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/bundled"
	"github.com/fheserve/fheserve/nn/onnx"
	"github.com/fheserve/fheserve/npy"
)

func TestNames(t *testing.T) {
	want := []string{"cnn", "logreg", "match", "mlp"}
	if got := bundled.Names(); !slices.Equal(got, want) {
		t.Errorf("Names() = %v, want %v", got, want)
	}
}

func TestWorkloads(t *testing.T) {
	tests := []struct {
		name    string
		sample  []int // per-sample input shape
		inputs  int   // number of sample inputs
		classes int   // labels are in [0, classes)
	}{
		{"logreg", []int{30}, 143, 2},
		{"mlp", []int{1, 28, 28}, 256, 10},
		{"cnn", []int{1, 28, 28}, 256, 10},
		{"match", []int{128}, 64, 4096},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			model, err := bundled.Model(tt.name)
			if err != nil {
				t.Fatal(err)
			}
			// An ONNX ModelProto starts with field 1 (ir_version), a varint.
			if len(model) < 100 || model[0] != 0x08 || !bytes.Contains(model, []byte("input")) {
				t.Errorf("model is not an ONNX file with an input named \"input\"")
			}
			x := mustArray(t, bundled.Inputs, tt.name)
			y := mustArray(t, bundled.Labels, tt.name)
			calib := mustArray(t, bundled.Calibration, tt.name)
			if want := append([]int{tt.inputs}, tt.sample...); !slices.Equal(x.Shape, want) {
				t.Errorf("inputs shape %v, want %v", x.Shape, want)
			}
			if want := append([]int{64}, tt.sample...); !slices.Equal(calib.Shape, want) {
				t.Errorf("calibration shape %v, want %v", calib.Shape, want)
			}
			if want := []int{tt.inputs}; !slices.Equal(y.Shape, want) {
				t.Errorf("labels shape %v, want %v", y.Shape, want)
			}
			seen := map[float64]bool{}
			for _, l := range y.Data {
				if l != float64(int(l)) || l < 0 || int(l) >= tt.classes {
					t.Fatalf("label %v outside [0, %d)", l, tt.classes)
				}
				seen[l] = true
			}
			if tt.classes <= 10 && len(seen) != tt.classes {
				t.Errorf("labels cover %d of %d classes", len(seen), tt.classes)
			}
		})
	}
}

func TestUnknown(t *testing.T) {
	for _, name := range []string{"resnet", "", "../bundled", "mlp.x", "README"} {
		if _, err := bundled.Model(name); fheserve.ErrorCode(err) != fheserve.ENOTFOUND {
			t.Errorf("Model(%q) error = %v, want code %s", name, err, fheserve.ENOTFOUND)
		}
		if _, err := bundled.Inputs(name); fheserve.ErrorCode(err) != fheserve.ENOTFOUND {
			t.Errorf("Inputs(%q) error = %v, want code %s", name, err, fheserve.ENOTFOUND)
		}
	}
}

func mustArray(tb testing.TB, get func(string) (*npy.Array, error), name string) *npy.Array {
	tb.Helper()
	a, err := get(name)
	if err != nil {
		tb.Fatal(err)
	}
	return a
}

// TestClassNames checks that the Fashion-MNIST models name their ten
// outputs in their ONNX metadata, in Fashion-MNIST's class order, and
// that the other workloads name none.
func TestClassNames(t *testing.T) {
	fashion := []string{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"}
	for _, name := range bundled.Names() {
		data, err := bundled.Model(name)
		if err != nil {
			t.Fatal(err)
		}
		labels, err := onnx.Labels(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var want []string
		if name == "mlp" || name == "cnn" {
			want = fashion
		}
		if !slices.Equal(labels, want) {
			t.Errorf("%s names its outputs %q, want %q", name, labels, want)
		}
		if labels != nil {
			g, err := bundled.Graph(name)
			if err != nil {
				t.Fatal(err)
			}
			if err := fheserve.ValidLabels(labels, g.OutputShape().Size()); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	}
}
