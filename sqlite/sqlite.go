// Package sqlite is the embedded fheserve.Store: SQLite (pure Go, no cgo)
// in WAL mode, in one file under the server's data directory. Schema
// migrations are applied when the store is opened.
package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/internal/sqlrows"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

var _ fheserve.Store = (*Store)(nil)

// Store is a fheserve.Store on an SQLite database.
type Store struct {
	db *sql.DB
}

// Open opens (creating if needed) the database at path and migrates it to
// the current schema.
func Open(ctx context.Context, path string) (*Store, error) {
	return open(ctx, path, len(migrations))
}

// open opens the database at path migrated to schema version last.
func open(ctx context.Context, path string, last int) (*Store, error) {
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)" +
		"&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("cannot open database %q: %w", path, err)
	}
	// SQLite has one writer; a small pool keeps readers concurrent.
	db.SetMaxOpenConns(4)
	s := &Store{db: db}
	if err := s.migrate(ctx, last); err != nil {
		db.Close()
		return nil, fmt.Errorf("cannot migrate database %q: %w", path, err)
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// migrations are applied in order, each once; append, never edit.
var migrations = []string{
	`CREATE TABLE accounts (
		id TEXT PRIMARY KEY,
		username TEXT NOT NULL UNIQUE,
		role TEXT NOT NULL,
		status TEXT NOT NULL,
		password_hash TEXT NOT NULL,
		created_at INTEGER NOT NULL,
		reviewed_at INTEGER,
		reviewed_by TEXT NOT NULL DEFAULT ''
	);
	CREATE TABLE tokens (
		id TEXT PRIMARY KEY,
		hash TEXT NOT NULL UNIQUE,
		account_id TEXT NOT NULL REFERENCES accounts(id),
		kind TEXT NOT NULL,
		name TEXT NOT NULL DEFAULT '',
		created_at INTEGER NOT NULL,
		expires_at INTEGER NOT NULL,
		revoked_at INTEGER
	);
	CREATE INDEX tokens_account ON tokens(account_id);
	CREATE TABLE models (
		id TEXT PRIMARY KEY,
		owner_id TEXT NOT NULL REFERENCES accounts(id),
		name TEXT NOT NULL,
		version INTEGER NOT NULL,
		status TEXT NOT NULL,
		allow TEXT NOT NULL,
		packing TEXT NOT NULL,
		log_n INTEGER NOT NULL,
		input_shape TEXT NOT NULL,
		output_shape TEXT NOT NULL,
		batch_size INTEGER NOT NULL,
		rotations INTEGER NOT NULL,
		output_error REAL NOT NULL,
		plan_fingerprint TEXT NOT NULL,
		params_fingerprint TEXT NOT NULL,
		model_bytes INTEGER NOT NULL,
		plan_json BLOB NOT NULL,
		weights_key TEXT NOT NULL,
		wrapped_key BLOB NOT NULL,
		created_at INTEGER NOT NULL,
		retired_at INTEGER,
		UNIQUE (owner_id, name, version)
	);
	CREATE TABLE keysets (
		id TEXT PRIMARY KEY,
		account_id TEXT NOT NULL REFERENCES accounts(id),
		model_id TEXT NOT NULL REFERENCES models(id),
		fingerprint TEXT NOT NULL,
		params_fingerprint TEXT NOT NULL,
		size INTEGER NOT NULL,
		status TEXT NOT NULL,
		blob_key TEXT NOT NULL,
		created_at INTEGER NOT NULL,
		revoked_at INTEGER,
		replaced_by TEXT NOT NULL DEFAULT ''
	);
	CREATE INDEX keysets_account ON keysets(account_id);
	CREATE TABLE jobs (
		seq INTEGER PRIMARY KEY AUTOINCREMENT,
		id TEXT NOT NULL UNIQUE,
		account_id TEXT NOT NULL REFERENCES accounts(id),
		model_id TEXT NOT NULL REFERENCES models(id),
		keyset_id TEXT NOT NULL REFERENCES keysets(id),
		status TEXT NOT NULL,
		done INTEGER NOT NULL,
		total INTEGER NOT NULL,
		error_code TEXT NOT NULL DEFAULT '',
		error TEXT NOT NULL DEFAULT '',
		attempts INTEGER NOT NULL,
		input_bytes INTEGER NOT NULL,
		result_bytes INTEGER NOT NULL,
		input_key TEXT NOT NULL,
		result_key TEXT NOT NULL,
		created_at INTEGER NOT NULL,
		started_at INTEGER,
		finished_at INTEGER,
		expires_at INTEGER
	);
	CREATE INDEX jobs_status ON jobs(status);
	CREATE INDEX jobs_account ON jobs(account_id);
	CREATE INDEX jobs_model ON jobs(model_id);
	CREATE TABLE events (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		time INTEGER NOT NULL,
		actor TEXT NOT NULL,
		action TEXT NOT NULL,
		target TEXT NOT NULL,
		detail TEXT NOT NULL
	);`,
	// The owners' abuse limits (fheserve.ModelLimits as JSON) and the index
	// that counts a user's jobs on a model for daily quotas.
	`ALTER TABLE models ADD COLUMN limits TEXT NOT NULL DEFAULT '{}';
	CREATE INDEX jobs_model_created ON jobs(model_id, created_at);`,
	// The samples a job declares, which quotas count; jobs stored before
	// count as one.
	`ALTER TABLE jobs ADD COLUMN samples INTEGER NOT NULL DEFAULT 1;`,
	// The administrators' event trail is no longer written or read: the
	// signed log in audit.db is the one record of security-relevant
	// actions. Rows written before are kept, under a name that says so.
	`ALTER TABLE events RENAME TO legacy_events;`,
	// Sealed models: the server holds no weights, and a bound on the key
	// sets the owner seals them for.
	`ALTER TABLE models ADD COLUMN sealed INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE models ADD COLUMN max_sealed_keysets INTEGER NOT NULL DEFAULT 0;`,
	// Galleries: models whose weights are enrolled templates (encrypted in
	// the blob store), and the label a verification job claims.
	`CREATE TABLE galleries (
		model_id TEXT PRIMARY KEY REFERENCES models(id),
		dim INTEGER NOT NULL,
		metric TEXT NOT NULL,
		threshold REAL NOT NULL,
		capacity INTEGER NOT NULL,
		templates INTEGER NOT NULL,
		revision INTEGER NOT NULL,
		blob_key TEXT NOT NULL,
		updated_at INTEGER NOT NULL
	);
	ALTER TABLE jobs ADD COLUMN claim TEXT NOT NULL DEFAULT '';`,
	// The class labels of a model's outputs (a JSON list of strings; empty
	// for none), public like the rest of its summary.
	`ALTER TABLE models ADD COLUMN labels TEXT NOT NULL DEFAULT '[]';`,
}

// migrate applies the migrations up to schema version last.
func (s *Store) migrate(ctx context.Context, last int) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return err
	}
	var have int
	if err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
		return err
	}
	if have > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this binary's %d", have, len(migrations))
	}
	for v := have + 1; v <= last; v++ {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, migrations[v-1]); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %d: %w", v, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, v, time.Now().UnixNano()); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return nil
}

