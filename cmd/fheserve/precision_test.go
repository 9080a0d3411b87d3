package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/fheserve/fheserve/plan"
)

// The compile report shows the precision asked for with --precision, and
// the plan states at most that error; --precision with --precision-bits is
// refused naming both flags.
func TestCompilePrecision(t *testing.T) {
	args := []string{"compile", "--model", fixture("tanh.onnx"), "--calibration", fixture("tanh.calib.npy"), "--precision", "0.01"}
	r := runCLI(t, args...)
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "asked") || !strings.Contains(r.stdout, "1.00e-02") {
		t.Errorf("report does not show the precision asked for:\n%s", r.stdout)
	}
	r = runCLI(t, append(args, "--json")...)
	mustSucceed(t, r)
	var p plan.Plan
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
		t.Fatal(err)
	}
	if p.Precision.Asked != 0.01 || p.Precision.OutputError > 0.01 {
		t.Errorf("plan asked %g, states %g: want 0.01 and at most that", p.Precision.Asked, p.Precision.OutputError)
	}
	mustFail(t, runCLI(t, append(args, "--precision-bits", "10")...), 2, "--precision and --precision-bits cannot")
}
