// Package bench runs the engine's benchmark workloads (the bundled
// logreg, mlp, cnn and match models, and on request the examples of a
// checkout's examples folder) encrypted, in latency packing (one
// sample per call, and with filled tiles) and batch packing, and compares each with the plaintext reference and with a
// floor: the plan's operation counts times per-operation costs measured in
// the same run. Gallery workloads (verify, identify-N, gallery.go) run
// face-template queries when named.
package bench

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"runtime"
	"slices"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/bundled"
	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/examples"
	"github.com/fheserve/fheserve/local"
	"github.com/fheserve/fheserve/nn"
	"github.com/fheserve/fheserve/plan"
)

// Workloads are the benchmark workloads in the order they run.
var Workloads = []string{"logreg", "mlp", "cnn", "match"}

// Modes are the packings each workload runs in: latency with one sample
// per call (tiles off), Tiles, and batch.
var Modes = []string{plan.Latency, Tiles, plan.Batch}

// Tiles is the mode of latency packing with every tile of a call filled
// (a workload whose plan has no tiles skips it).
const Tiles = "tiles"

// Result is one workload in one mode. Per-call times are averages over
// the calls of the run.
type Result struct {
	Workload  string `json:"workload"`
	Mode      string `json:"mode"`
	LogN      int    `json:"log_n"`
	Depth     int    `json:"depth"`
	Rotations int    `json:"rotation_keys"`
	// Keys is the compiler's key choice (small or fast) and
	// RotationsPerCall the key switches of one call's rotations.
	Keys             string  `json:"keys"`
	RotationsPerCall int     `json:"rotations_per_call"`
	Calls            int     `json:"calls"`
	Samples          int     `json:"samples"`
	SamplesPerCall   int     `json:"samples_per_call"`
	KeygenMS         float64 `json:"keygen_ms"`
	// KeyDecodeMS is the server's decoding of the key set, with the
	// derivation of the Galois keys for --keys derived (once per key set).
	KeyDecodeMS float64 `json:"key_decode_ms"`
	EncryptMS   float64 `json:"encrypt_ms"`
	EvaluateMS  float64 `json:"evaluate_ms"`
	// EvaluateMedianMS is the median of the calls' evaluation times, and
	// CallCPUMedianMS of their process CPU times (user and system: client
	// and server, all threads; 0 where unknown), which other jobs on the
	// machine change less than wall-clock times.
	EvaluateMedianMS float64 `json:"evaluate_median_ms"`
	CallCPUMedianMS  float64 `json:"call_cpu_median_ms"`
	DecryptMS        float64 `json:"decrypt_ms"`
	EndToEndMS       float64 `json:"end_to_end_ms"`
	SamplesPerSec    float64 `json:"samples_per_second"`
	PlaintextMS      float64 `json:"plaintext_ms"`
	PlaintextRatio   float64 `json:"plaintext_ratio"`
	FloorMS          float64 `json:"floor_ms"`
	FloorRatio       float64 `json:"floor_ratio"`
	UploadBytes      int     `json:"upload_bytes"`
	ResultBytes      int     `json:"result_bytes"`
	EvalKeyBytes     int     `json:"eval_key_bytes"`
	PublicKeyBytes   int     `json:"public_key_bytes"`
	ArgmaxAgreement  float64 `json:"argmax_agreement"`
	MaxAbsError      float64 `json:"max_abs_error"`
	StatedError      float64 `json:"stated_error"`
	// PrivacyBits is the circuit-privacy level of the plan's flooding
	// (0: results not flooded).
	PrivacyBits float64 `json:"privacy_bits"`
	// PeakRSSBytes is the process's peak resident set during the workload
	// (compile, keys, calls), whole process; 0 where it cannot be reset
	// and read (outside Linux).
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
	Workers      int   `json:"workers"`
	// Gallery workloads: the enrolled templates, the server's preparation
	// of the query (the templates encoded for the plan, once per
	// enrolment) and the decision margin in score units.
	Templates int     `json:"templates,omitempty"`
	PrepareMS float64 `json:"prepare_ms,omitempty"`
	Margin    float64 `json:"margin,omitempty"`
}

