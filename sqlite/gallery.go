package sqlite

import (
	"context"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/internal/storerows"
)

// CreateGallery implements fheserve.Store.
func (s *Store) CreateGallery(ctx context.Context, m *fheserve.Model, g *fheserve.Gallery) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := createModel(ctx, tx, m); err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO galleries (model_id, dim, metric, threshold, capacity, templates, revision,
		blob_key, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		m.ID, g.Dim, g.Metric, g.Threshold, g.Capacity, g.Templates, g.Revision, g.BlobKey, storerows.TS(g.UpdatedAt))
	if err != nil {
		return conflict(err, "gallery %q exists", m.ID)
	}
	return tx.Commit()
}

// Gallery implements fheserve.Store.
func (s *Store) Gallery(ctx context.Context, modelID string) (*fheserve.Gallery, error) {
	var g fheserve.Gallery
	var updatedAt int64
	err := s.db.QueryRowContext(ctx, `SELECT `+storerows.GalleryCols+storerows.GalleryFrom+` WHERE g.model_id = ?`, modelID).Scan(
		&g.ModelID, &g.Name, &g.Owner, &g.Dim, &g.Metric, &g.Threshold, &g.Capacity, &g.Templates, &g.Revision,
		&g.BlobKey, &updatedAt)
	if err != nil {
		return nil, notFound(err, "no gallery %q", modelID)
	}
	g.UpdatedAt = storerows.FromTS(updatedAt)
	return &g, nil
}

// UpdateGallery implements fheserve.Store.
func (s *Store) UpdateGallery(ctx context.Context, g *fheserve.Gallery, revision int) error {
	res, err := s.db.ExecContext(ctx, `UPDATE galleries SET templates = ?, revision = ?, blob_key = ?, updated_at = ?
		WHERE model_id = ? AND revision = ?`, g.Templates, g.Revision, g.BlobKey, storerows.TS(g.UpdatedAt), g.ModelID, revision)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		if _, err := s.Gallery(ctx, g.ModelID); err != nil {
			return err
		}
		return fheserve.Errorf(fheserve.ECONFLICT, "gallery %s changed while this change was made (it is past revision %d): list it and try again", g.ModelID, revision)
	}
	return nil
}
