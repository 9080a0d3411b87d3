package sqlrows_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"

	"github.com/fheserve/fheserve/internal/sqlrows"
	_ "modernc.org/sqlite"
)

func TestCollect(t *testing.T) {
	ctx := context.Background()
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE t (n INTEGER); INSERT INTO t VALUES (1), (2), (3)`); err != nil {
		t.Fatal(err)
	}
	scanInt := func(r sqlrows.Scanner) (int, error) {
		var n int
		err := r.Scan(&n)
		return n, err
	}
	got, err := sqlrows.Collect(ctx, db, scanInt, `SELECT n FROM t WHERE n >= ? ORDER BY n`, 2)
	if err != nil || len(got) != 2 || got[0] != 2 || got[1] != 3 {
		t.Fatalf("Collect = %v, %v; want [2 3]", got, err)
	}
	// A scan error returns the rows read before it.
	bad := errors.New("bad row")
	got, err = sqlrows.Collect(ctx, db, func(r sqlrows.Scanner) (int, error) {
		n, err := scanInt(r)
		if n == 3 {
			return 0, bad
		}
		return n, err
	}, `SELECT n FROM t ORDER BY n`)
	if !errors.Is(err, bad) || len(got) != 2 {
		t.Fatalf("Collect = %v, %v; want the 2 rows before the error and it", got, err)
	}
	if _, err := sqlrows.Collect(ctx, db, scanInt, `SELECT nope FROM t`); err == nil {
		t.Fatal("a bad query gave no error")
	}
}
