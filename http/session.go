package http

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"io/fs"
	"mime"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/web"
)

// Browser sessions. The portal (package web, served at /) logs in through
// /portal/session, which puts the same login token the API hands out in
// a cookie the page's scripts cannot read (HttpOnly, SameSite=Strict,
// Secure over TLS). A request without an Authorization header is then
// authenticated by that cookie, with the same account and permission
// checks as a bearer token; a state-changing one must also carry the
// session's CSRF token in the X-CSRF-Token header, which the portal
// receives in the login response. The token is derived from the session
// token (so every node agrees on it and nothing more is stored) and a
// cross-site page can neither read it nor compute it. Bearer requests are
// unchanged: an Authorization header is never overridden by a cookie.
//
// The /portal/ endpoints are the browser's, not the API's: they are not in
// the OpenAPI document, and programs log in with POST /v1/sessions.

const (
	// CSRFHeader carries a browser session's CSRF token.
	CSRFHeader = "X-CSRF-Token"
	// SessionCookie is the session cookie's name over plain HTTP; over
	// TLS it is SecureSessionCookie, whose __Host- prefix makes a browser
	// refuse it unless it is Secure, host-only and for path /.
	SessionCookie       = "fheserve_session"
	SecureSessionCookie = "__Host-fheserve_session"
)

// ContentSecurityPolicy is sent with every page and asset of the portal:
// scripts and styles from the server only (no inline script or style, no
// eval; WebAssembly may be compiled), requests to the server only, and no
// framing.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; " +
	"img-src 'self' data: blob:; connect-src 'self'; worker-src 'self'; manifest-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// csrfToken is the CSRF token of the session whose token is session.
func csrfToken(session string) string {
	h := sha256.Sum256([]byte("fheserve csrf v1\x00" + session))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// safeMethod reports whether method changes nothing on this server.
func safeMethod(method string) bool {
	return method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions
}

// sessionCookie returns the session token of r's cookie, or "".
func sessionCookie(r *http.Request) string {
	for _, name := range []string{SecureSessionCookie, SessionCookie} {
		if c, err := r.Cookie(name); err == nil && c.Value != "" {
			return c.Value
		}
	}
	return ""
}

// cookieCaller authenticates r by its session cookie; ok is false if it
// carries none. A state-changing request must carry the session's CSRF
// token.
func (s *Server) cookieCaller(r *http.Request) (c *fheserve.Caller, ok bool, err error) {
	token := sessionCookie(r)
	if token == "" {
		return nil, false, nil
	}
	if !safeMethod(r.Method) && !validCSRF(r, token) {
		return nil, true, fheserve.Errorf(fheserve.EFORBIDDEN, "a browser session's request that changes something must carry its %s header (reload the portal)", CSRFHeader)
	}
	// Defence in depth: a browser says where a request comes from; the
	// portal's own come from its origin (or are typed in the address bar).
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return nil, true, fheserve.Errorf(fheserve.EFORBIDDEN, "a browser session's cookie is accepted from the portal's own pages only, not from a %s request", site)
	}
	c, err = s.svc.Authenticate(r.Context(), token)
	return c, true, err
}

func validCSRF(r *http.Request, session string) bool {
	got := r.Header.Get(CSRFHeader)
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(csrfToken(session))) == 1
}

// secure reports whether the browser reached r over TLS: this server's,
// or a trusted reverse proxy's that says so.
func (s *Server) secure(r *http.Request) bool {
	if s.tls || r.TLS != nil {
		return true
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return s.trusted(host) && strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// setSession sets (or, with token "", clears) the session cookie.
func (s *Server) setSession(w http.ResponseWriter, r *http.Request, token string, expires time.Time) {
	name := SessionCookie
	if s.secure(r) {
		name = SecureSessionCookie
	}
	c := &http.Cookie{
		Name: name, Value: token, Path: "/",
		HttpOnly: true, Secure: s.secure(r), SameSite: http.SameSiteStrictMode,
	}
	if token == "" {
		c.MaxAge = -1
	} else {
		c.Expires = expires
	}
	http.SetCookie(w, c)
}

// PortalSession is what /portal/session returns: the account and the
// CSRF token of the session, never the session token itself.
type PortalSession struct {
	Account   *fheserve.Account `json:"account"`
	CSRFToken string            `json:"csrf_token"`
	ExpiresAt *time.Time        `json:"expires_at,omitempty"`
}

func (s *Server) portalInit() {
	s.mux.HandleFunc("POST /portal/session", s.portalLogin)
	s.mux.HandleFunc("GET /portal/session", s.portalSession)
	s.mux.HandleFunc("DELETE /portal/session", s.portalLogout)
	s.mux.HandleFunc("POST /portal/compile", s.portalCompile)
}

// portalLogin logs in and sets the session cookie. The body must be
// declared JSON: a cross-site form cannot send that without the CORS
// preflight this server never grants, so no other site can log a browser
// into an account of its choosing.
func (s *Server) portalLogin(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	err := func() error {
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
			return fheserve.Errorf(fheserve.EINVALID, "the body must be application/json")
		}
		var req fheserve.LoginRequest
		if err := readJSON(w, r, &req); err != nil {
			return err
		}
		req.Addr = s.clientAddr(r)
		sess, err := s.svc.Login(r.Context(), &req)
		if err != nil {
			return err
		}
		s.setSession(w, r, sess.Token, sess.ExpiresAt)
		return writeJSON(w, http.StatusCreated, &PortalSession{Account: sess.Account, CSRFToken: csrfToken(sess.Token), ExpiresAt: &sess.ExpiresAt})
	}()
	if err != nil {
		s.writeError(w, r, err)
	}
}

// portalSession returns the cookie's session, so that a reloaded page
// gets its CSRF token again.
func (s *Server) portalSession(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	w.Header().Set("Cache-Control", "no-store")
	c, ok, err := s.cookieCaller(r)
	if !ok {
		err = fheserve.Errorf(fheserve.EUNAUTHORIZED, "not logged in")
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, &PortalSession{Account: c.Account, CSRFToken: csrfToken(sessionCookie(r))})
}

// portalLogout revokes the session's token and clears the cookie.
func (s *Server) portalLogout(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	c, ok, err := s.cookieCaller(r)
	if ok && err == nil {
		err = s.svc.Logout(r.Context(), c)
	}
	if ok && fheserve.ErrorCode(err) == fheserve.EUNAUTHORIZED {
		err = nil // expired or revoked already: clear the cookie all the same
	}
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.setSession(w, r, "", time.Time{})
	w.WriteHeader(http.StatusNoContent)
}

// securityHeaders sets the headers of every portal response.
func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
}

// servePortal serves the portal's pages and assets for the requests no
// route took, except under /v1/, which stays the API's; it reports
// whether it did.
func (s *Server) servePortal(w http.ResponseWriter, r *http.Request) bool {
	if strings.HasPrefix(r.URL.Path, "/v1/") || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		return false
	}
	securityHeaders(w)
	s.portal.ServeHTTP(w, r)
	return true
}

// newPortal is the portal's handler.
func newPortal() http.Handler { return web.Handler(nil) }

// SetPortalClient makes the portal serve the browser's client from wasm
// (web.WasmFiles) rather than the one embedded in the binary.
func (s *Server) SetPortalClient(wasm fs.FS) { s.portal = web.Handler(wasm) }
