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

// TestBenchExamples runs an example as a workload, in the one mode asked
// for, and refuses an example's name without --examples, naming the flag.
func TestBenchExamples(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	r := runCLI(t, "bench", "--examples", "../../examples", "--workload", "cancer-logreg", "--modes", "latency", "--latency-calls", "2", "--json")
	mustSucceed(t, r)
	var got []*bench.Result
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Workload != "cancer-logreg" || got[0].Mode != "latency" || got[0].Calls != 2 || got[0].ArgmaxAgreement != 1 {
		t.Fatalf("got %+v, want cancer-logreg in latency mode, 2 calls, every class right", got)
	}
	mustFail(t, runCLI(t, "bench", "--workload", "cancer-logreg"), 2, "unknown workload", "--examples")
	mustFail(t, runCLI(t, "bench", "--workload", "logreg", "--modes", "fast"), 2, "unknown mode")
}
