package http

import (
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/fheserve/fheserve"
)

func (s *Server) setLimits(w http.ResponseWriter, r *http.Request, c *fheserve.Caller) error {
	var req fheserve.ModelLimits
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	m, err := s.svc.SetLimits(r.Context(), c.Account, r.PathValue("id"), &req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, m)
}

// setRetryAfter sets the Retry-After header, in whole seconds rounded up,
// when err says when to try again.
func setRetryAfter(w http.ResponseWriter, err error) {
	if d := fheserve.RetryAfter(err); d > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(d.Seconds())), 10))
	}
}

// clientAddr is the client's IP address, for throttling logins. A
// forwarded header is believed only from a trusted proxy (any client can
// set one): then the address is the rightmost X-Forwarded-For entry that
// is not itself a trusted proxy, the one the trusted chain saw.
func (s *Server) clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if !s.trusted(host) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop := strings.TrimSpace(hops[i])
		if _, err := netip.ParseAddr(hop); err != nil {
			break // garbage: the proxy's own address stands
		}
		if !s.trusted(hop) {
			return hop
		}
		host = hop
	}
	return host
}

// trusted reports whether addr is one of the trusted proxies.
func (s *Server) trusted(addr string) bool {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range s.proxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// TrustProxies makes the server believe X-Forwarded-For from these
// networks (reverse proxies in front of it) for client addresses.
func (s *Server) TrustProxies(nets []netip.Prefix) {
	s.proxies = append([]netip.Prefix(nil), nets...)
}