// notFound turns sql.ErrNoRows into ENOTFOUND.
func notFound(err error, format string, args ...any) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fheserve.Errorf(fheserve.ENOTFOUND, format, args...)
	}
	return err
}

// conflict turns a uniqueness violation into ECONFLICT.
func conflict(err error, format string, args ...any) error {
	if err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed") {
		return fheserve.Errorf(fheserve.ECONFLICT, format, args...)
	}
	return err
}

// updated returns ENOTFOUND when an UPDATE touched no row.
func updated(res sql.Result, err error, format string, args ...any) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return fheserve.Errorf(fheserve.ENOTFOUND, format, args...)
	}
	return nil
}

// where builds a conjunction of the conditions whose argument is set.
type where struct {
	conds []string
	args  []any
}

func (w *where) eq(col, v string) {
	if v != "" {
		w.conds = append(w.conds, col+" = ?")
		w.args = append(w.args, v)
	}
}

func (w *where) in(col string, vs []string) {
	if len(vs) == 0 {
		return
	}
	w.conds = append(w.conds, col+" IN ("+strings.TrimSuffix(strings.Repeat("?,", len(vs)), ",")+")")
	for _, v := range vs {
		w.args = append(w.args, v)
	}
}

func (w *where) String() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // slices of strings and ints always marshal
	}
	return string(b)
}

type scanner = sqlrows.Scanner
