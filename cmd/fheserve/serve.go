package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/app"
	fhttp "github.com/fheserve/fheserve/http"
	"github.com/fheserve/fheserve/node"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// dataDirEnv names the environment variable with the default data directory.
const dataDirEnv = "FHESERVE_DATA"

// storeEnv and blobsEnv name the environment variables with the
// defaults of --store and --blobs.
const (
	storeEnv = "FHESERVE_STORE"
	blobsEnv = "FHESERVE_BLOBS"
	queueEnv = "FHESERVE_QUEUE"
)

type serveOptions struct {
	IO  *IOStreams
	Ctx context.Context

	DataDir     string
	Store       string // "" (SQLite in DataDir) or a postgres:// URL
	Blobs       string // "" (DataDir/blobs) or a nats:// URL
	Queue       string // "" (in process) or a nats:// URL
	Addr        string
	Workers     int // 0: one per core; -1 (--workers 0): none
	EvalThreads int
	MaxAttempts int
	ResultTTL   time.Duration
	LogJSON     bool

	// Resource bounds (0: the defaults of app.Bounds).
	MaxUploads         int
	MaxUploadsPerUser  int
	MaxQueuedPerUser   int
	UploadWait         time.Duration
	MaxDeploys         int
	MaxKeySetsPerModel int
	MaxKeySetsPerUser  int
	MinBodyRate        int64
	BodyGrace          time.Duration

	// TLS: a certificate and its key (PEM), reloaded when the files
	// change; or BehindProxy, plain HTTP on a non-loopback address
	// because a TLS-terminating reverse proxy is in front.
	TLSCert     string
	TLSKey      string
	BehindProxy bool
	// TrustedProxies are the networks (CIDR or single addresses) of
	// reverse proxies whose X-Forwarded-For names the client.
	TrustedProxies []string

	// DebugAddr, if set, serves Go's profiles (net/http/pprof) there.
	DebugAddr string
}

const serveLong = `Serve the fheserve API under /v1/ (described at /v1/openapi.json): accounts,
model deployment, key registry, encrypted jobs and the audit log
(/v1/audit/). Operators also get Prometheus metrics at /metrics and the
probes /healthz (the process is up) and /readyz (the store answers and the
workers run); bind the server where only they reach these, or filter them.

Everything lives in the data directory: the SQLite database (fheserve.db),
the blobs (blobs/: encrypted weights, key sets, ciphertexts) and the master
key that encrypts the weights at rest (master.key, created on first start,
unless $FHESERVE_MASTER_KEY holds it), and the audit log (audit.db, signed
with audit.key; 'fheserve audit key' prints the key to publish). Jobs that were queued or running when
the server stopped run again when it starts.

--store postgres://USER@HOST/DB (or $FHESERVE_STORE) keeps the database and
the audit log in PostgreSQL instead, so that several API nodes share
accounts, models, key sets, jobs and one audit log. They need the same
master key ($FHESERVE_MASTER_KEY) and audit.key (copy it), and one blob
store: --blobs nats://HOST:4222 (or $FHESERVE_BLOBS), a NATS JetStream
object store, or a data directory on a shared file system.
--queue nats://HOST:4222 (or $FHESERVE_QUEUE) puts the jobs on a shared
JetStream work queue, which separate evaluation workers ('fheserve worker')
take them from; --workers 0 leaves them all to those.

Passwords and bearer tokens cross the network, so the server speaks HTTPS
(--tls-cert, --tls-key) or listens on a loopback address; plain HTTP on
another address needs --behind-proxy, for a TLS-terminating reverse proxy.

Create the first administrator offline with 'fheserve admin init'.

` + configHelp

