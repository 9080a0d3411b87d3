package http_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	fhttp "github.com/fheserve/fheserve/http"
)

// TestPlainURL checks that a server without TLS still names an http://
// URL once it serves: net/http's Serve fills in a TLS configuration for
// HTTP/2 even on a plain listener, so that cannot be what URL reads.
func TestPlainURL(t *testing.T) {
	_, _, a := MustServer(t)
	s := fhttp.NewServer(a, nil)
	check(t, s.Listen("127.0.0.1:0"))
	go s.Serve()
	defer s.Shutdown(context.Background())
	resp, err := http.Get(s.URL() + "/v1/health")
	check(t, err)
	resp.Body.Close()
	if u := s.URL(); !strings.HasPrefix(u, "http://") {
		t.Fatalf("a plain server serving names the URL %q", u)
	}
}
