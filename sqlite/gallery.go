package sqlite

import (
	"context"

	"github.com/fheserve/fheserve"
)

const galleryCols = `g.model_id, m.name, a.username, g.dim, g.metric, g.threshold, g.capacity, g.templates, g.revision,
	g.blob_key, g.updated_at`

const galleryFrom = ` FROM galleries g JOIN models m ON m.id = g.model_id JOIN accounts a ON a.id = m.owner_id`

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
		m.ID, g.Dim, g.Metric, g.Threshold, g.Capacity, g.Templates, g.Revision, g.BlobKey, ts(g.UpdatedAt))
	if err != nil {
		return conflict(err, "gallery %q exists", m.ID)
	}
	return tx.Commit()
}

// Gallery implements fheserve.Store.
func (s *Store) Gallery(ctx context.Context, modelID string) (*fheserve.Gallery, error) {
	var g fheserve.Gallery
	var updatedAt int64
	err := s.db.QueryRowContext(ctx, `SELECT `+galleryCols+galleryFrom+` WHERE g.model_id = ?`, modelID).Scan(
		&g.ModelID, &g.Name, &g.Owner, &g.Dim, &g.Metric, &g.Threshold, &g.Capacity, &g.Templates, &g.Revision,
		&g.BlobKey, &updatedAt)
	if err != nil {
		return nil, notFound(err, "no gallery %q", modelID)
	}
	g.UpdatedAt = fromTS(updatedAt)
	return &g, nil
}

// UpdateGallery implements fheserve.Store.
func (s *Store) UpdateGallery(ctx context.Context, g *fheserve.Gallery, revision int) error {
	res, err := s.db.ExecContext(ctx, `UPDATE galleries SET templates = ?, revision = ?, blob_key = ?, updated_at = ?
		WHERE model_id = ? AND revision = ?`, g.Templates, g.Revision, g.BlobKey, ts(g.UpdatedAt), g.ModelID, revision)
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
