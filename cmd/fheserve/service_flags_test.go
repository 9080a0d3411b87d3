package main

import (
	"strings"
	"testing"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"
)

// Flag parsing of the service's verbs, without running them.

func TestServeFlags(t *testing.T) {
	t.Setenv(dataDirEnv, "")
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *serveOptions
			err := execute(t, newServeCmd(func(o *serveOptions) error { got = o; return nil }), tt.args...)
			checkParse(t, err, tt.wantErr)
			if tt.wantErr == "" {
				if diff := cmp.Diff(tt.want, *got, ignoreIO(serveOptions{}, "ErrOut", "Ctx")); diff != "" {
					t.Errorf("options (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestClientVerbFlags(t *testing.T) {
	t.Setenv(dataDirEnv, "")
	tests := []struct {
		name    string
		cmd     func(*parsed) *cobra.Command // records the options in *parsed
		args    []string
		check   func(t *testing.T, p *parsed)
		wantErr string
	}{
		{name: "admin init", cmd: adminCmd, args: []string{"init", "--data-dir", "/d", "--username", "root", "--password-stdin"},
			check: func(t *testing.T, p *parsed) {
				if o := p.admin; o.Action != "init" || o.DataDir != "/d" || o.Username != "root" || !o.Stdin {
					t.Errorf("%+v", o)
				}
			}},
		{name: "admin init without password", cmd: adminCmd, args: []string{"init", "--username", "root"}, wantErr: fheserve.EINVALID},
		{name: "admin approve", cmd: adminCmd, args: []string{"approve", "ulrich", "--server", "http://h"},
			check: func(t *testing.T, p *parsed) {
				if o := p.admin; o.Action != "approve" || o.Username != "ulrich" || o.Server != "http://h" {
					t.Errorf("%+v", o)
				}
			}},
		{name: "admin disable without user", cmd: adminCmd, args: []string{"disable"}, wantErr: fheserve.EINVALID},
		{name: "admin pending json", cmd: adminCmd, args: []string{"pending", "--json"},
			check: func(t *testing.T, p *parsed) {
				if !p.admin.JSON {
					t.Error("--json not set")
				}
			}},
		{name: "register", cmd: registerCmd, args: []string{"--username", "u", "--role", "owner", "--password-stdin"},
			check: func(t *testing.T, p *parsed) {
				if o := p.account; o.Username != "u" || o.Role != "owner" || !o.Stdin {
					t.Errorf("%+v", o)
				}
			}},
		{name: "register as admin", cmd: registerCmd, args: []string{"--username", "u", "--role", "admin", "--password-stdin"}, wantErr: fheserve.EINVALID},
		{name: "register without password", cmd: registerCmd, args: []string{"--username", "u", "--role", "user"}, wantErr: fheserve.EINVALID},
		{name: "login without username", cmd: loginCmd, args: []string{"--password-stdin"}, wantErr: fheserve.EINVALID},
		{name: "model deploy", cmd: modelCmd, args: []string{"deploy", "--name", "n", "--file", "m.onnx", "--calibration", "c.npy", "--allow", "a,b", "--packing", "batch", "--degree", "5"},
			check: func(t *testing.T, p *parsed) {
				o := p.model
				if o.Name != "n" || o.File != "m.onnx" || o.Calibration != "c.npy" || len(o.Allow) != 2 || o.Packing != "batch" || o.Degree != 5 {
					t.Errorf("%+v", o)
				}
			}},
		{name: "model deploy, compile settings", cmd: modelCmd, args: []string{"deploy", "--name", "n", "--file", "m.onnx", "--degrees", "act=9",
			"--fit", "least-squares", "--margin", "0.2", "--log-n", "14", "--privacy-bits", "20", "--query-budget", "1000", "--precision-bits", "9"},
			check: func(t *testing.T, p *parsed) {
				want := fheserve.CompileSettings{Degrees: map[string]int{"act": 9}, Fit: "least-squares", Margin: 0.2, LogN: 14,
					PrivacyBits: 20, QueryBudget: 1000, PrecisionBits: 9}
				if diff := cmp.Diff(want, p.model.CompileSettings); diff != "" {
					t.Errorf("settings (-want +got):\n%s", diff)
				}
			}},
		{name: "model deploy bad privacy bits", cmd: modelCmd, args: []string{"deploy", "--name", "n", "--file", "f", "--privacy-bits", "0.5"}, wantErr: fheserve.EINVALID},
		{name: "model deploy without file", cmd: modelCmd, args: []string{"deploy", "--name", "n"}, wantErr: fheserve.EINVALID},
		{name: "model deploy bad packing", cmd: modelCmd, args: []string{"deploy", "--name", "n", "--file", "f", "--packing", "x"}, wantErr: fheserve.EINVALID},
		{name: "model show", cmd: modelCmd, args: []string{"show", "mdl_1", "--json"},
			check: func(t *testing.T, p *parsed) {
				if o := p.model; o.Action != "show" || o.ID != "mdl_1" || !o.JSON {
					t.Errorf("%+v", o)
				}
			}},
		{name: "model retire without id", cmd: modelCmd, args: []string{"retire"}, wantErr: fheserve.EINVALID},
		{name: "model limits", cmd: modelCmd, args: []string{"limits", "mdl_1", "--rate", "1.5", "--burst", "3", "--daily", "100", "--model-rate", "60", "--model-daily", "5000"},
			check: func(t *testing.T, p *parsed) {
				want := fheserve.ModelLimits{RatePerMinute: 1.5, Burst: 3, Daily: 100, ModelRatePerMinute: 60, ModelDaily: 5000}
				if o := p.model; o.Action != "limits" || o.ID != "mdl_1" || o.Limits != want {
					t.Errorf("%+v", o)
				}
			}},
		{name: "model limits none", cmd: modelCmd, args: []string{"limits", "mdl_1"},
			check: func(t *testing.T, p *parsed) {
				if o := p.model; o.Action != "limits" || o.Limits != (fheserve.ModelLimits{}) {
					t.Errorf("%+v", o)
				}
			}},
		{name: "model limits without id", cmd: modelCmd, args: []string{"limits", "--rate", "1"}, wantErr: fheserve.EINVALID},
		{name: "model access", cmd: modelCmd, args: []string{"access", "mdl_1", "--allow", "a,b"},
			check: func(t *testing.T, p *parsed) {
				if o := p.model; o.Action != "access" || o.ID != "mdl_1" || strings.Join(o.Allow, ",") != "a,b" || o.Everyone {
					t.Errorf("%+v", o)
				}
			}},
		{name: "model access everyone", cmd: modelCmd, args: []string{"access", "mdl_1", "--everyone"},
			check: func(t *testing.T, p *parsed) {
				if o := p.model; o.Action != "access" || len(o.Allow) != 0 || !o.Everyone {
					t.Errorf("%+v", o)
				}
			}},
		{name: "model access neither", cmd: modelCmd, args: []string{"access", "mdl_1"}, wantErr: fheserve.EINVALID},
		{name: "model access both", cmd: modelCmd, args: []string{"access", "mdl_1", "--allow", "a", "--everyone"}, wantErr: fheserve.EINVALID},
		{name: "keys create", cmd: keysCmd, args: []string{"create", "--model", "mdl_1", "--replace", "key_0"},
			check: func(t *testing.T, p *parsed) {
				if o := p.keys; o.Model != "mdl_1" || o.Replace != "key_0" {
					t.Errorf("%+v", o)
				}
			}},
		{name: "keys create without model", cmd: keysCmd, args: []string{"create"}, wantErr: fheserve.EINVALID},
		{name: "keys revoke", cmd: keysCmd, args: []string{"revoke", "key_1"},
			check: func(t *testing.T, p *parsed) {
				if p.keys.ID != "key_1" {
					t.Errorf("%+v", p.keys)
				}
			}},
		{name: "usage", cmd: usageCmd, args: []string{"--model", "mdl_1", "--json"},
			check: func(t *testing.T, p *parsed) {
				if o := p.usage; o.Model != "mdl_1" || !o.JSON {
					t.Errorf("%+v", o)
				}
			}},
		{name: "usage without model", cmd: usageCmd, wantErr: fheserve.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &parsed{}
			err := execute(t, tt.cmd(p), tt.args...)
			checkParse(t, err, tt.wantErr)
			if tt.wantErr == "" {
				tt.check(t, p)
			}
		})
	}
}

// parsed records the options a command parsed.
type parsed struct {
	admin   *adminOptions
	account *accountOptions
	model   *modelOptions
	keys    *keysOptions
	usage   *usageOptions
}

func adminCmd(p *parsed) *cobra.Command {
	return newAdminCmd(func(o *adminOptions) error { p.admin = o; return nil })
}

func registerCmd(p *parsed) *cobra.Command {
	return newRegisterCmd(func(o *accountOptions) error { p.account = o; return nil })
}

func loginCmd(p *parsed) *cobra.Command {
	return newLoginCmd(func(o *accountOptions) error { p.account = o; return nil })
}

func modelCmd(p *parsed) *cobra.Command {
	return newModelCmd(func(o *modelOptions) error { p.model = o; return nil })
}

func keysCmd(p *parsed) *cobra.Command {
	return newKeysCmd(func(o *keysOptions) error { p.keys = o; return nil })
}

func usageCmd(p *parsed) *cobra.Command {
	return newUsageCmd(func(o *usageOptions) error { p.usage = o; return nil })
}
