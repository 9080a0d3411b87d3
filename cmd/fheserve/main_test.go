package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fheserve/fheserve/npy"
	"github.com/fheserve/fheserve/plan"
	"github.com/fheserve/fheserve/sdk"
)

// fixture returns the path of a file in the repository's testdata/onnx.
func fixture(name string) string {
	return filepath.Join("..", "..", "testdata", "onnx", name)
}

type result struct {
	code           int
	stdout, stderr string
}

// party is one person's side of the command line, in the test's process:
// its own client state directory and environment.
type party struct {
	t    *testing.T
	home string
	env  map[string]string
	// client, if not nil, makes the SDK clients (sdk.New otherwise).
	client func(url string) *sdk.Client
}

// newParty returns a party with an empty client state, using server by
// default ($FHESERVE_SERVER) unless it is "".
func newParty(t *testing.T, server string) *party {
	p := &party{t: t, home: t.TempDir(), env: map[string]string{}}
	if server != "" {
		p.env[serverEnv] = server
	}
	return p
}

// factory is what p's commands get from outside, on buffers.
func (p *party) factory(stdin string) (f *Factory, stdout, stderr *bytes.Buffer) {
	stdout, stderr = &bytes.Buffer{}, &bytes.Buffer{}
	client := p.client
	if client == nil {
		client = sdk.New
	}
	return &Factory{
		IO:     &IOStreams{In: strings.NewReader(stdin), Out: stdout, ErrOut: stderr},
		Getenv: func(k string) string { return p.env[k] },
		Home:   func() (string, error) { return p.home, nil },
		Client: client,
	}, stdout, stderr
}

// run runs a command line with stdin, as the binary would.
func (p *party) run(stdin string, args ...string) result {
	p.t.Helper()
	f, stdout, stderr := p.factory(stdin)
	code := run(context.Background(), f, args)
	return result{code, stdout.String(), stderr.String()}
}

// ok runs a command that must succeed and returns its stdout.
func (p *party) ok(stdin string, args ...string) string {
	p.t.Helper()
	r := p.run(stdin, args...)
	mustSucceed(p.t, r)
	return r.stdout
}

// runCLI runs the command line as the binary would, for a party of its
// own with an empty environment.
func runCLI(t *testing.T, args ...string) result {
	t.Helper()
	return newParty(t, "").run("", args...)
}

// mustSucceed fails the test unless r exited 0 with no error line.
func mustSucceed(t *testing.T, r result) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d\nstderr: %s", r.code, r.stderr)
	}
	for _, line := range strings.Split(r.stderr, "\n") {
		// Warnings and a paced prediction's notes that it waits for a
		// rate limit ("fheserve: waiting 1s: ...") are not errors.
		if strings.HasPrefix(line, "fheserve: ") && !strings.HasPrefix(line, "fheserve: warning: ") && !strings.HasPrefix(line, "fheserve: waiting ") {
			t.Fatalf("error line on success: %q", line)
		}
	}
}

// mustFail checks that r failed with the exit code and one stderr line
// "fheserve: ..." containing every string of want.
func mustFail(t *testing.T, r result, code int, want ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit %d, want %d", r.code, code)
	}
	// Notes of a prediction paced by a rate limit are not the error.
	lines := slices.DeleteFunc(strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n"), func(l string) bool {
		return strings.HasPrefix(l, "fheserve: waiting ")
	})
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "fheserve: ") {
		t.Fatalf("stderr is not one line \"fheserve: <message>\":\n%s", r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(lines[0], w) {
			t.Errorf("error %q does not mention %q", lines[0], w)
		}
	}
}

func TestCompile(t *testing.T) {
	r := runCLI(t, "compile", "--model", fixture("mlp_square.onnx"))
	mustSucceed(t, r)
	for _, want := range []string{"Model        mlp_square", "Ring", "Security", "secure", "rotation keys",
		"evaluation keys", "Steps", "linear", "square", "Precision", "output error"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("report lacks %q:\n%s", want, r.stdout)
		}
	}

	r = runCLI(t, "compile", "--model", fixture("mlp_square.onnx"), "--packing", "batch", "--json")
	mustSucceed(t, r)
	var p plan.Plan
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
		t.Fatalf("--json output is not a plan: %v\n%s", err, r.stdout)
	}
	if err := p.Validate(); err != nil {
		t.Fatalf("printed plan does not validate: %v", err)
	}
	if p.Packing != plan.Batch || p.Model != "mlp_square" {
		t.Errorf("plan packing %q model %q, want batch mlp_square", p.Packing, p.Model)
	}
}

