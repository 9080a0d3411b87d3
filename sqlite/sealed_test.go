package sqlite

import (
	"context"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/storetest"
)

// oldModel writes a model row as schema versions 2 to 4 kept it, before
// sealed models, and returns it as a Model.
func oldModel(t *testing.T, s *Store, owner *fheserve.Account, id string) *fheserve.Model {
	t.Helper()
	m := &fheserve.Model{ID: id, OwnerID: owner.ID, Owner: owner.Username, Name: "m", Version: 1, Status: fheserve.ModelActive,
		ParamsFingerprint: "hf", WeightsKey: "models/" + id}
	if _, err := s.db.ExecContext(context.Background(), `INSERT INTO models (id, owner_id, name, version, status, allow, packing, log_n,
		input_shape, output_shape, batch_size, rotations, output_error, plan_fingerprint, params_fingerprint,
		model_bytes, plan_json, weights_key, wrapped_key, created_at) VALUES (?, ?, 'm', 1, 'active', '[]', 'latency', 13,
		'[1]', '[1]', 1, 0, 0.1, 'pf', 'hf', 10, '{}', ?, X'01', 0)`, id, owner.ID, m.WeightsKey); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestMigrateSealed checks that models stored before sealed models read
// as not sealed, with no bound on sealed key sets.
func TestMigrateSealed(t *testing.T) {
	s := mustMigrate(t, 4, func(ctx context.Context, s *Store) {
		oldModel(t, s, storetest.MustAccount(t, s, "alice", fheserve.RoleOwner), "mdl_1")
	})
	m, err := s.Model(context.Background(), "mdl_1")
	if err != nil {
		t.Fatal(err)
	}
	if m.Sealed || m.MaxSealedKeySets != 0 {
		t.Errorf("migrated model: sealed %v, max sealed key sets %d", m.Sealed, m.MaxSealedKeySets)
	}
}

// TestSealedModel checks that a sealed model's flag and bound are stored.
func TestSealedModel(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir()+"/db")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	alice := storetest.MustAccount(t, s, "alice", fheserve.RoleOwner)
	m := &fheserve.Model{ID: "mdl_s", OwnerID: alice.ID, Name: "s", Status: fheserve.ModelActive, Packing: "latency",
		InputShape: []int{4}, OutputShape: []int{2}, PlanJSON: []byte(`{}`), WeightsKey: "models/mdl_s/weights", WrappedKey: []byte{},
		Sealed: true, MaxSealedKeySets: 7}
	if err := s.CreateModel(ctx, m); err != nil {
		t.Fatal(err)
	}
	got, err := s.Model(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Sealed || got.MaxSealedKeySets != 7 {
		t.Errorf("stored sealed model: sealed %v, max sealed key sets %d", got.Sealed, got.MaxSealedKeySets)
	}
}
