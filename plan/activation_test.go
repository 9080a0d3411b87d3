package plan

import (
	"math"
	"slices"
	"testing"
)

func TestActivationApproximate(t *testing.T) {
	// T_0 + 0.5 T_2 on [2, 6]: t = (x-4)/2.
	a := &Activation{Basis: Chebyshev, Coeffs: []float64{1, 0, 0.5}, PreScale: 0.5, PreOffset: -2}
	for _, x := range []float64{2, 3.5, 6, 10} {
		tt := (x - 4) / 2
		want := 1 + 0.5*(2*tt*tt-1)
		if got := a.Approximate(x); math.Abs(got-want) > 1e-12 {
			t.Errorf("Approximate(%g) = %g, want %g", x, got, want)
		}
	}
}

func TestOutOfBound(t *testing.T) {
	p := &Plan{OutputShape: []int{2}, Precision: Precision{OutputBound: 10}}
	raw := []float64{
		1, -9.9, // in bound
		10.5, 0, // above
		0, -11, // below
		math.NaN(), 0,
		10, -10, // on the bound
	}
	if got, want := p.OutOfBound(raw), []int{1, 2, 3}; !slices.Equal(got, want) {
		t.Errorf("OutOfBound = %v, want %v", got, want)
	}
}

func TestDecodeRawHasNoHead(t *testing.T) {
	p := &Plan{Packing: Batch, OutputShape: []int{1}, Head: "sigmoid", Output: Layout{Ciphertexts: 1}}
	vecs := [][]float64{{-30, 0, 2}}
	raw, err := p.DecodeRaw(vecs, 3)
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.DecodeOutput(vecs, 3)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(raw, []float64{-30, 0, 2}) {
		t.Errorf("DecodeRaw = %v", raw)
	}
	if out[1] != 0.5 || out[0] > 1e-9 || math.Abs(out[2]-1/(1+math.Exp(-2))) > 1e-12 {
		t.Errorf("DecodeOutput = %v, want the sigmoid of %v", out, raw)
	}
}
