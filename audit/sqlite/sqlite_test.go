package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/fheserve/fheserve/audit"
	"github.com/fheserve/fheserve/audit/audittest"
	"github.com/fheserve/fheserve/audit/sqlite"
)

// MustOpen opens a new store in a temporary directory.
func MustOpen(tb testing.TB) *sqlite.Store {
	tb.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), "audit.db"))
	if err != nil {
		tb.Fatal(err)
	}
	return st
}

func TestStore(t *testing.T) {
	audittest.Run(t, func(t *testing.T) audit.Store { return MustOpen(t) })
}