func newServeCmd(f *Factory, runF func(*serveOptions) error) *cobra.Command {
	opts := &serveOptions{IO: f.IO}
	var config string
	cmd := leaf(&cobra.Command{
		Use:   "serve [--data-dir D] [--addr HOST:PORT]",
		Short: "Run the fheserve server",
		Long:  serveLong,
		Example: `  fheserve admin init --data-dir /var/lib/fheserve --username root --password-stdin < pw.txt
  fheserve serve --data-dir /var/lib/fheserve --addr 0.0.0.0:8443 \
      --tls-cert /etc/fheserve/fullchain.pem --tls-key /etc/fheserve/privkey.pem
  fheserve serve --data-dir /var/lib/fheserve --addr 10.0.0.5:8080 --behind-proxy`,
	}, opts, &opts.Ctx, runF, serveRun, configured(f.Getenv, &config), required("data-dir"), noWorkers(&opts.Workers), validated(opts.validate))
	fs := cmd.Flags()
	configFlag(fs, f.Getenv, &config)
	dataDirFlag(fs, f.Getenv, &opts.DataDir)
	storeFlag(fs, f.Getenv, &opts.Store)
	blobsFlag(fs, f.Getenv, &opts.Blobs)
	queueFlag(fs, f.Getenv, &opts.Queue)
	fs.StringVar(&opts.Addr, "addr", "127.0.0.1:8080", "`host:port` to listen on (port 0 picks a free one)")
	fs.IntVar(&opts.Workers, "workers", 0, "jobs evaluated at once (default: one per core; under GOMEMLIMIT, as many as fit in half of it; 0 with --queue: none, separate workers run them)")
	maxAttemptsFlag(fs, &opts.MaxAttempts)
	fs.IntVar(&opts.EvalThreads, "eval-threads", 0, "goroutines one evaluation may use (default: one per core)")
	fs.DurationVar(&opts.ResultTTL, "result-ttl", 24*time.Hour, "how long encrypted results are kept")
	fs.BoolVar(&opts.LogJSON, "log-json", false, "log as JSON lines (the default when stderr is not a terminal)")
	fs.IntVar(&opts.MaxUploads, "max-uploads", 0, "key sets and encrypted inputs received at once; others wait (default 4)")
	fs.IntVar(&opts.MaxUploadsPerUser, "max-uploads-per-user", 0, "of those, by one user; more get 429 (default 2)")
	fs.IntVar(&opts.MaxQueuedPerUser, "max-queued-per-user", 0, "one user's jobs queued or running; more get 429 (default 16)")
	fs.DurationVar(&opts.UploadWait, "upload-wait", 0, "how long an upload waits for a place before a 503 (default 30s)")
	fs.IntVar(&opts.MaxDeploys, "max-deploys", 0, "deployments read and compiled at once, one per owner; others wait (default 2)")
	fs.IntVar(&opts.MaxKeySetsPerModel, "max-keysets-per-model", 0, "one user's active key sets for one model; more get 429 (default 3)")
	fs.IntVar(&opts.MaxKeySetsPerUser, "max-keysets-per-user", 0, "one user's active key sets over all models; more get 429 (default 12)")
	fs.Int64Var(&opts.MinBodyRate, "min-body-rate", 0, "bytes a second a request body must average after --body-grace, or it is cut off (default 32768)")
	fs.DurationVar(&opts.BodyGrace, "body-grace", 0, "how long a request body may arrive slower than --min-body-rate (default 10s)")
	fs.StringVar(&opts.TLSCert, "tls-cert", "", "serve HTTPS with this certificate `file` (PEM, the chain after the leaf); reloaded when it changes")
	fs.StringVar(&opts.TLSKey, "tls-key", "", "the certificate's private key `file` (PEM)")
	fs.BoolVar(&opts.BehindProxy, "behind-proxy", false, "serve plain HTTP on a non-loopback --addr: a TLS-terminating reverse proxy is in front")
	fs.StringSliceVar(&opts.TrustedProxies, "trusted-proxy", nil, "`networks` (CIDR or addresses, comma-separated) of reverse proxies whose X-Forwarded-For names the client, for login throttling")
	fs.StringVar(&opts.DebugAddr, "debug-addr", "", "serve Go's profiles (/debug/pprof/) on this `host:port`; keep it private (default: off)")
	return cmd
}

