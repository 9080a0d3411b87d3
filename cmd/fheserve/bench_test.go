package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/fheserve/fheserve/bench"
)

// TestBenchRuns runs the logreg workload twice through the command and
// checks that the targets are summarized over both runs.
func TestBenchRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	run := func(args ...string) string {
		r := runCLI(t, append([]string{"bench", "--workload", "logreg", "--runs", "2", "--latency-calls", "1", "--batch-samples", "64"}, args...)...)
		mustSucceed(t, r)
		return r.stdout
	}
	var got benchJSON
	if err := json.Unmarshal([]byte(run("--json")), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Runs) != 2 || len(got.Runs[0]) != 2 || len(got.Runs[1]) != 2 {
		t.Fatalf("runs %d, want 2 of logreg latency and batch", len(got.Runs))
	}
	want := map[string]bool{}
	for _, tg := range bench.Targets {
		if tg.Workload == "logreg" || tg.Workload == "" {
			want[tg.Name] = true
		}
	}
	for _, s := range got.Targets {
		if !want[s.Name] {
			t.Errorf("target %q reported for logreg only", s.Name)
		}
		delete(want, s.Name)
		if s.Runs != 2 || s.Met < 0 || s.Met > 2 || s.Min > s.Median || s.Median > s.Max {
			t.Errorf("%s", s.String())
		}
	}
	if len(want) != 0 {
		t.Errorf("targets missing: %v", want)
	}
	// The text form prints the same summaries one per line.
	if s := got.Targets[0].String(); !strings.Contains(s, ": median ") || !strings.Contains(s, " of 2 runs") {
		t.Errorf("summary line %q", s)
	}
}
