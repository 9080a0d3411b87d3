package http

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/audit"
)

// RequestIDHeader carries a request's id: the client's if it sent a
// valid one, else a new one; the server echoes it in the response, logs
// it and names it in the audit records of the request's actions.
const RequestIDHeader = "X-Request-Id"

var requestIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$`)

func requestID(r *http.Request) string {
	if id := r.Header.Get(RequestIDHeader); requestIDRE.MatchString(id) {
		return id
	}
	var b [12]byte
	rand.Read(b[:]) // never fails
	return "req_" + hex.EncodeToString(b[:])
}

// metrics are the server's Prometheus metrics, in a registry of its own
// so that several servers can run in one process.
type metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	bytesIn   *prometheus.CounterVec
	bytesOut  *prometheus.CounterVec
	queueWait *prometheus.HistogramVec
	eval      *prometheus.HistogramVec
	jobs      *prometheus.CounterVec
}

// latencyBuckets span a small model's milliseconds to a large one's
// minutes.
var latencyBuckets = prometheus.ExponentialBuckets(0.005, 2.5, 14)

func newMetrics(a fheserve.OpsService) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fheserve_http_requests_total", Help: "HTTP requests by route pattern and status code.",
		}, []string{"route", "code"}),
		bytesIn: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fheserve_http_request_bytes_total", Help: "Bytes of request bodies read, by route pattern.",
		}, []string{"route"}),
		bytesOut: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fheserve_http_response_bytes_total", Help: "Bytes of response bodies written, by route pattern.",
		}, []string{"route"}),
		queueWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "fheserve_job_queue_wait_seconds", Help: "Time from a job's submission to the start of its evaluation, by model.",
			Buckets: latencyBuckets,
		}, []string{"model"}),
		eval: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "fheserve_job_evaluation_seconds", Help: "Time a job's evaluation took, by model.",
			Buckets: latencyBuckets,
		}, []string{"model"}),
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fheserve_jobs_finished_total", Help: "Jobs finished, by model and outcome (ok or the error code).",
		}, []string{"model", "outcome"}),
	}
	gauge := func(name, help string, f func(context.Context) (int, error)) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			n, err := f(ctx)
			if err != nil {
				return -1
			}
			return float64(n)
		})
	}
	m.reg.MustRegister(m.requests, m.bytesIn, m.bytesOut, m.queueWait, m.eval, m.jobs,
		gauge("fheserve_job_queue_depth", "Jobs waiting to be evaluated (-1: the store did not answer).", a.QueueDepth),
		gauge("fheserve_keysets_active", "Key sets uploaded and not revoked (-1: the store did not answer).", a.ActiveKeySets),
		gauge("fheserve_uploads_in_progress", "Key sets and job inputs being received, each holding one of the server's upload places.",
			func(context.Context) (int, error) { return a.UploadsInProgress(), nil }),
		&dependencyCollector{svc: a},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	a.OnJobFinished(m.jobFinished)
	return m
}

// dependencyCollector reports, at each scrape, whether each of the
// service's dependencies answers: fheserve_dependency_up{dependency}.
type dependencyCollector struct{ svc fheserve.OpsService }

var dependencyUp = prometheus.NewDesc("fheserve_dependency_up",
	"1 if the dependency (store, blobs, queue) answered at this scrape, else 0 (blobs and queue only where they live on a server).",
	[]string{"dependency"}, nil)

func (c *dependencyCollector) Describe(ch chan<- *prometheus.Desc) { ch <- dependencyUp }

func (c *dependencyCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, d := range c.svc.Dependencies(ctx) {
		up := 1.0
		if d.Err != nil {
			up = 0
		}
		ch <- prometheus.MustNewConstMetric(dependencyUp, prometheus.GaugeValue, up, d.Name)
	}
}

func (m *metrics) jobFinished(j *fheserve.Job) {
	if j.StartedAt == nil || j.FinishedAt == nil {
		return
	}
	m.queueWait.WithLabelValues(j.ModelID).Observe(j.StartedAt.Sub(j.CreatedAt).Seconds())
	m.eval.WithLabelValues(j.ModelID).Observe(j.FinishedAt.Sub(*j.StartedAt).Seconds())
	outcome := audit.OutcomeOK
	if j.Status == fheserve.JobFailed {
		outcome = j.ErrorCode
	}
	m.jobs.WithLabelValues(j.ModelID, outcome).Inc()
}

// observe counts a served request. route is the pattern that matched,
// so that ids in paths do not make a label value each.
func (m *metrics) observe(route string, status int, in, out int64) {
	if route == "" {
		route = "unmatched"
	}
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	m.bytesIn.WithLabelValues(route).Add(float64(in))
	m.bytesOut.WithLabelValues(route).Add(float64(out))
}

// countingBody counts the bytes of a request body read by a handler.
type countingBody struct {
	io.ReadCloser
	n int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	return n, err
}

// unavailable returns, for an internal error that came while one of the
// service's dependencies does not answer, EUNAVAILABLE naming it (503:
// the client may retry), else err.
func (s *Server) unavailable(err error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var down []string
	for _, d := range s.svc.Dependencies(ctx) {
		if d.Err != nil {
			down = append(down, dependencyNames[d.Name])
		}
	}
	if len(down) == 0 && !connectionLost(err) {
		return err
	}
	if len(down) == 0 {
		// Back already: the request met the restart itself.
		down = append(down, "database or blob store")
	}
	return &fheserve.Error{Code: fheserve.EUNAVAILABLE, RetryAfter: 5 * time.Second,
		Message: "the server cannot reach its " + strings.Join(down, " and ") + " at the moment; retry later"}
}

// connectionLost reports whether err is a dependency's connection closing
// under a request: a network error, or PostgreSQL's connection exception
// (SQLSTATE class 08) or operator intervention (57: shut down, starting).
func connectionLost(err error) bool {
	if pe, ok := errors.AsType[interface {
		error
		SQLState() string
	}](err); ok {
		c := pe.SQLState()
		return strings.HasPrefix(c, "08") || strings.HasPrefix(c, "57")
	}
	_, netErr := errors.AsType[net.Error](err)
	return netErr || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed)
}

var dependencyNames = map[string]string{"store": "database", "blobs": "blob store", "queue": "job queue"}

// opsInit adds the operator's endpoints (metrics and probes, outside
// /v1/ and unauthenticated: bind the server where only the operator and
// the load balancer reach them, or filter them at the proxy) and the
// audit log's.
func (s *Server) opsInit() {
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	// Liveness: the process serves HTTP. It says nothing of the
	// dependencies, so that an outage of PostgreSQL or NATS makes the
	// load balancer stop sending (readyz) rather than the supervisor
	// restart every node.
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	// Readiness: 503 with the cause while the store, the blob store or
	// the queue does not answer; it recovers on its own when they do.
	s.mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := s.svc.Ready(r.Context()); err != nil {
			s.writeError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	var auditHandler http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, fheserve.Errorf(fheserve.EUNAVAILABLE, "this server keeps no audit log"))
	})
	if l := s.svc.AuditLog(); l != nil {
		authz := audit.AuthorizerFunc(func(r *http.Request) (*audit.Scope, error) {
			c, err := s.authenticate(r)
			if err != nil {
				return nil, err
			}
			return s.svc.AuditScope(r.Context(), c.Account)
		})
		auditHandler = http.StripPrefix(audit.PathPrefix, audit.NewHandler(l, authz))
	}
	s.mux.Handle(audit.PathPrefix+"/", auditHandler)
	s.routes = append(s.routes,
		"GET "+audit.PathPrefix+"/checkpoint",
		"GET "+audit.PathPrefix+"/key",
		"GET "+audit.PathPrefix+"/records",
		"GET "+audit.PathPrefix+"/records/{index}",
		"GET "+audit.PathPrefix+"/consistency",
	)
}
