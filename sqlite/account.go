package sqlite

import (
	"context"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/internal/sqlrows"
	"github.com/fheserve/fheserve/internal/storerows"
)

// CreateAccount implements fheserve.Store.
func (s *Store) CreateAccount(ctx context.Context, a *fheserve.Account) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO accounts (`+storerows.AccountCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		a.ID, a.Username, a.Role, a.Status, a.PasswordHash, storerows.TS(a.CreatedAt), storerows.TSPtr(a.ReviewedAt), a.ReviewedBy)
	return conflict(err, "username %q is taken", a.Username)
}

// Account implements fheserve.Store.
func (s *Store) Account(ctx context.Context, id string) (*fheserve.Account, error) {
	a, err := storerows.ScanAccount(s.db.QueryRowContext(ctx, `SELECT `+storerows.AccountCols+` FROM accounts WHERE id = ?`, id))
	return a, notFound(err, "no account %q", id)
}

// AccountByUsername implements fheserve.Store.
func (s *Store) AccountByUsername(ctx context.Context, username string) (*fheserve.Account, error) {
	a, err := storerows.ScanAccount(s.db.QueryRowContext(ctx, `SELECT `+storerows.AccountCols+` FROM accounts WHERE username = ?`, username))
	return a, notFound(err, "no account %q", username)
}

// Accounts implements fheserve.Store.
func (s *Store) Accounts(ctx context.Context, f fheserve.AccountFilter) ([]*fheserve.Account, error) {
	var w where
	w.eq("status", f.Status)
	w.eq("role", f.Role)
	return sqlrows.Collect(ctx, s.db, storerows.ScanAccount, `SELECT `+storerows.AccountCols+` FROM accounts`+w.String()+` ORDER BY created_at, username`, w.args...)
}

// UpdateAccount implements fheserve.Store.
func (s *Store) UpdateAccount(ctx context.Context, a *fheserve.Account) error {
	res, err := s.db.ExecContext(ctx, `UPDATE accounts SET status = ?, reviewed_at = ?, reviewed_by = ? WHERE id = ?`,
		a.Status, storerows.TSPtr(a.ReviewedAt), a.ReviewedBy, a.ID)
	return updated(res, err, "no account %q", a.ID)
}

// CreateToken implements fheserve.Store.
func (s *Store) CreateToken(ctx context.Context, t *fheserve.Token) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO tokens (`+storerows.TokenCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.Hash, t.AccountID, t.Kind, t.Name, storerows.TS(t.CreatedAt), storerows.TS(t.ExpiresAt), storerows.TSPtr(t.RevokedAt))
	return conflict(err, "token %q exists", t.ID)
}

// TokenByHash implements fheserve.Store.
func (s *Store) TokenByHash(ctx context.Context, hash string) (*fheserve.Token, error) {
	t, err := storerows.ScanToken(s.db.QueryRowContext(ctx, `SELECT `+storerows.TokenCols+` FROM tokens WHERE hash = ?`, hash))
	return t, notFound(err, "no such token")
}

// Tokens implements fheserve.Store.
func (s *Store) Tokens(ctx context.Context, accountID string) ([]*fheserve.Token, error) {
	return sqlrows.Collect(ctx, s.db, storerows.ScanToken, `SELECT `+storerows.TokenCols+` FROM tokens WHERE account_id = ? ORDER BY created_at, id`, accountID)
}

// RevokeToken implements fheserve.Store.
func (s *Store) RevokeToken(ctx context.Context, accountID, tokenID string, at time.Time) error {
	res, err := s.db.ExecContext(ctx, `UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ? AND account_id = ?`,
		storerows.TS(at), tokenID, accountID)
	return updated(res, err, "no token %q", tokenID)
}

// RevokeTokens implements fheserve.Store.
func (s *Store) RevokeTokens(ctx context.Context, accountID string, at time.Time) error {
	_, err := s.db.ExecContext(ctx, `UPDATE tokens SET revoked_at = ? WHERE account_id = ? AND revoked_at IS NULL`, storerows.TS(at), accountID)
	return err
}