// serveDebug serves net/http/pprof's handlers on addr until ctx ends and
// returns the address it listens on.
func serveDebug(ctx context.Context, addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", fheserve.Errorf(fheserve.EUNAVAILABLE, "cannot listen on %s for --debug-addr: %v", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	return ln.Addr().String(), nil
}

// dataDirFlag adds --data-dir, defaulting to $FHESERVE_DATA or ./fheserve-data.
func dataDirFlag(f interface {
	StringVar(p *string, name string, value string, usage string)
}, getenv func(string) string, p *string) {
	def := getenv(dataDirEnv)
	if def == "" {
		def = "fheserve-data"
	}
	f.StringVar(p, "data-dir", def, "server data `directory` (default: $"+dataDirEnv+" or ./fheserve-data)")
}

// storeFlag adds --store, defaulting to $FHESERVE_STORE.
func storeFlag(f interface {
	StringVar(p *string, name string, value string, usage string)
}, getenv func(string) string, p *string) {
	f.StringVar(p, "store", getenv(storeEnv), "the database: a postgres://... `URL`, shared by several nodes (default: $"+storeEnv+", or SQLite in the data directory)")
}

// blobsFlag adds --blobs, defaulting to $FHESERVE_BLOBS.
func blobsFlag(fs *pflag.FlagSet, getenv func(string) string, p *string) {
	fs.StringVar(p, "blobs", getenv(blobsEnv), "where blobs live: a nats://... `URL` (a JetStream object store shared by several nodes; default: $"+blobsEnv+", or blobs/ in the data directory)")
}

// queueFlag adds --queue, defaulting to $FHESERVE_QUEUE.
func queueFlag(fs *pflag.FlagSet, getenv func(string) string, p *string) {
	fs.StringVar(p, "queue", getenv(queueEnv), "where jobs wait for workers: a nats://... `URL` (a JetStream work queue shared with 'fheserve worker' processes; default: $"+queueEnv+", or in this process)")
}

// maxAttemptsFlag adds --max-attempts.
func maxAttemptsFlag(fs *pflag.FlagSet, p *int) {
	fs.IntVar(p, "max-attempts", 0, "with --queue, how many times a job may be started and interrupted (its worker died) before it fails (default 3)")
}

// noWorkers turns an explicit --workers 0 into -1, the App's "none"
// (0 is its default, one per core).
func noWorkers(p *int) check {
	return func(cmd *cobra.Command, _ []string) error {
		switch {
		case *p < 0:
			return fheserve.Errorf(fheserve.EINVALID, "--workers must not be negative")
		case cmd.Flags().Changed("workers") && *p == 0:
			*p = -1
		}
		return nil
	}
}

func (o *serveOptions) validate() error {
	if err := (node.Engines{Store: o.Store, Blobs: o.Blobs, Queue: o.Queue}).Check(); err != nil {
		return err
	}
	switch {
	case o.Workers < -1 || o.EvalThreads < 0 || o.MaxAttempts < 0:
		return fheserve.Errorf(fheserve.EINVALID, "--workers, --eval-threads and --max-attempts must not be negative")
	case o.Workers == -1 && o.Queue == "":
		return fheserve.Errorf(fheserve.EINVALID, "--workers 0 leaves the jobs to separate workers: give them a shared --queue nats://...")
	case o.MaxUploads < 0 || o.MaxUploadsPerUser < 0 || o.MaxQueuedPerUser < 0 || o.UploadWait < 0 ||
		o.MaxDeploys < 0 || o.MaxKeySetsPerModel < 0 || o.MaxKeySetsPerUser < 0 || o.MinBodyRate < 0 || o.BodyGrace < 0:
		return fheserve.Errorf(fheserve.EINVALID, "the --max-*, --upload-wait, --min-body-rate and --body-grace bounds must not be negative")
	case o.ResultTTL < time.Minute:
		return fheserve.Errorf(fheserve.EINVALID, "--result-ttl must be at least 1m")
	case (o.TLSCert == "") != (o.TLSKey == ""):
		return fheserve.Errorf(fheserve.EINVALID, "give both --tls-cert and --tls-key, or neither")
	case o.TLSCert != "" && o.BehindProxy:
		return fheserve.Errorf(fheserve.EINVALID, "--behind-proxy is for plain HTTP behind a TLS proxy; it does not go with --tls-cert")
	case o.trustedProxies() == nil && len(o.TrustedProxies) > 0:
		return fheserve.Errorf(fheserve.EINVALID, "--trusted-proxy %s: give networks as CIDR (10.0.0.0/24) or addresses", strings.Join(o.TrustedProxies, ","))
	case o.TLSCert == "" && !o.BehindProxy && !loopback(o.Addr):
		return fheserve.Errorf(fheserve.EINVALID, "--addr %s would send passwords and tokens in clear text over the network: "+
			"give --tls-cert and --tls-key, or --behind-proxy if a TLS-terminating reverse proxy is in front", o.Addr)
	}
	return nil
}

