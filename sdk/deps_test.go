package sdk_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// clientPackages are what a user's device runs: the SDK and its HTTP
// client, the plan, the engine's client half and wire format, the .npy
// codec and the domain types. A browser (GOOS=js GOARCH=wasm) or a
// binding for another language builds on them.
var clientPackages = []string{
	"github.com/fheserve/fheserve",
	"github.com/fheserve/fheserve/sdk/...",
	"github.com/fheserve/fheserve/plan",
	"github.com/fheserve/fheserve/he/client",
	"github.com/fheserve/fheserve/npy",
}

// forbidden are the packages, or package trees (a trailing /), that the
// client must not import: the server, its engines and what only they
// need.
var forbidden = []string{
	"github.com/fheserve/fheserve/app",
	"github.com/fheserve/fheserve/http",
	"github.com/fheserve/fheserve/node",
	"github.com/fheserve/fheserve/sqlite",
	"github.com/fheserve/fheserve/audit/sqlite",
	"github.com/fheserve/fheserve/blob",
	"github.com/fheserve/fheserve/inproc",
	"github.com/fheserve/fheserve/storetest",
	"github.com/fheserve/fheserve/he/server",
	"github.com/fheserve/fheserve/compiler",
	"github.com/fheserve/fheserve/nn/onnx/",
	"github.com/fheserve/fheserve/local",
	"github.com/fheserve/fheserve/bench",
	"github.com/fheserve/fheserve/cmd/",
	"modernc.org/",                    // the SQLite driver
	"golang.org/x/crypto/argon2",      // password hashing
	"github.com/prometheus/",          // metrics
	"google.golang.org/protobuf/",     // ONNX and metrics encodings
	"github.com/jackc/",               // PostgreSQL
	"github.com/nats-io/",             // the distributed queue
	"github.com/spf13/cobra",          // the command line
	"github.com/schollz/progressbar/", // the command line
}

// TestClientDependencies lists every package the client packages import,
// directly or not, for this platform and for the browser, and fails on
// any forbidden one.
func TestClientDependencies(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list dependencies: %v", err)
	}
	for _, target := range []struct{ name, goos, goarch string }{
		{"host", "", ""},
		{"wasm", "js", "wasm"},
	} {
		t.Run(target.name, func(t *testing.T) {
			cmd := exec.Command(gobin, append([]string{"list", "-deps"}, clientPackages...)...)
			cmd.Env = os.Environ()
			if target.goos != "" {
				cmd.Env = append(cmd.Env, "GOOS="+target.goos, "GOARCH="+target.goarch, "CGO_ENABLED=0")
			}
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("go list -deps: %v\n%s", err, stderrOf(err))
			}
			deps := strings.Fields(string(out))
			if len(deps) < len(clientPackages) {
				t.Fatalf("go list -deps listed %d packages: %q", len(deps), out)
			}
			for _, dep := range deps {
				if f := forbiddenBy(dep); f != "" {
					t.Errorf("the client imports %s (forbidden: %s); 'go list -deps %s' shows the path",
						dep, f, strings.Join(clientPackages, " "))
				}
			}
		})
	}
}

func forbiddenBy(pkg string) string {
	for _, f := range forbidden {
		if pkg == strings.TrimSuffix(f, "/") || strings.HasSuffix(f, "/") && strings.HasPrefix(pkg, f) {
			return f
		}
	}
	return ""
}

func stderrOf(err error) []byte {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.Stderr
	}
	return nil
}
