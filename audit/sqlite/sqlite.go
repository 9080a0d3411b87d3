// Package sqlite is an audit.Store on an SQLite database (pure Go, no
// cgo) in WAL mode, in a file of its own beside the service's database,
// so that the audit log can be copied, verified and kept apart.
//
// Tables: records (the canonical encodings, by index, with columns to find
// them by time and actor), objects (the objects each record names, to find
// the records about an account or a model), hashes (the Merkle tree's
// stored hashes by tlog stored-hash index) and checkpoints (the signed
// checkpoints by tree size).
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/audit"
	"github.com/fheserve/fheserve/internal/sqlrows"
	"golang.org/x/mod/sumdb/tlog"
	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

var _ audit.Store = (*Store)(nil)

// Store is an audit.Store on an SQLite database.
type Store struct {
	db *sql.DB
	// The statements of Append, prepared once.
	sizes, insertRecord, insertObject, insertHash, insertCheckpoint *sql.Stmt
}

// appendStatements are the statements of Append, in the order of Store's fields.
var appendStatements = []string{
	`SELECT (SELECT COALESCE(MAX(idx) + 1, 0) FROM records), (SELECT COALESCE(MAX(id) + 1, 0) FROM hashes)`,
	`INSERT INTO records (idx, data, time, actor_id, actor, action, outcome, request_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
	`INSERT INTO objects (idx, kind, id) VALUES (?, ?, ?)`,
	`INSERT INTO hashes (id, hash) VALUES (?, ?)`,
	`INSERT OR REPLACE INTO checkpoints (size, note) VALUES (?, ?)`,
}

// migrations are applied in order, each once; append, never edit.
// PRAGMA user_version counts the applied ones.
var migrations = []string{
	`CREATE TABLE records (
		idx INTEGER PRIMARY KEY,
		data BLOB NOT NULL,
		time INTEGER NOT NULL, -- Unix microseconds
		actor_id TEXT NOT NULL,
		actor TEXT NOT NULL,
		action TEXT NOT NULL,
		outcome TEXT NOT NULL,
		request_id TEXT NOT NULL
	);
	CREATE INDEX records_time ON records(time);
	CREATE INDEX records_actor ON records(actor);
	CREATE INDEX records_actor_id ON records(actor_id);
	CREATE TABLE objects (
		idx INTEGER NOT NULL,
		kind TEXT NOT NULL,
		id TEXT NOT NULL,
		PRIMARY KEY (idx, kind, id)
	) WITHOUT ROWID;
	CREATE INDEX objects_object ON objects(kind, id);
	CREATE TABLE hashes (
		id INTEGER PRIMARY KEY, -- tlog stored-hash index
		hash BLOB NOT NULL
	);
	CREATE TABLE checkpoints (
		size INTEGER PRIMARY KEY,
		note BLOB NOT NULL
	);`,
}

// Open opens (creating if needed) the database at path and migrates it to
// the current schema.
func Open(ctx context.Context, path string) (*Store, error) {
	s, err := open(path, "")
	if err != nil {
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("cannot migrate audit database %q: %w", path, err)
	}
	for i, p := range []**sql.Stmt{&s.sizes, &s.insertRecord, &s.insertObject, &s.insertHash, &s.insertCheckpoint} {
		if *p, err = s.db.PrepareContext(ctx, appendStatements[i]); err != nil {
			s.db.Close()
			return nil, fmt.Errorf("cannot prepare audit database statements: %w", err)
		}
	}
	return s, nil
}

// OpenReadOnly opens an existing database for reading, as the offline
// verifier does; it fails with ENOTFOUND if there is none. The store reads
// one snapshot, taken when it opens, so that a log appended to meanwhile
// is seen whole.
func OpenReadOnly(ctx context.Context, path string) (*Store, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, fheserve.Errorf(fheserve.ENOTFOUND, "no audit database at %s", path)
	}
	s, err := open(path, "&mode=ro")
	if err != nil {
		return nil, err
	}
	// One connection, in one read transaction until Close: its first
	// read fixes the snapshot.
	s.db.SetMaxOpenConns(1)
	if _, err := s.db.ExecContext(ctx, `BEGIN`); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("cannot read audit database %q: %w", path, err)
	}
	var v int
	if err := s.db.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM checkpoints) >= 0, user_version FROM pragma_user_version`).Scan(new(bool), &v); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("cannot read audit database %q: %w", path, err)
	}
	if v != len(migrations) {
		s.db.Close()
		return nil, fheserve.Errorf(fheserve.EINVALID, "audit database %s has schema version %d, this program reads version %d", path, v, len(migrations))
	}
	return s, nil
}