// Options steer a run.
type Options struct {
	Workers int // evaluation goroutines (0: GOMAXPROCS)
	// LatencyCalls is how many calls latency mode makes (single-sample),
	// and tiles mode (every tile filled).
	LatencyCalls int
	// BatchSamples caps the samples of batch mode (0: one full call).
	BatchSamples int
	// Keys is the compiler's key choice (compiler.Options.Keys; "": the
	// default).
	Keys string
	// Decisions are the decision methods gallery workloads run in
	// (GalleryModes when empty).
	Decisions []string
	// Examples is the examples folder of a checkout: a workload named
	// after an example (examples.Zoo) runs its model, calibration rows
	// and fixture inputs from there, with the settings of its README.
	// Examples run only when named: the large ones take minutes and
	// gigabytes a call.
	Examples string
	// Modes are the modes RunAll runs (nil: Modes).
	Modes []string
}

// Run runs one workload in one mode; it returns nil in tiles mode when the
// workload's plan has no tiles.
func Run(ctx context.Context, name, mode string, opts Options) (*Result, error) {
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.LatencyCalls <= 0 {
		opts.LatencyCalls = 8
	}
	g, calib, x, n, copts, err := load(name, opts.Examples)
	if err != nil {
		return nil, err
	}
	measured := resetPeak()
	copts.Packing, copts.Calibration, copts.NoTiles, copts.Keys = mode, calib, mode == plan.Latency, opts.Keys
	if mode == Tiles {
		copts.Packing = plan.Latency
	}
	r, err := local.New(g, copts, opts.Workers)
	if err != nil {
		return nil, err
	}
	p := r.Plan
	if mode == Tiles && p.Input.Tile == 0 {
		return nil, nil
	}
	count := sampleCount(mode, n, p.BatchSize, opts)
	xs := cycle(x, n, p.InputSize(), count)
	got, perCall, cpu, err := predictCalls(ctx, r, xs, count)
	if err != nil {
		return nil, err
	}
	var peak int64
	if measured {
		peak = peakRSS()
	}
	t0 := time.Now()
	want, err := g.EvalBatch(xs, count, nil)
	if err != nil {
		return nil, err
	}
	res := newResult(name, mode, r, count, time.Since(t0))
	res.PeakRSSBytes, res.Workers = peak, opts.Workers
	res.EvaluateMedianMS, res.CallCPUMedianMS = median(perCall), median(cpu)
	res.Keys = cmp.Or(opts.Keys, compiler.KeysSmall)
	res.ArgmaxAgreement, res.MaxAbsError = Compare(got, want, p.OutputSize())
	floor, err := Floor(r)
	if err != nil {
		return nil, err
	}
	res.FloorMS = ms(floor)
	res.FloorRatio = res.EvaluateMS / res.FloorMS
	return res, nil
}

// load returns a workload's graph, calibration rows, sample inputs, their
// number and its compilation settings: a bundled workload, or with an
// examples folder an example.
func load(name, dir string) (g *nn.Graph, calib, x []float64, n int, opts compiler.Options, err error) {
	if slices.Contains(Workloads, name) || dir == "" {
		g, calib, x, n, err = bundled.Load(name)
		return g, calib, x, n, opts, err
	}
	ex, err := examples.Find(name)
	if err != nil {
		return nil, nil, nil, 0, opts, err
	}
	g, calib, x, n, err = ex.Load(dir)
	return g, calib, x, n, ex.Options, err
}

// predictCalls predicts count samples call by call and returns the
// outputs, each call's evaluation time and each call's process CPU time
// (client and server), in milliseconds.
func predictCalls(ctx context.Context, r *local.Runner, xs []float64, count int) (got, times, cpu []float64, err error) {
	size, per := r.Plan.InputSize(), r.Plan.BatchSize
	for start := 0; start < count; start += per {
		k := min(per, count-start)
		before, cpu0 := r.Stats.Evaluate, cpuTime()
		y, err := r.Predict(ctx, xs[start*size:(start+k)*size], k)
		if err != nil {
			return nil, nil, nil, err
		}
		got = append(got, y...)
		times = append(times, ms(r.Stats.Evaluate-before))
		cpu = append(cpu, ms(cpuTime()-cpu0))
	}
	return got, times, cpu, nil
}

// sampleCount is how many samples a run predicts: latency makes
// LatencyCalls single-sample calls (at most the n bundled inputs), tiles
// LatencyCalls full calls; batch fills one call, or BatchSamples of it.
func sampleCount(mode string, n, batchSize int, opts Options) int {
	switch mode {
	case plan.Latency:
		return min(opts.LatencyCalls, n)
	case Tiles:
		return opts.LatencyCalls * batchSize
	}
	if opts.BatchSamples > 0 {
		return min(batchSize, opts.BatchSamples)
	}
	return batchSize
}

// cycle returns count samples of size values, cycling through the n
// samples of x.
func cycle(x []float64, n, size, count int) []float64 {
	xs := make([]float64, count*size)
	for i := 0; i < count; i++ {
		copy(xs[i*size:], x[(i%n)*size:(i%n+1)*size])
	}
	return xs
}

