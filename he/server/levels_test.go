package server_test

import (
	"bytes"
	"context"
	"math"
	"runtime/debug"
	"slices"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/bundled"
	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/he"
	"github.com/fheserve/fheserve/he/client"
	"github.com/fheserve/fheserve/he/server"
	"github.com/fheserve/fheserve/local"
	"github.com/fheserve/fheserve/nn"
	"github.com/fheserve/fheserve/plan"
)

// compileBundled compiles a bundled model with its calibration rows.
func compileBundled(t *testing.T, name string) (*nn.Graph, []float64, []float64) {
	t.Helper()
	g, calib, inputs, _, err := bundled.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	return g, calib, inputs
}

// belowTop reports whether some key of p is generated below the top level.
func belowTop(p *plan.Plan) bool {
	low := func(l int) bool { return l < p.MaxLevel() }
	return slices.ContainsFunc(p.GaloisLevels(), low) || (p.Relin && low(p.RelinLevel()))
}

// TestKeysAtTheirLevel runs a two-layer network whose second layer's keys
// are generated below the top level, through the wire format, and checks
// the decrypted outputs against the plaintext reference within the
// plan's stated error.
func TestKeysAtTheirLevel(t *testing.T) {
	g, calib, inputs := compileBundled(t, "mlp")
	r, err := local.New(g, compiler.Options{Calibration: calib}, 2)
	if err != nil {
		t.Fatal(err)
	}
	p := r.Plan
	if !belowTop(p) {
		t.Fatalf("no key below the top level %d: %+v", p.MaxLevel(), p.KeyLevels)
	}
	params, err := he.NewParameters(p.Params)
	if err != nil {
		t.Fatal(err)
	}
	top := he.EvalKeysSize(params, he.TopLevelKeys(params, p.GaloisElements, p.Relin))
	if r.Stats.EvalKeyByte != p.Sizes.EvalKeys || r.Stats.EvalKeyByte >= top {
		t.Fatalf("uploaded %d bytes of keys, the plan says %d, all at the top level %d", r.Stats.EvalKeyByte, p.Sizes.EvalKeys, top)
	}
	n := 3
	x := inputs[:n*g.Input.Size()]
	var maxErr float64
	for i := range n {
		xi := x[i*g.Input.Size() : (i+1)*g.Input.Size()]
		got, err := r.Predict(context.Background(), xi, 1)
		if err != nil {
			t.Fatal(err)
		}
		want, err := g.EvalBatch(xi, 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		for j := range want {
			maxErr = math.Max(maxErr, math.Abs(got[j]-want[j]))
		}
	}
	if maxErr > p.Precision.OutputError {
		t.Fatalf("max error %g above the plan's stated %g", maxErr, p.Precision.OutputError)
	}
}

// TestKeysBelowTheirLevelRefused checks that a key set whose
// relinearization key is a level below the plan's is refused, with the
// error type, by the decoder given the plan's keys and by NewEvaluator
// (TestKeysAtTheirLevel runs the plan's own key set through both).
func TestKeysBelowTheirLevelRefused(t *testing.T) {
	g, calib, _ := compileBundled(t, "mlp")
	res, err := compiler.Compile(g, compiler.Options{Calibration: calib})
	if err != nil {
		t.Fatal(err)
	}
	p := res.Plan
	model, err := server.Prepare(p, res.Program)
	if err != nil {
		t.Fatal(err)
	}
	params := model.Params()
	want := he.PlanKeys(p)
	if !want.Relin || want.RelinLevel == 0 {
		t.Fatalf("the plan's relinearization key is at level %d", want.RelinLevel)
	}
	low := want
	low.RelinLevel--
	_, evk, err := client.GenerateKeys(params, low)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := he.MarshalEvalKeys(&buf, params, evk); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	if len(data) != he.EvalKeysSize(params, low) {
		t.Fatalf("encoded %d bytes, EvalKeysSize says %d", len(data), he.EvalKeysSize(params, low))
	}
	_, err = he.UnmarshalEvalKeys(bytes.NewReader(data), params, he.KeyLimits{Keys: &want})
	if fheserve.ErrorCode(err) != fheserve.EINVALID {
		t.Fatalf("decoding against the plan's keys: %v, want %s", err, fheserve.EINVALID)
	}
	keys, err := he.UnmarshalEvalKeys(bytes.NewReader(data), params, he.KeyLimits{Keys: &low})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := model.NewEvaluator(keys, 1); fheserve.ErrorCode(err) != fheserve.EINVALID {
		t.Fatalf("NewEvaluator with a key below its level: %v, want %s", err, fheserve.EINVALID)
	}
	keys.Relin = nil
	if _, err := model.NewEvaluator(keys, 1); fheserve.ErrorCode(err) != fheserve.EINVALID {
		t.Fatalf("NewEvaluator without the relinearization key: %v, want %s", err, fheserve.EINVALID)
	}
}

// TestFusedProducts: in the bundled cnn's batch plan both squares feed a
// dense layer with fewer outputs (720 to 64, 64 to 10), so both stay
// unrelinearized for it; the latency plan fuses nothing. Under a memory
// limit a call would exceed fused, the squares are relinearized instead
// and the call's estimate is smaller. (The decrypted outputs of fused
// products are checked against the plaintext model by
// local.TestMLPEncrypted and, for a full batch of this cnn, by
// local.TestBatchTailWithinPrecision with -long; of relinearized ones
// under a limit by local.TestBatchWithinMemory.)
func TestFusedProducts(t *testing.T) {
	g, calib, _ := compileBundled(t, "cnn")
	prepare := func(t *testing.T, res *compiler.Result, limit int64) *server.Model {
		t.Helper()
		defer debug.SetMemoryLimit(debug.SetMemoryLimit(limit))
		model, err := server.Prepare(res.Plan, res.Program)
		if err != nil {
			t.Fatal(err)
		}
		return model
	}
	for _, packing := range []string{plan.Batch, plan.Latency} {
		res, err := compiler.Compile(g, compiler.Options{Calibration: calib, Packing: packing})
		if err != nil {
			t.Fatal(err)
		}
		model := prepare(t, res, 1<<40)
		fused := server.FusedSteps(model)
		for i, s := range res.Program.Steps {
			want := packing == plan.Batch && s.Kind == plan.StepSquare
			if fused[i] != want {
				t.Errorf("%s: step %q (%s): fused %v, want %v", packing, s.Name, s.Kind, fused[i], want)
			}
		}
		if packing != plan.Batch {
			continue
		}
		est := model.MemoryEstimate(2)
		tight := prepare(t, res, est/2)
		if f := server.FusedSteps(tight); slices.Contains(f, true) {
			t.Errorf("fused %v under a limit of half the fused call's %d bytes", f, est)
		}
		if e := tight.MemoryEstimate(2); e >= est {
			t.Errorf("estimate %d bytes relinearized, %d fused", e, est)
		}
	}
}
