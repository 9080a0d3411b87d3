// Package postgres is an audit.Store on PostgreSQL, for a log that several
// API nodes append to. The tables (audit_records, audit_objects,
// audit_hashes, audit_checkpoints) are those of package audit/sqlite, and
// audit_head holds the log's size in one row. Append locks that row
// (SELECT ... FOR UPDATE) before it checks the size, so the appends of all
// nodes form one sequence: of two nodes appending at one size, the second
// waits for the first, then finds the size moved and gets ECONFLICT, and
// its Log recommits the batch on the longer tree. A fork cannot be stored.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/audit"
	"github.com/fheserve/fheserve/postgres"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/tlog"
)

var _ audit.Store = (*Store)(nil)

// Store is an audit.Store on a PostgreSQL database.
type Store struct {
	db *pgxpool.Pool
}

// migrations are applied in order, each once; append, never edit.
var migrations = []string{
	`CREATE TABLE audit_head (
		one BOOLEAN PRIMARY KEY DEFAULT true CHECK (one),
		size BIGINT NOT NULL,
		hashes BIGINT NOT NULL
	);
	INSERT INTO audit_head (size, hashes) VALUES (0, 0);
	CREATE TABLE audit_records (
		idx BIGINT PRIMARY KEY,
		data BYTEA NOT NULL,
		time BIGINT NOT NULL, -- Unix microseconds
		actor_id TEXT NOT NULL,
		actor TEXT NOT NULL,
		action TEXT NOT NULL,
		outcome TEXT NOT NULL,
		request_id TEXT NOT NULL
	);
	CREATE INDEX audit_records_time ON audit_records(time);
	CREATE INDEX audit_records_actor ON audit_records(actor);
	CREATE INDEX audit_records_actor_id ON audit_records(actor_id);
	CREATE TABLE audit_objects (
		idx BIGINT NOT NULL,
		kind TEXT NOT NULL,
		id TEXT NOT NULL,
		PRIMARY KEY (idx, kind, id)
	);
	CREATE INDEX audit_objects_object ON audit_objects(kind, id);
	CREATE TABLE audit_hashes (
		id BIGINT PRIMARY KEY, -- tlog stored-hash index
		hash BYTEA NOT NULL
	);
	CREATE TABLE audit_checkpoints (
		size BIGINT PRIMARY KEY,
		note BYTEA NOT NULL
	);`,
}

// migrationLock serializes the migrations of nodes starting at once
// ("fheaudit" in ASCII).
const migrationLock int64 = 0x6668656175646974

// Open connects to the database at url (postgres://...) and migrates its
// audit tables to the current schema.
func Open(ctx context.Context, url string) (*Store, error) {
	db, err := postgres.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	s := &Store{db: db}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("cannot migrate the audit tables: %w", err)
	}
	return s, nil
}

func (s *Store) migrate(ctx context.Context) error {
	return pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS audit_schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
			return err
		}
		var have int
		if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM audit_schema_migrations`).Scan(&have); err != nil {
			return err
		}
		if have > len(migrations) {
			return fmt.Errorf("schema version %d is newer than this program's %d", have, len(migrations))
		}
		for v := have + 1; v <= len(migrations); v++ {
			if _, err := tx.Exec(ctx, migrations[v-1]); err != nil {
				return fmt.Errorf("migration %d: %w", v, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO audit_schema_migrations VALUES ($1, $2)`, v, time.Now().UnixNano()); err != nil {
				return err
			}
		}
		return nil
	})
}

// Close closes the pool.
func (s *Store) Close() error {
	s.db.Close()
	return nil
}

// Size implements audit.Store.
func (s *Store) Size(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.QueryRow(ctx, `SELECT size FROM audit_head`).Scan(&n)
	return n, err
}

