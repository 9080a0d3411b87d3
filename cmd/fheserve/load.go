package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/nn"
	"github.com/fheserve/fheserve/nn/onnx"
	"github.com/fheserve/fheserve/npy"
	"github.com/fheserve/fheserve/plan"
)

// loadModel imports the ONNX model at path. The model is named after its
// file, or its folder when the file is model.onnx (examples/NAME/model.onnx):
// exporters name graphs generically ("torch_jit", "main_graph").
func loadModel(path string) (*nn.Graph, error) {
	g, err := onnx.ImportFile(path, onnx.Options{})
	if err != nil {
		return nil, err
	}
	g.Name = modelName(path)
	return g, nil
}

func modelName(path string) string {
	name := strings.TrimSuffix(filepath.Base(path), ".onnx")
	if dir := filepath.Base(filepath.Dir(path)); name == "model" && dir != "." && dir != string(filepath.Separator) {
		return dir
	}
	return name
}

// readSamples reads the .npy file at path as samples for g: a leading batch
// dimension, then either g's input shape or its flat size. what names the
// file in messages ("input", "calibration").
func readSamples(path, what string, g *nn.Graph) (x []float64, n int, err error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fheserve.Errorf(fheserve.ENOTFOUND, "%s file %q not found", what, path)
	}
	a, err := npy.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	n, err = batchOf(a.Shape, g.Input)
	if err != nil {
		return nil, 0, fheserve.Errorf(fheserve.EINVALID, "%s file %q: %s", what, path, fheserve.ErrorMessage(err))
	}
	return a.Data, n, nil
}

// batchOf returns the number of samples in an array of the given shape:
// [batch, input...] or [batch, size].
func batchOf(shape []int, input nn.Shape) (int, error) {
	size := input.Size()
	switch {
	case len(shape) == 0:
		return 0, fheserve.Errorf(fheserve.EINVALID, "a scalar is not a batch of samples: want shape [batch %s]", dims(input))
	case shape[0] < 1:
		return 0, fheserve.Errorf(fheserve.EINVALID, "shape %v holds no samples", shape)
	case nn.Shape(shape[1:]).Equal(input), len(shape) == 2 && shape[1] == size:
		return shape[0], nil
	}
	want := fmt.Sprintf("[batch %s]", dims(input))
	if len(input) > 1 {
		want += fmt.Sprintf(" or [batch %d]", size)
	}
	if nn.Shape(shape).Equal(input) {
		return 0, fheserve.Errorf(fheserve.EINVALID, "shape %v has no batch dimension: want %s (numpy.expand_dims(x, 0) for one sample)", shape, want)
	}
	return 0, fheserve.Errorf(fheserve.EINVALID, "shape %v does not match the model: want %s, the batch dimension first", shape, want)
}

// dims formats a shape without brackets: "1 28 28".
func dims(s []int) string {
	return strings.Trim(fmt.Sprint(s), "[]")
}

// engineFlags are the compilation flags that compile and predict share.
type engineFlags struct {
	Calibration string         // .npy file of representative inputs
	Degree      int            // activation approximation degree; 0 is the default
	Degrees     map[string]int // per-node degrees, overriding Degree
	Fit         string         // approximation method; "" is interpolation
	Margin      float64        // interval widening; 0 is the default
	LogN        int            // forced ring degree; 0 picks the smallest
	FloodBits   float64        // demanded flooding margin over the evaluation noise
}

// marginUsage is the help of the --margin flag.
const marginUsage = "widen each calibrated activation interval by this `fraction` of its width on each side (default 0.1)"

// fitUsage is the help of the --fit flag.
const fitUsage = "how activations are approximated: interpolation (the default; uniform over the interval) or least-squares (fitted to the calibration inputs, most accurate where they lie)"

// degreesUsage is the help of the --degrees flag.
const degreesUsage = "per-activation degrees, `node=D,...` (node names as in the compile report), overriding --degree"

// compilerOptions reads the calibration file and returns the options for
// compiler.Compile (or local.New).
func (f *engineFlags) compilerOptions(g *nn.Graph, packing string) (compiler.Options, error) {
	opts := compiler.Options{Packing: packing, Degree: f.Degree, Degrees: f.Degrees, Fit: f.Fit, Margin: f.Margin, LogN: f.LogN}
	if f.Calibration != "" {
		x, _, err := readSamples(f.Calibration, "calibration", g)
		if err != nil {
			return opts, err
		}
		opts.Calibration = x
	}
	return opts, nil
}

// validPacking checks a --packing or --mode value.
func validPacking(flag, v string) error {
	if v != plan.Latency && v != plan.Batch {
		return fheserve.Errorf(fheserve.EINVALID, "%s must be %q or %q, not %q", flag, plan.Latency, plan.Batch, v)
	}
	return nil
}

// validDegree checks a --degree value (compiler.Options.Degree's range).
func validDegree(d int) error {
	if d != 0 && (d < 2 || d > 63) {
		return fheserve.Errorf(fheserve.EINVALID, "--degree must be between 2 and 63, not %d", d)
	}
	return nil
}

// requiredFlag is the error for a missing required flag.
func requiredFlag(name string) error {
	return fheserve.Errorf(fheserve.EINVALID, "%s is required", name)
}
