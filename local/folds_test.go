package local

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/fheserve/fheserve/bundled"
	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/he"
	"github.com/fheserve/fheserve/plan"
)

// BenchmarkFoldStages evaluates the bundled cnn (one sample, tiles off,
// fast keys, one worker) alternately with the folds its plan chose
// (plan.Step.FoldWidth: hoisted stages) and with one rotation a stage,
// the same keys and input, call by call, so that both see the same
// load: medians of the calls' evaluation and of the folding maps' steps.
func BenchmarkFoldStages(b *testing.B) {
	g, calib, x, _, err := bundled.Load("cnn")
	if err != nil {
		b.Fatal(err)
	}
	r, err := New(g, compiler.Options{Calibration: calib, NoTiles: true, Keys: compiler.KeysFast}, 1)
	if err != nil {
		b.Fatal(err)
	}
	steps := r.Program.Steps
	widths := make([]int, len(steps))
	folding := 0
	for i := range steps {
		widths[i] = steps[i].FoldWidth
		if widths[i] > 2 {
			folding++
		}
	}
	if folding == 0 {
		b.Fatal("no map folds in hoisted stages")
	}
	up, err := r.upload(x[:g.Input.Size()], 1)
	if err != nil {
		b.Fatal(err)
	}
	in, err := he.UnmarshalCiphertexts(up, r.params, he.Limits{MaxCount: 1, MinLevel: r.Plan.Input.Level, MaxLevel: r.Plan.Input.Level})
	if err != nil {
		b.Fatal(err)
	}
	var total, folds [2][]float64 // [0] staged, [1] a rotation a stage
	b.ResetTimer()
	for i := 0; i < 2*b.N; i++ {
		v := i % 2
		for j := range steps {
			steps[j].FoldWidth = widths[j] * (1 - v)
		}
		var inFolds float64
		t0, last := time.Now(), time.Now()
		_, err := r.eval.Evaluate(context.Background(), in, 1, func(done, _ int) {
			now := time.Now()
			if done <= len(steps) && steps[done-1].Kind == plan.StepLinear && widths[done-1] > 2 {
				inFolds += ms(now.Sub(last))
			}
			last = now
		})
		if err != nil {
			b.Fatal(err)
		}
		total[v] = append(total[v], ms(time.Since(t0)))
		folds[v] = append(folds[v], inFolds)
	}
	for j := range steps {
		steps[j].FoldWidth = widths[j]
	}
	b.ReportMetric(median(total[0]), "staged-ms/op")
	b.ReportMetric(median(total[1]), "inturn-ms/op")
	b.ReportMetric(median(folds[0]), "staged-maps-ms/op")
	b.ReportMetric(median(folds[1]), "inturn-maps-ms/op")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
