package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/internal/clustertest"
	"github.com/fheserve/fheserve/npy"
)

// TestDeployLabelsCLI deploys a model with --labels and checks that model
// show lists them and that predict names each sample's class of highest
// score, the plaintext model's (predict --local) where the two agree.
func TestDeployLabelsCLI(t *testing.T) {
	admin, url := serveWithAdmin(t, t.TempDir(), clustertest.Embedded)
	owner, user := newParty(t, url), newParty(t, url)
	owner.ok("owner-password\n", "register", "--username", "olivia", "--role", "owner", "--password-stdin")
	user.ok("user-password\n", "register", "--username", "ulrich", "--role", "user", "--password-stdin")
	admin.ok("root-password\n", "login", "--username", "root", "--password-stdin")
	admin.ok("", "admin", "approve", "olivia")
	admin.ok("", "admin", "approve", "ulrich")
	owner.ok("owner-password\n", "login", "--username", "olivia", "--password-stdin")
	user.ok("user-password\n", "login", "--username", "ulrich", "--password-stdin")

	dir := t.TempDir()
	local := filepath.Join(dir, "local.npy")
	user.ok("", "predict", "--local", "--model", fixture("mlp_square.onnx"), "--input", fixture("mlp_square.x.npy"), "--output", local)
	want := mustReadNpy(t, local)
	outputs := want.Shape[len(want.Shape)-1]
	var labels []string
	for i := range outputs {
		labels = append(labels, fmt.Sprintf("class %c", 'A'+i))
	}
	write := func(name, s string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	short := write("short.txt", strings.Join(labels[1:], "\n"))
	mustFail(t, owner.run("", "model", "deploy", "--name", "m", "--file", fixture("mlp_square.onnx"), "--labels", short), 2,
		fmt.Sprintf("%d labels for a model of %d outputs", outputs-1, outputs))
	full := write("labels.txt", " "+strings.Join(labels, "\r\n")+"\n\n")
	out := owner.ok("", "model", "deploy", "--name", "m", "--file", fixture("mlp_square.onnx"), "--labels", full)
	modelID := lastLine(out)
	if !strings.Contains(out, "labels: "+strings.Join(labels, ", ")) {
		t.Errorf("deploy does not list the labels:\n%s", out)
	}
	show := decodeJSON[struct{ Model fheserve.Model }](t, user.ok("", "model", "show", modelID, "--json"))
	if !slices.Equal(show.Model.Labels, labels) {
		t.Errorf("model show: labels %q, want %q", show.Model.Labels, labels)
	}

	user.ok("", "keys", "create", "--model", modelID)
	rep := decodeJSON[remoteReport](t, user.ok("", "predict", "--model", modelID, "--input", fixture("mlp_square.x.npy"), "--output", filepath.Join(dir, "y.npy"), "--json"))
	got := mustReadNpy(t, filepath.Join(dir, "y.npy"))
	n := got.Shape[0]
	if len(rep.Predicted) != n {
		t.Fatalf("predict --json names %d samples' classes, want %d", len(rep.Predicted), n)
	}
	agree := 0
	for i := range n {
		if l := labels[argmaxOf(got.Data[i*outputs:(i+1)*outputs])]; rep.Predicted[i] != l {
			t.Errorf("sample %d: predict names %q, its decrypted scores %q", i, rep.Predicted[i], l)
		}
		if rep.Predicted[i] == labels[argmaxOf(want.Data[i*outputs:(i+1)*outputs])] {
			agree++
		}
	}
	t.Logf("%d of %d encrypted predictions name the plaintext model's class", agree, n)
	r := user.run("", "predict", "--model", modelID, "--input", fixture("mlp_square.x.npy"), "--output", filepath.Join(dir, "z.npy"))
	mustSucceed(t, r)
	if !strings.Contains(r.stderr, "  sample 0: class ") {
		t.Errorf("predict's summary names no class:\n%s", r.stderr)
	}
}

func argmaxOf(v []float64) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

func mustReadNpy(t *testing.T, path string) *npy.Array {
	t.Helper()
	a, err := npy.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
