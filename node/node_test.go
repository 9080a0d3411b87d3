package node_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/fheserve/fheserve/app"
	"github.com/fheserve/fheserve/audit"
	"github.com/fheserve/fheserve/node"
)

// TestOpenFileModes checks that the databases OpenApp makes, the service's
// and the audit log's, and their -wal and -shm files, are readable by the
// server only: the first holds password hashes, the second who did what.
func TestOpenFileModes(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(app.MasterKeyEnv, "")
	a, err := node.OpenApp(context.Background(), dir, app.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	// Writes to both, so that their -wal and -shm files exist.
	if _, err := a.InitAdmin(context.Background(), "root", "root-password"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{node.DatabaseFile, audit.DBFile} {
		for _, suffix := range []string{"", "-wal", "-shm"} {
			st, err := os.Stat(filepath.Join(dir, name+suffix))
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o600 {
				t.Errorf("%s: mode %v, want 0600", name+suffix, st.Mode().Perm())
			}
		}
	}
}