func TestCompileActivations(t *testing.T) {
	// Without calibration the default interval is used, with a warning;
	// with it, the interval comes from the data.
	r := runCLI(t, "compile", "--model", fixture("tanh.onnx"), "--json")
	mustSucceed(t, r)
	if !strings.Contains(r.stderr, "fheserve: warning: ") || !strings.Contains(r.stderr, "default interval") {
		t.Errorf("no default-interval warning on stderr: %q", r.stderr)
	}
	r = runCLI(t, "compile", "--model", fixture("tanh.onnx"), "--calibration", fixture("tanh.calib.npy"), "--degree", "5")
	mustSucceed(t, r)
	for _, want := range []string{"Activations", "tanh", "calibration", "MAX ERROR"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("report lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "Warnings") {
		t.Errorf("calibrated plan has warnings:\n%s", r.stdout)
	}
}

// TestPredictMatchesPyTorch checks that predict --local reproduces the
// outputs PyTorch computed for the fixtures, within the plan's stated
// precision. local.TestOpsEncrypted runs every fixture encrypted in both
// packings against the reference evaluator, and nn/onnx checks that
// against PyTorch: the cases marked long (seconds each) add nothing to
// what the command does and run with -long.
func TestPredictMatchesPyTorch(t *testing.T) {
	tests := []struct {
		fixture string
		mode    string
		flat    bool // the input as [batch, size], not [batch, shape...]
		long    bool
	}{
		{fixture: "mlp_square", mode: plan.Latency},
		{fixture: "mlp_square", mode: plan.Batch},
		{fixture: "cnn_square", mode: plan.Latency, flat: true}, // [1 8 8] given as [batch 64]
		{fixture: "cnn_square", mode: plan.Batch, long: true},
		{fixture: "gemm", mode: plan.Latency}, // coefficient encoding
		{fixture: "conv_bn", mode: plan.Latency},
		{fixture: "flatten_reshape", mode: plan.Latency},
		{fixture: "residual", mode: plan.Latency, long: true},
		{fixture: "softmax_head", mode: plan.Latency},
		{fixture: "sigmoid_head", mode: plan.Batch},
	}
	for _, tt := range tests {
		t.Run(tt.fixture+"/"+tt.mode, func(t *testing.T) {
			if tt.long && !*long {
				t.Skip("covered by local.TestOpsEncrypted; run with -long")
			}
			dir := t.TempDir()
			out := filepath.Join(dir, "y.npy")
			in := fixture(tt.fixture + ".x.npy")
			if tt.flat {
				x, err := npy.ReadFile(in)
				if err != nil {
					t.Fatal(err)
				}
				in = filepath.Join(dir, "flat.npy")
				if err := npy.WriteFile(in, &npy.Array{Shape: []int{x.Shape[0], x.Size() / x.Shape[0]}, Data: x.Data}); err != nil {
					t.Fatal(err)
				}
			}
			r := runCLI(t, "predict", "--local", "--json", "--packing", tt.mode,
				"--model", fixture(tt.fixture+".onnx"), "--input", in, "--output", out)
			mustSucceed(t, r)
			var rep predictReport
			if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
				t.Fatalf("--json output: %v\n%s", err, r.stdout)
			}
			got, err := npy.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			want, err := npy.ReadFile(fixture(tt.fixture + ".y.npy"))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Shape, want.Shape) {
				t.Fatalf("output shape %v, PyTorch's %v", got.Shape, want.Shape)
			}
			stated := rep.Plan.Precision.OutputError
			var maxErr float64
			for i, w := range want.Data {
				// PyTorch computed in float32 and Y.npy is float32:
				// allow their rounding on top of the stated precision.
				tol := stated + 1e-5*math.Max(1, math.Abs(w))
				e := math.Abs(got.Data[i] - w)
				if e > tol {
					t.Errorf("output %d: %g, PyTorch %g: error %.3g above the stated %.3g", i, got.Data[i], w, e, stated)
				}
				maxErr = math.Max(maxErr, e)
			}
			t.Logf("max error against PyTorch %.3g, stated %.3g", maxErr, stated)
			if !rep.Reference.WithinPrecision || rep.Reference.ArgmaxAgree != rep.Samples {
				t.Errorf("check against the plaintext model: %+v", rep.Reference)
			}
			if rep.Sizes.UploadBytes == 0 || rep.Sizes.EvalKeyByte == 0 || rep.TimesMS.Evaluate <= 0 {
				t.Errorf("missing sizes or times: %+v %+v", rep.Sizes, rep.TimesMS)
			}
		})
	}
}

