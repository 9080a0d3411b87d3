package http

import (
	"net/http/httptest"
	"net/netip"
	"testing"
)

// TestClientAddr checks which address login throttling sees: the peer's,
// unless the peer is a trusted proxy, and then the rightmost forwarded
// address that is not a trusted proxy; a forged header from anyone else
// changes nothing.
func TestClientAddr(t *testing.T) {
	s := &Server{}
	s.TrustProxies([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("::1/128")})
	tests := []struct {
		name, remote string
		forwarded    []string
		want         string
	}{
		{"direct", "203.0.113.7:5000", nil, "203.0.113.7"},
		{"forged by a client", "203.0.113.7:5000", []string{"198.51.100.1"}, "203.0.113.7"},
		{"through the proxy", "10.0.0.2:5000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"client-supplied entries left of the real one", "10.0.0.2:5000", []string{"1.2.3.4, 198.51.100.1"}, "198.51.100.1"},
		{"two trusted hops", "10.0.0.2:5000", []string{"198.51.100.1, 10.0.0.3"}, "198.51.100.1"},
		{"several headers", "10.0.0.2:5000", []string{"1.2.3.4", "198.51.100.1"}, "198.51.100.1"},
		{"IPv6 proxy", "[::1]:5000", []string{"2001:db8::5"}, "2001:db8::5"},
		{"garbage", "10.0.0.2:5000", []string{"not-an-ip"}, "10.0.0.2"},
		{"no header from the proxy", "10.0.0.2:5000", nil, "10.0.0.2"},
		{"only proxies", "10.0.0.2:5000", []string{"10.0.0.9"}, "10.0.0.9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/v1/sessions", nil)
			r.RemoteAddr = tt.remote
			for _, h := range tt.forwarded {
				r.Header.Add("X-Forwarded-For", h)
			}
			if got := s.clientAddr(r); got != tt.want {
				t.Errorf("clientAddr = %q, want %q", got, tt.want)
			}
		})
	}
	// Without trusted proxies the header is ignored.
	r := httptest.NewRequest("POST", "/v1/sessions", nil)
	r.RemoteAddr = "10.0.0.2:5000"
	r.Header.Set("X-Forwarded-For", "198.51.100.1")
	if got := (&Server{}).clientAddr(r); got != "10.0.0.2" {
		t.Errorf("no trusted proxies: %q", got)
	}
}
