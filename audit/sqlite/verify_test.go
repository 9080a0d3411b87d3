package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fheserve/fheserve/audit"
	"github.com/fheserve/fheserve/audit/audittest"
	"github.com/fheserve/fheserve/audit/sqlite"
	"golang.org/x/mod/sumdb/tlog"
)

// mustBuild writes a log of n records, appended one by one (so with a
// checkpoint each), to dir/audit.db and returns its verifier key.
func mustBuild(t *testing.T, dir string, n int) string {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	l, key := audittest.MustNew(t, st)
	for i := range n {
		if _, err := l.Append(ctx, audittest.Rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return key.VerifierKey()
}

// mustCopyDB copies the database files of dir to a new directory.
func mustCopyDB(t *testing.T, dir string) string {
	t.Helper()
	to := t.TempDir()
	names, _ := filepath.Glob(filepath.Join(dir, "audit.db*"))
	for _, name := range names {
		src, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		dst, err := os.Create(filepath.Join(to, filepath.Base(name)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(dst, src); err != nil {
			t.Fatal(err)
		}
		src.Close()
		dst.Close()
	}
	return to
}

// mustExec runs SQL statements on the database in dir, as someone with
// access to the file would.
func mustExec(t *testing.T, dir string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(dir, "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		res, err := db.Exec(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if n, _ := res.RowsAffected(); n == 0 && !strings.HasPrefix(s, "SELECT") {
			t.Fatalf("%s: changed nothing", s)
		}
	}
}

func verifyDir(dir, vkey string) (*audit.Verified, error) {
	ctx := context.Background()
	st, err := sqlite.OpenReadOnly(ctx, filepath.Join(dir, "audit.db"))
	if err != nil {
		return nil, err
	}
	defer st.Close()
	return audit.Verify(ctx, st, vkey)
}

// swap exchanges records a and b (their indexes) in both tables.
func swap(a, b int) []string {
	var out []string
	for _, table := range []string{"records", "objects"} {
		out = append(out,
			fmt.Sprintf(`UPDATE %s SET idx = -1 WHERE idx = %d`, table, a),
			fmt.Sprintf(`UPDATE %s SET idx = %d WHERE idx = %d`, table, a, b),
			fmt.Sprintf(`UPDATE %s SET idx = %d WHERE idx = -1`, table, b))
	}
	return out
}

// TestVerifyTampering edits the stored log in each way one could, and
// checks that Verify names the first record affected.
func TestVerifyTampering(t *testing.T) {
	const n = 300
	orig := t.TempDir()
	vkey := mustBuild(t, orig, n)
	if v, err := verifyDir(orig, vkey); err != nil || v.Records != n || v.Checkpoints != n+1 {
		t.Fatalf("Verify of the untouched log = %+v, %v", v, err)
	}
	leaf := func(i int64) int64 { return tlog.StoredHashIndex(0, i) }
	tests := []struct {
		name  string
		edit  func(t *testing.T, dir string)
		index int64 // -1: a checkpoint, not a record
		want  string
	}{
		{"record altered", func(t *testing.T, dir string) {
			mustExec(t, dir, `UPDATE records SET data = CAST(replace(CAST(data AS TEXT), '"outcome":"ok"', '"outcome":"forbidden"') AS BLOB), outcome = 'forbidden' WHERE idx = 100`)
		}, 100, "record 100: its hash does not match"},
		{"record's search column altered", func(t *testing.T, dir string) {
			mustExec(t, dir, `UPDATE records SET actor = 'a0' WHERE idx = 101`)
		}, 101, "record 101: its search columns do not match"},
		{"record's object removed", func(t *testing.T, dir string) {
			mustExec(t, dir, `DELETE FROM objects WHERE idx = 102 AND kind = 'model'`)
		}, 102, "record 102: its search columns do not match"},
		{"record not canonical", func(t *testing.T, dir string) {
			mustExec(t, dir, `UPDATE records SET data = CAST(replace(CAST(data AS TEXT), '{"action"', '{ "action"') AS BLOB) WHERE idx = 103`)
		}, 103, "record 103: audit record is not in canonical form"},
		{"record deleted", func(t *testing.T, dir string) {
			mustExec(t, dir, `DELETE FROM records WHERE idx = 100`, `DELETE FROM objects WHERE idx = 100`)
		}, 100, "record 100: it is missing (the next stored record is 101)"},
		{"record deleted and the rest renumbered", func(t *testing.T, dir string) {
			mustExec(t, dir, `DELETE FROM records WHERE idx = 100`, `DELETE FROM objects WHERE idx = 100`,
				`UPDATE records SET idx = -idx WHERE idx > 100`, `UPDATE records SET idx = -idx - 1 WHERE idx < 0`,
				`UPDATE objects SET idx = -idx WHERE idx > 100`, `UPDATE objects SET idx = -idx - 1 WHERE idx < 0`)
		}, 100, "record 100: its hash does not match"},
		{"records reordered", func(t *testing.T, dir string) {
			mustExec(t, dir, swap(150, 151)...)
		}, 150, "record 150: its hash does not match"},
		{"last records removed", func(t *testing.T, dir string) {
			mustExec(t, dir, `DELETE FROM records WHERE idx >= 290`)
		}, 290, "records from 290 on were removed"},
		{"record hash altered", func(t *testing.T, dir string) {
			mustExec(t, dir, fmt.Sprintf(`UPDATE hashes SET hash = zeroblob(32) WHERE id = %d`, leaf(120)))
		}, 120, "record 120: its hash does not match"},
		{"inner hash altered", func(t *testing.T, dir string) {
			mustExec(t, dir, fmt.Sprintf(`UPDATE hashes SET hash = zeroblob(32) WHERE id = %d`, tlog.StoredHashIndex(2, 30)))
		}, 120, "record 120: the stored hash of records 120 to 123 does not match"},
		{"hash removed", func(t *testing.T, dir string) {
			mustExec(t, dir, fmt.Sprintf(`DELETE FROM hashes WHERE id = %d`, leaf(130)))
		}, 130, "record 130: stored hash"},
		{"checkpoint signature altered", func(t *testing.T, dir string) {
			mustExec(t, dir, `UPDATE checkpoints SET note = CAST(replace(CAST(note AS TEXT), char(10) || '200' || char(10), char(10) || '201' || char(10)) AS BLOB) WHERE size = 200`)
		}, -1, "checkpoint stored for 200 records: checkpoint has an invalid signature"},
		{"checkpoint moved", func(t *testing.T, dir string) {
			mustExec(t, dir, `DELETE FROM checkpoints WHERE size = 200`, `UPDATE checkpoints SET size = 200 WHERE size = 199`)
		}, -1, "the checkpoint stored for 200 records is for 199"},
		{"latest checkpoint removed", func(t *testing.T, dir string) {
			mustExec(t, dir, `DELETE FROM checkpoints WHERE size = 300`)
		}, 299, "records 299 to 299 are not covered by any signed checkpoint"},
		{"record and all hashes rewritten", func(t *testing.T, dir string) {
			mustRewrite(t, dir, 140)
		}, 140, "record 140: it does not match the signed checkpoint of 141 records"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := mustCopyDB(t, orig)
			tt.edit(t, dir)
			_, err := verifyDir(dir, vkey)
			var ve *audit.VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("Verify: %v, want a VerifyError", err)
			}
			if ve.Index != tt.index || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Verify: %v (index %d), want index %d and %q", err, ve.Index, tt.index, tt.want)
			}
		})
	}

	other, _ := audit.GenerateKey("test.example/audit")
	if _, err := verifyDir(orig, other.VerifierKey()); err == nil || !strings.Contains(err.Error(), "not signed by the key") {
		t.Errorf("Verify with another key: %v", err)
	}
}

