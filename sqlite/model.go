package sqlite

import (
	"context"
	"database/sql"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/internal/sqlrows"
	"github.com/fheserve/fheserve/internal/storerows"
)

// CreateModel implements fheserve.Store.
func (s *Store) CreateModel(ctx context.Context, m *fheserve.Model) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := createModel(ctx, tx, m); err != nil {
		return err
	}
	return tx.Commit()
}

// createModel inserts m in tx, with the next version of its name.
func createModel(ctx context.Context, tx *sql.Tx, m *fheserve.Model) error {
	var latest int
	err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM models WHERE owner_id = ? AND name = ?`, m.OwnerID, m.Name).Scan(&latest)
	if err != nil {
		return err
	}
	m.Version = latest + 1
	_, err = tx.ExecContext(ctx, `INSERT INTO models (id, owner_id, name, version, status, allow, packing, log_n,
		input_shape, output_shape, batch_size, rotations, output_error, plan_fingerprint, params_fingerprint,
		model_bytes, plan_json, weights_key, wrapped_key, created_at, retired_at, limits, sealed, max_sealed_keysets, labels)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		m.ID, m.OwnerID, m.Name, m.Version, m.Status, mustJSON(nonNil(m.Allow)), m.Packing, m.LogN,
		mustJSON(m.InputShape), mustJSON(m.OutputShape), m.BatchSize, m.Rotations, m.OutputError, m.PlanFingerprint, m.ParamsFingerprint,
		m.ModelBytes, m.PlanJSON, m.WeightsKey, m.WrappedKey, storerows.TS(m.CreatedAt), storerows.TSPtr(m.RetiredAt), mustJSON(m.Limits), m.Sealed, m.MaxSealedKeySets, mustJSON(nonNil(m.Labels)))
	return conflict(err, "model %q exists", m.ID)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Model implements fheserve.Store.
func (s *Store) Model(ctx context.Context, id string) (*fheserve.Model, error) {
	m, err := storerows.ScanModel(s.db.QueryRowContext(ctx, `SELECT `+storerows.ModelCols+storerows.ModelFrom+` WHERE m.id = ?`, id))
	return m, notFound(err, "no model %q", id)
}

// Models implements fheserve.Store.
func (s *Store) Models(ctx context.Context, f fheserve.ModelFilter) ([]*fheserve.Model, error) {
	var w where
	w.eq("m.owner_id", f.OwnerID)
	w.eq("m.name", f.Name)
	w.eq("m.status", f.Status)
	return sqlrows.Collect(ctx, s.db, storerows.ScanModel, `SELECT `+storerows.ModelCols+storerows.ModelFrom+w.String()+` ORDER BY m.created_at, m.id`, w.args...)
}

// UpdateModel implements fheserve.Store.
func (s *Store) UpdateModel(ctx context.Context, m *fheserve.Model) error {
	res, err := s.db.ExecContext(ctx, `UPDATE models SET status = ?, retired_at = ?, allow = ?, limits = ? WHERE id = ?`,
		m.Status, storerows.TSPtr(m.RetiredAt), mustJSON(nonNil(m.Allow)), mustJSON(m.Limits), m.ID)
	return updated(res, err, "no model %q", m.ID)
}
