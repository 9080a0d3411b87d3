package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/spf13/cobra"
)

// execute runs cmd as a subcommand of a bare root, as newRootCmd would,
// and returns its error.
func execute(t *testing.T, cmd *cobra.Command, args ...string) error {
	t.Helper()
	root := &cobra.Command{Use: "fheserve", SilenceErrors: true, SilenceUsage: true}
	root.SetFlagErrorFunc(flagError)
	root.AddCommand(cmd)
	root.SetArgs(append([]string{cmd.Name()}, args...))
	root.SetOut(&bytes.Buffer{})
	root.SetErr(&bytes.Buffer{})
	return root.Execute()
}

// injected leaves what the Factory gives (streams, environment, client
// state) and contexts out of option comparisons.
var injected = cmp.Options{
	cmpopts.IgnoreTypes((*IOStreams)(nil), (*Factory)(nil)),
	cmpopts.IgnoreInterfaces(struct{ context.Context }{}),
	cmp.AllowUnexported(remote{}),
}

// testFactory is a Factory on buffers, an empty environment and an empty
// client state.
func testFactory(t *testing.T) *Factory {
	f, _, _ := newParty(t, "").factory("")
	return f
}

func TestCompileFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    compileOptions
		wantErr string // error code
	}{
		{
			name: "defaults",
			args: []string{"--model", "m.onnx"},
			want: compileOptions{Model: "m.onnx", Packing: "latency"},
		},
		{
			name: "all",
			args: []string{"--model=m.onnx", "--calibration", "c.npy", "--packing", "batch", "--degree", "15", "--log-n", "14", "--json"},
			want: compileOptions{Model: "m.onnx", Packing: "batch", JSON: true,
				engineFlags: engineFlags{Calibration: "c.npy", CompileSettings: fheserve.CompileSettings{Degree: 15, LogN: 14}}},
		},
		{
			name: "degrees",
			args: []string{"--model", "m.onnx", "--degrees", "/1/Relu=15,/3/Relu=7", "--degrees", "act=5", "--fit", "least-squares", "--margin", "0.3"},
			want: compileOptions{Model: "m.onnx", Packing: "latency",
				engineFlags: engineFlags{CompileSettings: fheserve.CompileSettings{Degrees: map[string]int{"/1/Relu": 15, "/3/Relu": 7, "act": 5}, Fit: "least-squares", Margin: 0.3}}},
		},
		{
			name: "privacy",
			args: []string{"--model", "m.onnx", "--privacy-bits", "40", "--query-budget", "100000", "--precision-bits", "10"},
			want: compileOptions{Model: "m.onnx", Packing: "latency",
				engineFlags: engineFlags{CompileSettings: fheserve.CompileSettings{PrivacyBits: 40, QueryBudget: 100000, PrecisionBits: 10}}},
		},
		{
			name: "no flooding",
			args: []string{"--model", "m.onnx", "--privacy-bits", "-1"},
			want: compileOptions{Model: "m.onnx", Packing: "latency",
				engineFlags: engineFlags{CompileSettings: fheserve.CompileSettings{PrivacyBits: fheserve.NoPrivacy}}},
		},
		{name: "privacy bits out of range", args: []string{"--model", "m.onnx", "--privacy-bits", "200"}, wantErr: fheserve.EINVALID},
		{name: "negative query budget", args: []string{"--model", "m.onnx", "--query-budget", "-5"}, wantErr: fheserve.EINVALID},
		{name: "precision bits out of range", args: []string{"--model", "m.onnx", "--precision-bits", "41"}, wantErr: fheserve.EINVALID},
		{
			name: "absolute precision",
			args: []string{"--model", "m.onnx", "--precision", "1e-3"},
			want: compileOptions{Model: "m.onnx", Packing: "latency",
				engineFlags: engineFlags{CompileSettings: fheserve.CompileSettings{Precision: 1e-3}}},
		},
		{name: "precision and precision bits", args: []string{"--model", "m.onnx", "--precision", "1e-3", "--precision-bits", "10"}, wantErr: fheserve.EINVALID},
		{name: "negative precision", args: []string{"--model", "m.onnx", "--precision", "-1"}, wantErr: fheserve.EINVALID},
		{name: "bad fit", args: []string{"--model", "m.onnx", "--fit", "spline"}, wantErr: fheserve.EINVALID},
		{name: "bad log-n", args: []string{"--model", "m.onnx", "--log-n", "11"}, wantErr: fheserve.EINVALID},
		{name: "flood-bits is gone", args: []string{"--model", "m.onnx", "--flood-bits", "20"}, wantErr: fheserve.EINVALID},
		{name: "degrees without degree", args: []string{"--model", "m.onnx", "--degrees", "/1/Relu"}, wantErr: fheserve.EINVALID},
		{name: "degrees not a number", args: []string{"--model", "m.onnx", "--degrees", "/1/Relu=high"}, wantErr: fheserve.EINVALID},
		{name: "no model", args: nil, wantErr: fheserve.EINVALID},
		{name: "bad packing", args: []string{"--model", "m.onnx", "--packing", "fast"}, wantErr: fheserve.EINVALID},
		{name: "bad degree", args: []string{"--model", "m.onnx", "--degree", "1"}, wantErr: fheserve.EINVALID},
		{name: "degree not a number", args: []string{"--model", "m.onnx", "--degree", "x"}, wantErr: fheserve.EINVALID},
		{name: "unknown flag", args: []string{"--model", "m.onnx", "--fast"}, wantErr: fheserve.EINVALID},
		{name: "positional", args: []string{"m.onnx"}, wantErr: fheserve.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *compileOptions
			err := execute(t, newCompileCmd(testFactory(t), func(o *compileOptions) error { got = o; return nil }), tt.args...)
			checkParse(t, err, tt.wantErr)
			if tt.wantErr == "" {
				if diff := cmp.Diff(tt.want, *got, injected, cmp.AllowUnexported(compileOptions{})); diff != "" {
					t.Errorf("options (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestPredictFlags(t *testing.T) {
	base := []string{"--local", "--model", "m.onnx", "--input", "x.npy", "--output", "y.npy"}
	tests := []struct {
		name    string
		args    []string
		want    predictOptions
		wantErr string
	}{
		{
			name: "defaults",
			args: base,
			want: predictOptions{Local: true, Model: "m.onnx", Input: "x.npy", Output: "y.npy", Packing: "latency", InFlight: 16},
		},
		{
			name: "all",
			args: append(base[:len(base):len(base)], "--mode", "batch", "--calibration", "c.npy", "--degree", "5", "--degrees", "a=9", "--log-n", "15", "--workers", "3", "--json"),
			want: predictOptions{Local: true, Model: "m.onnx", Input: "x.npy", Output: "y.npy", Packing: "batch", Workers: 3, JSON: true, InFlight: 16,
				engineFlags: engineFlags{Calibration: "c.npy", CompileSettings: fheserve.CompileSettings{Degree: 5, Degrees: map[string]int{"a": 9}, LogN: 15}}},
		},
		{
			name: "remote",
			args: append(base[1:len(base):len(base)], "--server", "http://h:1", "--keys", "key_1"),
			want: predictOptions{Model: "m.onnx", Input: "x.npy", Output: "y.npy", Packing: "latency", Keys: "key_1", InFlight: 16,
				remote: remote{Server: "http://h:1"}},
		},
		{name: "remote with engine flags", args: append(base[1:len(base):len(base)], "--calibration", "c.npy"), wantErr: fheserve.EINVALID},
		{name: "local with keys", args: append(base[:len(base):len(base)], "--keys", "key_1"), wantErr: fheserve.EINVALID},
		{name: "no model", args: []string{"--local", "--input", "x.npy", "--output", "y.npy"}, wantErr: fheserve.EINVALID},
		{name: "no input", args: []string{"--local", "--model", "m.onnx", "--output", "y.npy"}, wantErr: fheserve.EINVALID},
		{name: "no output", args: []string{"--local", "--model", "m.onnx", "--input", "x.npy"}, wantErr: fheserve.EINVALID},
		{name: "bad mode", args: append(base[:len(base):len(base)], "--mode", "packed"), wantErr: fheserve.EINVALID},
		{
			name: "packing, as compile and deploy name it",
			args: append(base[:len(base):len(base)], "--packing", "batch"),
			want: predictOptions{Local: true, Model: "m.onnx", Input: "x.npy", Output: "y.npy", Packing: "batch", InFlight: 16},
		},
		{name: "packing and its former name", args: append(base[:len(base):len(base)], "--packing", "batch", "--mode", "latency"), wantErr: fheserve.EINVALID},
		{
			name: "remote, fewer jobs in flight",
			args: append(base[1:len(base):len(base)], "--in-flight", "4"),
			want: predictOptions{Model: "m.onnx", Input: "x.npy", Output: "y.npy", Packing: "latency", InFlight: 4},
		},
		{name: "no job in flight", args: append(base[1:len(base):len(base)], "--in-flight", "0"), wantErr: fheserve.EINVALID},
		{name: "local with in-flight", args: append(base[:len(base):len(base)], "--in-flight", "4"), wantErr: fheserve.EINVALID},
		{name: "json and standard output", args: append(base[:len(base)-1:len(base)-1], "-", "--json"), wantErr: fheserve.EINVALID},
		{name: "remote with packing", args: append(base[1:len(base):len(base)], "--packing", "batch"), wantErr: fheserve.EINVALID},
		{name: "bad packing", args: append(base[:len(base):len(base)], "--packing", "packed"), wantErr: fheserve.EINVALID},
		{name: "negative workers", args: append(base[:len(base):len(base)], "--workers", "-1"), wantErr: fheserve.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *predictOptions
			err := execute(t, newPredictCmd(testFactory(t), func(o *predictOptions) error { got = o; return nil }), tt.args...)
			checkParse(t, err, tt.wantErr)
			if tt.wantErr == "" {
				if diff := cmp.Diff(tt.want, *got, injected, cmp.AllowUnexported(predictOptions{})); diff != "" {
					t.Errorf("options (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestEvalFlags(t *testing.T) {
	base := []string{"--model", "m.onnx", "--data", "x.npy", "--labels", "y.npy"}
	with := func(args ...string) []string { return append(base[:len(base):len(base)], args...) }
	tests := []struct {
		name    string
		args    []string
		want    evalOptions
		wantErr string
	}{
		{
			name: "defaults",
			args: base,
			want: evalOptions{Model: "m.onnx", Data: "x.npy", Labels: "y.npy", Packing: "batch"},
		},
		{
			name: "all",
			args: with("--mode", "latency", "--limit", "100", "--calibration", "c.npy", "--degree", "15",
				"--degrees", "/1/Relu=7", "--fit", "least-squares", "--margin", "0.4", "--log-n", "15", "--workers", "2", "--plaintext-only", "--json"),
			want: evalOptions{Model: "m.onnx", Data: "x.npy", Labels: "y.npy", Packing: "latency", Limit: 100, Workers: 2, JSON: true, PlaintextOnly: true,
				engineFlags: engineFlags{Calibration: "c.npy", CompileSettings: fheserve.CompileSettings{Degree: 15, Degrees: map[string]int{"/1/Relu": 7}, Fit: "least-squares", Margin: 0.4, LogN: 15}}},
		},
		{name: "no model", args: []string{"--data", "x.npy", "--labels", "y.npy"}, wantErr: fheserve.EINVALID},
		{name: "no data", args: []string{"--model", "m.onnx", "--labels", "y.npy"}, wantErr: fheserve.EINVALID},
		{name: "no labels", args: []string{"--model", "m.onnx", "--data", "x.npy"}, wantErr: fheserve.EINVALID},
		{name: "bad mode", args: with("--mode", "fast"), wantErr: fheserve.EINVALID},
		{
			name: "packing, as compile and deploy name it",
			args: with("--packing", "latency"),
			want: evalOptions{Model: "m.onnx", Data: "x.npy", Labels: "y.npy", Packing: "latency"},
		},
		{name: "packing and its former name", args: with("--packing", "latency", "--mode", "latency"), wantErr: fheserve.EINVALID},
		{name: "bad packing", args: with("--packing", "fast"), wantErr: fheserve.EINVALID},
		{name: "negative limit", args: with("--limit", "-1"), wantErr: fheserve.EINVALID},
		{name: "negative workers", args: with("--workers", "-2"), wantErr: fheserve.EINVALID},
		{name: "bad degree", args: with("--degree", "64"), wantErr: fheserve.EINVALID},
		{name: "positional", args: with("extra"), wantErr: fheserve.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *evalOptions
			err := execute(t, newEvalCmd(testFactory(t), func(o *evalOptions) error { got = o; return nil }), tt.args...)
			checkParse(t, err, tt.wantErr)
			if tt.wantErr == "" {
				if diff := cmp.Diff(tt.want, *got, injected, cmp.AllowUnexported(evalOptions{})); diff != "" {
					t.Errorf("options (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestDemoFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    demoOptions
		wantErr string
	}{
		{name: "defaults", want: demoOptions{Model: defaultDemoModel, Samples: 3}},
		{name: "all", args: []string{"--model", "logreg", "--samples", "10", "--workers", "1"},
			want: demoOptions{Model: "logreg", Samples: 10, Workers: 1}},
		{name: "unknown model", args: []string{"--model", "resnet"}, wantErr: fheserve.ENOTFOUND},
		{name: "no samples", args: []string{"--samples", "0"}, wantErr: fheserve.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *demoOptions
			err := execute(t, newDemoCmd(testFactory(t), func(o *demoOptions) error { got = o; return nil }), tt.args...)
			checkParse(t, err, tt.wantErr)
			if tt.wantErr == "" {
				if diff := cmp.Diff(tt.want, *got, injected); diff != "" {
					t.Errorf("options (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestVersionFlags(t *testing.T) {
	called := false
	if err := execute(t, newVersionCmd(testFactory(t), func(*versionOptions) error { called = true; return nil })); err != nil || !called {
		t.Fatalf("version: err %v, called %v", err, called)
	}
	err := execute(t, newVersionCmd(testFactory(t), nil), "extra")
	checkParse(t, err, fheserve.EINVALID)
}

func checkParse(t *testing.T, err error, wantCode string) {
	t.Helper()
	switch {
	case wantCode == "" && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case wantCode != "" && err == nil:
		t.Fatalf("no error, want one with code %q", wantCode)
	case wantCode != "" && fheserve.ErrorCode(err) != wantCode:
		t.Fatalf("error %q has code %q, want %q", err, fheserve.ErrorCode(err), wantCode)
	}
}

func TestBatchOf(t *testing.T) {
	tests := []struct {
		name  string
		shape []int
		input []int
		want  int
		err   string // substring of the error
	}{
		{"per-sample shape", []int{5, 1, 8, 8}, []int{1, 8, 8}, 5, ""},
		{"flat", []int{5, 64}, []int{1, 8, 8}, 5, ""},
		{"vector", []int{3, 16}, []int{16}, 3, ""},
		{"no batch", []int{16}, []int{16}, 0, "no batch dimension"},
		{"no batch image", []int{1, 8, 8}, []int{1, 8, 8}, 0, "no batch dimension"},
		{"wrong size", []int{4, 15}, []int{16}, 0, "want [batch 16], the batch"},
		{"wrong image", []int{4, 8, 8}, []int{1, 8, 8}, 0, "want [batch 1 8 8] or [batch 64]"},
		{"scalar", nil, []int{16}, 0, "scalar"},
		{"empty batch", []int{0, 16}, []int{16}, 0, "no samples"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := batchOf(tt.shape, tt.input)
			if tt.err == "" {
				if err != nil || n != tt.want {
					t.Fatalf("batchOf = %d, %v; want %d", n, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) || fheserve.ErrorCode(err) != fheserve.EINVALID {
				t.Fatalf("batchOf error %v, want an invalid-input error containing %q", err, tt.err)
			}
		})
	}
}

func TestModelName(t *testing.T) {
	for path, want := range map[string]string{
		"m.onnx":                            "m",
		"dir/cnn.onnx":                      "cnn",
		"examples/fmnist-cnn/model.onnx":    "fmnist-cnn",
		"model.onnx":                        "model",
		"/model.onnx":                       "model",
		"../examples/face-match/model.onnx": "face-match",
	} {
		if got := modelName(path); got != want {
			t.Errorf("modelName(%q) = %q, want %q", path, got, want)
		}
	}
}

func TestServerURL(t *testing.T) {
	tests := []struct {
		name, flag, env, config string
		want, wantErr           string // the URL, or a part of the error
	}{
		{name: "default", want: defaultServer},
		{name: "flag", flag: "https://fhe.example.com:8443/", want: "https://fhe.example.com:8443"},
		{name: "environment", env: "http://10.0.0.1:8080", want: "http://10.0.0.1:8080"},
		{name: "last login", config: "https://fhe.example.com", want: "https://fhe.example.com"},
		{name: "flag first", flag: "http://a:1", env: "http://b:2", config: "http://c:3", want: "http://a:1"},
		{name: "host and port", flag: "host:8080", wantErr: `--server "host:8080" is not a server URL: write https://host:8080 (or http://host:8080 for a server without TLS)`},
		{name: "loopback address and port", flag: "127.0.0.1:8080", wantErr: "write https://127.0.0.1:8080 (or http://127.0.0.1:8080"},
		{name: "bare host", env: "fhe.example.com", wantErr: `$FHESERVE_SERVER "fhe.example.com" is not a server URL: write https://fhe.example.com`},
		{name: "other scheme", flag: "ftp://h:21", wantErr: "write https://h:21"},
		{name: "with a query", flag: "https://h:1/?x=1", wantErr: "give only the scheme, host and port, like https://h:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{serverEnv: tt.env}
			r := &remote{Server: tt.flag, f: &Factory{Getenv: func(k string) string { return env[k] }}}
			got, err := r.serverURL(&clientConfig{Server: tt.config})
			switch {
			case tt.wantErr != "":
				if fheserve.ErrorCode(err) != fheserve.EINVALID || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("serverURL = %q, %v; want an error with %q", got, err, tt.wantErr)
				}
			case err != nil || got != tt.want:
				t.Errorf("serverURL = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
