package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fheserve/fheserve/npy"
)

// bundledFile returns the path of a file of package bundled.
func bundledFile(name string) string {
	return filepath.Join("..", "..", "bundled", name)
}

func mustEvalJSON(t *testing.T, args ...string) *evalReport {
	t.Helper()
	r := runCLI(t, append([]string{"eval", "--json"}, args...)...)
	mustSucceed(t, r)
	var rep evalReport
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("--json output: %v\n%s", err, r.stdout)
	}
	return &rep
}

// writeNpy writes a to a file in dir and returns its path.
func writeNpy(t *testing.T, dir, name string, a *npy.Array) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := npy.WriteFile(path, a); err != nil {
		t.Fatal(err)
	}
	return path
}

// argmaxLabels writes the argmax of each row of the fixture's PyTorch
// outputs as labels.
func argmaxLabels(t *testing.T, dir, fixtureName string) string {
	t.Helper()
	y, err := npy.ReadFile(fixture(fixtureName + ".y.npy"))
	if err != nil {
		t.Fatal(err)
	}
	size := y.Shape[1]
	labels := make([]float64, y.Shape[0])
	for s := range labels {
		labels[s] = float64(classOf(y.Data[s*size:(s+1)*size], ""))
	}
	return writeNpy(t, dir, fixtureName+".labels.npy", &npy.Array{Shape: []int{len(labels)}, Data: labels})
}

func TestEvalExactModel(t *testing.T) {
	rep := mustEvalJSON(t, "--model", bundledFile("logreg.onnx"), "--data", bundledFile("logreg.x.npy"),
		"--labels", bundledFile("logreg.y.npy"), "--calibration", bundledFile("logreg.calib.npy"))
	if rep.Samples != 143 || rep.Plan.Packing != "batch" || rep.Sizes.Calls != 1 {
		t.Errorf("samples %d, packing %s, calls %d: want all 143 rows in one batch call", rep.Samples, rep.Plan.Packing, rep.Sizes.Calls)
	}
	if rep.Accuracy.Plaintext < 0.9 || rep.Accuracy.Encrypted == nil || *rep.Accuracy.Encrypted != rep.Accuracy.Plaintext {
		t.Errorf("accuracy %+v: want the encrypted accuracy equal to the plaintext one, above 90%%", rep.Accuracy)
	}
	if rep.Accuracy.Approximated != nil || rep.Approximated != nil || rep.Activations != nil {
		t.Errorf("a model without activations reports approximations: %+v", rep)
	}
	if c := rep.Plaintext; c == nil || c.ArgmaxAgree != 143 || !c.WithinPrecision {
		t.Errorf("vs plaintext %+v", c)
	}
	if rep.OutOfBound != 0 || rep.TimesMS.PerSample <= 0 || rep.TimesMS.Evaluate <= 0 {
		t.Errorf("out of bound %d, times %+v", rep.OutOfBound, rep.TimesMS)
	}

	// --limit and latency packing: one call per sample. --mode, the
	// former name of --packing, still works, warns on standard error and
	// leaves the JSON on standard output whole.
	for _, flag := range []string{"--packing", "--mode"} {
		r := runCLI(t, "eval", "--json", "--model", bundledFile("logreg.onnx"), "--data", bundledFile("logreg.x.npy"),
			"--labels", bundledFile("logreg.y.npy"), flag, "latency", "--limit", "3")
		mustSucceed(t, r)
		rep = &evalReport{}
		if err := json.Unmarshal([]byte(r.stdout), rep); err != nil {
			t.Fatalf("%s: --json output: %v\n%s", flag, err, r.stdout)
		}
		if rep.Samples != 3 || rep.Sizes.Calls != 3 {
			t.Errorf("%s: samples %d calls %d, want 3 and 3", flag, rep.Samples, rep.Sizes.Calls)
		}
		if warned := strings.Contains(r.stderr, "--mode is deprecated: use --packing"); warned != (flag == "--mode") {
			t.Errorf("%s: standard error:\n%s", flag, r.stderr)
		}
	}
}

