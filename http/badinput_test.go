package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/he"
	"github.com/fheserve/fheserve/he/client"
	"github.com/fheserve/fheserve/sdk"
	"github.com/fheserve/fheserve/sdk/api"
)

// otherModel deploys a fixture as olivia with settings, open to every
// user, and returns ulrich's uploaded keys for it.
func (w *world) otherModel(name string, settings fheserve.CompileSettings) *sdk.Keys {
	ctx := context.Background()
	data, err := os.ReadFile(filepath.Join("..", "testdata", "onnx", name+".onnx"))
	check(w.t, err)
	m, err := w.owner.Deploy(ctx, &fheserve.DeployRequest{Name: name, ONNX: data, CompileSettings: settings})
	check(w.t, err)
	return keysOf(w.t, w.user, m.ID)
}

// keysWithout returns an upload of keys for w.model's plan lacking the
// first rotation's key.
func (w *world) keysWithout() []byte {
	return w.keysWith(func(_ he.Parameters, spec *he.KeySpec) {
		spec.Galois, spec.GaloisLevels = spec.Galois[1:], spec.GaloisLevels[1:]
	})
}

// keysOtherRotations returns an upload of keys with w.model's parameters
// for other rotations: the plan's keys and keys for rotations it does not
// use, at the top level.
func (w *world) keysOtherRotations() []byte {
	return w.keysWith(func(params he.Parameters, spec *he.KeySpec) {
		used := map[uint64]bool{}
		for _, g := range spec.Galois {
			used[g] = true
		}
		for r, added := 1, 0; added < 4; r++ {
			if g := params.GaloisElement(r); !used[g] {
				spec.Galois = append(spec.Galois, g)
				spec.GaloisLevels = append(spec.GaloisLevels, params.MaxLevel())
				added++
			}
		}
	})
}

// keysWith returns an upload of keys for w.model's parameters and its
// plan's key specification changed by edit.
func (w *world) keysWith(edit func(he.Parameters, *he.KeySpec)) []byte {
	p := w.keys.Plan
	params, err := he.NewParameters(p.Params)
	check(w.t, err)
	spec := he.PlanKeys(p)
	edit(params, &spec)
	_, evk, err := client.GenerateKeys(params, spec)
	check(w.t, err)
	var buf bytes.Buffer
	check(w.t, he.MarshalEvalKeys(&buf, params, evk))
	return buf.Bytes()
}

func corrupt(b []byte, at int, with byte, n int) []byte {
	out := bytes.Clone(b)
	for i := range n {
		out[at+i] = with
	}
	return out
}

