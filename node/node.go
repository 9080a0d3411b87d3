// Package node assembles one fheserve node from a data directory: the
// SQLite store, the blob folder, the in-process queue and the signed audit
// log, the App on them, and the HTTP server in front. It is the one place
// that names the concrete engines (app and http see only the interfaces
// of the root package); other choices plug in here: PostgreSQL for the
// store and the audit log (Engines), shared by several nodes.
package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/app"
	"github.com/fheserve/fheserve/audit"
	auditpostgres "github.com/fheserve/fheserve/audit/postgres"
	auditsqlite "github.com/fheserve/fheserve/audit/sqlite"
	"github.com/fheserve/fheserve/blob"
	fhttp "github.com/fheserve/fheserve/http"
	"github.com/fheserve/fheserve/inproc"
	"github.com/fheserve/fheserve/natsjs"
	"github.com/fheserve/fheserve/postgres"
	"github.com/fheserve/fheserve/sqlite"
	"github.com/nats-io/nats.go"
)

// DatabaseFile is the name of the SQLite database in the data directory.
const DatabaseFile = "fheserve.db"

// Engines chooses a node's engines where the embedded defaults are not
// wanted. The zero Engines is the defaults.
type Engines struct {
	// Store is the service's database: "" for the SQLite file in the data
	// directory, or a postgres:// URL for PostgreSQL, which then keeps
	// the audit log too. Nodes on one PostgreSQL share accounts, models,
	// key sets, jobs and the log; they need the same master key and audit
	// key, and (until blobs have a shared store) one blob folder.
	Store string
	// Blobs is where blobs live: "" for the blob folder in the data
	// directory, or a nats:// URL for a JetStream object store
	// (natsjs.Blobs), which nodes share without sharing a folder.
	Blobs string
	// Queue is where jobs wait for workers: "" for the in-process queue,
	// or a nats:// URL for a JetStream work queue (natsjs.Queue) that API
	// nodes and separate workers ('fheserve worker') share.
	Queue string
	// AckWait is how long a worker's lease on a job holds without a
	// heartbeat (default 30s): a worker that dies leaves its job to
	// another after at most this long.
	AckWait time.Duration

	// OnQueueConn, if set, is given the queue's connection: a test closes
	// it to cut a worker off as a crash would (clustertest).
	OnQueueConn func(*nats.Conn) `json:"-"`
	// noAffinity hides the queue's key-set shards: jobs go on one
	// subject, first in first out (tests, to compare: SetNoAffinity).
	noAffinity bool
}

// postgresURL reports whether a store URL names PostgreSQL.
func postgresURL(u string) bool {
	return strings.HasPrefix(u, "postgres://") || strings.HasPrefix(u, "postgresql://")
}

// Check refuses a store that is neither default nor PostgreSQL.
func (e Engines) Check() error {
	if e.Store != "" && !postgresURL(e.Store) {
		return fheserve.Errorf(fheserve.EINVALID, "unknown store %q: give a postgres:// URL, or nothing for SQLite in the data directory", redactURL(e.Store))
	}
	if e.Blobs != "" && !strings.HasPrefix(e.Blobs, "nats://") {
		return fheserve.Errorf(fheserve.EINVALID, "unknown blob store %q: give a nats:// URL, or nothing for the data directory's blobs/", redactURL(e.Blobs))
	}
	if e.Queue != "" && !strings.HasPrefix(e.Queue, "nats://") {
		return fheserve.Errorf(fheserve.EINVALID, "unknown queue %q: give a nats:// URL, or nothing for the in-process queue", redactURL(e.Queue))
	}
	return nil
}

// redactURL drops a URL's password, for messages.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
		return u.String()
	}
	return s
}

// OpenApp returns an App on the embedded defaults in dataDir: the SQLite
// store (fheserve.db), the blob folder (blobs/), an in-process queue, the
// audit log (audit.db, signed with audit.key) and the master key from
// $FHESERVE_MASTER_KEY or dataDir/master.key. cfg's Store, Blobs, Queue,
// MasterKey, Audit and AuditStore are overwritten. Closing the App closes
// them all.
func OpenApp(ctx context.Context, dataDir string, cfg app.Config) (*app.App, error) {
	return OpenAppOn(ctx, dataDir, Engines{}, cfg)
}

