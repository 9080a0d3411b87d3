package postgres

import (
	"context"

	"github.com/fheserve/fheserve"
	"github.com/jackc/pgx/v5"
)

const keySetCols = `k.id, k.account_id, a.username, k.model_id, k.fingerprint, k.params_fingerprint, k.size,
	k.status, k.blob_key, k.created_at, k.revoked_at, k.replaced_by`

const keySetFrom = ` FROM keysets k JOIN accounts a ON a.id = k.account_id`

func scanKeySet(r pgx.Row) (*fheserve.KeySet, error) {
	var k fheserve.KeySet
	var created int64
	var revoked *int64
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
	_, err := s.db.Exec(ctx, `INSERT INTO keysets (id, account_id, model_id, fingerprint, params_fingerprint,
		size, status, blob_key, created_at, revoked_at, replaced_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		k.ID, k.AccountID, k.ModelID, k.Fingerprint, k.ParamsFingerprint, k.Size, k.Status, k.BlobKey,
		ts(k.CreatedAt), tsPtr(k.RevokedAt), k.ReplacedBy)
	return conflict(err, "key set %q exists", k.ID)
}

// KeySet implements fheserve.Store.
func (s *Store) KeySet(ctx context.Context, id string) (*fheserve.KeySet, error) {
	k, err := scanKeySet(s.db.QueryRow(ctx, `SELECT `+keySetCols+keySetFrom+` WHERE k.id = $1`, id))
	return k, notFound(err, "no key set %q", id)
}

// KeySets implements fheserve.Store.
func (s *Store) KeySets(ctx context.Context, f fheserve.KeySetFilter) ([]*fheserve.KeySet, error) {
	var w where
	w.eq("k.account_id", f.AccountID)
	w.eq("k.model_id", f.ModelID)
	w.eq("k.status", f.Status)
	return collect(ctx, s.db, scanKeySet, `SELECT `+keySetCols+keySetFrom+w.String()+` ORDER BY k.created_at, k.id`, w.args...)
}

// UpdateKeySet implements fheserve.Store.
func (s *Store) UpdateKeySet(ctx context.Context, k *fheserve.KeySet) error {
	res, err := s.db.Exec(ctx, `UPDATE keysets SET status = $1, revoked_at = $2, replaced_by = $3 WHERE id = $4`,
		k.Status, tsPtr(k.RevokedAt), k.ReplacedBy, k.ID)
	return updated(res, err, "no key set %q", k.ID)
}
