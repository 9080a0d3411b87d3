package main

import (
	"testing"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/app"
	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"
)

// Flag parsing of the service's verbs, without running them.

func TestServeFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    serveOptions
		wantErr string
	}{
		{name: "defaults", want: serveOptions{DataDir: "fheserve-data", Addr: "127.0.0.1:8080", ResultTTL: 24 * time.Hour}},
		{name: "all", args: []string{"--data-dir", "/d", "--addr", ":9", "--workers", "3", "--eval-threads", "1", "--result-ttl", "1h", "--log-json", "--behind-proxy"},
			want: serveOptions{DataDir: "/d", Addr: ":9", Workers: 3, EvalThreads: 1, ResultTTL: time.Hour, LogJSON: true, BehindProxy: true}},
		{name: "tls", args: []string{"--addr", "0.0.0.0:8443", "--tls-cert", "c.pem", "--tls-key", "k.pem"},
			want: serveOptions{DataDir: "fheserve-data", Addr: "0.0.0.0:8443", ResultTTL: 24 * time.Hour, TLSCert: "c.pem", TLSKey: "k.pem"}},
		{name: "ipv6 loopback", args: []string{"--addr", "[::1]:8080"},
			want: serveOptions{DataDir: "fheserve-data", Addr: "[::1]:8080", ResultTTL: 24 * time.Hour}},
		{name: "localhost", args: []string{"--addr", "localhost:8080"},
			want: serveOptions{DataDir: "fheserve-data", Addr: "localhost:8080", ResultTTL: 24 * time.Hour}},
		{name: "clear text to the network", args: []string{"--addr", "0.0.0.0:8080"}, wantErr: fheserve.EINVALID},
		{name: "clear text on every interface", args: []string{"--addr", ":8080"}, wantErr: fheserve.EINVALID},
		{name: "certificate without key", args: []string{"--tls-cert", "c.pem"}, wantErr: fheserve.EINVALID},
		{name: "trusted proxies", args: []string{"--addr", "10.0.0.5:8080", "--behind-proxy", "--trusted-proxy", "10.0.0.0/24,192.0.2.1"},
			want: serveOptions{DataDir: "fheserve-data", Addr: "10.0.0.5:8080", ResultTTL: 24 * time.Hour, BehindProxy: true, TrustedProxies: []string{"10.0.0.0/24", "192.0.2.1"}}},
		{name: "bad trusted proxy", args: []string{"--trusted-proxy", "10.0.0.0/99"}, wantErr: fheserve.EINVALID},
		{name: "tls behind a proxy", args: []string{"--tls-cert", "c.pem", "--tls-key", "k.pem", "--behind-proxy"}, wantErr: fheserve.EINVALID},
		{name: "bounds", args: []string{"--max-uploads", "8", "--max-uploads-per-user", "1", "--max-queued-per-user", "4", "--upload-wait", "5s", "--debug-addr", "127.0.0.1:6060"},
			want: serveOptions{DataDir: "fheserve-data", Addr: "127.0.0.1:8080", ResultTTL: 24 * time.Hour,
				MaxUploads: 8, MaxUploadsPerUser: 1, MaxQueuedPerUser: 4, UploadWait: 5 * time.Second, DebugAddr: "127.0.0.1:6060"}},
		{name: "all bounds", args: []string{"--max-deploys", "1", "--max-keysets-per-model", "2", "--max-keysets-per-user", "5", "--min-body-rate", "1024", "--body-grace", "3s"},
			want: serveOptions{DataDir: "fheserve-data", Addr: "127.0.0.1:8080", ResultTTL: 24 * time.Hour,
				MaxDeploys: 1, MaxKeySetsPerModel: 2, MaxKeySetsPerUser: 5, MinBodyRate: 1024, BodyGrace: 3 * time.Second}},
		{name: "negative body rate", args: []string{"--min-body-rate", "-1"}, wantErr: fheserve.EINVALID},
		{name: "negative workers", args: []string{"--workers", "-1"}, wantErr: fheserve.EINVALID},
		{name: "negative bound", args: []string{"--max-queued-per-user", "-1"}, wantErr: fheserve.EINVALID},
		{name: "short ttl", args: []string{"--result-ttl", "1s"}, wantErr: fheserve.EINVALID},
		{name: "argument", args: []string{"now"}, wantErr: fheserve.EINVALID},
		{name: "postgres", args: []string{"--store", "postgres://fheserve@db.internal/fheserve"},
			want: serveOptions{DataDir: "fheserve-data", Store: "postgres://fheserve@db.internal/fheserve", Addr: "127.0.0.1:8080", ResultTTL: 24 * time.Hour}},
		{name: "unknown store", args: []string{"--store", "mysql://db/fheserve"}, wantErr: fheserve.EINVALID},
		{name: "blobs on nats", args: []string{"--store", "postgres://db/f", "--blobs", "nats://nats.internal:4222"},
			want: serveOptions{DataDir: "fheserve-data", Store: "postgres://db/f", Blobs: "nats://nats.internal:4222", Addr: "127.0.0.1:8080", ResultTTL: 24 * time.Hour}},
		{name: "unknown blobs", args: []string{"--blobs", "s3://bucket"}, wantErr: fheserve.EINVALID},
		{name: "separate workers", args: []string{"--store", "postgres://db/f", "--queue", "nats://n:4222", "--workers", "0", "--max-attempts", "5"},
			want: serveOptions{DataDir: "fheserve-data", Store: "postgres://db/f", Queue: "nats://n:4222", Workers: -1, MaxAttempts: 5, Addr: "127.0.0.1:8080", ResultTTL: 24 * time.Hour}},
		{name: "no workers, no queue", args: []string{"--workers", "0"}, wantErr: fheserve.EINVALID},
		{name: "unknown queue", args: []string{"--queue", "amqp://q"}, wantErr: fheserve.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *serveOptions
			err := execute(t, newServeCmd(testFactory(t), func(o *serveOptions) error { got = o; return nil }), tt.args...)
			checkParse(t, err, tt.wantErr)
			if tt.wantErr == "" {
				if diff := cmp.Diff(tt.want, *got, injected); diff != "" {
					t.Errorf("options (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestClientVerbFlags(t *testing.T) {
	tests := []struct {
		name    string
		cmd     func(*Factory, *parsed) *cobra.Command // records the options in *parsed
		args    []string
		want    any // the options parsed
		wantErr string
	}{
		{name: "admin init", cmd: adminInit, args: []string{"--data-dir", "/d", "--username", "root", "--password-stdin"},
			want: &adminInitOptions{DataDir: "/d", Username: "root", Stdin: true}},
		{name: "admin init without password", cmd: adminInit, args: []string{"--username", "root"}, wantErr: fheserve.EINVALID},
		{name: "admin approve", cmd: adminReview(app.Approve), args: []string{"ulrich", "--server", "http://h"},
			want: &adminReviewOptions{Decision: app.Approve, Username: "ulrich", remote: remote{Server: "http://h"}}},
		{name: "admin disable without user", cmd: adminReview(app.Disable), wantErr: fheserve.EINVALID},
		{name: "admin pending json", cmd: adminPending, args: []string{"--json"}, want: &adminPendingOptions{JSON: true}},
		{name: "register", cmd: register, args: []string{"--username", "u", "--role", "owner", "--password-stdin"},
			want: &registerOptions{Username: "u", Role: "owner", Stdin: true}},
		{name: "register as admin", cmd: register, args: []string{"--username", "u", "--role", "admin", "--password-stdin"}, wantErr: fheserve.EINVALID},
		{name: "register without password", cmd: register, args: []string{"--username", "u", "--role", "user"}, wantErr: fheserve.EINVALID},
		{name: "login", cmd: login, args: []string{"--username", "u", "--password-stdin", "--server", "https://h"},
			want: &loginOptions{Username: "u", Stdin: true, remote: remote{Server: "https://h"}}},
		{name: "login without username", cmd: login, args: []string{"--password-stdin"}, wantErr: fheserve.EINVALID},
		{name: "logout", cmd: logout, want: &logoutOptions{}},
		{name: "model deploy", cmd: modelDeploy, args: []string{"--name", "n", "--file", "m.onnx", "--calibration", "c.npy", "--allow", "a,b", "--packing", "batch", "--degree", "5"},
			want: &modelDeployOptions{Name: "n", File: "m.onnx", Calibration: "c.npy", Allow: []string{"a", "b"}, Packing: "batch",
				CompileSettings: fheserve.CompileSettings{Degree: 5}}},
		{name: "model deploy, compile settings", cmd: modelDeploy, args: []string{"--name", "n", "--file", "m.onnx", "--degrees", "act=9",
			"--fit", "least-squares", "--margin", "0.2", "--log-n", "14", "--privacy-bits", "20", "--query-budget", "1000", "--precision-bits", "9"},
			want: &modelDeployOptions{Name: "n", File: "m.onnx", Packing: "latency", CompileSettings: fheserve.CompileSettings{
				Degrees: map[string]int{"act": 9}, Fit: "least-squares", Margin: 0.2, LogN: 14, PrivacyBits: 20, QueryBudget: 1000, PrecisionBits: 9}}},
		{name: "model deploy, absolute precision", cmd: modelDeploy, args: []string{"--name", "n", "--file", "m.onnx", "--precision", "0.01"},
			want: &modelDeployOptions{Name: "n", File: "m.onnx", Packing: "latency", CompileSettings: fheserve.CompileSettings{Precision: 0.01}}},
		{name: "model deploy bad privacy bits", cmd: modelDeploy, args: []string{"--name", "n", "--file", "f", "--privacy-bits", "0.5"}, wantErr: fheserve.EINVALID},
		{name: "model deploy without file", cmd: modelDeploy, args: []string{"--name", "n"}, wantErr: fheserve.EINVALID},
		{name: "model deploy bad packing", cmd: modelDeploy, args: []string{"--name", "n", "--file", "f", "--packing", "x"}, wantErr: fheserve.EINVALID},
		{name: "model list", cmd: modelList, args: []string{"--json"}, want: &modelListOptions{JSON: true}},
		{name: "model show", cmd: modelShow, args: []string{"mdl_1", "--json"}, want: &modelShowOptions{Ref: "mdl_1", JSON: true}},
		{name: "model retire", cmd: modelRetire, args: []string{"mdl_1"}, want: &modelRetireOptions{ID: "mdl_1"}},
		{name: "model retire without id", cmd: modelRetire, wantErr: fheserve.EINVALID},
		{name: "model limits", cmd: modelLimits, args: []string{"mdl_1", "--rate", "1.5", "--burst", "3", "--daily", "100", "--model-rate", "60", "--model-daily", "5000"},
			want: &modelLimitsOptions{ID: "mdl_1", Limits: fheserve.ModelLimits{RatePerMinute: 1.5, Burst: 3, Daily: 100, ModelRatePerMinute: 60, ModelDaily: 5000}}},
		{name: "model limits none", cmd: modelLimits, args: []string{"mdl_1"}, want: &modelLimitsOptions{ID: "mdl_1"}},
		{name: "model limits without id", cmd: modelLimits, args: []string{"--rate", "1"}, wantErr: fheserve.EINVALID},
		{name: "model access", cmd: modelAccess, args: []string{"mdl_1", "--allow", "a,b"},
			want: &modelAccessOptions{ID: "mdl_1", Allow: []string{"a", "b"}}},
		{name: "model access everyone", cmd: modelAccess, args: []string{"mdl_1", "--everyone"},
			want: &modelAccessOptions{ID: "mdl_1", Everyone: true}},
		{name: "model access neither", cmd: modelAccess, args: []string{"mdl_1"}, wantErr: fheserve.EINVALID},
		{name: "model access both", cmd: modelAccess, args: []string{"mdl_1", "--allow", "a", "--everyone"}, wantErr: fheserve.EINVALID},
		{name: "keys create", cmd: keysCreate, args: []string{"--model", "mdl_1", "--replace", "key_0"},
			want: &keysCreateOptions{Model: "mdl_1", Replace: "key_0"}},
		{name: "keys create without model", cmd: keysCreate, wantErr: fheserve.EINVALID},
		{name: "keys list", cmd: keysList, args: []string{"--model", "mdl_1", "--json"}, want: &keysListOptions{Model: "mdl_1", JSON: true}},
		{name: "keys revoke", cmd: keysRevoke, args: []string{"key_1"}, want: &keysRevokeOptions{ID: "key_1"}},
		{name: "usage", cmd: usage, args: []string{"--model", "mdl_1", "--json"}, want: &usageOptions{Model: "mdl_1", JSON: true}},
		{name: "usage without model", cmd: usage, wantErr: fheserve.EINVALID},
	}
	unexported := cmp.AllowUnexported(adminReviewOptions{}, adminPendingOptions{}, registerOptions{}, loginOptions{}, logoutOptions{},
		modelDeployOptions{}, modelListOptions{}, modelShowOptions{}, modelRetireOptions{}, modelLimitsOptions{}, modelAccessOptions{},
		keysCreateOptions{}, keysListOptions{}, keysRevokeOptions{}, usageOptions{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &parsed{}
			err := execute(t, tt.cmd(testFactory(t), p), tt.args...)
			checkParse(t, err, tt.wantErr)
			if tt.wantErr == "" {
				if diff := cmp.Diff(tt.want, p.opts, injected, unexported); diff != "" {
					t.Errorf("options (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// parsed records the options a command parsed.
type parsed struct{ opts any }

// capture is a runF that records the options in p.
func capture[T any](p *parsed) func(*T) error {
	return func(o *T) error { p.opts = o; return nil }
}

func adminInit(f *Factory, p *parsed) *cobra.Command {
	return newAdminInitCmd(f, capture[adminInitOptions](p))
}

func adminPending(f *Factory, p *parsed) *cobra.Command {
	return newAdminPendingCmd(f, capture[adminPendingOptions](p))
}

func adminReview(decision string) func(*Factory, *parsed) *cobra.Command {
	return func(f *Factory, p *parsed) *cobra.Command {
		return newAdminReviewCmd(f, decision, "", capture[adminReviewOptions](p))
	}
}

func register(f *Factory, p *parsed) *cobra.Command {
	return newRegisterCmd(f, capture[registerOptions](p))
}

func login(f *Factory, p *parsed) *cobra.Command { return newLoginCmd(f, capture[loginOptions](p)) }

func logout(f *Factory, p *parsed) *cobra.Command { return newLogoutCmd(f, capture[logoutOptions](p)) }

func modelDeploy(f *Factory, p *parsed) *cobra.Command {
	return newModelDeployCmd(f, capture[modelDeployOptions](p))
}

func modelList(f *Factory, p *parsed) *cobra.Command {
	return newModelListCmd(f, capture[modelListOptions](p))
}

func modelShow(f *Factory, p *parsed) *cobra.Command {
	return newModelShowCmd(f, capture[modelShowOptions](p))
}

func modelRetire(f *Factory, p *parsed) *cobra.Command {
	return newModelRetireCmd(f, capture[modelRetireOptions](p))
}

func modelLimits(f *Factory, p *parsed) *cobra.Command {
	return newModelLimitsCmd(f, capture[modelLimitsOptions](p))
}

func modelAccess(f *Factory, p *parsed) *cobra.Command {
	return newModelAccessCmd(f, capture[modelAccessOptions](p))
}

func keysCreate(f *Factory, p *parsed) *cobra.Command {
	return newKeysCreateCmd(f, capture[keysCreateOptions](p))
}

func keysList(f *Factory, p *parsed) *cobra.Command {
	return newKeysListCmd(f, capture[keysListOptions](p))
}

func keysRevoke(f *Factory, p *parsed) *cobra.Command {
	return newKeysRevokeCmd(f, capture[keysRevokeOptions](p))
}

func usage(f *Factory, p *parsed) *cobra.Command { return newUsageCmd(f, capture[usageOptions](p)) }