// OpenAppOn is OpenApp with the engines e instead of the defaults.
func OpenAppOn(ctx context.Context, dataDir string, e Engines, cfg app.Config) (*app.App, error) {
	if err := e.Check(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create data directory: %w", err)
	}
	key, err := app.LoadMasterKey(dataDir)
	if err != nil {
		return nil, err
	}
	blobs, closeBlobs, err := openBlobs(ctx, dataDir, e)
	if err != nil {
		return nil, err
	}
	store, err := openStore(ctx, dataDir, e)
	if err != nil {
		closeBlobs()
		return nil, err
	}
	queue, events, closeQueue, err := openQueue(ctx, e)
	if err != nil {
		store.Close()
		closeBlobs()
		return nil, err
	}
	alog, ast, err := openAudit(ctx, dataDir, e)
	if err != nil {
		store.Close()
		closeQueue()
		closeBlobs()
		return nil, err
	}
	// The App closes the audit store last: the queue's and the blob
	// store's connections go with it.
	closer := closers{ast, closerFunc(closeQueue), closerFunc(closeBlobs)}
	cfg.Store, cfg.Blobs, cfg.Queue, cfg.MasterKey, cfg.Audit, cfg.AuditStore = store, blobs, queue, key, alog, closer
	cfg.JobEvents = events
	a, err := app.New(cfg)
	if err != nil {
		alog.Close()
		closer.Close()
		store.Close()
		return nil, err
	}
	return a, nil
}

// openBlobs opens the blob store: e's JetStream object store, or the
// folder blobs/ in dataDir; close releases it.
func openBlobs(ctx context.Context, dataDir string, e Engines) (b fheserve.BlobStore, close func() error, err error) {
	if e.Blobs != "" {
		nc, js, err := natsjs.Dial(e.Blobs, "fheserve")
		if err != nil {
			return nil, nil, err
		}
		nb, err := natsjs.OpenBlobs(ctx, js, natsjs.BlobsConfig{})
		if err != nil {
			nc.Close()
			return nil, nil, err
		}
		stop := purgeOrphans(nb)
		return nb, func() error { stop(); nc.Close(); return nil }, nil
	}
	local, err := blob.Open(filepath.Join(dataDir, "blobs"))
	if err != nil {
		return nil, nil, err
	}
	if err := local.CleanTemp(); err != nil {
		return nil, nil, fmt.Errorf("cannot clean the blob directory: %w", err)
	}
	return local, func() error { return nil }, nil
}

// orphanAge is how old the chunks of a blob that no metadata names must
// be before they are purged, and how often every process looks for them
// (after a random part of it first, so that processes started together
// do not look at once).
const orphanAge = time.Hour

// purgeOrphans purges, every orphanAge, the object store's chunks of
// writes cut short by a crash (natsjs.Blobs.PurgeOrphans), until stop.
func purgeOrphans(b *natsjs.Blobs) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		wait := rand.N(orphanAge)
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			wait = orphanAge
			n, size, err := b.PurgeOrphans(ctx, orphanAge)
			switch {
			case err != nil && ctx.Err() == nil:
				slog.Warn("cannot purge the chunks of blobs cut short", "err", err)
			case n > 0:
				slog.Info("purged the chunks of blobs cut short", "blobs", n, "bytes", size)
			}
		}
	}()
	return func() { cancel(); <-done }
}

// openQueue opens the job queue: e's JetStream work queue, on its own
// connection, or an in-process queue; close releases it.
func openQueue(ctx context.Context, e Engines) (q fheserve.Queue, events app.JobEvents, close func() error, err error) {
	if e.Queue == "" {
		return inproc.NewQueue(), nil, func() error { return nil }, nil
	}
	nc, js, err := natsjs.Dial(e.Queue, "fheserve")
	if err != nil {
		return nil, nil, nil, err
	}
	if q, err = natsjs.OpenQueue(ctx, js, natsjs.QueueConfig{AckWait: e.AckWait}); err != nil {
		nc.Close()
		return nil, nil, nil, err
	}
	if e.OnQueueConn != nil {
		e.OnQueueConn(nc)
	}
	if e.noAffinity {
		q = leaseOnly{q.(fheserve.LeaseQueue)}
	}
	return q, natsjs.NewEvents(nc, ""), func() error { nc.Close(); return nil }, nil
}

// leaseOnly is a LeaseQueue and nothing more.
type leaseOnly struct{ fheserve.LeaseQueue }

// closers closes each in turn.
type closers []io.Closer

