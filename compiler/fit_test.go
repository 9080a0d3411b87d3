package compiler

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/plan"
)

func TestLeastSquaresReproducesPolynomials(t *testing.T) {
	f := func(x float64) float64 { return 0.5 - x + 0.25*x*x*x }
	samples := []float64{-0.3, 0.1, 0.2, 0.25, 1.5}
	c := leastSquaresChebyshev(f, -2, 3, 3, samples)
	for _, x := range []float64{-2, -0.7, 0, 1.1, 3} {
		got := plan.EvalPoly(plan.Chebyshev, c, (2*x-1)/5)
		if math.Abs(got-f(x)) > 1e-9 {
			t.Errorf("p(%g) = %g, want %g", x, got, f(x))
		}
	}
}

// On inputs concentrated near the kink, as ReLU inputs after BatchNorm
// are, the calibration fit is more accurate than interpolation where the
// data lies, and still bounded over the whole interval.
func TestCalibrationFitBeatsInterpolationOnData(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	samples := make([]float64, 20000)
	for i := range samples {
		samples[i] = rng.NormFloat64()
	}
	samples[0], samples[1] = -8, 8 // rare extremes set the interval
	relu := func(x float64) float64 { return math.Max(x, 0) }
	const d = 15
	lo, hi := -9.6, 9.6
	rms := func(c []float64) (data, worst float64) {
		for _, x := range samples {
			e := plan.EvalPoly(plan.Chebyshev, c, x/hi) - relu(x)
			data += e * e
		}
		for i := 0; i <= 1000; i++ {
			x := lo + (hi-lo)*float64(i)/1000
			worst = math.Max(worst, math.Abs(plan.EvalPoly(plan.Chebyshev, c, x/hi)-relu(x)))
		}
		return math.Sqrt(data / float64(len(samples))), worst
	}
	interpData, interpWorst := rms(chebyshevInterpolant(relu, lo, hi, d))
	fitData, fitWorst := rms(leastSquaresChebyshev(relu, lo, hi, d, samples))
	t.Logf("rms error on the data: interpolation %.3g, calibration fit %.3g; worst on the interval %.3g, %.3g",
		interpData, fitData, interpWorst, fitWorst)
	if fitData > interpData/2 {
		t.Errorf("calibration fit rms error %g on the data, not half interpolation's %g", fitData, interpData)
	}
	if fitWorst > 4*interpWorst {
		t.Errorf("calibration fit worst error %g on the interval, above 4 times interpolation's %g", fitWorst, interpWorst)
	}
}

func TestFitAndMarginOptions(t *testing.T) {
	g := reluGraph(1)
	calib := uniformRows(256, 1) // inputs in [-1, 1]
	tests := []struct {
		name    string
		opts    Options
		halfW   float64 // expected half-width of the interval, about
		fit     string
		chosen  bool // no setting: the search chooses (halfW unchecked)
		wantErr bool
	}{
		{name: "defaults, degree given", opts: Options{Degree: DefaultDegree}, halfW: 1.2},
		{name: "chosen from the calibration data", opts: Options{}, fit: FitLeastSquares, chosen: true},
		{name: "margin", opts: Options{Margin: 0.5}, halfW: 2},
		{name: "least-squares fit", opts: Options{Fit: FitLeastSquares, Margin: 0.25}, halfW: 1.5, fit: FitLeastSquares},
		{name: "negative margin", opts: Options{Margin: -0.1}, wantErr: true},
		{name: "unknown fit", opts: Options{Fit: "minimax"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Calibration = calib
			res, err := Compile(g, tt.opts)
			if tt.wantErr {
				if fheserve.ErrorCode(err) != fheserve.EINVALID {
					t.Fatalf("got %v, want an invalid-input error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			a := res.Plan.Activations[0]
			if c := res.Plan.ActivationChoice; (c != nil) != tt.chosen || (c != nil && (!c.Met || c.HeldOut != 64)) {
				t.Errorf("activation choice %+v, want one (met on 64 held-out rows): %v", c, tt.chosen)
			}
			if hw := (a.Interval[1] - a.Interval[0]) / 2; !tt.chosen && math.Abs(hw-tt.halfW) > 0.02*tt.halfW {
				t.Errorf("interval %v has half-width %g, want about %g", a.Interval, hw, tt.halfW)
			}
			if a.Fit != tt.fit {
				t.Errorf("fit %q, want %q", a.Fit, tt.fit)
			}
		})
	}
}
