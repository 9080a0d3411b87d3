package app

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/fheserve/fheserve/audit"
	auditsqlite "github.com/fheserve/fheserve/audit/sqlite"
	"github.com/fheserve/fheserve/blob"
	"github.com/fheserve/fheserve/inproc"
	"github.com/fheserve/fheserve/sqlite"
)

// DatabaseFile is the name of the SQLite database in the data directory.
const DatabaseFile = "fheserve.db"

// Open returns an App on the embedded defaults in dataDir: the SQLite
// store (fheserve.db), the blob folder (blobs/), an in-process queue, and
// the master key from $FHESERVE_MASTER_KEY or dataDir/master.key. cfg's
// Store, Blobs, Queue and MasterKey are overwritten.
func Open(ctx context.Context, dataDir string, cfg Config) (*App, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create data directory: %w", err)
	}
	key, err := LoadMasterKey(dataDir)
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
	cfg.Store, cfg.Blobs, cfg.Queue, cfg.MasterKey, cfg.Audit = store, blobs, inproc.NewQueue(), key, alog
	a, err := New(cfg)
	if err != nil {
		alog.Close()
		ast.Close()
		store.Close()
		return nil, err
	}
	a.auditStore = ast
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
