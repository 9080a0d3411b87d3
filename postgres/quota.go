package postgres

import (
	"context"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/internal/storerows"
	"github.com/jackc/pgx/v5"
)

var _ fheserve.QuotaStore = (*Store)(nil)

// ReserveSamples implements fheserve.QuotaStore. The model's row lock
// (FOR NO KEY UPDATE: it does not block the inserts of jobs that
// reference the model) orders the reservations on one model across nodes;
// a reservation's count is read after the lock is taken, so it sees every
// reservation committed before.
func (s *Store) ReserveSamples(ctx context.Context, r *fheserve.SampleReservation) (used []int, ok bool, err error) {
	err = pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		used, ok = nil, false
		err := tx.QueryRow(ctx, `SELECT 1 FROM models WHERE id = $1 FOR NO KEY UPDATE`, r.ModelID).Scan(new(int))
		if err != nil {
			return notFound(err, "no model %q", r.ModelID)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM quota_reservations WHERE model_id = $1 AND until <= $2`, r.ModelID, storerows.TS(r.At)); err != nil {
			return err
		}
		ok = true
		for _, q := range r.Quotas {
			var n int
			err := tx.QueryRow(ctx, `SELECT
				(SELECT COALESCE(SUM(samples), 0) FROM jobs WHERE model_id = $1 AND ($2 = '' OR account_id = $2) AND created_at >= $3) +
				(SELECT COALESCE(SUM(samples), 0) FROM quota_reservations WHERE model_id = $1 AND ($2 = '' OR account_id = $2))`,
				r.ModelID, q.AccountID, storerows.TS(r.Since)).Scan(&n)
			if err != nil {
				return err
			}
			used = append(used, n)
			ok = ok && n+r.Samples <= q.Limit
		}
		if !ok {
			return nil
		}
		_, err = tx.Exec(ctx, `INSERT INTO quota_reservations (id, model_id, account_id, samples, until) VALUES ($1, $2, $3, $4, $5)`,
			r.ID, r.ModelID, r.AccountID, r.Samples, storerows.TS(r.Until))
		return conflict(err, "reservation %q exists", r.ID)
	})
	return used, ok, err
}

// ReleaseSamples implements fheserve.QuotaStore.
func (s *Store) ReleaseSamples(ctx context.Context, id string) error {
	_, err := s.db.Exec(ctx, `DELETE FROM quota_reservations WHERE id = $1`, id)
	return err
}
