package bench

import (
	"testing"
)

func TestSummarize(t *testing.T) {
	run := func(cnnEval, mlpRatio, cnnRatio float64) []*Result {
		return []*Result{
			{Workload: "cnn", Mode: "latency", EvaluateMS: cnnEval, FloorRatio: cnnRatio, ArgmaxAgreement: 1},
			{Workload: "mlp", Mode: "latency", EvaluateMS: 50, FloorRatio: mlpRatio, ArgmaxAgreement: 1},
		}
	}
	// Three runs: cnn evaluate 400, 600, 450 ms (two of three meet 500);
	// the floor ratio is the worst of both workloads per run.
	got := Summarize([][]*Result{run(400, 1.2, 1.0), run(600, 1.0, 1.6), run(450, 1.1, 1.4)})
	byName := map[string]TargetSummary{}
	for _, s := range got {
		byName[s.Name] = s
	}
	tests := []struct {
		name             string
		median, min, max float64
		met, runs        int
	}{
		{"cnn latency: evaluate ≤ 500 ms", 450, 400, 600, 2, 3},
		{"mlp latency: evaluate ≤ 100 ms", 50, 50, 50, 3, 3},
		{"evaluate within 1.5x of the floor", 1.4, 1.2, 1.6, 2, 3},
		{"encrypted argmax equal to the reference on every sample", 1, 1, 1, 3, 3},
	}
	for _, tt := range tests {
		s, ok := byName[tt.name]
		if !ok {
			t.Errorf("%s: missing", tt.name)
			continue
		}
		if s.Median != tt.median || s.Min != tt.min || s.Max != tt.max || s.Met != tt.met || s.Runs != tt.runs {
			t.Errorf("%s", s.String())
		}
	}
	if _, ok := byName["logreg batch ≥ 200,000 samples/s"]; ok {
		t.Error("a target no run covers is reported")
	}
	if m := median([]float64{4, 1, 3, 2}); m != 2.5 {
		t.Errorf("median of 1..4 = %v", m)
	}
}
