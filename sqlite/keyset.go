package sqlite

import (
	"context"
	"database/sql"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/internal/sqlrows"
)

const keySetCols = `k.id, k.account_id, a.username, k.model_id, k.fingerprint, k.params_fingerprint, k.size,
	k.status, k.blob_key, k.created_at, k.revoked_at, k.replaced_by`

const keySetFrom = ` FROM keysets k JOIN accounts a ON a.id = k.account_id`

func scanKeySet(r scanner) (*fheserve.KeySet, error) {
	var k fheserve.KeySet
	var created int64
	var revoked sql.NullInt64
	err := r.Scan(&k.ID, &k.AccountID, &k.Username, &k.ModelID, &k.Fingerprint, &k.ParamsFingerprint, &k.Size,
		&k.Status, &k.BlobKey, &created, &revoked, &k.ReplacedBy)
	if err != nil {
		return nil, err
	}
	k.CreatedAt, k.RevokedAt = fromTS(created), fromNull(revoked)
	return &k, nil
}

// CreateKeySet implements fheserve.Store.
func (s *Store) CreateKeySet(ctx context.Context, k *fheserve.KeySet) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO keysets (id, account_id, model_id, fingerprint, params_fingerprint,
		size, status, blob_key, created_at, revoked_at, replaced_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		k.ID, k.AccountID, k.ModelID, k.Fingerprint, k.ParamsFingerprint, k.Size, k.Status, k.BlobKey,
		ts(k.CreatedAt), tsPtr(k.RevokedAt), k.ReplacedBy)
	return conflict(err, "key set %q exists", k.ID)
}

// KeySet implements fheserve.Store.
func (s *Store) KeySet(ctx context.Context, id string) (*fheserve.KeySet, error) {
	k, err := scanKeySet(s.db.QueryRowContext(ctx, `SELECT `+keySetCols+keySetFrom+` WHERE k.id = ?`, id))
	return k, notFound(err, "no key set %q", id)
}

// KeySets implements fheserve.Store.
func (s *Store) KeySets(ctx context.Context, f fheserve.KeySetFilter) ([]*fheserve.KeySet, error) {
	var w where
	w.eq("k.account_id", f.AccountID)
	w.eq("k.model_id", f.ModelID)
	w.eq("k.status", f.Status)
	return sqlrows.Collect(ctx, s.db, scanKeySet, `SELECT `+keySetCols+keySetFrom+w.String()+` ORDER BY k.created_at, k.id`, w.args...)
}

// UpdateKeySet implements fheserve.Store.
func (s *Store) UpdateKeySet(ctx context.Context, k *fheserve.KeySet) error {
	res, err := s.db.ExecContext(ctx, `UPDATE keysets SET status = ?, revoked_at = ?, replaced_by = ? WHERE id = ?`,
		k.Status, tsPtr(k.RevokedAt), k.ReplacedBy, k.ID)
	return updated(res, err, "no key set %q", k.ID)
}
