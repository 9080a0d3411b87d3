package face

import (
	"embed"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
)

// The weight files of @vladmandic/face-api 1.7.15 (model/, MIT licensed,
// copied unchanged): a tfjs weights manifest and the binary it describes, for
// each of the three networks the pipeline runs.
//
//go:embed model/*.json model/*.bin
var modelFS embed.FS

// weights maps a manifest's tensor names to their values, dequantized as
// tfjs does.
type weights map[string]param

// param is one weight tensor: its shape as the manifest gives it and its
// values in row-major order.
type param struct {
	shape []int
	data  []float32
}

type manifestGroup struct {
	Paths   []string `json:"paths"`
	Weights []struct {
		Name         string `json:"name"`
		Shape        []int  `json:"shape"`
		Dtype        string `json:"dtype"`
		Quantization *struct {
			Dtype string  `json:"dtype"`
			Scale float64 `json:"scale"`
			Min   float64 `json:"min"`
		} `json:"quantization"`
	} `json:"weights"`
}

// loadWeights reads model/NAME-weights_manifest.json and its binary. A
// uint8-quantized tensor is dequantized as tfjs's decodeWeights does it:
// q*scale + min in float64, rounded once to float32.
func loadWeights(name string) (weights, error) {
	raw, err := modelFS.ReadFile("model/" + name + "-weights_manifest.json")
	if err != nil {
		return nil, err
	}
	var groups []manifestGroup
	if err := json.Unmarshal(raw, &groups); err != nil {
		return nil, fmt.Errorf("face: manifest of %s: %w", name, err)
	}
	w := weights{}
	for _, g := range groups {
		var buf []byte
		for _, p := range g.Paths {
			b, err := modelFS.ReadFile("model/" + p)
			if err != nil {
				return nil, err
			}
			buf = append(buf, b...)
		}
		off := 0
		for _, e := range g.Weights {
			n := 1
			for _, d := range e.Shape {
				n *= d
			}
			if e.Dtype != "float32" {
				return nil, fmt.Errorf("face: %s/%s: dtype %s", name, e.Name, e.Dtype)
			}
			data := make([]float32, n)
			switch {
			case e.Quantization == nil:
				if off+4*n > len(buf) {
					return nil, fmt.Errorf("face: %s: weights end early at %s", name, e.Name)
				}
				for i := range data {
					data[i] = math.Float32frombits(binary.LittleEndian.Uint32(buf[off+4*i:]))
				}
				off += 4 * n
			case e.Quantization.Dtype == "uint8":
				if off+n > len(buf) {
					return nil, fmt.Errorf("face: %s: weights end early at %s", name, e.Name)
				}
				q := e.Quantization
				for i := range data {
					data[i] = float32(float64(buf[off+i])*q.Scale + q.Min)
				}
				off += n
			default:
				return nil, fmt.Errorf("face: %s/%s: quantization %s", name, e.Name, e.Quantization.Dtype)
			}
			w[e.Name] = param{shape: e.Shape, data: data}
		}
		if off != len(buf) {
			return nil, fmt.Errorf("face: %s: %d bytes of weights left over", name, len(buf)-off)
		}
	}
	return w, nil
}

// get returns the tensor called name, checking its shape.
func (w weights) get(name string, shape ...int) ([]float32, error) {
	p, ok := w[name]
	if !ok {
		return nil, fmt.Errorf("face: no weight %q", name)
	}
	if fmt.Sprint(p.shape) != fmt.Sprint(shape) {
		return nil, fmt.Errorf("face: weight %q has shape %v, want %v", name, p.shape, shape)
	}
	return p.data, nil
}
