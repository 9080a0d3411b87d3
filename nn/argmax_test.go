package nn

import (
	"math/rand/v2"
	"testing"
)

func TestArgmax(t *testing.T) {
	tests := []struct {
		name string
		v    []float64
		want int
	}{
		{"empty", nil, 0},
		{"one", []float64{-3}, 0},
		{"last", []float64{1, 2, 3}, 2},
		{"negative", []float64{-5, -1, -2}, 1},
		{"first of equals", []float64{0, 7, 1, 7}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Argmax(tt.v); got != tt.want {
				t.Errorf("Argmax(%v) = %d, want %d", tt.v, got, tt.want)
			}
		})
	}
	// Against the definition: no value is larger, and none before it is equal.
	r := rand.New(rand.NewPCG(1, 2))
	for range 100 {
		v := make([]float64, 1+r.IntN(10))
		for i := range v {
			v[i] = float64(r.IntN(5))
		}
		got := Argmax(v)
		for i, x := range v {
			if x > v[got] || (i < got && x == v[got]) {
				t.Fatalf("Argmax(%v) = %d, but v[%d] = %g", v, got, i, x)
			}
		}
	}
}