// trustedProxies parses TrustedProxies (nil if one does not parse).
func (o *serveOptions) trustedProxies() []netip.Prefix {
	var out []netip.Prefix
	for _, p := range o.TrustedProxies {
		pre, err := netip.ParsePrefix(p)
		if err != nil {
			ip, err := netip.ParseAddr(p)
			if err != nil {
				return nil
			}
			pre = netip.PrefixFrom(ip, ip.BitLen())
		}
		out = append(out, pre.Masked())
	}
	return out
}

// loopback reports whether addr (host:port) listens on a loopback
// interface only: localhost, 127.0.0.0/8 or ::1. An empty host is every
// interface.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func serveRun(opts *serveOptions) error {
	// People read text logs on a terminal; elsewhere logs go to a
	// collector, which reads JSON.
	var h slog.Handler = slog.NewTextHandler(opts.IO.ErrOut, nil)
	if opts.LogJSON || !opts.IO.ErrTTY {
		h = slog.NewJSONHandler(opts.IO.ErrOut, nil)
	}
	log := slog.New(h)
	ctx, stop := signal.NotifyContext(opts.Ctx, syscall.SIGTERM)
	defer stop()
	var configure []func(*fhttp.Server)
	if proxies := opts.trustedProxies(); len(proxies) > 0 {
		configure = append(configure, func(s *fhttp.Server) { s.TrustProxies(proxies) })
	}
	if opts.TLSCert != "" {
		cert, err := fhttp.LoadCertificate(opts.TLSCert, opts.TLSKey)
		if err != nil {
			return err
		}
		configure = append(configure, func(s *fhttp.Server) { s.UseTLS(cert.TLSConfig()) })
	}
	d, err := node.StartOn(ctx, opts.DataDir, node.Engines{Store: opts.Store, Blobs: opts.Blobs, Queue: opts.Queue}, opts.Addr, app.Config{
		Workers: opts.Workers, EvalThreads: opts.EvalThreads, MaxAttempts: opts.MaxAttempts, ResultTTL: opts.ResultTTL, Logger: log,
		Bounds: app.Bounds{
			Uploads: opts.MaxUploads, UploadsPerUser: opts.MaxUploadsPerUser,
			QueuedPerUser: opts.MaxQueuedPerUser, UploadWait: opts.UploadWait,
			Deploys: opts.MaxDeploys, KeySetsPerModel: opts.MaxKeySetsPerModel, KeySetsPerUser: opts.MaxKeySetsPerUser,
			MinBodyRate: opts.MinBodyRate, BodyGrace: opts.BodyGrace,
		},
	}, configure...)
	if err != nil {
		return err
	}
	if opts.DebugAddr != "" {
		addr, err := serveDebug(ctx, opts.DebugAddr)
		if err != nil {
			d.Close()
			return err
		}
		log.Info("serving profiles", "url", "http://"+addr+"/debug/pprof/")
	}
	log.Info("serving", "url", d.URL(), "data_dir", opts.DataDir)
	fmt.Fprintf(opts.IO.ErrOut, "fheserve: serving on %s\n", d.URL())
	select {
	case <-ctx.Done():
		log.Info("stopping")
		return d.Close()
	case err := <-d.Done():
		d.Close()
		return err
	}
}
