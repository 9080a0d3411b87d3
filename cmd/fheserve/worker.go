package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/app"
	"github.com/fheserve/fheserve/node"
)

type workerOptions struct {
	IO  *IOStreams
	Ctx context.Context

	DataDir     string
	Store       string // a postgres:// URL
	Blobs       string // a nats:// URL, or "" for DataDir/blobs on a shared file system
	Queue       string // a nats:// URL
	Workers     int
	EvalThreads int
	MaxAttempts int
	ResultTTL   time.Duration
	LogJSON     bool
	// MetricsAddr, if set, serves /metrics, /healthz and /readyz there.
	MetricsAddr string
}

const workerLong = `Run a stateless evaluation worker: it takes jobs from the shared queue
(--queue nats://..., a JetStream work queue), evaluates them with the
store (--store postgres://...) and the blobs (--blobs nats://...) the API
nodes use, and stores the results; it serves no HTTP. Run any number of
them beside 'fheserve serve --queue ... --workers 0'.

A worker holds a lease on each job it evaluates and renews it while it
works; a worker that dies leaves its job to another once the lease lapses
(30 seconds), and a job interrupted --max-attempts times fails with that
cause. SIGTERM stops the worker cleanly: its jobs go back to the queue at
once. It needs the API nodes' master key ($FHESERVE_MASTER_KEY, or
master.key in --data-dir) and their audit.key in --data-dir, to decrypt
the weights and sign the records of the jobs it ends.

--metrics-addr HOST:PORT serves the worker's Prometheus metrics at
/metrics (jobs finished by model and outcome, their times, the key cache's
hits and misses) and the probes /healthz and /readyz (the store, the queue
and the blobs answer); bind it where only the operator reaches it.

` + configHelp

func newWorkerCmd(f *Factory, runF func(*workerOptions) error) *cobra.Command {
	opts := &workerOptions{IO: f.IO}
	var config string
	cmd := leaf(&cobra.Command{
		Use:   "worker --store URL --queue URL [--blobs URL]",
		Short: "Run an evaluation worker on a shared queue",
		Long:  workerLong,
		Example: `  export FHESERVE_STORE=postgres://fheserve@db.internal/fheserve FHESERVE_QUEUE=nats://nats.internal:4222 FHESERVE_BLOBS=nats://nats.internal:4222
  fheserve worker --data-dir /var/lib/fheserve`,
	}, opts, &opts.Ctx, runF, workerRun, configured(f.Getenv, &config), required("data-dir", "store", "queue"), validated(opts.validate))
	fs := cmd.Flags()
	configFlag(fs, f.Getenv, &config)
	dataDirFlag(fs, f.Getenv, &opts.DataDir)
	storeFlag(fs, f.Getenv, &opts.Store)
	blobsFlag(fs, f.Getenv, &opts.Blobs)
	queueFlag(fs, f.Getenv, &opts.Queue)
	fs.IntVar(&opts.Workers, "workers", 0, "jobs evaluated at once (default: one per core; under GOMEMLIMIT, as many as fit in half of it)")
	fs.IntVar(&opts.EvalThreads, "eval-threads", 0, "goroutines one evaluation may use (default: one per core)")
	maxAttemptsFlag(fs, &opts.MaxAttempts)
	fs.DurationVar(&opts.ResultTTL, "result-ttl", 24*time.Hour, "how long encrypted results are kept (as the API nodes')")
	fs.BoolVar(&opts.LogJSON, "log-json", false, "log as JSON lines (the default when stderr is not a terminal)")
	fs.StringVar(&opts.MetricsAddr, "metrics-addr", "", "serve /metrics, /healthz and /readyz on this `host:port`; keep it private (default: off)")
	return cmd
}

func (o *workerOptions) validate() error {
	e := node.Engines{Store: o.Store, Blobs: o.Blobs, Queue: o.Queue}
	if err := e.Check(); err != nil {
		return err
	}
	switch {
	case o.Store == "":
		// SQLite's audit log takes one writer process.
		return fheserve.Errorf(fheserve.EINVALID, "a worker needs the API nodes' --store postgres://...")
	case o.Workers < 0 || o.EvalThreads < 0 || o.MaxAttempts < 0:
		return fheserve.Errorf(fheserve.EINVALID, "--workers, --eval-threads and --max-attempts must not be negative")
	case o.ResultTTL < time.Minute:
		return fheserve.Errorf(fheserve.EINVALID, "--result-ttl must be at least 1m")
	}
	return nil
}

func workerRun(opts *workerOptions) error {
	var h slog.Handler = slog.NewTextHandler(opts.IO.ErrOut, nil)
	if opts.LogJSON || !opts.IO.ErrTTY {
		h = slog.NewJSONHandler(opts.IO.ErrOut, nil)
	}
	log := slog.New(h)
	ctx, stop := signal.NotifyContext(opts.Ctx, syscall.SIGTERM)
	defer stop()
	a, err := node.StartWorker(ctx, opts.DataDir, node.Engines{Store: opts.Store, Blobs: opts.Blobs, Queue: opts.Queue}, app.Config{
		Workers: opts.Workers, EvalThreads: opts.EvalThreads, MaxAttempts: opts.MaxAttempts, ResultTTL: opts.ResultTTL, Logger: log,
	})
	if err != nil {
		return err
	}
	if opts.MetricsAddr != "" {
		ln, err := net.Listen("tcp", opts.MetricsAddr)
		if err != nil {
			a.Close()
			return fheserve.Errorf(fheserve.EUNAVAILABLE, "cannot listen on %s for --metrics-addr: %v", opts.MetricsAddr, err)
		}
		srv := &http.Server{Handler: node.WorkerHandler(a), ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		log.Info("serving metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	}
	log.Info("worker running", "data_dir", opts.DataDir)
	fmt.Fprintln(opts.IO.ErrOut, "fheserve: worker running")
	<-ctx.Done()
	log.Info("stopping")
	return a.Close()
}