// Append implements audit.Store. The head row's lock is held from the
// size check to the commit.
func (s *Store) Append(ctx context.Context, b *audit.Batch) error {
	return pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		var n, hashes int64
		if err := tx.QueryRow(ctx, `SELECT size, hashes FROM audit_head FOR UPDATE`).Scan(&n, &hashes); err != nil {
			return err
		}
		if n != b.Size || hashes != tlog.StoredHashCount(b.Size) {
			return fheserve.Errorf(fheserve.ECONFLICT, "audit log has %d records and %d stored hashes, not %d and %d", n, hashes, b.Size, tlog.StoredHashCount(b.Size))
		}
		var q pgx.Batch
		for _, e := range b.Entries {
			r := e.Record
			q.Queue(`INSERT INTO audit_records (idx, data, time, actor_id, actor, action, outcome, request_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
				e.Index, e.Data, r.Time.UnixMicro(), r.ActorID, r.Actor, r.Action, r.Outcome, r.RequestID)
			for _, o := range r.Objects {
				q.Queue(`INSERT INTO audit_objects (idx, kind, id) VALUES ($1, $2, $3)`, e.Index, o.Kind, o.ID)
			}
		}
		for i, h := range b.Hashes {
			q.Queue(`INSERT INTO audit_hashes (id, hash) VALUES ($1, $2)`, hashes+int64(i), h[:])
		}
		size := b.Size + int64(len(b.Entries))
		q.Queue(`INSERT INTO audit_checkpoints (size, note) VALUES ($1, $2) ON CONFLICT (size) DO UPDATE SET note = excluded.note`, size, b.Checkpoint)
		q.Queue(`UPDATE audit_head SET size = $1, hashes = $2`, size, hashes+int64(len(b.Hashes)))
		return tx.SendBatch(ctx, &q).Close()
	})
}

// ReadHashes implements audit.Store.
func (s *Store) ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	if len(indexes) == 0 {
		return nil, nil
	}
	rows, err := s.db.Query(ctx, `SELECT id, hash FROM audit_hashes WHERE id = ANY($1)`, indexes)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	found := make(map[int64][]byte, len(indexes))
	for rows.Next() {
		var id int64
		var h []byte
		if err := rows.Scan(&id, &h); err != nil {
			return nil, err
		}
		found[id] = h
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return audit.HashesInOrder(indexes, found)
}

// Records implements audit.Store. Each record's columns are checked
// against its encoding, so that an edited column cannot hide a record
// from the searches that use it.
func (s *Store) Records(ctx context.Context, f audit.Filter) ([]*audit.Entry, error) {
	q, args := recordsQuery(f)
	rows, err := s.db.Query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*audit.Entry
	for rows.Next() {
		e, err := scanRecord(rows)
		if err != nil {
			return out, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// query builds a query, numbering its placeholders.
type query struct {
	b    strings.Builder
	args []any
}

func (q *query) arg(v any) string {
	q.args = append(q.args, v)
	return "$" + strconv.Itoa(len(q.args))
}

// recordsQuery is the query of Records and its arguments: the filter's
// page of records, each with its objects as "kind id" lines.
func recordsQuery(f audit.Filter) (string, []any) {
	var q query
	q.b.WriteString(`SELECT r.idx, r.data, r.time, r.actor_id, r.actor, r.action, r.outcome, r.request_id,
		(SELECT string_agg(o.kind || ' ' || o.id, E'\n') FROM audit_objects o WHERE o.idx = r.idx)
		FROM audit_records r WHERE r.idx >= ` + q.arg(f.From))
	if f.End > 0 {
		q.b.WriteString(` AND r.idx < ` + q.arg(f.End))
	}
	if !f.Since.IsZero() {
		q.b.WriteString(` AND r.time >= ` + q.arg(f.Since.UnixMicro()))
	}
	if f.Actor != "" {
		q.b.WriteString(` AND r.actor = ` + q.arg(f.Actor))
	}
	if o := f.Object; o != (audit.Object{}) {
		q.b.WriteString(` AND r.idx IN (SELECT idx FROM audit_objects WHERE kind = ` + q.arg(o.Kind) + ` AND id = ` + q.arg(o.ID) + `)`)
	}
	if sc := f.Scope; sc != nil && !sc.All {
		// The subqueries find the scope's records through the indexes
		// rather than testing every record.
		q.b.WriteString(` AND r.idx IN (SELECT idx FROM audit_records WHERE actor_id = ` + q.arg(sc.AccountID))
		for _, o := range sc.Objects {
			q.b.WriteString(` UNION SELECT idx FROM audit_objects WHERE kind = ` + q.arg(o.Kind) + ` AND id = ` + q.arg(o.ID))
		}
		q.b.WriteString(`)`)
	}
	q.b.WriteString(` ORDER BY r.idx LIMIT ` + q.arg(f.PageSize()))
	return q.b.String(), q.args
}

// scanRecord reads a row of recordsQuery and decodes its record, which
// must match the row's search columns.
func scanRecord(rows pgx.Rows) (*audit.Entry, error) {
	var e audit.Entry
	var c audit.Record
	var t int64
	var objs *string
	if err := rows.Scan(&e.Index, &e.Data, &t, &c.ActorID, &c.Actor, &c.Action, &c.Outcome, &c.RequestID, &objs); err != nil {
		return nil, err
	}
	r, err := audit.DecodeRecord(e.Data)
	if err != nil {
		return nil, fheserve.Errorf(fheserve.EINTERNAL, "audit record %d: %s", e.Index, fheserve.ErrorMessage(err))
	}
	var lines []string
	if objs != nil {
		lines = strings.Split(*objs, "\n")
	}
	if r.Time.UnixMicro() != t || r.ActorID != c.ActorID || r.Actor != c.Actor || r.Action != c.Action ||
		r.Outcome != c.Outcome || r.RequestID != c.RequestID || !sameObjects(r.Objects, lines) {
		return nil, fheserve.Errorf(fheserve.EINTERNAL, "audit record %d: its search columns do not match the record; the database was edited", e.Index)
	}
	e.Record = r
	return &e, nil
}

// sameObjects reports whether the objects table's rows for a record, as
// "kind id" lines, are the record's objects.
func sameObjects(objs []audit.Object, lines []string) bool {
	if len(lines) != len(objs) {
		return false
	}
	lines = slices.Sorted(slices.Values(lines))
	want := make([]string, len(objs))
	for i, o := range objs {
		want[i] = o.Kind + " " + o.ID
	}
	slices.Sort(want)
	return slices.Equal(lines, want)
}

// Checkpoint implements audit.Store.
func (s *Store) Checkpoint(ctx context.Context, n int64) ([]byte, error) {
	var note []byte
	var err error
	if n < 0 {
		err = s.db.QueryRow(ctx, `SELECT note FROM audit_checkpoints ORDER BY size DESC LIMIT 1`).Scan(&note)
	} else {
		err = s.db.QueryRow(ctx, `SELECT note FROM audit_checkpoints WHERE size = $1`, n).Scan(&note)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		if n < 0 {
			return nil, fheserve.Errorf(fheserve.ENOTFOUND, "the audit log has no checkpoint")
		}
		return nil, fheserve.Errorf(fheserve.ENOTFOUND, "no audit checkpoint of %d records", n)
	}
	return note, err
}

// Checkpoints implements audit.Store.
func (s *Store) Checkpoints(ctx context.Context, after int64, limit int) ([]*audit.StoredCheckpoint, error) {
	rows, err := s.db.Query(ctx, `SELECT size, note FROM audit_checkpoints WHERE size > $1 ORDER BY size LIMIT $2`, after, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (*audit.StoredCheckpoint, error) {
		var c audit.StoredCheckpoint
		return &c, r.Scan(&c.Size, &c.Note)
	})
}
