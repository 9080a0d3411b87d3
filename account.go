package fheserve

import (
	"regexp"
	"time"
	"unicode"
	"unicode/utf8"
)

// Roles of an account.
const (
	RoleAdmin = "admin" // the service provider: approves accounts, sees every audit record
	RoleOwner = "owner" // deploys models and decides who may use them
	RoleUser  = "user"  // runs encrypted predictions on models it may use
)

// Statuses of an account. Only an active account can log in or use a token.
const (
	AccountPending  = "pending"  // registered, waiting for an administrator
	AccountActive   = "active"   // approved
	AccountRejected = "rejected" // registration refused
	AccountDisabled = "disabled" // approved once, then disabled
)

// Account is a person or program that uses the service.
type Account struct {
	ID           string     `json:"id"`
	Username     string     `json:"username"`
	Role         string     `json:"role"`
	Status       string     `json:"status"`
	PasswordHash string     `json:"-"` // argon2id, PHC string format
	CreatedAt    time.Time  `json:"created_at"`
	ReviewedAt   *time.Time `json:"reviewed_at,omitempty"` // approval, rejection or disabling
	ReviewedBy   string     `json:"reviewed_by,omitempty"` // the administrator's username
}

// Active reports whether a may act.
func (a *Account) Active() bool { return a != nil && a.Status == AccountActive }

// Token kinds.
const (
	TokenSession = "session" // from login; short-lived
	TokenAPI     = "api"     // for programs; long-lived, named
)

// Token is a bearer credential. Only its SHA-256 hash is stored: the
// secret value is shown once, when it is created.
type Token struct {
	ID        string     `json:"id"`
	Hash      string     `json:"-"` // hex SHA-256 of the secret value
	AccountID string     `json:"-"`
	Kind      string     `json:"kind"`
	Name      string     `json:"name,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// Valid reports whether t may be used at time now.
func (t *Token) Valid(now time.Time) bool {
	return t.RevokedAt == nil && now.Before(t.ExpiresAt)
}

// Password length bounds. The upper bound keeps hashing cheap to refuse.
const (
	MinPasswordLen = 8
	MaxPasswordLen = 256
)

var usernameRE = regexp.MustCompile(`^[a-z][a-z0-9_.-]{1,31}$`)

// ValidUsername checks a username: 2 to 32 lower-case letters, digits, '_',
// '.' or '-', starting with a letter.
func ValidUsername(name string) error {
	if !usernameRE.MatchString(name) {
		return Errorf(EINVALID, "username %q is not valid: use 2 to 32 lower-case letters, digits, '_', '.' or '-', starting with a letter", clip(name, 40))
	}
	return nil
}

// ValidPassword checks a password's length.
func ValidPassword(pw string) error {
	n := utf8.RuneCountInString(pw)
	switch {
	case n < MinPasswordLen:
		return Errorf(EINVALID, "password is too short: use at least %d characters", MinPasswordLen)
	case len(pw) > MaxPasswordLen:
		return Errorf(EINVALID, "password is too long: use at most %d bytes", MaxPasswordLen)
	}
	return nil
}

// RegisterRequest asks for a new account, which starts pending.
type RegisterRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	Role     string `json:"role"` // RoleOwner or RoleUser
}

// Validate checks the request.
func (r *RegisterRequest) Validate() error {
	if err := ValidUsername(r.Username); err != nil {
		return err
	}
	if r.Role != RoleOwner && r.Role != RoleUser {
		return Errorf(EINVALID, "role must be %q or %q, not %q (administrators are created with 'fheserve admin init')", RoleOwner, RoleUser, clip(r.Role, 20))
	}
	return ValidPassword(r.Password)
}

// LoginRequest exchanges a username and password for a session token.
type LoginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	// Addr is the client's network address, set by the server, for
	// throttling guesses per address as well as per account.
	Addr string `json:"-"`
}

// Validate checks the request.
func (r *LoginRequest) Validate() error {
	switch {
	case r.Username == "":
		return Errorf(EINVALID, "username is required")
	case r.Password == "":
		return Errorf(EINVALID, "password is required")
	case len(r.Password) > MaxPasswordLen || ValidUsername(r.Username) != nil:
		// No such account can exist; refused before it takes memory
		// or a throttle's bucket.
		return Errorf(EUNAUTHORIZED, "wrong username or password")
	}
	return nil
}

// Session is a freshly created token with its secret value, returned once.
type Session struct {
	Token     string    `json:"token"`
	TokenID   string    `json:"token_id"`
	ExpiresAt time.Time `json:"expires_at"`
	Account   *Account  `json:"account"`
}

// APITokenRequest asks for a long-lived token for a program.
type APITokenRequest struct {
	Name string `json:"name"`
	// TTLHours is the lifetime in hours (0: the server's default).
	TTLHours int `json:"ttl_hours,omitempty"`
}

// MaxAPITokenHours is the longest lifetime of an API token (two years).
const MaxAPITokenHours = 2 * 366 * 24

// Validate checks the request.
func (r *APITokenRequest) Validate() error {
	switch {
	case r.Name == "" || len(r.Name) > 64:
		return Errorf(EINVALID, "token name must be 1 to 64 characters")
	case r.TTLHours < 0 || r.TTLHours > MaxAPITokenHours:
		return Errorf(EINVALID, "ttl_hours must be between 0 and %d", MaxAPITokenHours)
	}
	return validText("token name", r.Name)
}

// validText checks a name a user chooses freely: valid UTF-8 without
// control or format characters, so that showing it cannot move a
// terminal's cursor, recolour it, start a new line or reorder text.
func validText(what, s string) error {
	if !utf8.ValidString(s) {
		return Errorf(EINVALID, "%s %q is not valid UTF-8", what, clip(s, 70))
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return Errorf(EINVALID, "%s %q holds %U, a control or formatting character: use printable characters only", what, clip(s, 70), r)
		}
	}
	return nil
}

// clip shortens s for an error message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
