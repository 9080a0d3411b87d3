package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/internal/sqlrows"
)

const modelCols = `m.id, m.owner_id, a.username, m.name, m.version, m.status, m.allow, m.packing, m.log_n,
	m.input_shape, m.output_shape, m.batch_size, m.rotations, m.output_error, m.plan_fingerprint,
	m.params_fingerprint, m.model_bytes, m.plan_json, m.weights_key, m.wrapped_key, m.created_at, m.retired_at, m.limits,
	m.sealed, m.max_sealed_keysets, m.labels`

const modelFrom = ` FROM models m JOIN accounts a ON a.id = m.owner_id`

func scanModel(r scanner) (*fheserve.Model, error) {
	var m fheserve.Model
	var allow, in, out, limits, labels string
	var created int64
	var retired sql.NullInt64
	err := r.Scan(&m.ID, &m.OwnerID, &m.Owner, &m.Name, &m.Version, &m.Status, &allow, &m.Packing, &m.LogN,
		&in, &out, &m.BatchSize, &m.Rotations, &m.OutputError, &m.PlanFingerprint,
		&m.ParamsFingerprint, &m.ModelBytes, &m.PlanJSON, &m.WeightsKey, &m.WrappedKey, &created, &retired, &limits,
		&m.Sealed, &m.MaxSealedKeySets, &labels)
	if err != nil {
		return nil, err
	}
	for _, f := range []struct {
		s string
		v any
	}{{allow, &m.Allow}, {in, &m.InputShape}, {out, &m.OutputShape}, {limits, &m.Limits}, {labels, &m.Labels}} {
		if err := json.Unmarshal([]byte(f.s), f.v); err != nil {
			return nil, err
		}
	}
	m.CreatedAt, m.RetiredAt = fromTS(created), fromNull(retired)
	return &m, nil
}

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
		m.ModelBytes, m.PlanJSON, m.WeightsKey, m.WrappedKey, ts(m.CreatedAt), tsPtr(m.RetiredAt), mustJSON(m.Limits), m.Sealed, m.MaxSealedKeySets, mustJSON(nonNil(m.Labels)))
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
	m, err := scanModel(s.db.QueryRowContext(ctx, `SELECT `+modelCols+modelFrom+` WHERE m.id = ?`, id))
	return m, notFound(err, "no model %q", id)
}

// Models implements fheserve.Store.
func (s *Store) Models(ctx context.Context, f fheserve.ModelFilter) ([]*fheserve.Model, error) {
	var w where
	w.eq("m.owner_id", f.OwnerID)
	w.eq("m.name", f.Name)
	w.eq("m.status", f.Status)
	return sqlrows.Collect(ctx, s.db, scanModel, `SELECT `+modelCols+modelFrom+w.String()+` ORDER BY m.created_at, m.id`, w.args...)
}

// UpdateModel implements fheserve.Store.
func (s *Store) UpdateModel(ctx context.Context, m *fheserve.Model) error {
	res, err := s.db.ExecContext(ctx, `UPDATE models SET status = ?, retired_at = ?, allow = ?, limits = ? WHERE id = ?`,
		m.Status, tsPtr(m.RetiredAt), mustJSON(nonNil(m.Allow)), mustJSON(m.Limits), m.ID)
	return updated(res, err, "no model %q", m.ID)
}
