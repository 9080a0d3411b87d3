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
	"strings"
)

//go:embed assets
var assets embed.FS

// Handler serves the portal: its page at / and its files under /assets/.
// Every other path is not found.
func Handler() http.Handler {
	files, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree always has it
	}
	static := http.StripPrefix("/assets/", http.FileServerFS(files))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Small files, changed with each release: always revalidated.
		w.Header().Set("Cache-Control", "no-cache")
		switch {
		case r.URL.Path == "/":
			http.ServeFileFS(w, r, files, "index.html")
		case strings.HasPrefix(r.URL.Path, "/assets/") && !strings.HasSuffix(r.URL.Path, "/"):
			static.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}
