package node

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/app"
	"github.com/fheserve/fheserve/audit"
)

// WorkerHandler serves a worker's operator endpoints, as 'fheserve
// worker --metrics-addr' does: Prometheus metrics at /metrics (the jobs
// it finished by model and outcome, their evaluation times, its key
// cache's hits and misses, the Go runtime's and the process's), /healthz
// (the process is up) and /readyz (its store, queue and blobs answer and
// its workers run). Unauthenticated: bind it where only the operator
// reaches it.
func WorkerHandler(a *app.App) http.Handler {
	reg := prometheus.NewRegistry()
	jobs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "fheserve_worker_jobs_finished_total", Help: "Jobs this worker finished, by model and outcome (ok or the error code).",
	}, []string{"model", "outcome"})
	eval := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "fheserve_worker_job_seconds", Help: "Time from a job's start to its end on this worker, by model.",
		Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 14),
	}, []string{"model"})
	reg.MustRegister(jobs, eval,
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "fheserve_worker_key_cache_hits_total", Help: "Jobs whose key set's evaluation keys this worker had cached.",
		}, func() float64 { h, _ := a.KeyCacheStats(); return float64(h) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "fheserve_worker_key_cache_misses_total", Help: "Jobs whose key set's evaluation keys this worker read from the blob store.",
		}, func() float64 { _, m := a.KeyCacheStats(); return float64(m) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	a.OnJobFinished(func(j *fheserve.Job) {
		outcome := audit.OutcomeOK
		if j.Status == fheserve.JobFailed {
			outcome = j.ErrorCode
		}
		jobs.WithLabelValues(j.ModelID, outcome).Inc()
		if j.StartedAt != nil && j.FinishedAt != nil {
			eval.WithLabelValues(j.ModelID).Observe(j.FinishedAt.Sub(*j.StartedAt).Seconds())
		}
	})
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	status := func(w http.ResponseWriter, code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		status(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if err := a.Ready(ctx); err != nil {
			status(w, http.StatusServiceUnavailable, map[string]string{"code": fheserve.ErrorCode(err), "message": fheserve.ErrorMessage(err)})
			return
		}
		status(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	return mux
}
