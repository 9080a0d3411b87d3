package compiler

import (
	"math"
)

// Fit methods for activation approximations (Options.Fit).
const (
	// FitInterpolation interpolates the activation at the Chebyshev
	// nodes of its interval: close to the best uniform approximation on
	// the whole interval.
	FitInterpolation = "interpolation"
	// FitLeastSquares fits the Chebyshev series by least squares on the
	// activation's calibration inputs, with a small weight on the whole
	// interval: most accurate where the data lies (for ReLU after
	// BatchNorm, near zero), at the price of a larger error in the sparse
	// tails.
	FitLeastSquares = "least-squares"
)

// gridWeight is the share of the least-squares objective given to a
// uniform cover of the interval (Chebyshev nodes), which keeps the
// polynomial bounded where calibration data is sparse.
const gridWeight = 0.1

// maxFitSamples bounds the calibration inputs used in a fit.
const maxFitSamples = 50000

// leastSquaresChebyshev returns the coefficients on [-1, 1] of the
// degree-d Chebyshev series minimizing the squared error against f on the
// samples inside [lo, hi] (weight 1-gridWeight in all) and on 4(d+1)
// Chebyshev nodes of the interval (weight gridWeight in all).
func leastSquaresChebyshev(f func(float64) float64, lo, hi float64, d int, samples []float64) []float64 {
	n := d + 1
	ata := make([]float64, n*n)
	atb := make([]float64, n)
	row := make([]float64, n)
	add := func(x, w float64) {
		t := (2*x - hi - lo) / (hi - lo)
		row[0] = 1
		if n > 1 {
			row[1] = t
		}
		for k := 2; k < n; k++ {
			row[k] = 2*t*row[k-1] - row[k-2]
		}
		y := f(x)
		for i := 0; i < n; i++ {
			wi := w * row[i]
			atb[i] += wi * y
			for j := 0; j <= i; j++ {
				ata[i*n+j] += wi * row[j]
			}
		}
	}
	var inside []float64
	for _, x := range samples {
		if x >= lo && x <= hi {
			inside = append(inside, x)
		}
	}
	step := max(1, len(inside)/maxFitSamples)
	var count int
	for i := 0; i < len(inside); i += step {
		count++
	}
	for i := 0; i < len(inside); i += step {
		add(inside[i], (1-gridWeight)/float64(count))
	}
	m := 4 * n
	for k := 0; k < m; k++ {
		t := math.Cos(math.Pi * (float64(k) + 0.5) / float64(m))
		add((hi-lo)/2*t+(hi+lo)/2, gridWeight/float64(m))
	}
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			ata[i*n+j] = ata[j*n+i]
		}
	}
	return solveSPD(ata, atb, n)
}

// solveSPD solves A x = b for a symmetric positive definite n x n matrix
// by Cholesky factorization.
func solveSPD(a, b []float64, n int) []float64 {
	l := make([]float64, n*n)
	for i := 0; i < n; i++ {
		for j := 0; j <= i; j++ {
			s := a[i*n+j]
			for k := 0; k < j; k++ {
				s -= l[i*n+k] * l[j*n+k]
			}
			if i == j {
				l[i*n+i] = math.Sqrt(math.Max(s, 1e-300))
			} else {
				l[i*n+j] = s / l[j*n+j]
			}
		}
	}
	y := make([]float64, n)
	for i := 0; i < n; i++ {
		s := b[i]
		for k := 0; k < i; k++ {
			s -= l[i*n+k] * y[k]
		}
		y[i] = s / l[i*n+i]
	}
	x := make([]float64, n)
	for i := n - 1; i >= 0; i-- {
		s := y[i]
		for k := i + 1; k < n; k++ {
			s -= l[k*n+i] * x[k]
		}
		x[i] = s / l[i*n+i]
	}
	return x
}
