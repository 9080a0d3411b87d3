package server_test

import (
	"context"
	"flag"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/fheserve/fheserve/bundled"
	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/examples"
	"github.com/fheserve/fheserve/local"
	"github.com/fheserve/fheserve/nn"
	"github.com/fheserve/fheserve/plan"
	"github.com/tuneinsight/lattigo/v6/core/rlwe"
	"github.com/tuneinsight/lattigo/v6/schemes/ckks"
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

// BenchmarkHoisting measures what the compiler's hoistedCost weighs: a
// full rotation (decomposition, key switch, ModDown), the decomposition
// alone, a hoisted rotation kept in QP (a baby step), and a plaintext
// product of both halves in QP, at N = 2^14 and 2^15 with one
// key-switching prime, at a low, a middle and the top level.
func BenchmarkHoisting(b *testing.B) {
	for _, logN := range []int{14, 15} {
		logQ := []int{60, 50, 50, 50, 50, 50}
		if logN == 15 {
			logQ = []int{60, 50, 50, 50, 50, 50, 50, 50, 50, 50}
		}
		params, err := ckks.NewParametersFromLiteral(ckks.ParametersLiteral{LogN: logN, LogQ: logQ, LogP: []int{61}, LogDefaultScale: 50})
		if err != nil {
			b.Fatal(err)
		}
		kg := rlwe.NewKeyGenerator(params)
		sk := kg.GenSecretKeyNew()
		galEl := params.GaloisElement(5)
		eval := ckks.NewEvaluator(params, rlwe.NewMemEvaluationKeySet(nil, kg.GenGaloisKeyNew(galEl, sk)))
		enc := rlwe.NewEncryptor(params, sk)
		for _, level := range []int{1, 3, params.MaxLevel()} {
			ct := ckks.NewCiphertext(params, 1, level)
			if err := enc.Encrypt(ckks.NewPlaintext(params, level), ct); err != nil {
				b.Fatal(err)
			}
			levelP := params.MaxLevelP()
			decomp := rlwe.NewPool(params.RingQP()).AtLevel(level, levelP).GetBuffDecompQP(*params.GetRLWEParameters(), level, levelP)
			rot := ckks.NewCiphertext(params, 1, level)
			baby := rlwe.NewElementExtended(params, 1, level, levelP)
			ringQP := params.RingQP().AtLevel(level, levelP)
			acc := ringQP.NewPoly()
			ops := []struct {
				name string
				f    func() error
			}{
				{"rotate", func() error { return eval.Rotate(ct, 5, rot) }},
				{"decompose", func() error { eval.DecomposeNTT(level, levelP, levelP+1, ct.Value[1], ct.IsNTT, decomp); return nil }},
				{"hoisted-lazy", func() error { return eval.AutomorphismHoistedLazy(level, ct, decomp, galEl, baby) }},
				{"plaintext-product-qp", func() error {
					ringQP.MulCoeffsMontgomeryLazyThenAddLazy(baby.Value[0], baby.Value[1], acc)
					ringQP.MulCoeffsMontgomeryLazyThenAddLazy(baby.Value[0], baby.Value[1], acc)
					return nil
				}},
			}
			for _, op := range ops {
				b.Run(fmt.Sprintf("N=2^%d/level=%d/%s", logN, level, op.name), func(b *testing.B) {
					for b.Loop() {
						if err := op.f(); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}
