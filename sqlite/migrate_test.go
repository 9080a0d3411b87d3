package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/storetest"
)

// TestMigrateSamples checks that jobs stored before jobs declared their
// samples (schema version 2) count as one sample each after the migration.
func TestMigrateSamples(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fheserve.db")
	s, err := open(ctx, path, 2)
	if err != nil {
		t.Fatal(err)
	}
	alice := storetest.MustAccount(t, s, "alice", fheserve.RoleOwner)
	carol := storetest.MustAccount(t, s, "carol", fheserve.RoleUser)
	m := storetest.MustModel(t, s, alice, "mdl_1", "m")
	k := storetest.MustKeySet(t, s, carol, m, "key_1")
	for _, id := range []string{"job_1", "job_2"} {
		if _, err := s.db.ExecContext(ctx, `INSERT INTO jobs (id, account_id, model_id, keyset_id, status, done, total,
			attempts, input_bytes, result_bytes, input_key, result_key, created_at) VALUES (?, ?, ?, ?, 'queued', 0, 2, 0, 10, 0, 'in', '', 0)`,
			id, carol.ID, m.ID, k.ID); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()

	s, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	j, err := s.Job(ctx, "job_1")
	if err != nil {
		t.Fatal(err)
	}
	if j.Samples != 1 {
		t.Errorf("migrated job has %d samples, want 1", j.Samples)
	}
	if n, err := s.CountSamples(ctx, fheserve.JobFilter{ModelID: m.ID}); err != nil || n != 2 {
		t.Errorf("CountSamples after the migration = %d, %v; want 2", n, err)
	}
}
