package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/internal/clustertest"
	"github.com/fheserve/fheserve/plan"
	"github.com/fheserve/fheserve/sdk"
)

// TestSealedCLI runs a sealed model through the command line: the owner
// deploys it with --sealed (compiled here, the weights kept in a local
// file), the user's keys wait and predict says so without failing, the
// owner seals, and the user's prediction matches predict --local within
// the plan's precision.
func TestSealedCLI(t *testing.T) { clustertest.InModes(t, testSealedCLI) }

func testSealedCLI(t *testing.T, mode string) {
	data := t.TempDir()
	admin, url := serveWithAdmin(t, data, mode)
	owner, user := newParty(t, url), newParty(t, url)
	owner.ok("owner-password\n", "register", "--username", "olivia", "--role", "owner", "--password-stdin")
	user.ok("user-password\n", "register", "--username", "ulrich", "--role", "user", "--password-stdin")
	admin.ok("root-password\n", "login", "--username", "root", "--password-stdin")
	admin.ok("", "admin", "approve", "olivia")
	admin.ok("", "admin", "approve", "ulrich")
	owner.ok("owner-password\n", "login", "--username", "olivia", "--password-stdin")
	user.ok("user-password\n", "login", "--username", "ulrich", "--password-stdin")

	dir := t.TempDir()
	weights := filepath.Join(dir, "gemm.sealed.json")
	r := owner.run("", "model", "deploy", "--sealed", "--name", "gemm", "--file", fixture("gemm.onnx"), "--allow", "ulrich", "--weights", weights)
	mustSucceed(t, r)
	modelID := lastLine(r.stdout)
	if !strings.Contains(r.stderr, "the server holds no weight of "+modelID) {
		t.Errorf("deploy --sealed does not say where the weights are:\n%s", r.stderr)
	}
	if st, err := os.Stat(weights); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("the weights file: %v, %v", st, err)
	}
	// A second deployment does not overwrite the kept weights.
	mustFail(t, owner.run("", "model", "deploy", "--sealed", "--name", "gemm", "--file", fixture("gemm.onnx"), "--weights", weights), 2, "cannot write the sealed model's weights")

	keyID := lastLine(user.ok("", "keys", "create", "--model", modelID))
	if out := user.ok("", "keys", "list"); !strings.Contains(out, fheserve.WaitingForSealMessage) {
		t.Errorf("keys list before sealing:\n%s", out)
	}
	remote, local := filepath.Join(dir, "remote.npy"), filepath.Join(dir, "local.npy")
	r = user.run("", "predict", "--model", modelID, "--input", fixture("gemm.x.npy"), "--output", remote)
	mustSucceed(t, r)
	if !strings.Contains(r.stderr, fheserve.WaitingForSealMessage) || !strings.Contains(r.stderr, keyID) {
		t.Errorf("predict before sealing:\n%s", r.stderr)
	}
	if _, err := os.Stat(remote); !os.IsNotExist(err) {
		t.Errorf("predict before sealing wrote an output: %v", err)
	}

	r = owner.run("", "model", "seal", modelID, "--weights", weights)
	mustSucceed(t, r)
	if !strings.Contains(r.stderr, "pinning the audit key") {
		t.Errorf("model seal did not pin the audit key it checks key sets against:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, "1 key set waiting") || !strings.Contains(r.stderr, keyID+" (ulrich): sealed") || !strings.Contains(r.stderr, "sealed 1 key set") {
		t.Errorf("model seal:\n%s", r.stderr)
	}
	if out := user.ok("", "keys", "list"); !strings.Contains(out, "active, sealed") {
		t.Errorf("keys list after sealing:\n%s", out)
	}
	// Nothing left to seal.
	if r := owner.run("", "model", "seal", modelID, "--weights", weights); !strings.Contains(r.stderr, "0 key sets waiting, 1 sealed") {
		t.Errorf("model seal again:\n%s", r.stderr)
	}

	user.ok("", "predict", "--model", modelID, "--input", fixture("gemm.x.npy"), "--output", remote)
	user.ok("", "predict", "--local", "--model", fixture("gemm.onnx"), "--input", fixture("gemm.x.npy"), "--output", local)
	show := decodeJSON[struct{ Plan plan.Plan }](t, user.ok("", "model", "show", modelID, "--json"))
	_, _, worst := remoteLocalDiff(t, remote, local)
	if tol := show.Plan.Precision.OutputError; !show.Plan.Sealed || worst > tol {
		t.Fatalf("sealed plan %v: max |remote - local| = %.3g, the plan's precision %.3g", show.Plan.Sealed, worst, tol)
	}
	t.Logf("max |remote - local| = %.2e (precision %.2e)", worst, show.Plan.Precision.OutputError)

	// Key transparency, the user's side: once the audit key is pinned,
	// keys list compares the keys the log records under ulrich's name with
	// those made here. A key set uploaded under that name elsewhere (here,
	// through the SDK: as a server would with a key of its own) is
	// reported loudly, and audit verify fails naming it; the one made
	// here is not.
	if out := user.ok("", "audit", "verify"); !strings.Contains(out, "every key set it records under your name was made here") {
		t.Errorf("audit verify with only keys made here:\n%s", out)
	}
	if r := user.run("", "keys", "list"); r.code != 0 || strings.Contains(r.stderr, "DID NOT MAKE") {
		t.Fatalf("keys list with only keys made here:\n%s", r.stderr)
	}
	ctx := context.Background()
	other := sdk.New(url)
	if _, err := other.Login(ctx, "ulrich", "user-password"); err != nil {
		t.Fatal(err)
	}
	k, err := other.GenerateKeys(ctx, modelID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.UploadKeys(ctx, k, ""); err != nil {
		t.Fatal(err)
	}
	r = user.run("", "keys", "list")
	mustSucceed(t, r)
	if !strings.Contains(r.stderr, "DID NOT MAKE HERE: "+k.KeySetID) || strings.Contains(r.stderr, keyID) {
		t.Errorf("keys list does not report exactly the key set made elsewhere (%s):\n%s", k.KeySetID, r.stderr)
	}
	// audit verify fails on it, in one line naming it and only it.
	r = user.run("", "audit", "verify")
	mustFail(t, r, 1, "DID NOT MAKE HERE", k.KeySetID)
	if strings.Contains(r.stderr, keyID) {
		t.Errorf("audit verify names the key set made here (%s):\n%s", keyID, r.stderr)
	}
}
