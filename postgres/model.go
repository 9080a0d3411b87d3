package postgres

import (
	"context"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/internal/storerows"
	"github.com/jackc/pgx/v5"
)

// CreateModel implements fheserve.Store.
func (s *Store) CreateModel(ctx context.Context, m *fheserve.Model) error {
	return pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error { return createModel(ctx, tx, m) })
}

// createModel inserts m in tx, with the next version of its name.
func createModel(ctx context.Context, tx pgx.Tx, m *fheserve.Model) error {
	// The owner's row lock orders deployments of one owner across
	// nodes, so that two of one name cannot take the same version.
	// (FOR NO KEY UPDATE does not block inserts that reference the row.)
	if _, err := tx.Exec(ctx, `SELECT 1 FROM accounts WHERE id = $1 FOR NO KEY UPDATE`, m.OwnerID); err != nil {
		return err
	}
	var latest int
	err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM models WHERE owner_id = $1 AND name = $2`, m.OwnerID, m.Name).Scan(&latest)
	if err != nil {
		return err
	}
	m.Version = latest + 1
	_, err = tx.Exec(ctx, `INSERT INTO models (id, owner_id, name, version, status, allow, packing, log_n,
		input_shape, output_shape, batch_size, rotations, output_error, plan_fingerprint, params_fingerprint,
		model_bytes, plan_json, weights_key, wrapped_key, created_at, retired_at, limits, sealed, max_sealed_keysets, labels)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25)`,
		m.ID, m.OwnerID, m.Name, m.Version, m.Status, mustJSON(nonNil(m.Allow)), m.Packing, m.LogN,
		mustJSON(m.InputShape), mustJSON(m.OutputShape), m.BatchSize, m.Rotations, m.OutputError, m.PlanFingerprint, m.ParamsFingerprint,
		m.ModelBytes, bytesOf(m.PlanJSON), m.WeightsKey, bytesOf(m.WrappedKey), storerows.TS(m.CreatedAt), storerows.TSPtr(m.RetiredAt), mustJSON(m.Limits), m.Sealed, m.MaxSealedKeySets, mustJSON(nonNil(m.Labels)))
	return conflict(err, "model %q exists", m.ID)
}

// bytesOf stores nil as empty bytes: pgx writes a nil slice as NULL.
func bytesOf(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Model implements fheserve.Store.
func (s *Store) Model(ctx context.Context, id string) (*fheserve.Model, error) {
	m, err := storerows.ScanModel(s.db.QueryRow(ctx, `SELECT `+storerows.ModelCols+storerows.ModelFrom+` WHERE m.id = $1`, id))
	return m, notFound(err, "no model %q", id)
}

// Models implements fheserve.Store.
func (s *Store) Models(ctx context.Context, f fheserve.ModelFilter) ([]*fheserve.Model, error) {
	var w where
	w.eq("m.owner_id", f.OwnerID)
	w.eq("m.name", f.Name)
	w.eq("m.status", f.Status)
	return collect(ctx, s.db, storerows.ScanModel, `SELECT `+storerows.ModelCols+storerows.ModelFrom+w.String()+` ORDER BY m.created_at, m.id`, w.args...)
}

// UpdateModel implements fheserve.Store.
func (s *Store) UpdateModel(ctx context.Context, m *fheserve.Model) error {
	res, err := s.db.Exec(ctx, `UPDATE models SET status = $1, retired_at = $2, allow = $3, limits = $4 WHERE id = $5`,
		m.Status, storerows.TSPtr(m.RetiredAt), mustJSON(nonNil(m.Allow)), mustJSON(m.Limits), m.ID)
	return updated(res, err, "no model %q", m.ID)
}