func TestPredictCalibrated(t *testing.T) {
	// An activation model with calibration data: the human summary goes to
	// stderr, stdout stays empty. (--degree 5: the approximation the
	// compiler chooses from the data needs N=2^15, four times the time.)
	out := filepath.Join(t.TempDir(), "y.npy")
	r := runCLI(t, "predict", "--local", "--model", fixture("relu.onnx"), "--input", fixture("relu.x.npy"),
		"--calibration", fixture("relu.calib.npy"), "--degree", "5", "--output", out)
	mustSucceed(t, r)
	if r.stdout != "" {
		t.Errorf("stdout without --json: %q", r.stdout)
	}
	for _, want := range []string{"predicted 4 samples of relu", "wrote " + out, "shape [4 4]", "max abs error", "agrees on"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("summary lacks %q:\n%s", want, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "warning") {
		t.Errorf("calibrated prediction warns:\n%s", r.stderr)
	}
}

func TestUnsupportedModel(t *testing.T) {
	r := runCLI(t, "compile", "--model", fixture("maxpool.onnx"))
	mustFail(t, r, 2, "MaxPool", "AveragePool", "node ")
	r = runCLI(t, "predict", "--local", "--model", fixture("maxpool.onnx"), "--input", fixture("maxpool.x.npy"), "--output", filepath.Join(t.TempDir(), "y.npy"))
	mustFail(t, r, 2, "MaxPool", "AveragePool")
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.onnx")
	y := filepath.Join(dir, "y.npy")
	garbage := filepath.Join(dir, "garbage.onnx")
	if err := os.WriteFile(garbage, []byte("not a model"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"missing model", []string{"compile", "--model", missing}, 2, []string{"not found", missing}},
		{"missing input", []string{"predict", "--local", "--model", fixture("gemm.onnx"), "--input", filepath.Join(dir, "x.npy"), "--output", y},
			2, []string{"input file", "not found", "x.npy"}},
		{"missing calibration", []string{"compile", "--model", fixture("gemm.onnx"), "--calibration", filepath.Join(dir, "c.npy")},
			2, []string{"calibration file", "not found"}},
		{"malformed model", []string{"compile", "--model", garbage}, 2, []string{"ONNX"}},
		{"wrong input shape", []string{"predict", "--local", "--model", fixture("cnn_square.onnx"), "--input", fixture("gemm.x.npy"), "--output", y},
			2, []string{"shape [4 16]", "[batch 1 8 8]"}},
		{"unwritable output", []string{"predict", "--local", "--model", fixture("gemm.onnx"), "--input", fixture("gemm.x.npy"), "--output", filepath.Join(dir, "no", "y.npy")},
			1, []string{"cannot write"}},
		{"remote, not logged in", []string{"predict", "--model", "mdl_x", "--input", fixture("gemm.x.npy"), "--output", y},
			1, []string{"not logged in", "fheserve login"}},
		{"remote with local flags", []string{"predict", "--model", "mdl_x", "--input", fixture("gemm.x.npy"), "--output", y, "--packing", "batch"},
			2, []string{"--packing", "--local only"}},
		{"server without a scheme", []string{"model", "list", "--server", "localhost:8080"},
			2, []string{`--server "localhost:8080" is not a server URL: write https://localhost:8080 (or http://localhost:8080`}},
		{"missing flag", []string{"compile"}, 2, []string{"--model is required"}},
		{"unknown command", []string{"frobnicate"}, 2, []string{`unknown command "frobnicate"`}},
		{"unknown flag", []string{"compile", "--model", "m.onnx", "--fast"}, 2, []string{"unknown flag: --fast", "fheserve compile --help"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mustFail(t, runCLI(t, tt.args...), tt.code, tt.want...)
		})
	}
}

func TestDemo(t *testing.T) {
	r := runCLI(t, "demo", "--samples", "2")
	mustSucceed(t, r)
	for _, want := range []string{"ADMIN", "approved the registration", "OWNER", "deployed", "USER'S DEVICE",
		"secret key", "kept on the device", "SERVER", "no value in the clear", "audit trail", "keyset.upload",
		"USER", "encrypted ", "plaintext ", "2/2 encrypted predictions match the plaintext model", "stopped the server"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("demo output lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestVersion(t *testing.T) {
	r := runCLI(t, "version")
	mustSucceed(t, r)
	if !strings.HasPrefix(r.stdout, "fheserve ") || !strings.Contains(r.stdout, "plan format:  1") {
		t.Errorf("version output:\n%s", r.stdout)
	}
}

func TestHelp(t *testing.T) {
	r := runCLI(t)
	mustSucceed(t, r)
	for _, cmd := range []string{"compile", "predict", "demo", "version", "serve", "admin", "register", "login", "logout", "model", "keys", "usage"} {
		if !strings.Contains(r.stdout, cmd) {
			t.Errorf("help does not list %q:\n%s", cmd, r.stdout)
		}
	}
}
