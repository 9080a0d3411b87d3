package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/sqlite"
	"github.com/fheserve/fheserve/storetest"
)

func MustOpen(tb testing.TB, path string) *sqlite.Store {
	tb.Helper()
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func TestStore(t *testing.T) {
	storetest.Store(t, func(t *testing.T) fheserve.Store {
		return MustOpen(t, filepath.Join(t.TempDir(), "fheserve.db"))
	})
}

// TestReopen checks that migrations run once and data survives a reopen.
func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fheserve.db")
	s := MustOpen(t, path)
	storetest.MustAccount(t, s, "alice", fheserve.RoleUser)
	s.Close()
	s = MustOpen(t, path)
	defer s.Close()
	if _, err := s.AccountByUsername(context.Background(), "alice"); err != nil {
		t.Fatal(err)
	}
}
