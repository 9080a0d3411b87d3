package main

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
)

// TestServeConfig checks --config and the environment against the
// command line: a flag given wins over FHESERVE_NAME, which wins over
// the file.
func TestServeConfig(t *testing.T) {
	file := `# a comment
addr = 10.0.0.5:8080
behind-proxy = true
store = "postgres://db/f"
queue = nats://n:4222
workers = 0
max-uploads = 8
trusted-proxy = 10.0.0.0/24,192.0.2.1
result-ttl = 2h
`
	base := serveOptions{DataDir: "fheserve-data", Store: "postgres://db/f", Queue: "nats://n:4222", Addr: "10.0.0.5:8080", BehindProxy: true,
		Workers: -1, MaxUploads: 8, TrustedProxies: []string{"10.0.0.0/24", "192.0.2.1"}, ResultTTL: 2 * time.Hour}
	with := func(f func(*serveOptions)) serveOptions {
		o := base
		f(&o)
		return o
	}
	tests := []struct {
		name    string
		file    string // the config file's text ("": no --config)
		env     map[string]string
		args    []string
		want    serveOptions
		wantErr string
	}{
		{name: "file", file: file, want: base},
		{name: "config from the environment", file: file, env: map[string]string{configEnv: "CONFIG"}, want: base},
		{name: "environment over file", file: file, env: map[string]string{"FHESERVE_MAX_UPLOADS": "9", storeEnv: "postgres://other/f", dataDirEnv: "/d"},
			want: with(func(o *serveOptions) { o.MaxUploads, o.Store, o.DataDir = 9, "postgres://other/f", "/d" })},
		{name: "flag over environment", file: file, env: map[string]string{"FHESERVE_MAX_UPLOADS": "9"}, args: []string{"--max-uploads", "10", "--workers", "2"},
			want: with(func(o *serveOptions) { o.MaxUploads, o.Workers = 10, 2 })},
		{name: "environment alone", env: map[string]string{"FHESERVE_ADDR": "127.0.0.1:9", "FHESERVE_LOG_JSON": "true"},
			want: serveOptions{DataDir: "fheserve-data", Addr: "127.0.0.1:9", LogJSON: true, ResultTTL: 24 * time.Hour}},
		{name: "validated", file: "addr = 0.0.0.0:8080\n", wantErr: fheserve.EINVALID},
		{name: "unknown setting", file: "adr = 127.0.0.1:1\n", wantErr: fheserve.EINVALID},
		{name: "twice", file: "addr = 127.0.0.1:1\naddr = 127.0.0.1:2\n", wantErr: fheserve.EINVALID},
		{name: "not a setting", file: "addr\n", wantErr: fheserve.EINVALID},
		{name: "bad value", file: "max-uploads = many\n", wantErr: fheserve.EINVALID},
		{name: "bad value in the environment", env: map[string]string{"FHESERVE_WORKERS": "x"}, wantErr: fheserve.EINVALID},
		{name: "missing file", env: map[string]string{configEnv: "/nonexistent/fheserve.conf"}, wantErr: fheserve.EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newParty(t, "")
			args := tt.args
			if tt.file != "" {
				path := filepath.Join(t.TempDir(), "fheserve.conf")
				if err := os.WriteFile(path, []byte(tt.file), 0o600); err != nil {
					t.Fatal(err)
				}
				if tt.env[configEnv] == "CONFIG" {
					p.env[configEnv] = path
				} else {
					args = append([]string{"--config", path}, args...)
				}
			}
			for k, v := range tt.env {
				if v != "CONFIG" {
					p.env[k] = v
				}
			}
			f, _, _ := p.factory("")
			var got *serveOptions
			err := execute(t, newServeCmd(f, func(o *serveOptions) error { got = o; return nil }), args...)
			checkParse(t, err, tt.wantErr)
			if tt.wantErr == "" {
				if diff := cmp.Diff(tt.want, *got, injected); diff != "" {
					t.Errorf("options (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// TestDeploy checks deploy/: every fheserve command line of the compose
// file and of the systemd units parses and validates, with the config
// file it names (from deploy/) and the environment it sets (and the
// example secrets), and the files they mount or read exist.
func TestDeploy(t *testing.T) {
	const dir = "../../deploy"
	secrets := readEnvFile(t, filepath.Join(dir, "fheserve.env.example"))
	// The container paths of the config files, in deploy/.
	local := strings.NewReplacer("/etc/fheserve/", dir+"/")

	var compose struct {
		Services map[string]struct {
			Command     []string
			Environment map[string]string
			Volumes     []string
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &compose); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	ran := 0
	for name, s := range compose.Services {
		for _, v := range s.Volumes {
			if host, _, ok := strings.Cut(v, ":"); ok && strings.HasPrefix(host, "./") {
				if _, err := os.Stat(filepath.Join(dir, host)); err != nil {
					t.Errorf("compose service %s mounts %s: %v", name, host, err)
				}
			}
		}
		if len(s.Command) == 0 || s.Command[0] != "serve" && s.Command[0] != "worker" && s.Command[0] != "admin" {
			continue
		}
		env := map[string]string{}
		for k, v := range s.Environment {
			// ${VAR:?...} are the operator's .env; example values stand in.
			env[k] = strings.NewReplacer("${POSTGRES_PASSWORD:?set it in .env}", "pw").Replace(v)
		}
		env["FHESERVE_MASTER_KEY"] = secrets["FHESERVE_MASTER_KEY"]
		checkDeployCommand(t, "compose service "+name, env, s.Command, local)
		ran++
	}
	if ran != 4 {
		t.Errorf("compose.yaml: %d fheserve services checked, want init, api1, api2 and worker", ran)
	}

	units, _ := filepath.Glob(filepath.Join(dir, "systemd", "fheserve-*.service"))
	if len(units) != 2 {
		t.Fatalf("deploy/systemd: %d fheserve units, want the API node's and the worker's", len(units))
	}
	for _, u := range units {
		env := map[string]string{}
		var cmd []string
		f, err := os.Open(u)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), "=")
			switch k {
			case "EnvironmentFile":
				for k, v := range readEnvFile(t, filepath.Join(dir, "fheserve.env.example")) {
					env[k] = v
				}
			case "Environment":
				k, v, _ := strings.Cut(v, "=")
				env[k] = v
			case "ExecStart":
				cmd = strings.Fields(v)[1:]
			}
		}
		f.Close()
		checkDeployCommand(t, filepath.Base(u), env, cmd, local)
	}
}

// checkDeployCommand parses and validates the fheserve command line args
// (serve, worker or admin init) with env, the config files' paths
// rewritten by local.
func checkDeployCommand(t *testing.T, where string, env map[string]string, args []string, local *strings.Replacer) {
	t.Helper()
	p := newParty(t, "")
	for k, v := range env {
		p.env[k] = v
	}
	for i := range args {
		args[i] = local.Replace(args[i])
	}
	f, _, _ := p.factory("pw\n")
	var cmd *cobra.Command
	switch args[0] {
	case "serve":
		cmd = newServeCmd(f, func(*serveOptions) error { return nil })
	case "worker":
		cmd = newWorkerCmd(f, func(*workerOptions) error { return nil })
	case "admin":
		if args[1] != "init" {
			t.Fatalf("%s: fheserve %s", where, strings.Join(args, " "))
		}
		cmd, args = newAdminInitCmd(f, func(*adminInitOptions) error { return nil }), args[1:]
	}
	if err := execute(t, cmd, args[1:]...); err != nil {
		t.Errorf("%s: fheserve %s: %v", where, strings.Join(args, " "), err)
	}
}

// readEnvFile reads NAME=value lines, skipping comments.
func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			env[k] = v
		}
	}
	return env
}