func (cs closers) Close() error {
	var err error
	for _, c := range cs {
		err = errors.Join(err, c.Close())
	}
	return err
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// openStore opens the service's store: e's PostgreSQL, or the SQLite
// database in dataDir.
func openStore(ctx context.Context, dataDir string, e Engines) (fheserve.Store, error) {
	if postgresURL(e.Store) {
		return postgres.Open(ctx, e.Store)
	}
	// The database holds password hashes: readable by the server only.
	dbPath := filepath.Join(dataDir, DatabaseFile)
	if err := private(dbPath); err != nil {
		return nil, err
	}
	return sqlite.Open(ctx, dbPath)
}

// openAudit opens the transparency log, in e's PostgreSQL or in dataDir
// (audit.db), signing with the key in dataDir/audit.key, created on first
// use.
func openAudit(ctx context.Context, dataDir string, e Engines) (*audit.Log, audit.Store, error) {
	key, err := audit.LoadOrCreateKey(filepath.Join(dataDir, audit.KeyFile), "")
	if err != nil {
		return nil, nil, err
	}
	var st audit.Store
	if postgresURL(e.Store) {
		st, err = auditpostgres.Open(ctx, e.Store)
	} else {
		// The log names accounts and their actions: readable by the
		// server only.
		path := filepath.Join(dataDir, audit.DBFile)
		if err := private(path); err != nil {
			return nil, nil, err
		}
		st, err = auditsqlite.Open(ctx, path)
	}
	if err != nil {
		return nil, nil, err
	}
	l, err := audit.New(ctx, st, key)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return l, st, nil
}

// private makes the SQLite database at path, creating it empty if need
// be, and its -wal and -shm files readable and writable by the server
// only. SQLite creates those two with the mode of the database file, so
// a database made here keeps them private; older ones are changed.
func private(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("cannot create database: %w", err)
	}
	f.Close()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Chmod(path+suffix, 0o600); err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("cannot make the database private: %w", err)
		}
	}
	return nil
}

// Node is an App on the embedded defaults served over HTTP: what
// 'fheserve serve' runs, and what the demo and the end-to-end tests start.
type Node struct {
	App    *app.App
	Server *fhttp.Server
	done   chan error
}

// Start opens the App in dataDir (OpenApp), starts its workers and
// serves it on addr ("127.0.0.1:0" picks a free port) until Close. Each
// of configure changes the server before it serves: say, UseTLS.
func Start(ctx context.Context, dataDir, addr string, cfg app.Config, configure ...func(*fhttp.Server)) (*Node, error) {
	return StartOn(ctx, dataDir, Engines{}, addr, cfg, configure...)
}

// StartOn is Start with the engines e instead of the defaults.
func StartOn(ctx context.Context, dataDir string, e Engines, addr string, cfg app.Config, configure ...func(*fhttp.Server)) (*Node, error) {
	a, err := OpenAppOn(ctx, dataDir, e, cfg)
	if err != nil {
		return nil, err
	}
	s := fhttp.NewServer(a, cfg.Logger)
	for _, f := range configure {
		f(s)
	}
	if err := s.Listen(addr); err != nil {
		a.Close()
		return nil, err
	}
	if err := a.Start(ctx); err != nil {
		s.Shutdown(ctx)
		a.Close()
		return nil, err
	}
	n := &Node{App: a, Server: s, done: make(chan error, 1)}
	go func() { n.done <- s.Serve() }()
	return n, nil
}

// URL is the node's base URL.
func (n *Node) URL() string { return n.Server.URL() }

// Done receives Serve's result when the server stops.
func (n *Node) Done() <-chan error { return n.done }

// Close stops serving (waiting up to 5 seconds for requests in flight),
// then stops the workers and closes the store. A job being evaluated runs
// again on the next start.
func (n *Node) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n.Server.Shutdown(ctx)
	return n.App.Close()
}

// StartWorker opens an App on e in dataDir (OpenAppOn) and starts its
// workers and janitor, with no HTTP server: a separate evaluation worker,
// which takes its jobs from e's shared queue (a nats:// Queue, with the
// store and blobs that the API nodes use). Closing the App stops it; a
// job being evaluated is given back to the queue.
func StartWorker(ctx context.Context, dataDir string, e Engines, cfg app.Config) (*app.App, error) {
	if e.Queue == "" {
		return nil, fheserve.Errorf(fheserve.EINVALID, "a worker needs a shared queue: give a nats:// URL")
	}
	a, err := OpenAppOn(ctx, dataDir, e, cfg)
	if err != nil {
		return nil, err
	}
	if err := a.Start(ctx); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}
