package server_test

import (
	"context"
	"flag"
	"syscall"
	"testing"
	"time"

	"github.com/fheserve/fheserve/bundled"
	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/examples"
	"github.com/fheserve/fheserve/local"
	"github.com/fheserve/fheserve/nn"
	"github.com/fheserve/fheserve/plan"
)

var latencyModel = flag.String("latency-model", "cnn", "BenchmarkLatency's model: a bundled one or an example (run from he/server: ../../examples)")

// BenchmarkLatency times one latency call (one sample, tiles off, fast
// keys) of a bundled model or an example: the server's evaluation alone
// is eval-ms/op.
func BenchmarkLatency(b *testing.B) {
	var g *nn.Graph
	var calib, x []float64
	opts := compiler.Options{Packing: plan.Latency, NoTiles: true, Keys: compiler.KeysFast}
	var err error
	if e, ferr := examples.Find(*latencyModel); ferr == nil {
		g, calib, x, _, err = e.Load("../../examples")
		opts.Degree, opts.Degrees, opts.Fit, opts.Margin = e.Options.Degree, e.Options.Degrees, e.Options.Fit, e.Options.Margin
	} else {
		g, calib, x, _, err = bundled.Load(*latencyModel)
	}
	if err != nil {
		b.Fatal(err)
	}
	opts.Calibration = calib
	r, err := local.New(g, opts, 0)
	if err != nil {
		b.Fatal(err)
	}
	x = x[:g.Input.Size()]
	if _, err := r.Predict(context.Background(), x, 1); err != nil {
		b.Fatal(err)
	}
	r.Stats.Evaluate = 0
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := r.Predict(context.Background(), x, 1); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(r.Stats.Evaluate.Microseconds())/1000/float64(b.N), "eval-ms/op")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/op")
	b.ReportMetric(float64(r.Plan.Ops.Rotations), "rotations")
}

// cpuTime is the process's CPU time so far, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
