// Package node assembles one fheserve node from a data directory: the
// SQLite store, the blob folder, the in-process queue and the signed audit
// log, the App on them, and the HTTP server in front. It is the one place
// that names the concrete engines (app and http see only the interfaces
// of the root package); other choices, such as PostgreSQL for the store
// or a distributed queue, plug in here.
package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fheserve/fheserve/app"
	"github.com/fheserve/fheserve/audit"
	auditsqlite "github.com/fheserve/fheserve/audit/sqlite"
	"github.com/fheserve/fheserve/blob"
	fhttp "github.com/fheserve/fheserve/http"
	"github.com/fheserve/fheserve/inproc"
	"github.com/fheserve/fheserve/sqlite"
)

// DatabaseFile is the name of the SQLite database in the data directory.
const DatabaseFile = "fheserve.db"

// OpenApp returns an App on the embedded defaults in dataDir: the SQLite
// store (fheserve.db), the blob folder (blobs/), an in-process queue, the
// audit log (audit.db, signed with audit.key) and the master key from
// $FHESERVE_MASTER_KEY or dataDir/master.key. cfg's Store, Blobs, Queue,
// MasterKey, Audit and AuditStore are overwritten. Closing the App closes
// them all.
func OpenApp(ctx context.Context, dataDir string, cfg app.Config) (*app.App, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create data directory: %w", err)
	}
	key, err := app.LoadMasterKey(dataDir)
	if err != nil {
		return nil, err
	}
	blobs, err := blob.Open(filepath.Join(dataDir, "blobs"))
	if err != nil {
		return nil, err
	}
	if err := blobs.CleanTemp(); err != nil {
		return nil, fmt.Errorf("cannot clean the blob directory: %w", err)
	}
	// The database holds password hashes: readable by the server only.
	dbPath := filepath.Join(dataDir, DatabaseFile)
	if err := private(dbPath); err != nil {
		return nil, err
	}
	store, err := sqlite.Open(ctx, dbPath)
	if err != nil {
		return nil, err
	}
	alog, ast, err := openAudit(ctx, dataDir)
	if err != nil {
		store.Close()
		return nil, err
	}
	cfg.Store, cfg.Blobs, cfg.Queue, cfg.MasterKey, cfg.Audit, cfg.AuditStore = store, blobs, inproc.NewQueue(), key, alog, ast
	a, err := app.New(cfg)
	if err != nil {
		alog.Close()
		ast.Close()
		store.Close()
		return nil, err
	}
	return a, nil
}

// openAudit opens the transparency log in dataDir (audit.db), signing
// with the key in audit.key, created on first use.
func openAudit(ctx context.Context, dataDir string) (*audit.Log, *auditsqlite.Store, error) {
	key, err := audit.LoadOrCreateKey(filepath.Join(dataDir, audit.KeyFile), "")
	if err != nil {
		return nil, nil, err
	}
	// The log names accounts and their actions: readable by the server only.
	path := filepath.Join(dataDir, audit.DBFile)
	if err := private(path); err != nil {
		return nil, nil, err
	}
	st, err := auditsqlite.Open(ctx, path)
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
	a, err := OpenApp(ctx, dataDir, cfg)
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
