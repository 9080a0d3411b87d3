package app

import (
	"context"
	"time"

	"github.com/fheserve/fheserve"
)

// unauthenticated is the error for an anonymous call that needs an account.
func unauthenticated() error {
	return fheserve.Errorf(fheserve.EUNAUTHORIZED, "authentication required: log in first ('fheserve login')")
}

// require checks that who is an active account with one of roles (any
// role if none are given).
func require(who *fheserve.Account, roles ...string) error {
	if who == nil {
		return unauthenticated()
	}
	if !who.Active() {
		return inactive(who)
	}
	if len(roles) == 0 {
		return nil
	}
	for _, r := range roles {
		if who.Role == r {
			return nil
		}
	}
	what := map[string]string{
		fheserve.RoleAdmin: "an administrator",
		fheserve.RoleOwner: "a model owner",
		fheserve.RoleUser:  "a model user",
	}
	return fheserve.Errorf(fheserve.EFORBIDDEN, "only %s may do this; %q is %s", what[roles[0]], who.Username, what[who.Role])
}

func inactive(a *fheserve.Account) error {
	switch a.Status {
	case fheserve.AccountPending:
		return fheserve.Errorf(fheserve.EFORBIDDEN, "account %q is pending approval by an administrator", a.Username)
	case fheserve.AccountRejected:
		return fheserve.Errorf(fheserve.EFORBIDDEN, "the registration of %q was rejected by an administrator", a.Username)
	case fheserve.AccountDisabled:
		return fheserve.Errorf(fheserve.EFORBIDDEN, "account %q is disabled; ask an administrator", a.Username)
	}
	return fheserve.Errorf(fheserve.EFORBIDDEN, "account %q is %s", a.Username, a.Status)
}

// Register creates a pending account.
func (a *App) Register(ctx context.Context, req *fheserve.RegisterRequest) (*fheserve.Account, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if err := a.limits.register(); err != nil {
		return nil, err
	}
	acct := &fheserve.Account{
		ID:           newID("acc"),
		Username:     req.Username,
		Role:         req.Role,
		Status:       fheserve.AccountPending,
		PasswordHash: hashPassword(req.Password),
		CreatedAt:    a.cfg.Now().UTC(),
	}
	if err := a.store.CreateAccount(ctx, acct); err != nil {
		return nil, err
	}
	a.audit(ctx, acct, "account.register", accountObj(acct.ID))
	return acct, nil
}

// InitAdmin creates an active administrator. It is for the operator's
// offline 'fheserve admin init'; there is no endpoint for it.
func (a *App) InitAdmin(ctx context.Context, username, password string) (*fheserve.Account, error) {
	if err := fheserve.ValidUsername(username); err != nil {
		return nil, err
	}
	if err := fheserve.ValidPassword(password); err != nil {
		return nil, err
	}
	now := a.cfg.Now().UTC()
	acct := &fheserve.Account{
		ID:           newID("acc"),
		Username:     username,
		Role:         fheserve.RoleAdmin,
		Status:       fheserve.AccountActive,
		PasswordHash: hashPassword(password),
		CreatedAt:    now,
		ReviewedAt:   &now,
		ReviewedBy:   username,
	}
	if err := a.store.CreateAccount(ctx, acct); err != nil {
		return nil, err
	}
	a.audit(ctx, acct, "account.init_admin", accountObj(acct.ID))
	return acct, nil
}

// Login checks a username and password and returns a session token.
func (a *App) Login(ctx context.Context, req *fheserve.LoginRequest) (*fheserve.Session, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if err := a.limits.login(req.Username, req.Addr); err != nil {
		return nil, err
	}
	acct, err := a.store.AccountByUsername(ctx, req.Username)
	if fheserve.ErrorCode(err) == fheserve.ENOTFOUND {
		checkPassword(dummyHash, req.Password)
		a.limits.loginFailed(req.Addr)
		// No actor: the name typed may be anything, even a password.
		a.auditOutcome(ctx, nil, "auth.login", fheserve.EUNAUTHORIZED)
		return nil, fheserve.Errorf(fheserve.EUNAUTHORIZED, "wrong username or password")
	} else if err != nil {
		return nil, err
	}
	if !checkPassword(acct.PasswordHash, req.Password) {
		a.limits.loginFailed(req.Addr)
		a.auditOutcome(ctx, nil, "auth.login", fheserve.EUNAUTHORIZED, accountObj(acct.ID))
		return nil, fheserve.Errorf(fheserve.EUNAUTHORIZED, "wrong username or password")
	}
	if !acct.Active() {
		err := inactive(acct)
		a.auditOutcome(ctx, acct, "auth.login", fheserve.ErrorCode(err), accountObj(acct.ID))
		return nil, err
	}
	s, err := a.newSession(ctx, acct, fheserve.TokenSession, "", a.cfg.SessionTTL)
	if err != nil {
		return nil, err
	}
	a.audit(ctx, acct, "auth.login", accountObj(acct.ID), tokenObj(s.TokenID))
	return s, nil
}

func (a *App) newSession(ctx context.Context, acct *fheserve.Account, kind, name string, ttl time.Duration) (*fheserve.Session, error) {
	secret, hash := newToken()
	now := a.cfg.Now().UTC()
	t := &fheserve.Token{ID: newID("tok"), Hash: hash, AccountID: acct.ID, Kind: kind, Name: name, CreatedAt: now, ExpiresAt: now.Add(ttl)}
	if err := a.store.CreateToken(ctx, t); err != nil {
		return nil, err
	}
	return &fheserve.Session{Token: secret, TokenID: t.ID, ExpiresAt: t.ExpiresAt, Account: acct}, nil
}

