package postgres

import (
	"context"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/internal/storerows"
	"github.com/jackc/pgx/v5"
)

// CreateGallery implements fheserve.Store.
func (s *Store) CreateGallery(ctx context.Context, m *fheserve.Model, g *fheserve.Gallery) error {
	return pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		if err := createModel(ctx, tx, m); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO galleries (model_id, dim, metric, threshold, capacity, templates, revision,
		blob_key, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			m.ID, g.Dim, g.Metric, g.Threshold, g.Capacity, g.Templates, g.Revision, g.BlobKey, storerows.TS(g.UpdatedAt))
		return conflict(err, "gallery %q exists", m.ID)
	})
}

// Gallery implements fheserve.Store.
func (s *Store) Gallery(ctx context.Context, modelID string) (*fheserve.Gallery, error) {
	var g fheserve.Gallery
	var updatedAt int64
	err := s.db.QueryRow(ctx, `SELECT `+storerows.GalleryCols+storerows.GalleryFrom+` WHERE g.model_id = $1`, modelID).Scan(
		&g.ModelID, &g.Name, &g.Owner, &g.Dim, &g.Metric, &g.Threshold, &g.Capacity, &g.Templates, &g.Revision,
		&g.BlobKey, &updatedAt)
	if err != nil {
		return nil, notFound(err, "no gallery %q", modelID)
	}
	g.UpdatedAt = storerows.FromTS(updatedAt)
	return &g, nil
}

// UpdateGallery implements fheserve.Store: a compare-and-set on the
// revision, so that of two nodes enrolling at once one wins and the other
// is told to try again.
func (s *Store) UpdateGallery(ctx context.Context, g *fheserve.Gallery, revision int) error {
	tag, err := s.db.Exec(ctx, `UPDATE galleries SET templates = $1, revision = $2, blob_key = $3, updated_at = $4
		WHERE model_id = $5 AND revision = $6`, g.Templates, g.Revision, g.BlobKey, storerows.TS(g.UpdatedAt), g.ModelID, revision)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		if _, err := s.Gallery(ctx, g.ModelID); err != nil {
			return err
		}
		return fheserve.Errorf(fheserve.ECONFLICT, "gallery %s changed while this change was made (it is past revision %d): list it and try again", g.ModelID, revision)
	}
	return nil
}