// newResult reports a run of count samples from the runner's plan and
// statistics; plain is the plaintext model's time for the same samples.
func newResult(name, mode string, r *local.Runner, count int, plain time.Duration) *Result {
	p, st := r.Plan, r.Stats
	calls := float64(st.Calls)
	res := &Result{
		Workload: name, Mode: mode, LogN: p.Params.LogN, Depth: p.Depth, Rotations: len(p.Rotations),
		RotationsPerCall: p.Ops.Rotations,
		Calls:            st.Calls, Samples: count, SamplesPerCall: p.BatchSize,
		KeygenMS:       ms(st.Keygen),
		KeyDecodeMS:    ms(st.Decode),
		EncryptMS:      ms(st.Encrypt) / calls,
		EvaluateMS:     ms(st.Evaluate) / calls,
		DecryptMS:      ms(st.Decrypt) / calls,
		SamplesPerSec:  float64(count) / st.Evaluate.Seconds(),
		PlaintextMS:    ms(plain) / calls,
		UploadBytes:    st.UploadBytes / st.Calls,
		ResultBytes:    st.ResultBytes / st.Calls,
		EvalKeyBytes:   st.EvalKeyByte,
		PublicKeyBytes: st.PublicKey,
		StatedError:    p.Precision.OutputError + p.Precision.ApproximationError,
		PrivacyBits:    p.Precision.PrivacyBits,
	}

	res.EndToEndMS = res.EncryptMS + res.EvaluateMS + res.DecryptMS
	if res.PlaintextMS > 0 {
		res.PlaintextRatio = res.EvaluateMS / res.PlaintextMS
	}
	return res
}

// Compare returns the fraction of samples whose argmax agrees (for a
// single output, the sign, i.e. the class of a binary score) and the
// largest absolute difference.
func Compare(got, want []float64, size int) (agree, maxErr float64) {
	n := len(want) / size
	same := 0
	for s := 0; s < n; s++ {
		g, w := got[s*size:(s+1)*size], want[s*size:(s+1)*size]
		for i := range w {
			maxErr = math.Max(maxErr, math.Abs(g[i]-w[i]))
		}
		if size == 1 {
			if (g[0] >= 0.5) == (w[0] >= 0.5) {
				same++
			}
		} else if nn.Argmax(g) == nn.Argmax(w) {
			same++
		}
	}
	return float64(same) / float64(n), maxErr
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// RunAll runs the named workloads (all bundled ones when empty) in their
// modes: opts.Modes (gallery workloads: opts.Decisions).
func RunAll(ctx context.Context, names []string, opts Options, each func(*Result)) error {
	if len(names) == 0 {
		names = Workloads
	}
	type job struct {
		name  string
		modes []string
		run   func(context.Context, string, string, Options) (*Result, error)
	}
	var jobs []job
	for _, name := range names {
		modes, run, err := howToRun(name, opts)
		if err != nil {
			return err
		}
		jobs = append(jobs, job{name, modes, run})
	}
	for _, j := range jobs {
		for _, mode := range j.modes {
			r, err := j.run(ctx, j.name, mode, opts)
			if err != nil {
				return fmt.Errorf("%s/%s: %w", j.name, mode, err)
			}
			if r != nil {
				each(r)
			}
		}
	}
	return nil
}

// howToRun returns the modes a workload runs in and the function that
// runs it, or why it cannot.
func howToRun(name string, opts Options) ([]string, func(context.Context, string, string, Options) (*Result, error), error) {
	if isGallery(name) {
		modes, err := galleryModes(opts)
		return modes, RunGallery, err
	}
	if err := known(name, opts.Examples); err != nil {
		return nil, nil, err
	}
	modes := opts.Modes
	if len(modes) == 0 {
		modes = Modes
	}
	for _, mode := range modes {
		if !slices.Contains(Modes, mode) {
			return nil, nil, fheserve.Errorf(fheserve.EINVALID, "unknown mode %q (have %v)", mode, Modes)
		}
	}
	return modes, Run, nil
}

// known checks that a workload is bundled, or an example when there is an
// examples folder.
func known(name, dir string) error {
	if slices.Contains(Workloads, name) {
		return nil
	}
	if dir == "" {
		return fheserve.Errorf(fheserve.EINVALID, "unknown workload %q (have %v, when named %v, and examples with --examples DIR)", name, Workloads, GalleryWorkloads)
	}
	_, err := examples.Find(name)
	return err
}