func open(path, extra string) (*Store, error) {
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)" +
		"&_pragma=synchronous(NORMAL)&_txlock=immediate" + extra
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("cannot open audit database %q: %w", path, err)
	}
	// SQLite has one writer; a small pool keeps readers concurrent.
	db.SetMaxOpenConns(4)
	return &Store{db: db}, nil
}

func (s *Store) migrate(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var have int
	if err := tx.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&have); err != nil {
		return err
	}
	if have > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this program's %d", have, len(migrations))
	}
	for v := have + 1; v <= len(migrations); v++ {
		if _, err := tx.ExecContext(ctx, migrations[v-1]); err != nil {
			return fmt.Errorf("migration %d: %w", v, err)
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, len(migrations))); err != nil {
		return err
	}
	return tx.Commit()
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Size implements audit.Store.
func (s *Store) Size(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(idx) + 1, 0) FROM records`).Scan(&n)
	return n, err
}

// Append implements audit.Store.
func (s *Store) Append(ctx context.Context, b *audit.Batch) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n, hashes int64
	if err := tx.StmtContext(ctx, s.sizes).QueryRowContext(ctx).Scan(&n, &hashes); err != nil {
		return err
	}
	if n != b.Size || hashes != tlog.StoredHashCount(b.Size) {
		return fheserve.Errorf(fheserve.ECONFLICT, "audit log has %d records and %d stored hashes, not %d and %d", n, hashes, b.Size, tlog.StoredHashCount(b.Size))
	}
	rec, obj := tx.StmtContext(ctx, s.insertRecord), tx.StmtContext(ctx, s.insertObject)
	for _, e := range b.Entries {
		r := e.Record
		if _, err := rec.ExecContext(ctx, e.Index, e.Data, r.Time.UnixMicro(), r.ActorID, r.Actor, r.Action, r.Outcome, r.RequestID); err != nil {
			return err
		}
		for _, o := range r.Objects {
			if _, err := obj.ExecContext(ctx, e.Index, o.Kind, o.ID); err != nil {
				return err
			}
		}
	}
	hash := tx.StmtContext(ctx, s.insertHash)
	for i, h := range b.Hashes {
		if _, err := hash.ExecContext(ctx, hashes+int64(i), h[:]); err != nil {
			return err
		}
	}
	if _, err := tx.StmtContext(ctx, s.insertCheckpoint).ExecContext(ctx, b.Size+int64(len(b.Entries)), b.Checkpoint); err != nil {
		return err
	}
	return tx.Commit()
}

// ReadHashes implements audit.Store.
func (s *Store) ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	if len(indexes) == 0 {
		return nil, nil
	}
	args := make([]any, len(indexes))
	for i, x := range indexes {
		args[i] = x
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, hash FROM hashes WHERE id IN (?`+strings.Repeat(`, ?`, len(indexes)-1)+`)`, args...)
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
	return sqlrows.Collect(ctx, s.db, scanRecord, q, args...)
}

