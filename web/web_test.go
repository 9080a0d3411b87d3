package web_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/fheserve/fheserve/web"
)

func TestHandlerClient(t *testing.T) {
	built := web.Handler(fstest.MapFS{
		"fheserve.wasm": {Data: []byte("\x00asm\x01\x00\x00\x00")},
		"wasm_exec.js":  {Data: []byte("// go")},
		"other.txt":     {Data: []byte("not served")},
	})
	missing := web.Handler(fstest.MapFS{})
	tests := []struct {
		name     string
		h        http.Handler
		path     string
		want     int
		wantType string
		wantBody string
	}{
		{"the client", built, "/assets/wasm/fheserve.wasm", http.StatusOK, "application/wasm", "asm"},
		{"its loader", built, "/assets/wasm/wasm_exec.js", http.StatusOK, "text/javascript", "// go"},
		{"nothing else from its directory", built, "/assets/wasm/other.txt", http.StatusNotFound, "text/plain", "go generate ./web"},
		{"not built", missing, "/assets/wasm/fheserve.wasm", http.StatusNotFound, "text/plain", "go generate ./web"},
		{"the worker", missing, "/assets/worker.js", http.StatusOK, "text/javascript", "importScripts('/assets/wasm/wasm_exec.js')"},
		{"the page", missing, "/", http.StatusOK, "text/html", `<script type="module" src="/assets/app.js">`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			tt.h.ServeHTTP(w, httptest.NewRequest("GET", tt.path, nil))
			body, _ := io.ReadAll(w.Result().Body)
			if w.Code != tt.want || !strings.HasPrefix(w.Header().Get("Content-Type"), tt.wantType) || !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("GET %s: %d %s %q, want %d %s holding %q", tt.path, w.Code, w.Header().Get("Content-Type"), body, tt.want, tt.wantType, tt.wantBody)
			}
		})
	}
}
