package main

import (
	"encoding/json"
	"testing"

	"github.com/fheserve/fheserve/plan"
)

// compile --no-tiles keeps a latency plan to one sample per call, at the
// cost the tiled plan reports as its untiled one.
func TestCompileNoTiles(t *testing.T) {
	compile := func(extra ...string) *plan.Plan {
		t.Helper()
		r := runCLI(t, append([]string{"compile", "--model", fixture("cnn_square.onnx"), "--json"}, extra...)...)
		mustSucceed(t, r)
		var p plan.Plan
		if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
			t.Fatal(err)
		}
		return &p
	}
	tiled, untiled := compile(), compile("--no-tiles")
	if tiled.BatchSize < 2 {
		t.Fatalf("the default plan holds %d samples per call, want tiles", tiled.BatchSize)
	}
	if untiled.BatchSize != 1 {
		t.Errorf("--no-tiles plan holds %d samples per call, want 1", untiled.BatchSize)
	}
	if tiled.Untiled == nil || tiled.Untiled.Rotations != untiled.Ops.Rotations {
		t.Errorf("the tiled plan's untiled cost %+v does not match the --no-tiles plan's %d rotations", tiled.Untiled, untiled.Ops.Rotations)
	}
}