// recordsQuery is the query of Records and its arguments: the filter's
// page of records, each with its objects as "kind id" lines.
func recordsQuery(f audit.Filter) (string, []any) {
	q := `SELECT r.idx, r.data, r.time, r.actor_id, r.actor, r.action, r.outcome, r.request_id,
		(SELECT group_concat(o.kind || ' ' || o.id, char(10)) FROM objects o WHERE o.idx = r.idx)
		FROM records r WHERE r.idx >= ?`
	args := []any{f.From}
	if f.End > 0 {
		q += ` AND r.idx < ?`
		args = append(args, f.End)
	}
	if !f.Since.IsZero() {
		q += ` AND r.time >= ?`
		args = append(args, f.Since.UnixMicro())
	}
	if f.Actor != "" {
		q += ` AND r.actor = ?`
		args = append(args, f.Actor)
	}
	if o := f.Object; o != (audit.Object{}) {
		q += ` AND r.idx IN (SELECT idx FROM objects WHERE kind = ? AND id = ?)`
		args = append(args, o.Kind, o.ID)
	}
	if sc := f.Scope; sc != nil && !sc.All {
		// The subqueries find the scope's records through the indexes
		// rather than testing every record.
		q += ` AND r.idx IN (SELECT idx FROM records WHERE actor_id = ?`
		args = append(args, sc.AccountID)
		if len(sc.Objects) > 0 {
			q += ` UNION SELECT idx FROM objects WHERE (kind, id) IN (VALUES (?, ?)` + strings.Repeat(`, (?, ?)`, len(sc.Objects)-1) + `)`
			for _, o := range sc.Objects {
				args = append(args, o.Kind, o.ID)
			}
		}
		q += `)`
	}
	q += ` ORDER BY r.idx LIMIT ?`
	return q, append(args, f.PageSize())
}

// scanRecord reads a row of recordsQuery and decodes its record, which
// must match the row's search columns.
func scanRecord(rows sqlrows.Scanner) (*audit.Entry, error) {
	var e audit.Entry
	var c audit.Record
	var t int64
	var objs sql.NullString
	if err := rows.Scan(&e.Index, &e.Data, &t, &c.ActorID, &c.Actor, &c.Action, &c.Outcome, &c.RequestID, &objs); err != nil {
		return nil, err
	}
	r, err := audit.DecodeRecord(e.Data)
	if err != nil {
		return nil, fheserve.Errorf(fheserve.EINTERNAL, "audit record %d: %s", e.Index, fheserve.ErrorMessage(err))
	}
	if r.Time.UnixMicro() != t || r.ActorID != c.ActorID || r.Actor != c.Actor || r.Action != c.Action ||
		r.Outcome != c.Outcome || r.RequestID != c.RequestID || !sameObjects(r.Objects, objs.String) {
		return nil, fheserve.Errorf(fheserve.EINTERNAL, "audit record %d: its search columns do not match the record; the database was edited", e.Index)
	}
	e.Record = r
	return &e, nil
}

// sameObjects reports whether the objects table's rows for a record,
// joined as "kind id" lines, are the record's objects.
func sameObjects(objs []audit.Object, rows string) bool {
	var lines []string
	if rows != "" {
		lines = strings.Split(rows, "\n")
	}
	if len(lines) != len(objs) {
		return false
	}
	slices.Sort(lines)
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
		err = s.db.QueryRowContext(ctx, `SELECT note FROM checkpoints ORDER BY size DESC LIMIT 1`).Scan(&note)
	} else {
		err = s.db.QueryRowContext(ctx, `SELECT note FROM checkpoints WHERE size = ?`, n).Scan(&note)
	}
	if errors.Is(err, sql.ErrNoRows) {
		if n < 0 {
			return nil, fheserve.Errorf(fheserve.ENOTFOUND, "the audit log has no checkpoint")
		}
		return nil, fheserve.Errorf(fheserve.ENOTFOUND, "no audit checkpoint of %d records", n)
	}
	return note, err
}

// Checkpoints implements audit.Store.
func (s *Store) Checkpoints(ctx context.Context, after int64, limit int) ([]*audit.StoredCheckpoint, error) {
	return sqlrows.Collect(ctx, s.db, func(r sqlrows.Scanner) (*audit.StoredCheckpoint, error) {
		var c audit.StoredCheckpoint
		return &c, r.Scan(&c.Size, &c.Note)
	}, `SELECT size, note FROM checkpoints WHERE size > ? ORDER BY size LIMIT ?`, after, limit)
}
