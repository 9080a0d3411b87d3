package http_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/sdk"
	"github.com/fheserve/fheserve/sdk/api"
)

// TestTokenLifecycle checks over HTTP that a revoked, logged-out or
// expired token stops working at once, and that disabling an account
// stops every one of its tokens at once on every kind of request, with a
// message saying why, while other users carry on.
func TestTokenLifecycle(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	acct, err := w.user.Me(ctx)
	check(t, err)
	login := func() string {
		c := sdk.New(w.url)
		_, err := c.Login(ctx, "ulrich", "ulrich-password")
		check(t, err)
		return c.Token()
	}
	apiToken := func() (secret, id string) {
		c := sdk.New(w.url)
		c.SetToken(login())
		s, err := c.API.CreateAPIToken(ctx, &fheserve.APITokenRequest{Name: "ci", TTLHours: 1})
		check(t, err)
		return s.Token, s.TokenID
	}
	expired := func() string {
		secret := "fhs_expired_" + acct.Username
		h := sha256.Sum256([]byte(secret))
		past := time.Now().UTC().Add(-2 * time.Hour)
		check(t, w.store.CreateToken(ctx, &fheserve.Token{ID: "tok_expired", Hash: hex.EncodeToString(h[:]), AccountID: acct.ID,
			Kind: fheserve.TokenAPI, CreatedAt: past, ExpiresAt: past.Add(time.Hour)}))
		return secret
	}
	as := func(token, method, path string) (int, string) {
		req, err := http.NewRequest(method, w.url+path, nil)
		check(t, err)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		check(t, err)
		defer resp.Body.Close()
		var e api.ErrorResponse
		json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, e.Message
	}
	requests := [][2]string{
		{"GET", "/v1/me"},
		{"GET", "/v1/models/" + w.model.ID + "/plan"},
		{"GET", "/v1/jobs/" + w.job.ID + "/result"},
		{"GET", "/v1/keysets/" + w.keys.KeySetID},
		{"POST", "/v1/tokens"},
	}

	disable := func(string) {
		_, err := w.admin.Disable(ctx, "ulrich")
		check(t, err)
	}
	tests := []struct {
		name    string
		token   func() string
		kill    func(token string) // nil: the token is dead already
		status  int
		message string
	}{
		{"revoked API token", func() string {
			secret, id := apiToken()
			check(t, w.user.API.RevokeToken(ctx, id))
			return secret
		}, nil, http.StatusUnauthorized, "revoked"},
		{"logged-out session", login, func(tok string) {
			c := sdk.New(w.url)
			c.SetToken(tok)
			check(t, c.Logout(ctx))
		}, http.StatusUnauthorized, ""},
		{"expired API token", expired, nil, http.StatusUnauthorized, "expired"},
		{"disabled account, session", login, disable, http.StatusForbidden, "disabled"},
		{"disabled account, API token", func() string { s, _ := apiToken(); return s }, disable, http.StatusForbidden, "disabled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := tt.token()
			if tt.kill != nil {
				if status, msg := as(tok, "GET", "/v1/me"); status != http.StatusOK {
					t.Fatalf("before: %d %s", status, msg)
				}
				tt.kill(tok)
				t.Cleanup(func() { w.admin.Approve(ctx, "ulrich") })
			}
			for _, r := range requests {
				status, msg := as(tok, r[0], r[1])
				if status != tt.status || msg == "" || !strings.Contains(msg, tt.message) {
					t.Errorf("%s %s: %d %q, want %d naming %q", r[0], r[1], status, msg, tt.status, tt.message)
				}
			}
			// Others carry on.
			if status, msg := as(w.tokens[user2], "GET", "/v1/me"); status != http.StatusOK {
				t.Errorf("another user: %d %s", status, msg)
			}
		})
	}
}

// TestTokenNameRefused checks that a token whose name holds a newline and
// terminal escapes is refused with a 400 naming the cause, and that
// nothing is stored under that name.
func TestTokenNameRefused(t *testing.T) {
	ctx := context.Background()
	url, _, a := MustServer(t)
	c := signup(t, url, a)("ulrich", fheserve.RoleUser)
	body, err := json.Marshal(fheserve.APITokenRequest{Name: "a\n\x1b[31mb"})
	check(t, err)
	req, err := http.NewRequest("POST", url+"/v1/tokens", strings.NewReader(string(body)))
	check(t, err)
	req.Header.Set("Authorization", "Bearer "+c.Token())
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	check(t, err)
	defer resp.Body.Close()
	var e api.ErrorResponse
	check(t, json.NewDecoder(resp.Body).Decode(&e))
	if resp.StatusCode != http.StatusBadRequest || e.Code != fheserve.EINVALID || !strings.Contains(e.Message, "U+000A, a control") {
		t.Fatalf("POST /v1/tokens with a hostile name: %d %+v, want 400 invalid naming the control character", resp.StatusCode, e)
	}
	toks, err := c.API.Tokens(ctx)
	check(t, err)
	for _, tok := range toks {
		if tok.Kind == fheserve.TokenAPI {
			t.Errorf("a token was stored: %+v", tok)
		}
	}
}
