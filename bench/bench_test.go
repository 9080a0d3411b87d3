package bench

import (
	"context"
	"flag"
	"fmt"
	"testing"

	"github.com/fheserve/fheserve/bundled"
	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/local"
	"github.com/fheserve/fheserve/plan"
)

// BenchmarkPredict measures one encrypted call per workload and mode with
// 1 and 2 evaluation workers; eval-ms/op is the server evaluation alone,
// so the two worker counts show the speed-up from the second core.
func BenchmarkPredict(b *testing.B) {
	for _, name := range []string{"logreg", "mlp", "cnn"} {
		for _, mode := range Modes {
			for _, workers := range []int{1, 2} {
				b.Run(fmt.Sprintf("%s/%s/workers=%d", name, mode, workers), func(b *testing.B) {
					g, calib, x, n, err := bundled.Load(name)
					if err != nil {
						b.Fatal(err)
					}
					r, err := local.New(g, compiler.Options{Packing: mode, Calibration: calib}, workers)
					if err != nil {
						b.Fatal(err)
					}
					k := 1
					if mode == plan.Batch {
						k = min(n, r.Plan.BatchSize)
					}
					size := r.Plan.InputSize()
					b.ResetTimer()
					for i := 0; i < b.N; i++ {
						if _, err := r.Predict(context.Background(), x[:k*size], k); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(r.Stats.Evaluate.Microseconds())/1000/float64(b.N), "eval-ms/op")
				})
			}
		}
	}
}

// BenchmarkKernels measures the homomorphic operations the floor is made
// of, at N=2^13 on the mlp plan's parameters, level 2.
func BenchmarkKernels(b *testing.B) {
	g, calib, _, _, err := bundled.Load("mlp")
	if err != nil {
		b.Fatal(err)
	}
	res, err := compiler.Compile(g, compiler.Options{Calibration: calib})
	if err != nil {
		b.Fatal(err)
	}
	m, err := newCostMeter(res.Plan)
	if err != nil {
		b.Fatal(err)
	}
	k, err := m.kernels.At(2)
	if err != nil {
		b.Fatal(err)
	}
	ops := []struct {
		name string
		f    func() error
	}{
		{"rotate", k.Rotate},
		{"rotate-hoisted-x8", k.RotateHoisted8},
		{"mul-plaintext-add", k.MulPlaintextAdd},
		{"mul-relin", k.MulRelin},
		{"add", k.Add},
	}
	for _, op := range ops {
		b.Run(op.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if err := op.f(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

var latencyModel = flag.String("latency-model", "cnn", "BenchmarkLatency's workload: a bundled model or an example of ../examples")

// BenchmarkLatency times one latency call (one sample, tiles off, fast
// keys) of a workload, for profiles (-cpuprofile): eval-ms/op is the
// server's evaluation, cpu-ms/op the process's CPU per call, client
// included.
func BenchmarkLatency(b *testing.B) {
	g, calib, x, _, opts, err := load(*latencyModel, "../examples")
	if err != nil {
		b.Fatal(err)
	}
	opts.Packing, opts.Calibration, opts.NoTiles, opts.Keys = plan.Latency, calib, true, compiler.KeysFast
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