// Authenticate returns the caller a bearer token belongs to. The account
// must be active: a token of a disabled account stops working at once.
func (a *App) Authenticate(ctx context.Context, token string) (*fheserve.Caller, error) {
	invalid := fheserve.Errorf(fheserve.EUNAUTHORIZED, "the token is invalid, expired or revoked: log in again")
	t, err := a.store.TokenByHash(ctx, hashToken(token))
	if fheserve.ErrorCode(err) == fheserve.ENOTFOUND {
		return nil, invalid
	} else if err != nil {
		return nil, err
	}
	acct, err := a.store.Account(ctx, t.AccountID)
	if err != nil {
		return nil, err
	}
	// The account's standing comes first: it explains a revoked token.
	if !acct.Active() {
		return nil, inactive(acct)
	}
	if !t.Valid(a.cfg.Now()) {
		return nil, invalid
	}
	return &fheserve.Caller{Account: acct, Token: t}, nil
}

// Logout revokes the caller's token.
func (a *App) Logout(ctx context.Context, c *fheserve.Caller) error {
	if c == nil {
		return unauthenticated()
	}
	if err := a.store.RevokeToken(ctx, c.Account.ID, c.Token.ID, a.cfg.Now().UTC()); err != nil {
		return err
	}
	a.audit(ctx, c.Account, "auth.logout", accountObj(c.Account.ID), tokenObj(c.Token.ID))
	return nil
}

// CreateAPIToken creates a long-lived token for a program.
func (a *App) CreateAPIToken(ctx context.Context, who *fheserve.Account, req *fheserve.APITokenRequest) (*fheserve.Session, error) {
	if err := require(who); err != nil {
		return nil, err
	}
	if err := req.Validate(); err != nil {
		return nil, err
	}
	ttl := a.cfg.APITokenTTL
	if req.TTLHours > 0 {
		ttl = time.Duration(req.TTLHours) * time.Hour
	}
	s, err := a.newSession(ctx, who, fheserve.TokenAPI, req.Name, ttl)
	if err != nil {
		return nil, err
	}
	a.audit(ctx, who, "token.create", tokenObj(s.TokenID), accountObj(who.ID))
	return s, nil
}

// Tokens lists the caller's tokens (never their secret values).
func (a *App) Tokens(ctx context.Context, who *fheserve.Account) ([]*fheserve.Token, error) {
	if err := require(who); err != nil {
		return nil, err
	}
	return a.store.Tokens(ctx, who.ID)
}

// RevokeToken revokes one of the caller's tokens.
func (a *App) RevokeToken(ctx context.Context, who *fheserve.Account, id string) error {
	if err := require(who); err != nil {
		return err
	}
	if err := a.store.RevokeToken(ctx, who.ID, id, a.cfg.Now().UTC()); err != nil {
		return err
	}
	a.audit(ctx, who, "token.revoke", tokenObj(id), accountObj(who.ID))
	return nil
}

// Accounts lists accounts, for administrators.
func (a *App) Accounts(ctx context.Context, who *fheserve.Account, f fheserve.AccountFilter) ([]*fheserve.Account, error) {
	if err := require(who, fheserve.RoleAdmin); err != nil {
		return nil, err
	}
	return a.store.Accounts(ctx, f)
}

// Review actions of an administrator on an account.
const (
	Approve = "approve" // pending or disabled -> active
	Reject  = "reject"  // pending -> rejected
	Disable = "disable" // active -> disabled; its tokens are revoked
)

// Review approves, rejects or disables the account named username.
func (a *App) Review(ctx context.Context, who *fheserve.Account, username, action string) (*fheserve.Account, error) {
	if err := require(who, fheserve.RoleAdmin); err != nil {
		return nil, err
	}
	acct, err := a.store.AccountByUsername(ctx, username)
	if err != nil {
		return nil, err
	}
	from := map[string][]string{
		Approve: {fheserve.AccountPending, fheserve.AccountDisabled},
		Reject:  {fheserve.AccountPending},
		Disable: {fheserve.AccountActive},
	}
	to := map[string]string{Approve: fheserve.AccountActive, Reject: fheserve.AccountRejected, Disable: fheserve.AccountDisabled}
	allowed, ok := from[action]
	if !ok {
		return nil, fheserve.Errorf(fheserve.EINVALID, "unknown action %q (want approve, reject or disable)", action)
	}
	if acct.ID == who.ID {
		return nil, fheserve.Errorf(fheserve.ECONFLICT, "administrators cannot %s their own account", action)
	}
	okFrom := false
	for _, s := range allowed {
		okFrom = okFrom || acct.Status == s
	}
	if !okFrom {
		return nil, fheserve.Errorf(fheserve.ECONFLICT, "cannot %s %q: the account is %s", action, username, acct.Status)
	}
	now := a.cfg.Now().UTC()
	acct.Status, acct.ReviewedAt, acct.ReviewedBy = to[action], &now, who.Username
	if err := a.store.UpdateAccount(ctx, acct); err != nil {
		return nil, err
	}
	if action == Disable {
		if err := a.store.RevokeTokens(ctx, acct.ID, now); err != nil {
			return nil, err
		}
	}
	a.audit(ctx, who, "account."+action, accountObj(acct.ID))
	return acct, nil
}
