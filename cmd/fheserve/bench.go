package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime/pprof"
	"text/tabwriter"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/bench"
	"github.com/spf13/cobra"
)

type benchOptions struct {
	IO           *IOStreams
	Ctx          context.Context
	json         bool
	workloads    []string
	workers      int
	latencyCalls int
	batchSamples int
	runs         int
	keys         string
	decisions    []string
	examples     string
	modes        []string
	cpuProfile   string
}

func newBenchCmd(f *Factory, runF func(*benchOptions) error) *cobra.Command {
	opts := &benchOptions{IO: f.IO}
	cmd := leaf(&cobra.Command{
		Use:   "bench [--json] [--workload NAME]",
		Short: "Benchmark the engine on the bundled workloads, encrypted, in latency and batch packing",
		Long: `bench runs the bundled workloads (logreg, mlp, cnn, match) encrypted in
latency packing (mode latency: one sample per call; mode tiles: every tile of
a call filled with a sample, for plans with tiles) and batch packing and reports keygen, encrypt, evaluate and decrypt
times, sizes, throughput, the plaintext reference time, the floor (the
plan's operation counts times per-operation costs measured in the same
run) and the agreement with the plaintext reference.

Gallery workloads run when named: verify (1:1 on 1,000 templates),
identify-1000, identify-10000 and identify-65536 (1:N), on synthetic galleries of unit
vectors of 128 dimensions, in the decision methods of --decision (mode
randomized by default; polynomial, much slower, when asked). Their
agreement is the fraction of decisions outside the margin equal to
float64's; they add templates, prepare_ms (the server's encoding of the
templates, once per enrolment) and margin to the JSON.

With --examples DIR (the examples folder of a checkout) a workload named
after an example (cancer-logreg, digits-mlp, face-match, fmnist-mlp,
fmnist-cnn, fmnist-cnn-poly, fmnist-resnet, prism-cifar, tenseal-tutorial)
runs its model, calibration rows and fixture inputs with the settings of its
README.
Examples run only when named with --workload: the large ones take minutes
and gigabytes per call (prism-cifar: about 10 GB with GOMEMLIMIT=10GiB).

With --runs N the whole set runs N times and a last table gives, for each
of the engine's targets (BENCHMARKS.md), the median over the runs, the
range, and in how many runs the target was met.`,
	}, opts, &opts.Ctx, runF, benchRun)
	cmd.Flags().BoolVar(&opts.json, "json", false, "print one JSON array, an object per workload and mode")
	cmd.Flags().StringSliceVar(&opts.workloads, "workload", nil, "workloads to run (default all bundled: logreg, mlp, cnn, match; also verify, identify-1000, identify-10000, identify-65536; examples with --examples)")
	cmd.Flags().IntVar(&opts.workers, "workers", 0, "evaluation goroutines (default: all cores)")
	cmd.Flags().IntVar(&opts.latencyCalls, "latency-calls", 8, "calls in latency mode (one sample each) and tiles mode (every tile filled)")
	cmd.Flags().IntVar(&opts.batchSamples, "batch-samples", 0, "samples in batch mode (default: one full batch)")
	cmd.Flags().StringVar(&opts.keys, "keys", "", "rotation keys: small (the fewest key bytes, the default), fast (the fewest rotations) or derived (fast's, derived on the server from master keys), as compile's --keys")
	cmd.Flags().StringSliceVar(&opts.decisions, "decision", nil, "decision methods of the gallery workloads: randomized (the default), polynomial")
	cmd.Flags().StringVar(&opts.examples, "examples", "", "examples folder: workloads may name its examples (fmnist-resnet, prism-cifar, ...)")
	cmd.Flags().StringSliceVar(&opts.modes, "modes", nil, "modes to run (default all: latency, tiles, batch)")
	cmd.Flags().IntVar(&opts.runs, "runs", 1, "run everything this many times, then summarize the targets over the runs")
	cmd.Flags().StringVar(&opts.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this `file` (go tool pprof)")
	return cmd
}

func benchRun(opts *benchOptions) error {
	if opts.runs < 1 {
		return fheserve.Errorf(fheserve.EINVALID, "--runs must be at least 1")
	}
	if opts.cpuProfile != "" {
		f, err := os.Create(opts.cpuProfile)
		if err != nil {
			return fheserve.Errorf(fheserve.EINVALID, "cannot create the CPU profile: %v; pass a writable --cpuprofile path", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	var runs [][]*bench.Result
	tw := tabwriter.NewWriter(opts.IO.Out, 0, 0, 2, ' ', tabwriter.AlignRight)
	if !opts.json {
		fmt.Fprintln(tw, "workload\tmode\tlogN\tkeygen ms\tencrypt ms\tevaluate ms\tdecrypt ms\tsamples/s\tplain ms\tfloor ms\teval/floor\tupload KB\tresult KB\tkeys MB\targmax\tmax err\tprivacy bits\tpeak MB\t")
	}
	for range opts.runs {
		var results []*bench.Result
		err := bench.RunAll(opts.Ctx, opts.workloads, bench.Options{Workers: opts.workers, LatencyCalls: opts.latencyCalls, BatchSamples: opts.batchSamples, Keys: opts.keys, Decisions: opts.decisions, Examples: opts.examples, Modes: opts.modes}, func(r *bench.Result) {
			results = append(results, r)
			if opts.json {
				return
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t%.0f\t%.3f\t%.2f\t%.2f\t%.0f\t%.0f\t%.1f\t%.3f\t%.2g\t%.1f\t%.0f\t\n",
				r.Workload, r.Mode, r.LogN, r.KeygenMS, r.EncryptMS, r.EvaluateMS, r.DecryptMS, r.SamplesPerSec,
				r.PlaintextMS, r.FloorMS, r.FloorRatio, float64(r.UploadBytes)/1024, float64(r.ResultBytes)/1024,
				float64(r.EvalKeyBytes)/(1<<20), r.ArgmaxAgreement, r.MaxAbsError, r.PrivacyBits, float64(r.PeakRSSBytes)/(1<<20))
		})
		if err != nil {
			return err
		}
		runs = append(runs, results)
	}
	targets := bench.Summarize(runs)
	if opts.json {
		enc := json.NewEncoder(opts.IO.Out)
		enc.SetIndent("", "  ")
		if opts.runs == 1 {
			return enc.Encode(runs[0])
		}
		return enc.Encode(&benchJSON{Runs: runs, Targets: targets})
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if opts.runs > 1 {
		fmt.Fprintf(opts.IO.Out, "\ntargets over %d runs:\n", opts.runs)
		for _, t := range targets {
			fmt.Fprintf(opts.IO.Out, "  %s\n", t.String())
		}
	}
	return nil
}

// benchJSON is what --json prints with --runs above 1.
type benchJSON struct {
	Runs    [][]*bench.Result     `json:"runs"`
	Targets []bench.TargetSummary `json:"targets"`
}
