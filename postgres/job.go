package postgres

import (
	"context"
	"strconv"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/internal/storerows"
)

// CreateJob implements fheserve.Store.
func (s *Store) CreateJob(ctx context.Context, j *fheserve.Job) error {
	_, err := s.db.Exec(ctx, `INSERT INTO jobs (id, account_id, model_id, keyset_id, status, samples, done, total,
		error_code, error, attempts, input_bytes, result_bytes, input_key, result_key, created_at, started_at,
		finished_at, expires_at, claim) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)`,
		j.ID, j.AccountID, j.ModelID, j.KeySetID, j.Status, j.Samples, j.Done, j.Total, j.ErrorCode, j.Error, j.Attempts,
		j.InputBytes, j.ResultBytes, j.InputKey, j.ResultKey, storerows.TS(j.CreatedAt), storerows.TSPtr(j.StartedAt),
		storerows.TSPtr(j.FinishedAt), storerows.TSPtr(j.ExpiresAt), j.Claim)
	return conflict(err, "job %q exists", j.ID)
}

// Job implements fheserve.Store.
func (s *Store) Job(ctx context.Context, id string) (*fheserve.Job, error) {
	j, err := storerows.ScanJob(s.db.QueryRow(ctx, `SELECT `+storerows.JobCols+storerows.JobFrom+` WHERE j.id = $1`, id))
	return j, notFound(err, "no job %q", id)
}

func jobWhere(f fheserve.JobFilter) *where {
	var w where
	w.eq("j.account_id", f.AccountID)
	w.eq("j.model_id", f.ModelID)
	w.in("j.status", f.Statuses)
	if !f.ExpiresBefore.IsZero() {
		w.conds = append(w.conds, "j.expires_at < "+w.arg(storerows.TS(f.ExpiresBefore)))
	}
	if !f.CreatedAfter.IsZero() {
		w.conds = append(w.conds, "j.created_at >= "+w.arg(storerows.TS(f.CreatedAfter)))
	}
	return &w
}

// CountJobs implements fheserve.Store.
func (s *Store) CountJobs(ctx context.Context, f fheserve.JobFilter) (int, error) {
	w := jobWhere(f)
	var n int
	err := s.db.QueryRow(ctx, `SELECT COUNT(*) FROM jobs j`+w.String(), w.args...).Scan(&n)
	return n, err
}

// CountSamples implements fheserve.Store.
func (s *Store) CountSamples(ctx context.Context, f fheserve.JobFilter) (int, error) {
	w := jobWhere(f)
	var n int
	err := s.db.QueryRow(ctx, `SELECT COALESCE(SUM(j.samples), 0) FROM jobs j`+w.String(), w.args...).Scan(&n)
	return n, err
}

// Jobs implements fheserve.Store.
func (s *Store) Jobs(ctx context.Context, f fheserve.JobFilter) ([]*fheserve.Job, error) {
	w := jobWhere(f)
	q := `SELECT ` + storerows.JobCols + storerows.JobFrom + w.String() + ` ORDER BY j.seq`
	if f.Limit > 0 {
		q += " LIMIT " + strconv.Itoa(f.Limit)
	}
	return collect(ctx, s.db, storerows.ScanJob, q, w.args...)
}

// UpdateJob implements fheserve.Store.
func (s *Store) UpdateJob(ctx context.Context, j *fheserve.Job) error {
	res, err := s.db.Exec(ctx, `UPDATE jobs SET status = $1, samples = $2, done = $3, total = $4, error_code = $5, error = $6,
		attempts = $7, input_bytes = $8, result_bytes = $9, input_key = $10, result_key = $11, started_at = $12,
		finished_at = $13, expires_at = $14 WHERE id = $15`,
		j.Status, j.Samples, j.Done, j.Total, j.ErrorCode, j.Error, j.Attempts, j.InputBytes, j.ResultBytes, j.InputKey,
		j.ResultKey, storerows.TSPtr(j.StartedAt), storerows.TSPtr(j.FinishedAt), storerows.TSPtr(j.ExpiresAt), j.ID)
	return updated(res, err, "no job %q", j.ID)
}
