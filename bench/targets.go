package bench

import (
	"fmt"
	"slices"
)

// A Target is one of the engine's performance or accuracy targets,
// checked on the results of repeated runs: each run either meets it or
// not, and the summary reports the median over the runs and how many met
// it, so that one favourable run is never quoted alone.
type Target struct {
	Name     string  // as BENCHMARKS.md states it
	Workload string  // "" for every workload
	Mode     string  // "" for every mode
	Max      bool    // the value must be at most Bound (else at least)
	Bound    float64 // in the unit of Value
	Unit     string
	Value    func(*Result) float64
}

// Targets are the targets BENCHMARKS.md reports against.
var Targets = []Target{
	{Name: "logreg latency: evaluate ≤ 5 ms", Workload: "logreg", Mode: "latency", Max: true, Bound: 5, Unit: "ms", Value: func(r *Result) float64 { return r.EvaluateMS }},
	{Name: "logreg latency: encrypt + evaluate + decrypt ≤ 20 ms", Workload: "logreg", Mode: "latency", Max: true, Bound: 20, Unit: "ms", Value: func(r *Result) float64 { return r.EndToEndMS }},
	{Name: "logreg batch ≥ 200,000 samples/s", Workload: "logreg", Mode: "batch", Bound: 200000, Unit: "samples/s", Value: func(r *Result) float64 { return r.SamplesPerSec }},
	{Name: "mlp latency: evaluate ≤ 100 ms", Workload: "mlp", Mode: "latency", Max: true, Bound: 100, Unit: "ms", Value: func(r *Result) float64 { return r.EvaluateMS }},
	{Name: "cnn latency: evaluate ≤ 500 ms", Workload: "cnn", Mode: "latency", Max: true, Bound: 500, Unit: "ms", Value: func(r *Result) float64 { return r.EvaluateMS }},
	{Name: "cnn batch ≥ 500 images/s", Workload: "cnn", Mode: "batch", Bound: 500, Unit: "images/s", Value: func(r *Result) float64 { return r.SamplesPerSec }},
	{Name: "match latency: evaluate ≤ 300 ms", Workload: "match", Mode: "latency", Max: true, Bound: 300, Unit: "ms", Value: func(r *Result) float64 { return r.EvaluateMS }},
	{Name: "verify (1:1, randomized): evaluate ≤ 50 ms", Workload: "verify", Mode: "randomized", Max: true, Bound: 50, Unit: "ms", Value: func(r *Result) float64 { return r.EvaluateMS }},
	{Name: "verify (1:1, randomized): encrypt + evaluate + decrypt ≤ 100 ms", Workload: "verify", Mode: "randomized", Max: true, Bound: 100, Unit: "ms", Value: func(r *Result) float64 { return r.EndToEndMS }},
	{Name: "identify 10,000 (randomized): evaluate ≤ 1 s", Workload: "identify-10000", Mode: "randomized", Max: true, Bound: 1000, Unit: "ms", Value: func(r *Result) float64 { return r.EvaluateMS }},
	{Name: "identify 10,000 (randomized): result ≤ 1 MB", Workload: "identify-10000", Mode: "randomized", Max: true, Bound: 1024, Unit: "KB", Value: func(r *Result) float64 { return float64(r.ResultBytes) / 1024 }},
	{Name: "identify 65,536 (randomized): evaluate ≤ 5 s", Workload: "identify-65536", Mode: "randomized", Max: true, Bound: 5000, Unit: "ms", Value: func(r *Result) float64 { return r.EvaluateMS }},
	{Name: "identify 65,536 (randomized): result ≤ 1 MB", Workload: "identify-65536", Mode: "randomized", Max: true, Bound: 1024, Unit: "KB", Value: func(r *Result) float64 { return float64(r.ResultBytes) / 1024 }},
	{Name: "evaluate within 1.5x of the floor", Max: true, Bound: 1.5, Unit: "x", Value: func(r *Result) float64 { return r.FloorRatio }},
	{Name: "encrypted argmax equal to the reference on every sample", Bound: 1, Value: func(r *Result) float64 { return r.ArgmaxAgreement }},
	{Name: "cnn, one image: upload ≤ 256 KB", Workload: "cnn", Mode: "latency", Max: true, Bound: 256, Unit: "KB", Value: func(r *Result) float64 { return float64(r.UploadBytes) / 1024 }},
	{Name: "cnn, one image: result ≤ 64 KB", Workload: "cnn", Mode: "latency", Max: true, Bound: 64, Unit: "KB", Value: func(r *Result) float64 { return float64(r.ResultBytes) / 1024 }},
	{Name: "mlp, one image: upload ≤ 256 KB", Workload: "mlp", Mode: "latency", Max: true, Bound: 256, Unit: "KB", Value: func(r *Result) float64 { return float64(r.UploadBytes) / 1024 }},
	{Name: "mlp, one image: result ≤ 64 KB", Workload: "mlp", Mode: "latency", Max: true, Bound: 64, Unit: "KB", Value: func(r *Result) float64 { return float64(r.ResultBytes) / 1024 }},
}

// Met reports whether v meets t.
func (t *Target) Met(v float64) bool {
	if t.Max {
		return v <= t.Bound
	}
	return v >= t.Bound
}

// applies reports whether t is about r's workload and mode.
func (t *Target) applies(r *Result) bool {
	return (t.Workload == "" || t.Workload == r.Workload) && (t.Mode == "" || t.Mode == r.Mode)
}

// TargetSummary is a target over repeated runs. A run meets a target
// that covers several workloads or modes when every one of them does; its
// value is then the worst of them.
type TargetSummary struct {
	Name   string  `json:"name"`
	Unit   string  `json:"unit,omitempty"`
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	Met    int     `json:"runs_met"`
	Runs   int     `json:"runs"`
}

// String is one line: the median, the range and how many runs met it.
func (s *TargetSummary) String() string {
	return fmt.Sprintf("%s: median %.4g %s (%.4g to %.4g), met in %d of %d runs", s.Name, s.Median, s.Unit, s.Min, s.Max, s.Met, s.Runs)
}

// Summarize checks every target that the runs cover; runs[i] holds the
// results of run i.
func Summarize(runs [][]*Result) []TargetSummary {
	var out []TargetSummary
	for _, t := range Targets {
		var vals []float64
		met := 0
		for _, run := range runs {
			worst, ok := 0.0, true
			seen := false
			for _, r := range run {
				if !t.applies(r) {
					continue
				}
				v := t.Value(r)
				if !seen || (t.Max && v > worst) || (!t.Max && v < worst) {
					worst = v
				}
				seen = true
				ok = ok && t.Met(v)
			}
			if !seen {
				continue
			}
			vals = append(vals, worst)
			if ok {
				met++
			}
		}
		if len(vals) == 0 {
			continue
		}
		out = append(out, TargetSummary{Name: t.Name, Unit: t.Unit, Median: median(vals), Min: slices.Min(vals), Max: slices.Max(vals), Met: met, Runs: len(vals)})
	}
	return out
}

// median returns the median of v (the mean of the middle two when even).
func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
