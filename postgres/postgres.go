// Package postgres is the fheserve.Store on PostgreSQL (pgx), the store
// that several API nodes and workers share. Schema migrations are applied
// when the store is opened, under an advisory lock, so that nodes starting
// at once apply each migration once.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/internal/sqlrows"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

var _ fheserve.Store = (*Store)(nil)

// Store is a fheserve.Store on a PostgreSQL database.
type Store struct {
	db *pgxpool.Pool
}

// Open connects to the database at url (postgres://...) and migrates it
// to the current schema.
func Open(ctx context.Context, url string) (*Store, error) {
	return open(ctx, url, len(migrations))
}

// open connects to the database at url migrated to schema version last.
func open(ctx context.Context, url string, last int) (*Store, error) {
	db, err := Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	s := &Store{db: db}
	if err := migrate(ctx, db, migrations[:last]); err != nil {
		db.Close()
		return nil, fmt.Errorf("cannot migrate the PostgreSQL database: %w", err)
	}
	return s, nil
}

// Connect opens a pool on url and checks that the server answers; the
// audit log's store shares it. The error names the server but never the
// password. A connection idle for more than 100 ms is pinged before use,
// so that after a restart of PostgreSQL the pool drops its dead
// connections instead of failing a request on each.
func Connect(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fheserve.Errorf(fheserve.EINVALID, "invalid PostgreSQL URL: %v", redact(err))
	}
	cfg.ShouldPing = func(_ context.Context, p pgxpool.ShouldPingParams) bool { return p.IdleDuration > 100*time.Millisecond }
	db, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to PostgreSQL: %w", err)
	}
	if err := db.Ping(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("cannot connect to PostgreSQL at %s: %w", cfg.ConnConfig.Host, err)
	}
	return db, nil
}

// redact drops what a parse error quotes of the URL, which may hold a
// password: pgx's parse errors end with the reason after the last colon.
func redact(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		return msg[i+2:]
	}
	return "cannot parse it"
}

// Close closes the pool.
func (s *Store) Close() error {
	s.db.Close()
	return nil
}

// migrationLock is the advisory lock key that serializes migrations
// across nodes ("fheserve" in ASCII; the audit store adds one).
const migrationLock int64 = 0x6668657365727665

// migrate applies the migrations not applied yet, in one transaction
// holding an advisory lock: a node that starts while another migrates
// waits, then finds the work done. PostgreSQL's DDL is transactional, so
// a failed migration leaves the schema as it was.
func migrate(ctx context.Context, db *pgxpool.Pool, ms []string) error {
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
			return err
		}
		var have int
		if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
			return err
		}
		if have > len(migrations) {
			return fmt.Errorf("schema version %d is newer than this binary's %d", have, len(migrations))
		}
		for v := have + 1; v <= len(ms); v++ {
			if _, err := tx.Exec(ctx, ms[v-1]); err != nil {
				return fmt.Errorf("migration %d: %w", v, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)`, v, time.Now().UnixNano()); err != nil {
				return err
			}
		}
		return nil
	})
}

// notFound turns pgx.ErrNoRows into ENOTFOUND.
func notFound(err error, format string, args ...any) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return fheserve.Errorf(fheserve.ENOTFOUND, format, args...)
	}
	return err
}

// conflict turns a uniqueness violation into ECONFLICT.
func conflict(err error, format string, args ...any) error {
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok && pe.Code == "23505" {
		return fheserve.Errorf(fheserve.ECONFLICT, format, args...)
	}
	return err
}

// updated returns ENOTFOUND when an UPDATE touched no row.
func updated(tag pgconn.CommandTag, err error, format string, args ...any) error {
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return fheserve.Errorf(fheserve.ENOTFOUND, format, args...)
	}
	return nil
}

// where builds a conjunction of the conditions whose argument is set,
// numbering the placeholders.
type where struct {
	conds []string
	args  []any
}

// arg adds an argument and returns its placeholder.
func (w *where) arg(v any) string {
	w.args = append(w.args, v)
	return "$" + strconv.Itoa(len(w.args))
}

func (w *where) eq(col, v string) {
	if v != "" {
		w.conds = append(w.conds, col+" = "+w.arg(v))
	}
}

func (w *where) in(col string, vs []string) {
	if len(vs) > 0 {
		w.conds = append(w.conds, col+" = ANY("+w.arg(vs)+")")
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

// collect runs query and scans each row with scan.
func collect[T any](ctx context.Context, db *pgxpool.Pool, scan func(sqlrows.Scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := db.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return out, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
