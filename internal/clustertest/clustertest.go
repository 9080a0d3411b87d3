// Package clustertest runs fheserve in cluster mode for a test: a
// PostgreSQL database of its own (pgtest), an embedded NATS JetStream
// (natstest), an API node on them with no workers of its own (store on
// PostgreSQL, queue and blobs on NATS: serve --workers 0) and separate
// workers, each with its own connections, all on 127.0.0.1 and stopped
// when the test ends.
//
// A test package that uses it stops pgtest's cluster from its TestMain:
// os.Exit(pgtest.Main(m)). Without PostgreSQL installed, the tests fail
// saying how to install it.
package clustertest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/fheserve/fheserve/app"
	fhttp "github.com/fheserve/fheserve/http"
	"github.com/fheserve/fheserve/internal/pgtest"
	"github.com/fheserve/fheserve/natsjs/natstest"
	"github.com/fheserve/fheserve/node"
)

// The modes a test of the service flow runs its server in.
const (
	// Embedded is one node on SQLite, a blob folder and an in-process
	// queue in its data directory: the default.
	Embedded = "embedded"
	// Clustered is an API node with no workers and a separate worker on
	// PostgreSQL and NATS JetStream: Start.
	Clustered = "cluster"
)

// InModes runs f as the subtests mode=embedded and mode=cluster, in
// parallel: each has servers, databases and directories of its own, and
// a cluster's run mostly waits on PostgreSQL and NATS. f must not call
// t.Setenv or t.Parallel.
func InModes(t *testing.T, f func(t *testing.T, mode string)) {
	for _, mode := range []string{Embedded, Clustered} {
		t.Run("mode="+mode, func(t *testing.T) {
			t.Parallel()
			f(t, mode)
		})
	}
}

// Cluster is the shared infrastructure of a cluster's processes.
type Cluster struct {
	// Dir is the data directory every process of the cluster is given:
	// it holds the master key and the audit log's signing key, which an
	// operator gives each node and worker; the database, the blobs and
	// the queue are elsewhere.
	Dir string
	// Engines names the test's PostgreSQL database, and the NATS server
	// for the queue and the blobs.
	Engines node.Engines
	// NATS is the embedded NATS server, for fault tests.
	NATS *natstest.Server
}

// New creates a database and starts a NATS server for t; it starts no
// process of fheserve (API and Worker do, or a test's command line given
// Args).
func New(tb testing.TB) *Cluster {
	tb.Helper()
	ns := natstest.Start(tb)
	return &Cluster{
		Dir:  tb.TempDir(),
		NATS: ns,
		// A worker that dies leaves its job to another after a second,
		// not the default 30.
		Engines: node.Engines{Store: pgtest.NewDB(tb), Blobs: ns.URL(), Queue: ns.URL(), AckWait: time.Second},
	}
}

// Start is New, an API node with cfg but no workers of its own (API),
// and one separate worker with cfg (Worker): the cluster a test of the
// service flow runs against, where the embedded mode would run one node
// with cfg.
func Start(tb testing.TB, cfg app.Config, configure ...func(*fhttp.Server)) (*Cluster, *node.Node) {
	tb.Helper()
	c := New(tb)
	api := cfg
	api.Workers = -1
	n := c.API(tb, api, configure...)
	c.Worker(tb, cfg)
	return c, n
}

// Args are the command-line flags of 'fheserve serve' and 'fheserve
// worker' for the cluster's store, queue and blobs.
func (c *Cluster) Args() []string {
	return []string{"--store", c.Engines.Store, "--queue", c.Engines.Queue, "--blobs", c.Engines.Blobs}
}

// API starts an API node of the cluster on 127.0.0.1:0 with cfg and no
// workers of its own unless cfg.Workers asks for some; it stops when the
// test ends.
func (c *Cluster) API(tb testing.TB, cfg app.Config, configure ...func(*fhttp.Server)) *node.Node {
	tb.Helper()
	if cfg.Workers == 0 {
		cfg.Workers = -1 // separate workers only
	}
	n, err := node.StartOn(context.Background(), c.Dir, c.Engines, "127.0.0.1:0", cfg, configure...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { n.Close() })
	return n
}

// Worker starts a separate worker with cfg (one job at a time unless
// cfg.Workers says otherwise): an App with its own
// connections to the store, the blobs and the queue and no HTTP server.
// It stops when the test ends; kill stops it earlier as a crash would:
// its queue connection closes first, so that it can neither acknowledge
// nor give back its job, then it stops.
func (c *Cluster) Worker(tb testing.TB, cfg app.Config) (a *app.App, kill func()) {
	tb.Helper()
	var nc *nats.Conn
	e := c.Engines
	e.OnQueueConn = func(c *nats.Conn) { nc = c }
	if cfg.Workers == 0 {
		cfg.Workers = 1
	}
	a, err := node.StartWorker(context.Background(), c.Dir, e, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	var once sync.Once
	stop := func() { once.Do(func() { a.Close() }) }
	tb.Cleanup(stop)
	return a, func() { nc.Close(); stop() }
}
