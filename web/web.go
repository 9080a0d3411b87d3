// Package web holds the portal, the browser's face of the service: plain
// HTML, CSS and JavaScript modules embedded in the binary (no build step,
// no CDN, nothing fetched from elsewhere) and served by package http at /.
// The pages talk to the same /v1/ API as the command line, logged in by a
// session cookie (see http/session.go for the cookie, the CSRF token and
// the Content-Security-Policy the pages are written to).
package web

import (
	"embed"
	"io/fs"
	"net/http"
	"slices"
	"strings"
)

// The browser's client (cmd/fheserve-wasm, 26 MB) is not committed: this
// step builds it, with the wasm_exec.js of the same Go, into assets/wasm/,
// which the next build of the binary embeds. The tests build it afresh.
//go:generate sh -c "mkdir -p assets/wasm && GOOS=js GOARCH=wasm go build -trimpath -o assets/wasm/fheserve.wasm ../cmd/fheserve-wasm && cp \"$(go env GOROOT)/lib/wasm/wasm_exec.js\" assets/wasm/"

//go:embed assets
var assets embed.FS

// WasmFiles are the files of the browser's client, served under
// /assets/wasm/.
var WasmFiles = []string{"fheserve.wasm", "wasm_exec.js"}

// Handler serves the portal: its page at / and its files under /assets/.
// wasm holds the browser's client (WasmFiles); if it is nil, the client
// embedded by 'go generate ./web' is served, and without one the "try it"
// page says how to build it. Every other path is not found.
func Handler(wasm fs.FS) http.Handler {
	files, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree always has it
	}
	if wasm == nil {
		wasm, _ = fs.Sub(files, "wasm")
	}
	static := http.StripPrefix("/assets/", http.FileServerFS(files))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Small files, changed with each release: always revalidated.
		w.Header().Set("Cache-Control", "no-cache")
		name, isWasm := strings.CutPrefix(r.URL.Path, "/assets/wasm/")
		switch {
		case r.URL.Path == "/":
			http.ServeFileFS(w, r, files, "index.html")
		case isWasm:
			if _, err := fs.Stat(wasm, name); err != nil || !slices.Contains(WasmFiles, name) {
				http.Error(w, "this server was built without the browser's client: run 'go generate ./web' and build it again", http.StatusNotFound)
				return
			}
			http.ServeFileFS(w, r, wasm, name)
		case strings.HasPrefix(r.URL.Path, "/assets/") && !strings.HasSuffix(r.URL.Path, "/"):
			static.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}
