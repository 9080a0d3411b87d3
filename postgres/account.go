package postgres

import (
	"context"

	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/internal/storerows"
)

// CreateAccount implements fheserve.Store.
func (s *Store) CreateAccount(ctx context.Context, a *fheserve.Account) error {
	_, err := s.db.Exec(ctx, `INSERT INTO accounts (`+storerows.AccountCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		a.ID, a.Username, a.Role, a.Status, a.PasswordHash, storerows.TS(a.CreatedAt), storerows.TSPtr(a.ReviewedAt), a.ReviewedBy)
	return conflict(err, "username %q is taken", a.Username)
}

// Account implements fheserve.Store.
func (s *Store) Account(ctx context.Context, id string) (*fheserve.Account, error) {
	a, err := storerows.ScanAccount(s.db.QueryRow(ctx, `SELECT `+storerows.AccountCols+` FROM accounts WHERE id = $1`, id))
	return a, notFound(err, "no account %q", id)
}

// AccountByUsername implements fheserve.Store.
func (s *Store) AccountByUsername(ctx context.Context, username string) (*fheserve.Account, error) {
	a, err := storerows.ScanAccount(s.db.QueryRow(ctx, `SELECT `+storerows.AccountCols+` FROM accounts WHERE username = $1`, username))
	return a, notFound(err, "no account %q", username)
}

// Accounts implements fheserve.Store.
func (s *Store) Accounts(ctx context.Context, f fheserve.AccountFilter) ([]*fheserve.Account, error) {
	var w where
	w.eq("status", f.Status)
	w.eq("role", f.Role)
	return collect(ctx, s.db, storerows.ScanAccount, `SELECT `+storerows.AccountCols+` FROM accounts`+w.String()+` ORDER BY created_at, username`, w.args...)
}

// UpdateAccount implements fheserve.Store.
func (s *Store) UpdateAccount(ctx context.Context, a *fheserve.Account) error {
	res, err := s.db.Exec(ctx, `UPDATE accounts SET status = $1, reviewed_at = $2, reviewed_by = $3 WHERE id = $4`,
		a.Status, storerows.TSPtr(a.ReviewedAt), a.ReviewedBy, a.ID)
	return updated(res, err, "no account %q", a.ID)
}

// CreateToken implements fheserve.Store.
func (s *Store) CreateToken(ctx context.Context, t *fheserve.Token) error {
	_, err := s.db.Exec(ctx, `INSERT INTO tokens (`+storerows.TokenCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		t.ID, t.Hash, t.AccountID, t.Kind, t.Name, storerows.TS(t.CreatedAt), storerows.TS(t.ExpiresAt), storerows.TSPtr(t.RevokedAt))
	return conflict(err, "token %q exists", t.ID)
}

// TokenByHash implements fheserve.Store.
func (s *Store) TokenByHash(ctx context.Context, hash string) (*fheserve.Token, error) {
	t, err := storerows.ScanToken(s.db.QueryRow(ctx, `SELECT `+storerows.TokenCols+` FROM tokens WHERE hash = $1`, hash))
	return t, notFound(err, "no such token")
}

// Tokens implements fheserve.Store.
func (s *Store) Tokens(ctx context.Context, accountID string) ([]*fheserve.Token, error) {
	return collect(ctx, s.db, storerows.ScanToken, `SELECT `+storerows.TokenCols+` FROM tokens WHERE account_id = $1 ORDER BY created_at, id`, accountID)
}

// RevokeToken implements fheserve.Store.
func (s *Store) RevokeToken(ctx context.Context, accountID, tokenID string, at time.Time) error {
	res, err := s.db.Exec(ctx, `UPDATE tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 AND account_id = $3`,
		storerows.TS(at), tokenID, accountID)
	return updated(res, err, "no token %q", tokenID)
}

// RevokeTokens implements fheserve.Store.
func (s *Store) RevokeTokens(ctx context.Context, accountID string, at time.Time) error {
	_, err := s.db.Exec(ctx, `UPDATE tokens SET revoked_at = $1 WHERE account_id = $2 AND revoked_at IS NULL`, storerows.TS(at), accountID)
	return err
}