// TestBadInput sends malformed, oversized and misdirected requests: each
// gets a 4xx with a message that says what is wrong, and the server keeps
// serving everyone.
func TestBadInput(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	// Other CKKS parameters: relu at degree 5, on N=2^14 like mlp_square
	// with other moduli (the compiler's own choice for it needs 2^15).
	other := w.otherModel("relu", fheserve.CompileSettings{Degree: 5})
	cnn := w.otherModel("cnn_square", fheserve.CompileSettings{})
	otherInput, err := other.Encrypt(make([]float64, other.Plan.InputSize()), 1)
	check(t, err)
	otherRotations := w.keysOtherRotations()
	m, k := w.model.ID, w.keys.KeySetID
	keysPath := "/v1/models/" + m + "/keysets"
	jobsPath := "/v1/models/" + m + "/jobs?keyset=" + k
	bin := "application/octet-stream"
	garbage := []byte("this is not an ONNX model, just text")
	malformed, ctype := multipartDeploy(t, &fheserve.DeployRequest{Name: "garbage", ONNX: garbage})
	maxpoolONNX, err := os.ReadFile(filepath.Join("..", "testdata", "onnx", "maxpool.onnx"))
	check(t, err)
	unsupported, ctype2 := multipartDeploy(t, &fheserve.DeployRequest{Name: "maxpool", ONNX: maxpoolONNX})
	big := append(bytes.Clone(w.keyBytes), make([]byte, 1<<20)...)

	tests := []struct {
		name   string
		role   string
		c      call
		chunk  bool // send without Content-Length
		status int
		want   []string
	}{
		{"oversized key set", user, call{"POST", keysPath, big, bin}, false, 413, []string{"key set", "larger than", "plan allows"}},
		{"oversized key set, streamed", user, call{"POST", keysPath, big, bin}, true, 413, []string{"larger than"}},
		{"truncated key set", user, call{"POST", keysPath, w.keyBytes[:len(w.keyBytes)/2], bin}, false, 400, []string{"key set", "truncated"}},
		{"key set with a bad header", user, call{"POST", keysPath, corrupt(w.keyBytes, 0, 'X', 4), bin}, false, 400, []string{"not a key set"}},
		{"key set with unreduced coefficients", user, call{"POST", keysPath, corrupt(w.keyBytes, 200, 0xff, 64), bin}, false, 400, []string{"coefficient not reduced"}},
		{"key set for other parameters, streamed", user, call{"POST", keysPath, w.keyUpload(other), bin}, true, 400, []string{"does not match the model's plan", "other parameters"}},
		{"key set for another plan's rotations, streamed", user, call{"POST", keysPath, otherRotations, bin}, true, 400, []string{"does not match the model's plan"}},
		{"key set for another plan's rotations", user, call{"POST", keysPath, otherRotations, bin}, false, 413, []string{"larger than", "fheserve keys create"}},
		{"key set missing a rotation", user, call{"POST", keysPath, w.keysWithout(), bin}, false, 400, []string{"lacks the key for rotation"}},
		{"oversized input", user, call{"POST", jobsPath, append(bytes.Clone(w.input), make([]byte, 1<<20)...), bin}, false, 413, []string{"encrypted input", "larger than"}},
		{"truncated input", user, call{"POST", jobsPath, w.input[:len(w.input)-100], bin}, false, 400, []string{"encrypted input", "truncated"}},
		// Byte 48 is the first ciphertext's log2 of slot matrix columns.
		{"input with a slot matrix of 1 column", user, call{"POST", jobsPath, corrupt(w.input, 48, 0, 1), bin}, false, 400, []string{"slot matrix of 2^0 x 2^0"}},
		{"input with a slot matrix of 2 columns", user, call{"POST", jobsPath, corrupt(w.input, 48, 1, 1), bin}, false, 400, []string{"slot matrix of 2^0 x 2^1"}},
		{"input with a slot matrix of 32 columns", user, call{"POST", jobsPath, corrupt(w.input, 48, 5, 1), bin}, false, 400, []string{"slot matrix of 2^0 x 2^5"}},
		{"input with a bad header", user, call{"POST", jobsPath, corrupt(w.input, 0, 0, 4), bin}, false, 400, []string{"encrypted input"}},
		{"empty input", user, call{"POST", jobsPath, []byte{}, bin}, false, 400, []string{"truncated"}},
		{"input for other parameters", user, call{"POST", jobsPath, otherInput, bin}, false, 400, []string{"other parameters"}},
		{"input under another model's key set", user, call{"POST", "/v1/models/" + m + "/jobs?keyset=" + cnn.KeySetID, w.input, bin}, false, 400, []string{"was made for model"}},
		{"input without a key set", user, call{"POST", "/v1/models/" + m + "/jobs", w.input, bin}, false, 400, []string{"must name the key set"}},
		{"more samples than tiles in a latency job", user, call{"POST", jobsPath + fmt.Sprintf("&samples=%d", w.keys.Plan.BatchSize+1), w.input, bin}, false, 400,
			[]string{fmt.Sprintf("latency-packed model holds 1 to %d samples (one per tile), not %d", w.keys.Plan.BatchSize, w.keys.Plan.BatchSize+1)}},
		{"no samples", user, call{"POST", jobsPath + "&samples=0", w.input, bin}, false, 400, []string{"at least one sample"}},
		{"samples not a number", user, call{"POST", jobsPath + "&samples=many", w.input, bin}, false, 400, []string{"samples", "integer"}},
		{"unknown key set", user, call{"POST", "/v1/models/" + m + "/jobs?keyset=key_nope", w.input, bin}, false, 404, []string{"no key set"}},
		{"unknown model", user, call{"POST", "/v1/models/mdl_nope/jobs?keyset=" + k, w.input, bin}, false, 404, []string{"no model \"mdl_nope\""}},
		{"unknown model's plan", user, call{"GET", "/v1/models/mdl_nope/plan", nil, ""}, false, 404, []string{"no model"}},
		{"another user's job", user2, call{"GET", "/v1/jobs/" + w.job.ID, nil, ""}, false, 403, []string{"belongs to another user"}},
		{"another user's result", user2, call{"GET", "/v1/jobs/" + w.job.ID + "/result", nil, ""}, false, 403, []string{"belongs to another user"}},
		{"another user's key set", user2, call{"GET", "/v1/keysets/" + k, nil, ""}, false, 403, []string{"belongs to another user"}},
		{"unknown job", user, call{"GET", "/v1/jobs/job_nope", nil, ""}, false, 404, []string{"no job"}},
		{"malformed ONNX", owner, call{"POST", "/v1/models", malformed, ctype}, false, 400, []string{"cannot deploy \"garbage\"", "ONNX"}},
		{"unsupported ONNX", owner, call{"POST", "/v1/models", unsupported, ctype2}, false, 422, []string{"MaxPool", "AveragePool"}},
		{"deployment without a model", owner, func() call {
			b, ct := multipartDeploy(t, &fheserve.DeployRequest{Name: "empty"})
			return call{"POST", "/v1/models", b, ct}
		}(), false, 400, []string{"empty"}},
		{"deployment with privacy bits out of range", owner, deployCall(t, w.onnx, fheserve.CompileSettings{PrivacyBits: 200}), false, 400, []string{"privacy_bits", "128"}},
		{"deployment with an unknown fit", owner, deployCall(t, w.onnx, fheserve.CompileSettings{Fit: "spline"}), false, 400, []string{"fit", `"spline"`}},
		{"deployment with a ring too large", owner, deployCall(t, w.onnx, fheserve.CompileSettings{LogN: 20}), false, 400, []string{"log_n", "12 and 16"}},
		{"deployment with a query budget too large", owner, deployCall(t, w.onnx, fheserve.CompileSettings{QueryBudget: 1<<40 + 1}), false, 400, []string{"query_budget"}},
		{"deployment with a bad node degree", owner, deployCall(t, w.onnx, fheserve.CompileSettings{Degrees: map[string]int{"/1/Relu": 64}}), false, 400, []string{"/1/Relu", "2 and 63"}},
		{"deployment with a degree for no activation", owner, deployCall(t, w.onnx, fheserve.CompileSettings{Degrees: map[string]int{"nothing": 5}}), false, 400, []string{`"nothing"`}},
		{"deployment as JSON", owner, jsonCall("POST", "/v1/models", map[string]string{"name": "x"}), false, 400, []string{"multipart/form-data"}},
		{"allow-list naming nobody", owner, func() call {
			b, ct := multipartDeploy(t, &fheserve.DeployRequest{Name: "m", ONNX: w.onnx, Allow: []string{"nobody"}})
			return call{"POST", "/v1/models", b, ct}
		}(), false, 400, []string{"\"nobody\"", "not an account"}},
		{"keys as JSON", user, jsonCall("POST", keysPath, map[string]string{"key": "x"}), false, 400, []string{"application/octet-stream"}},
		{"invalid JSON", anonymous, call{"POST", "/v1/accounts", []byte("{"), "application/json"}, false, 400, []string{"invalid JSON"}},
		{"unknown JSON field", anonymous, call{"POST", "/v1/accounts", []byte(`{"username":"a1","password":"p","role":"user","admin":true}`), "application/json"}, false, 400, []string{"unknown field"}},
		{"short password", anonymous, jsonCall("POST", "/v1/accounts", fheserve.RegisterRequest{Username: "shorty", Password: "x", Role: "user"}), false, 400, []string{"password is too short"}},
		{"self-made administrator", anonymous, jsonCall("POST", "/v1/accounts", fheserve.RegisterRequest{Username: "mallory", Password: "a-password", Role: "admin"}), false, 400, []string{"role must be"}},
		{"taken username", anonymous, jsonCall("POST", "/v1/accounts", fheserve.RegisterRequest{Username: "ulrich", Password: "a-password", Role: "user"}), false, 409, []string{"taken"}},
		{"bad token", anonymous, call{"GET", "/v1/models?token=x", nil, ""}, false, 401, []string{"log in"}},
		{"unknown endpoint", user, call{"GET", "/v1/nothing", nil, ""}, false, 404, []string{"no endpoint"}},
		{"result of a retired model's job is still there", user, call{"GET", "/v1/jobs/" + w.job.ID + "/result", nil, ""}, false, 200, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w.t = t
			status, body := w.send(tt.role, tt.c, tt.chunk)
			if tt.status == 200 {
				if status != 200 {
					t.Fatalf("status %d: %s", status, body)
				}
				return
			}
			var e api.ErrorResponse
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("status %d, body is not an error: %q", status, body)
			}
			if (tt.status != 0 && status != tt.status) || status < 400 || status >= 500 {
				t.Errorf("status %d (%s), want %d", status, e.Code, tt.status)
			}
			for _, want := range tt.want {
				if !strings.Contains(e.Message, want) {
					t.Errorf("message %q does not say %q", e.Message, want)
				}
			}
			t.Logf("%d %s", status, e.Message)
		})
	}

	// The server still serves: a valid prediction goes through.
	w.t = t
	j, err := w.user.Submit(ctx, w.keys, w.input, 1)
	check(t, err)
	if _, err := w.user.Wait(ctx, j.ID, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := w.user.Fetch(ctx, w.keys, j.ID, 1); err != nil {
		t.Fatal(err)
	}
}

// deployCall is a deployment of model with settings.
func deployCall(t *testing.T, model []byte, settings fheserve.CompileSettings) call {
	b, ct := multipartDeploy(t, &fheserve.DeployRequest{Name: "m", ONNX: model, CompileSettings: settings})
	return call{"POST", "/v1/models", b, ct}
}

// send sends c as role; chunked hides the body's length.
func (w *world) send(role string, c call, chunked bool) (int, []byte) {
	w.t.Helper()
	var body io.Reader
	if c.body != nil {
		body = bytes.NewReader(c.body)
		if chunked {
			body = io.MultiReader(body)
		}
	}
	return w.request(role, c.method, c.path, body, c.contentType)
}
