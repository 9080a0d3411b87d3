package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/storetest"
)

// mustMigrate creates a database at schema version v, lets fill write rows
// as that version kept them, and returns the database opened again,
// migrated to the current schema.
func mustMigrate(t *testing.T, v int, fill func(ctx context.Context, s *Store)) *Store {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fheserve.db")
	s, err := open(ctx, path, v)
	if err != nil {
		t.Fatal(err)
	}
	fill(ctx, s)
	s.Close()
	s, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestMigrateSamples checks that jobs stored before jobs declared their
// samples (schema version 2) count as one sample each after the migration.
func TestMigrateSamples(t *testing.T) {
	var m *fheserve.Model
	s := mustMigrate(t, 2, func(ctx context.Context, s *Store) {
		alice := storetest.MustAccount(t, s, "alice", fheserve.RoleOwner)
		carol := storetest.MustAccount(t, s, "carol", fheserve.RoleUser)
		m = oldModel(t, s, alice, "mdl_1")
		k := storetest.MustKeySet(t, s, carol, m, "key_1")
		for _, id := range []string{"job_1", "job_2"} {
			if _, err := s.db.ExecContext(ctx, `INSERT INTO jobs (id, account_id, model_id, keyset_id, status, done, total,
			attempts, input_bytes, result_bytes, input_key, result_key, created_at) VALUES (?, ?, ?, ?, 'queued', 0, 2, 0, 10, 0, 'in', '', 0)`,
				id, carol.ID, m.ID, k.ID); err != nil {
				t.Fatal(err)
			}
		}
	})
	ctx := context.Background()
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

// TestMigrateEvents checks that the rows of the administrators' event
// trail written before the signed log became the one record (schema
// version 3) are kept, under the name legacy_events.
func TestMigrateEvents(t *testing.T) {
	s := mustMigrate(t, 3, func(ctx context.Context, s *Store) {
		if _, err := s.db.ExecContext(ctx, `INSERT INTO events (time, actor, action, target, detail) VALUES (1, 'root', 'token.create', 'tok_1', ?)`,
			"a\n\x1b[31mb"); err != nil {
			t.Fatal(err)
		}
	})
	ctx := context.Background()
	var detail string
	if err := s.db.QueryRowContext(ctx, `SELECT detail FROM legacy_events WHERE target = 'tok_1'`).Scan(&detail); err != nil {
		t.Fatalf("the old event row is not kept: %v", err)
	}
	if detail != "a\n\x1b[31mb" {
		t.Errorf("kept detail %q", detail)
	}
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE name = 'events'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("a table named events remains (%d, %v)", n, err)
	}
}
