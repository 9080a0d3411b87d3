package http

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/audit"
	"github.com/fheserve/fheserve/sdk/api"
)

//go:embed openapi.json
var openapiJSON []byte

// OpenAPI returns the OpenAPI 3 document of the API.
func OpenAPI() []byte { return openapiJSON }

// Services are what the server serves: the service interfaces of the
// root package and the audit log's. *app.App provides them all; the
// wiring (package node) hands it over.
type Services interface {
	fheserve.AccountService
	fheserve.ModelService
	fheserve.KeySetService
	fheserve.JobService
	fheserve.OpsService
	fheserve.SealService
	fheserve.GalleryService
	AuditService
}

// AuditService gives the audit log's endpoints the log and what a caller
// may read of it. It is declared here rather than in the root package
// because its types are the log's (package audit), which the root
// package, imported by every client, need not carry.
type AuditService interface {
	// AuditLog returns the log, or nil if the service keeps none.
	AuditLog() *audit.Log
	AuditScope(ctx context.Context, who *fheserve.Account) (*audit.Scope, error)
}

// Server serves the API of the services.
type Server struct {
	svc Services
	log *slog.Logger
	mux *http.ServeMux
	srv *http.Server
	ln  net.Listener
	// tls says that UseTLS was called. srv.TLSConfig cannot say it: Serve
	// sets it for HTTP/2 on a plain listener too.
	tls bool

	metrics *metrics

	// routes lists "METHOD /path" of every handler, for the OpenAPI check.
	routes []string
	// proxies are the reverse proxies whose X-Forwarded-For is believed.
	proxies []netip.Prefix
	// portal serves the web portal (session.go).
	portal http.Handler
}

// NewServer returns a server of svc. log may be nil.
func NewServer(svc Services, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{svc: svc, log: log, mux: http.NewServeMux(), metrics: newMetrics(svc), portal: newPortal()}
	s.routesInit()
	s.opsInit()
	s.portalInit()
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// No fixed read or write timeout: bodies of keys can be large on
		// slow links, and progress streams stay open while a job runs.
		// Bodies are held to a minimum rate instead (minRateBody).
	}
	return s
}

// handler is an endpoint. c is nil on public endpoints.
type handler func(w http.ResponseWriter, r *http.Request, c *fheserve.Caller) error

func (s *Server) handle(pattern string, public bool, h handler) {
	s.routes = append(s.routes, pattern)
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		var c *fheserve.Caller
		var err error
		if !public {
			c, err = s.authenticate(r)
		}
		if err == nil {
			err = h(w, r, c)
		}
		if err != nil {
			s.writeError(w, r, err)
		}
	})
}

// Routes lists the "METHOD /path" patterns the server handles.
func (s *Server) Routes() []string { return append([]string(nil), s.routes...) }

func (s *Server) routesInit() {
	s.handle("GET /v1/openapi.json", true, func(w http.ResponseWriter, r *http.Request, _ *fheserve.Caller) error {
		w.Header().Set("Content-Type", "application/json")
		_, err := w.Write(openapiJSON)
		return err
	})
	s.handle("GET /v1/health", true, func(w http.ResponseWriter, r *http.Request, _ *fheserve.Caller) error {
		return writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})

	// Accounts and sessions.
	s.handle("POST /v1/accounts", true, s.register)
	s.handle("GET /v1/accounts", false, s.accounts)
	s.handle("POST /v1/accounts/{username}/{action}", false, s.review)
	s.handle("POST /v1/sessions", true, s.login)
	s.handle("DELETE /v1/sessions/current", false, s.logout)
	s.handle("GET /v1/me", false, s.me)
	s.handle("POST /v1/tokens", false, s.createToken)
	s.handle("GET /v1/tokens", false, s.tokens)
	s.handle("DELETE /v1/tokens/{id}", false, s.revokeToken)

	// Models.
	s.handle("POST /v1/models", false, s.deploy)
	s.handle("GET /v1/models", false, s.models)
	s.handle("GET /v1/models/{id}", false, s.model)
	s.handle("GET /v1/models/{id}/plan", false, s.plan)
	s.handle("PUT /v1/models/{id}/access", false, s.setAccess)
	s.handle("PUT /v1/models/{id}/limits", false, s.setLimits)
	s.handle("POST /v1/models/{id}/retire", false, s.retire)
	s.handle("GET /v1/models/{id}/usage", false, s.usage)
	s.sealedRoutes()
	s.galleryRoutes()

	// Keys and jobs.
	s.handle("POST /v1/models/{id}/keysets", false, s.uploadKeys)
	s.handle("GET /v1/keysets", false, s.keySets)
	s.handle("GET /v1/keysets/{id}", false, s.keySet)
	s.handle("DELETE /v1/keysets/{id}", false, s.revokeKeySet)
	s.handle("POST /v1/models/{id}/jobs", false, s.submit)
	s.handle("GET /v1/jobs", false, s.jobs)
	s.handle("GET /v1/jobs/{id}", false, s.job)
	s.handle("GET /v1/jobs/{id}/events", false, s.jobEvents)
	s.handle("GET /v1/jobs/{id}/result", false, s.result)

	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if s.servePortal(w, r) {
			return
		}
		s.writeError(w, r, fheserve.Errorf(fheserve.ENOTFOUND, "no endpoint %s %s (see /v1/openapi.json)", r.Method, r.URL.Path))
	})
}

