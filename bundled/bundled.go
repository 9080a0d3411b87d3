// Package bundled embeds the benchmark and demo workloads in the binary, so
// that `fheserve bench` and `fheserve demo` work offline: for each workload
// an ONNX model, sample inputs with their labels, and calibration rows.
// README.md says how each was trained and how accurate it is in plaintext;
// testdata/gen/make_bundled.py regenerates the files.
package bundled

import (
	"bytes"
	"embed"
	"fmt"
	"slices"
	"strings"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/nn"
	"github.com/fheserve/fheserve/nn/onnx"
	"github.com/fheserve/fheserve/npy"
)

//go:embed *.onnx *.npy
var files embed.FS

// Names lists the workloads in alphabetical order.
func Names() []string {
	entries, err := files.ReadDir(".")
	if err != nil {
		panic("bundled: " + err.Error()) // the embedded root always exists
	}
	var names []string
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".onnx"); ok {
			names = append(names, name)
		}
	}
	return names
}

// Model returns the ONNX file of a workload.
func Model(name string) ([]byte, error) {
	return file(name, ".onnx")
}

// Graph returns the model of a workload imported, named after it.
func Graph(name string) (*nn.Graph, error) {
	data, err := Model(name)
	if err != nil {
		return nil, err
	}
	g, err := onnx.Import(data, onnx.Options{})
	if err != nil {
		return nil, fmt.Errorf("bundled model %q: %w", name, err)
	}
	g.Name = name
	return g, nil
}

// Inputs returns the sample inputs of a workload, float32 values with the
// batch as the first dimension, in the shape the model takes.
func Inputs(name string) (*npy.Array, error) {
	return array(name, ".x.npy")
}

// Labels returns the class (or enrolled identity) of each sample input.
func Labels(name string) (*npy.Array, error) {
	return array(name, ".y.npy")
}

// Calibration returns 64 training rows shaped like the inputs, for
// measuring the value ranges a compiled plan must support.
func Calibration(name string) (*npy.Array, error) {
	return array(name, ".calib.npy")
}

// Load returns a workload's graph, calibration rows, sample inputs and
// the number of samples.
func Load(name string) (g *nn.Graph, calib, x []float64, n int, err error) {
	if g, err = Graph(name); err != nil {
		return nil, nil, nil, 0, err
	}
	c, err := Calibration(name)
	if err != nil {
		return nil, nil, nil, 0, err
	}
	in, err := Inputs(name)
	if err != nil {
		return nil, nil, nil, 0, err
	}
	return g, c.Data, in.Data, in.Shape[0], nil
}

func file(name, suffix string) ([]byte, error) {
	if !slices.Contains(Names(), name) {
		return nil, fheserve.Errorf(fheserve.ENOTFOUND, "no bundled model %q (have %s)", name, strings.Join(Names(), ", "))
	}
	return files.ReadFile(name + suffix)
}

func array(name, suffix string) (*npy.Array, error) {
	b, err := file(name, suffix)
	if err != nil {
		return nil, err
	}
	return npy.Read(bytes.NewReader(b), int64(len(b)))
}