// TestEvalApproximatedActivation runs relu with its activation at degree
// 5 (degree 15 needed N=2^15 in batch packing, three times the time):
// encrypted on the fixture's inputs, then on inputs ten times larger in
// plaintext only (the activation figures are plaintext ones) and
// encrypted in the text report.
func TestEvalApproximatedActivation(t *testing.T) {
	dir := t.TempDir()
	labels := argmaxLabels(t, dir, "relu")
	args := []string{"--model", fixture("relu.onnx"), "--data", fixture("relu.x.npy"), "--labels", labels,
		"--calibration", fixture("relu.calib.npy"), "--degrees", "/1/Relu=5"}
	rep := mustEvalJSON(t, args...)
	if rep.Accuracy.Plaintext != 1 || rep.Accuracy.Approximated == nil {
		t.Fatalf("accuracy %+v: want 100%% in plaintext (labels are PyTorch's argmax) and an approximated accuracy", rep.Accuracy)
	}
	if len(rep.Activations) != 1 || rep.Activations[0].Degree != 5 || rep.Activations[0].Outside != 0 {
		t.Errorf("activations %+v, want /1/Relu at degree 5 with no sample outside", rep.Activations)
	}
	if a := rep.Approximated; a == nil || !a.WithinPrecision || a.ArgmaxAgree != 4 {
		t.Errorf("vs approximated %+v", a)
	}

	// Plaintext only: no encryption, the same plaintext figures.
	plain := mustEvalJSON(t, append(args, "--plaintext-only")...)
	if plain.Accuracy.Encrypted != nil || plain.Plaintext != nil || plain.Sizes != nil ||
		*plain.Accuracy.Approximated != *rep.Accuracy.Approximated || plain.Activations[0] != rep.Activations[0] {
		t.Errorf("--plaintext-only report %+v, want the encrypted run's plaintext figures and nothing encrypted", plain)
	}

	// Inputs ten times larger leave the interval: eval says so, and the
	// decrypted outputs exceed the plan's bound.
	x, err := npy.ReadFile(fixture("relu.x.npy"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range x.Data {
		x.Data[i] *= 10
	}
	args[3] = writeNpy(t, dir, "far.npy", x)
	plain = mustEvalJSON(t, append(args, "--plaintext-only")...)
	if a := plain.Activations[0]; a.Outside != 4 || a.Excursion < 1 {
		t.Errorf("activation %+v, want all 4 samples outside by more than a half-width", a)
	}

	// The text report, encrypted: the samples outside the interval and
	// the outputs beyond the bound (printed only when there are some).
	r := runCLI(t, append([]string{"eval"}, args...)...)
	mustSucceed(t, r)
	for _, want := range []string{"evaluated relu on 4 samples", "accuracy: plaintext", "approximated activations",
		"encrypted vs approximated plaintext", "4 samples outside the interval", "WARNING", "beyond the output bound"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("report lacks %q:\n%s", want, r.stdout)
		}
	}
}

// TestEvalRegression checks that a model without a head, with labels that
// are targets (one per output), gets errors, not accuracy.
func TestEvalRegression(t *testing.T) {
	args := []string{"--model", fixture("gelu.onnx"), "--data", fixture("gelu.x.npy"), "--labels", fixture("gelu.y.npy"),
		"--calibration", fixture("gelu.calib.npy")}
	rep := mustEvalJSON(t, args...)
	if rep.Task != "regression" || rep.Accuracy != nil || rep.Labels == nil {
		t.Fatalf("task %q, accuracy %+v, vs labels %+v: want a regression's errors", rep.Task, rep.Accuracy, rep.Labels)
	}
	l := rep.Labels
	// The labels are PyTorch's float32 outputs.
	if l.Plaintext.RMSE > 1e-5 || l.Plaintext.MaxAbsError > 1e-5 || l.Approximated == nil || l.Encrypted == nil {
		t.Errorf("vs labels %+v", l)
	}
	if e, c := l.Encrypted, rep.Plaintext; e.RMSE > e.MaxAbsError || c == nil || c.RMSE == 0 || c.RMSE > c.MaxAbsError || c.ArgmaxAgree != 0 {
		t.Errorf("encrypted vs labels %+v, vs plaintext %+v", e, c)
	}
	r := runCLI(t, append([]string{"eval"}, args...)...)
	mustSucceed(t, r)
	for _, want := range []string{"vs labels (regression): plaintext RMSE", "encrypted RMSE", "encrypted vs plaintext: RMSE"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("report lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "accuracy") || strings.Contains(r.stdout, "agrees") {
		t.Errorf("a regression's report speaks of classes:\n%s", r.stdout)
	}
}

func TestEvalErrors(t *testing.T) {
	dir := t.TempDir()
	short := writeNpy(t, dir, "short.npy", &npy.Array{Shape: []int{2}, Data: []float64{0, 1}})
	frac := writeNpy(t, dir, "frac.npy", &npy.Array{Shape: []int{4}, Data: []float64{0, 1, 0.5, 1}})
	relu := []string{"eval", "--model", fixture("relu.onnx"), "--data", fixture("relu.x.npy"), "--calibration", fixture("relu.calib.npy")}
	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"maxpool", []string{"eval", "--model", fixture("maxpool.onnx"), "--data", fixture("maxpool.x.npy"), "--labels", short},
			2, []string{"MaxPool", "use AveragePool instead"}},
		{"too few labels", append(relu, "--labels", short), 2, []string{"labels file", "[4]"}},
		{"fractional label", append(relu, "--labels", frac), 2, []string{"label 2 is 0.5"}},
		{"unknown degrees node", append(relu, "--labels", short, "--limit", "2", "--degrees", "relu=9"),
			2, []string{`node "relu"`, `"/1/Relu"`}},
		{"unknown fit", append(relu, "--labels", short, "--limit", "2", "--fit", "minimax"), 2, []string{"--fit", `"minimax"`, "interpolation", "least-squares"}},
		{"missing data", []string{"eval", "--model", fixture("relu.onnx"), "--data", filepath.Join(dir, "x.npy"), "--labels", short},
			2, []string{"data file", "not found"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustFail(t, runCLI(t, tt.args...), tt.code, tt.want...)
		})
	}
}
