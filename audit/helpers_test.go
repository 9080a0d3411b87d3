package audit_test

import (
	"os"
	"testing"

	"github.com/fheserve/fheserve/audit"
	"github.com/fheserve/fheserve/audit/audittest"
)

func newLog(tb testing.TB, st audit.Store) (*audit.Log, *audit.Key) {
	tb.Helper()
	return audittest.MustNew(tb, st)
}

func assertMode(tb testing.TB, path string, mode os.FileMode) {
	tb.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		tb.Fatal(err)
	}
	if fi.Mode().Perm() != mode {
		tb.Errorf("%s has mode %v, want %v", path, fi.Mode().Perm(), mode)
	}
}
