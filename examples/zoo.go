package examples

import (
	"path/filepath"
	"slices"
	"strings"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/nn"
	"github.com/fheserve/fheserve/nn/onnx"
	"github.com/fheserve/fheserve/npy"
)

// Example is one model of the zoo with the compilation settings its
// README quotes (packing and calibration aside).
type Example struct {
	Name    string
	Options compiler.Options
}

// Zoo lists the examples in the order of README.md.
var Zoo = []Example{
	{"cancer-logreg", compiler.Options{}},
	{"digits-mlp", compiler.Options{Degree: 15}},
	{"face-match", compiler.Options{}},
	{"fmnist-mlp", compiler.Options{}},
	{"fmnist-cnn", compiler.Options{Fit: compiler.FitLeastSquares, Margin: 0.25,
		Degrees: map[string]int{"/3/Relu": 31, "/7/Relu": 15}}},
	{"fmnist-cnn-poly", compiler.Options{}},
	{"fmnist-resnet", compiler.Options{}},
	// PRISM's degree-4 Softplus approximation.
	{"prism-cifar", compiler.Options{Degree: 4}},
	{"tenseal-tutorial", compiler.Options{}},
}

// Find returns the example of that name.
func Find(name string) (Example, error) {
	i := slices.IndexFunc(Zoo, func(e Example) bool { return e.Name == name })
	if i < 0 {
		names := make([]string, len(Zoo))
		for k, e := range Zoo {
			names[k] = e.Name
		}
		return Example{}, fheserve.Errorf(fheserve.ENOTFOUND, "no example %q (have %s)", name, strings.Join(names, ", "))
	}
	return Zoo[i], nil
}

// Load reads the example's model, calibration rows and fixture inputs
// from dir/NAME (dir: the examples folder of a checkout), the model named
// after the example; n is the number of fixture samples.
func (e Example) Load(dir string) (g *nn.Graph, calib, x []float64, n int, err error) {
	dir = filepath.Join(dir, e.Name)
	if g, err = onnx.ImportFile(filepath.Join(dir, "model.onnx"), onnx.Options{}); err != nil {
		return nil, nil, nil, 0, err
	}
	g.Name = e.Name
	c, err := npy.ReadFile(filepath.Join(dir, "calib.npy"))
	if err != nil {
		return nil, nil, nil, 0, err
	}
	in, err := npy.ReadFile(filepath.Join(dir, "test.x.npy"))
	if err != nil {
		return nil, nil, nil, 0, err
	}
	return g, c.Data, in.Data, in.Shape[0], nil
}