// ServeHTTP implements http.Handler: it gives each request an id (echoed
// in the X-Request-Id header), logs it (never its credentials or bodies),
// counts it in the metrics and recovers from panics.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t0 := time.Now()
	id := requestID(r)
	w.Header().Set(RequestIDHeader, id)
	r = r.WithContext(fheserve.WithRequestID(r.Context(), id))
	body := &countingBody{ReadCloser: r.Body}
	r.Body = body
	if r.Body != http.NoBody && r.ContentLength != 0 {
		rate, grace := s.svc.MinBodyRate()
		r.Body = &minRateBody{ReadCloser: body, rc: http.NewResponseController(w), rate: rate, grace: grace, length: r.ContentLength}
	}
	rw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	log := s.log.With("request_id", id)
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			log.Error("panic in handler", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(p))
			if !rw.wrote {
				s.writeError(rw, r, fheserve.Errorf(fheserve.EINTERNAL, "internal error"))
			}
		}
		s.metrics.observe(r.Pattern, rw.status, body.n, rw.n)
		log.Info("request", "method", r.Method, "path", r.URL.Path, "route", r.Pattern, "status", rw.status,
			"in", body.n, "out", rw.n, "ms", time.Since(t0).Milliseconds())
	}()
	s.mux.ServeHTTP(rw, r)
}

type statusWriter struct {
	http.ResponseWriter
	status int
	n      int64
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// minRateBody cuts off a request body that arrives slower than rate
// bytes a second on average, once grace has passed since the handler
// first read from it: each read runs under a read deadline, the time by
// which the bytes read so far and one more chunk are due. A client
// trickling a body, or declaring more bytes than it sends, thus holds an
// upload's place (and a connection) for about grace at most. The
// deadline stays after a handler stops reading early, so that the
// server's reading of the rest (to reuse the connection) is cut off too;
// it is lifted once the body is read whole, so that it never cuts off
// the server's wait for the client to hang up while a handler runs.
type minRateBody struct {
	io.ReadCloser
	rc     *http.ResponseController
	rate   int64
	grace  time.Duration
	length int64 // declared, -1 if unknown
	start  time.Time
	n      int64
	whole  bool
	err    error
}

// rateChunk is what a read may wait for beyond the bytes already due.
const rateChunk = 32 << 10

func (b *minRateBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.whole {
		return b.ReadCloser.Read(p)
	}
	if b.start.IsZero() {
		b.start = time.Now()
	}
	due := b.start.Add(b.grace + time.Duration(float64(b.n+rateChunk)/float64(b.rate)*float64(time.Second)))
	if err := b.rc.SetReadDeadline(due); err != nil {
		// Not a connection with deadlines (a test recorder): unbounded.
		b.whole = true
		return b.ReadCloser.Read(p)
	}
	k, err := b.ReadCloser.Read(p)
	b.n += int64(k)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		b.err = fheserve.Errorf(fheserve.EINVALID, "the request body arrived slower than %d bytes a second: cut off after %d bytes in %s",
			b.rate, b.n, time.Since(b.start).Round(time.Millisecond))
		return k, b.err
	}
	if err == io.EOF || b.n == b.length {
		b.whole = true
		b.rc.SetReadDeadline(time.Time{})
	}
	return k, err
}