// mustRewrite changes record i and recomputes every stored hash, as
// someone who can write the database but has not the signing key would.
func mustRewrite(t *testing.T, dir string, i int64) {
	t.Helper()
	mustExec(t, dir, fmt.Sprintf(`UPDATE records SET data = CAST(replace(CAST(data AS TEXT), '"outcome":"ok"', '"outcome":"forbidden"') AS BLOB), outcome = 'forbidden' WHERE idx = %d`, i))
	db, err := sql.Open("sqlite", filepath.Join(dir, "audit.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT data FROM records ORDER BY idx`)
	if err != nil {
		t.Fatal(err)
	}
	var records [][]byte
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			t.Fatal(err)
		}
		records = append(records, data)
	}
	rows.Close()
	hashes, _ := audittest.StoredHashes(t, records)
	for id, h := range hashes {
		if _, err := db.Exec(`UPDATE hashes SET hash = ? WHERE id = ?`, h[:], id); err != nil {
			t.Fatal(err)
		}
	}
}

// TestVerifyWhileAppending verifies a log that the server appends to
// meanwhile: each verification sees one consistent snapshot.
func TestVerifyWhileAppending(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.db")
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	l, key := audittest.MustNew(t, st)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 600 {
			if _, err := l.Append(ctx, audittest.Rec(i)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	defer func() { <-done }()
	for i := 0; ; i++ {
		ro, err := sqlite.OpenReadOnly(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		v, err := audit.Verify(ctx, ro, key.VerifierKey())
		ro.Close()
		if err != nil {
			t.Fatalf("Verify %d: %v", i, err)
		}
		select {
		case <-done:
			if v.Records == 600 || i > 1000 {
				return
			}
		default:
		}
	}
}
