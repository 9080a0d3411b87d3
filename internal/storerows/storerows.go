// Package storerows holds what the SQLite and PostgreSQL stores share of
// the service's tables: the columns a query selects and how a row of them
// becomes a value. The two schemas keep the same columns in the same
// types (times as Unix nanoseconds, JSON as text), so one scan serves both
// drivers; NULL reads into a nil *int64 with either.
package storerows

import (
	"encoding/json"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/internal/sqlrows"
)

// TS is how a time is stored: Unix nanoseconds, UTC, in a 64-bit integer
// column in both stores (PostgreSQL's timestamptz keeps microseconds only).
func TS(t time.Time) int64 { return t.UnixNano() }

// TSPtr is how a time that may be absent is stored: nil for NULL.
func TSPtr(t *time.Time) *int64 {
	if t == nil {
		return nil
	}
	n := t.UnixNano()
	return &n
}

// FromTS reads a stored time.
func FromTS(n int64) time.Time { return time.Unix(0, n).UTC() }

// FromNull reads a stored time that may be NULL.
func FromNull(n *int64) *time.Time {
	if n == nil {
		return nil
	}
	t := FromTS(*n)
	return &t
}

// ScanAccount reads an account from a row of AccountCols.
func ScanAccount(r sqlrows.Scanner) (*fheserve.Account, error) {
	var a fheserve.Account
	var created int64
	var reviewed *int64
	if err := r.Scan(&a.ID, &a.Username, &a.Role, &a.Status, &a.PasswordHash, &created, &reviewed, &a.ReviewedBy); err != nil {
		return nil, err
	}
	a.CreatedAt, a.ReviewedAt = FromTS(created), FromNull(reviewed)
	return &a, nil
}

// ScanToken reads a token from a row of TokenCols.
func ScanToken(r sqlrows.Scanner) (*fheserve.Token, error) {
	var t fheserve.Token
	var created, expires int64
	var revoked *int64
	if err := r.Scan(&t.ID, &t.Hash, &t.AccountID, &t.Kind, &t.Name, &created, &expires, &revoked); err != nil {
		return nil, err
	}
	t.CreatedAt, t.ExpiresAt, t.RevokedAt = FromTS(created), FromTS(expires), FromNull(revoked)
	return &t, nil
}

// AccountCols are the columns ScanAccount reads, in its order.
const AccountCols = `id, username, role, status, password_hash, created_at, reviewed_at, reviewed_by`

// TokenCols are the columns ScanToken reads, in its order.
const TokenCols = `id, hash, account_id, kind, name, created_at, expires_at, revoked_at`

// ScanJob reads a job from a row of JobCols.
func ScanJob(r sqlrows.Scanner) (*fheserve.Job, error) {
	var j fheserve.Job
	var created int64
	var started, finished, expires *int64
	err := r.Scan(&j.ID, &j.AccountID, &j.Username, &j.ModelID, &j.KeySetID, &j.Status, &j.Samples, &j.Done, &j.Total, &j.ErrorCode,
		&j.Error, &j.Attempts, &j.InputBytes, &j.ResultBytes, &j.InputKey, &j.ResultKey, &created, &started,
		&finished, &expires, &j.Claim)
	if err != nil {
		return nil, err
	}
	j.CreatedAt, j.StartedAt, j.FinishedAt, j.ExpiresAt = FromTS(created), FromNull(started), FromNull(finished), FromNull(expires)
	return &j, nil
}

// JobCols are the columns ScanJob reads, in its order.
const JobCols = `j.id, j.account_id, a.username, j.model_id, j.keyset_id, j.status, j.samples, j.done, j.total, j.error_code,
	j.error, j.attempts, j.input_bytes, j.result_bytes, j.input_key, j.result_key, j.created_at, j.started_at,
	j.finished_at, j.expires_at, j.claim`

// JobFrom is the FROM clause that JobCols selects from.
const JobFrom = ` FROM jobs j JOIN accounts a ON a.id = j.account_id`

// ScanKeySet reads a key set from a row of KeySetCols.
func ScanKeySet(r sqlrows.Scanner) (*fheserve.KeySet, error) {
	var k fheserve.KeySet
	var created int64
	var revoked *int64
	err := r.Scan(&k.ID, &k.AccountID, &k.Username, &k.ModelID, &k.Fingerprint, &k.ParamsFingerprint, &k.Size,
		&k.Status, &k.BlobKey, &created, &revoked, &k.ReplacedBy)
	if err != nil {
		return nil, err
	}
	k.CreatedAt, k.RevokedAt = FromTS(created), FromNull(revoked)
	return &k, nil
}

// KeySetCols are the columns ScanKeySet reads, in its order.
const KeySetCols = `k.id, k.account_id, a.username, k.model_id, k.fingerprint, k.params_fingerprint, k.size,
	k.status, k.blob_key, k.created_at, k.revoked_at, k.replaced_by`

// KeySetFrom is the FROM clause that KeySetCols selects from.
const KeySetFrom = ` FROM keysets k JOIN accounts a ON a.id = k.account_id`

// ScanModel reads a model from a row of ModelCols.
func ScanModel(r sqlrows.Scanner) (*fheserve.Model, error) {
	var m fheserve.Model
	var allow, in, out, limits, labels string
	var created int64
	var retired *int64
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
	m.CreatedAt, m.RetiredAt = FromTS(created), FromNull(retired)
	return &m, nil
}

// ModelCols are the columns ScanModel reads, in its order.
const ModelCols = `m.id, m.owner_id, a.username, m.name, m.version, m.status, m.allow, m.packing, m.log_n,
	m.input_shape, m.output_shape, m.batch_size, m.rotations, m.output_error, m.plan_fingerprint,
	m.params_fingerprint, m.model_bytes, m.plan_json, m.weights_key, m.wrapped_key, m.created_at, m.retired_at, m.limits,
	m.sealed, m.max_sealed_keysets, m.labels`

// ModelFrom is the FROM clause that ModelCols selects from.
const ModelFrom = ` FROM models m JOIN accounts a ON a.id = m.owner_id`

// GalleryCols are a gallery's columns, in the order the stores scan them.
const GalleryCols = `g.model_id, m.name, a.username, g.dim, g.metric, g.threshold, g.capacity, g.templates, g.revision,
	g.blob_key, g.updated_at`

// GalleryFrom is the FROM clause that GalleryCols selects from.
const GalleryFrom = ` FROM galleries g JOIN models m ON m.id = g.model_id JOIN accounts a ON a.id = m.owner_id`
