package postgres

import (
	"context"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/internal/storerows"
)

// CreateKeySet implements fheserve.Store.
func (s *Store) CreateKeySet(ctx context.Context, k *fheserve.KeySet) error {
	_, err := s.db.Exec(ctx, `INSERT INTO keysets (id, account_id, model_id, fingerprint, params_fingerprint,
		size, status, blob_key, created_at, revoked_at, replaced_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		k.ID, k.AccountID, k.ModelID, k.Fingerprint, k.ParamsFingerprint, k.Size, k.Status, k.BlobKey,
		storerows.TS(k.CreatedAt), storerows.TSPtr(k.RevokedAt), k.ReplacedBy)
	return conflict(err, "key set %q exists", k.ID)
}

// KeySet implements fheserve.Store.
func (s *Store) KeySet(ctx context.Context, id string) (*fheserve.KeySet, error) {
	k, err := storerows.ScanKeySet(s.db.QueryRow(ctx, `SELECT `+storerows.KeySetCols+storerows.KeySetFrom+` WHERE k.id = $1`, id))
	return k, notFound(err, "no key set %q", id)
}

// KeySets implements fheserve.Store.
func (s *Store) KeySets(ctx context.Context, f fheserve.KeySetFilter) ([]*fheserve.KeySet, error) {
	var w where
	w.eq("k.account_id", f.AccountID)
	w.eq("k.model_id", f.ModelID)
	w.eq("k.status", f.Status)
	return collect(ctx, s.db, storerows.ScanKeySet, `SELECT `+storerows.KeySetCols+storerows.KeySetFrom+w.String()+` ORDER BY k.created_at, k.id`, w.args...)
}

// UpdateKeySet implements fheserve.Store.
func (s *Store) UpdateKeySet(ctx context.Context, k *fheserve.KeySet) error {
	res, err := s.db.Exec(ctx, `UPDATE keysets SET status = $1, revoked_at = $2, replaced_by = $3 WHERE id = $4`,
		k.Status, storerows.TSPtr(k.RevokedAt), k.ReplacedBy, k.ID)
	return updated(res, err, "no key set %q", k.ID)
}