// Listen binds addr ("127.0.0.1:0" picks a free port).
func (s *Server) Listen(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fheserve.Errorf(fheserve.EUNAVAILABLE, "cannot listen on %s: %v", addr, err)
	}
	s.ln = ln
	return nil
}

// URL is the base URL of a listening server.
func (s *Server) URL() string {
	if s.ln == nil {
		return ""
	}
	if s.tls {
		return "https://" + s.ln.Addr().String()
	}
	return "http://" + s.ln.Addr().String()
}

// Serve serves on the listener until Shutdown; it returns nil then.
func (s *Server) Serve() error {
	serve := s.srv.Serve
	if s.tls {
		// The certificate comes from TLSConfig.GetCertificate.
		serve = func(ln net.Listener) error { return s.srv.ServeTLS(ln, "", "") }
	}
	if err := serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops accepting requests and waits for running ones until ctx
// ends, then closes the remaining connections. It closes the listener
// even if Serve never ran.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	if s.ln != nil {
		s.ln.Close() // already closed if Serve ran
	}
	return err
}

func (s *Server) authenticate(r *http.Request) (*fheserve.Caller, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		if c, ok, err := s.cookieCaller(r); ok {
			return c, err
		}
		return nil, fheserve.Errorf(fheserve.EUNAUTHORIZED, "authentication required: log in first ('fheserve login')")
	}
	token, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || token == "" {
		return nil, fheserve.Errorf(fheserve.EUNAUTHORIZED, "the Authorization header must be 'Bearer <token>'")
	}
	return s.svc.Authenticate(r.Context(), token)
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	err = errorOf(err)
	code := fheserve.ErrorCode(err)
	if code == fheserve.EINTERNAL && r.Context().Err() == nil {
		s.log.Error("internal error", "method", r.Method, "path", r.URL.Path, "request_id", fheserve.RequestID(r.Context()), "err", err)
		err = s.unavailable(err)
		code = fheserve.ErrorCode(err)
	}
	setRetryAfter(w, err)
	writeJSON(w, api.StatusOf(code), &api.ErrorResponse{Code: code, Message: fheserve.ErrorMessage(err)})
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// maxJSON bounds JSON request bodies.
const maxJSON = 1 << 20

// readJSON decodes a JSON request body of at most maxJSON bytes into v.
func readJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if err := jsonBody(r); err != nil {
		return err
	}
	return decodeBody(w, r, v, maxJSON)
}

// jsonBody checks that a request carries a JSON body.
func jsonBody(r *http.Request) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, _ := mime.ParseMediaType(ct); mt != "application/json" {
			return fheserve.Errorf(fheserve.EINVALID, "the body must be application/json, not %q", mt)
		}
	}
	return nil
}

// decodeBody decodes a JSON request body of at most limit bytes into v,
// refusing unknown fields.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, limit int64) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return fheserve.Errorf(fheserve.EINVALID, "the request body is empty; it must be a JSON object")
		}
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return errorOf(err)
		}
		return fheserve.Errorf(fheserve.EINVALID, "invalid JSON body: %v", err)
	}
	return nil
}

// binaryBody checks that a request carries a binary body.
func binaryBody(r *http.Request) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, _ := mime.ParseMediaType(ct); mt != "application/octet-stream" {
			return fheserve.Errorf(fheserve.EINVALID, "the body must be application/octet-stream (the he wire format), not %q", mt)
		}
	}
	return nil
}

// boolQuery parses an optional boolean query parameter.
func intQuery(r *http.Request, name string) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fheserve.Errorf(fheserve.EINVALID, "query parameter %s must be a non-negative integer", name)
	}
	return n, nil
}
