package plan

import "math"

func sigmoid(x float64) float64 {
	if x >= 0 {
		return 1 / (1 + math.Exp(-x))
	}
	e := math.Exp(x)
	return e / (1 + e)
}

func softmax(v []float64) {
	m := math.Inf(-1)
	for _, x := range v {
		m = math.Max(m, x)
	}
	var s float64
	for i, x := range v {
		v[i] = math.Exp(x - m)
		s += v[i]
	}
	for i := range v {
		v[i] /= s
	}
}
