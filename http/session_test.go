package http_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/app"
	fhttp "github.com/fheserve/fheserve/http"
	"github.com/fheserve/fheserve/plan"
)

// portalLogin logs in through /portal/session with a fresh cookie jar and
// returns the client holding the cookie and the session's CSRF token.
func portalLogin(t *testing.T, url, username, password string) (*http.Client, *http.Response, fhttp.PortalSession) {
	t.Helper()
	jar, err := cookiejar.New(nil)
	check(t, err)
	c := &http.Client{Jar: jar}
	body, _ := json.Marshal(map[string]string{"username": username, "password": password})
	resp, err := c.Post(url+"/portal/session", "application/json", bytes.NewReader(body))
	check(t, err)
	defer resp.Body.Close()
	var sess fhttp.PortalSession
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("portal login: %s: %s", resp.Status, b)
	}
	check(t, json.NewDecoder(resp.Body).Decode(&sess))
	return c, resp, sess
}

func send(t *testing.T, c *http.Client, method, url, csrf string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	check(t, err)
	if csrf != "" {
		req.Header.Set(fhttp.CSRFHeader, csrf)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	check(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestPortalSession(t *testing.T) {
	url, _, a := MustServer(t)
	newAccount := signup(t, url, a)
	newAccount("ulrich", fheserve.RoleUser)
	pending := "pat"
	check(t, func() error {
		_, err := a.Register(context.Background(), &fheserve.RegisterRequest{Username: pending, Password: pending + "-password", Role: fheserve.RoleUser})
		return err
	}())

	admin, resp, sess := portalLogin(t, url, "root", "root-password")
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == fhttp.SessionCookie {
			cookie = c
		}
	}
	switch {
	case cookie == nil:
		t.Fatalf("login set no %s cookie: %v", fhttp.SessionCookie, resp.Cookies())
	case !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/":
		t.Errorf("cookie %v: want HttpOnly, SameSite=Strict, Path=/", cookie)
	case cookie.Secure:
		t.Errorf("cookie %v is Secure over plain HTTP: a browser would drop it", cookie)
	case sess.CSRFToken == "" || strings.Contains(sess.CSRFToken, cookie.Value) || sess.Account.Username != "root":
		t.Errorf("session %+v: want root's account and a CSRF token other than the session token", sess)
	}
	if resp.Header.Get("Content-Security-Policy") != fhttp.ContentSecurityPolicy {
		t.Errorf("login response CSP %q", resp.Header.Get("Content-Security-Policy"))
	}

	review := url + "/v1/accounts/" + pending + "/approve"
	tests := []struct {
		name   string
		client *http.Client
		method string
		url    string
		csrf   string
		header []string
		want   int
	}{
		{"cookie reads", admin, "GET", url + "/v1/accounts", "", nil, http.StatusOK},
		{"session again", admin, "GET", url + "/portal/session", "", nil, http.StatusOK},
		{"change without CSRF", admin, "POST", review, "", nil, http.StatusForbidden},
		{"change with a wrong CSRF", admin, "POST", review, sess.CSRFToken[1:] + "A", nil, http.StatusForbidden},
		{"no cookie, no token", http.DefaultClient, "GET", url + "/v1/accounts", "", nil, http.StatusUnauthorized},
		{"the CSRF token is no credential", http.DefaultClient, "POST", review, sess.CSRFToken, nil, http.StatusUnauthorized},
		{"the cookie does not override a bearer token", admin, "GET", url + "/v1/accounts", "", []string{"Authorization", "Bearer nonsense"}, http.StatusUnauthorized},
		{"a read from another site", admin, "GET", url + "/v1/accounts", "", []string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{"a change from a sibling site, even with the token", admin, "POST", review, sess.CSRFToken, []string{"Sec-Fetch-Site", "same-site"}, http.StatusForbidden},
		{"change with CSRF", admin, "POST", review, sess.CSRFToken, []string{"Sec-Fetch-Site", "same-origin"}, http.StatusOK},
		{"the cookie meets the service's own checks", admin, "POST", url + "/v1/accounts/root/disable", sess.CSRFToken, nil, http.StatusConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, body := send(t, tt.client, tt.method, tt.url, tt.csrf, tt.header...); got != tt.want {
				t.Errorf("%s %s: %d %s, want %d", tt.method, tt.url, got, body, tt.want)
			}
		})
	}

	// A user's cookie session has a user's permissions, no more.
	user, _, usess := portalLogin(t, url, "ulrich", "ulrich-password")
	if got, body := send(t, user, "GET", url+"/v1/accounts", ""); got != http.StatusForbidden {
		t.Errorf("user's cookie lists accounts: %d %s", got, body)
	}
	// Login must be declared JSON: a cross-site form cannot log a browser in.
	form, err := http.Post(url+"/portal/session", "application/x-www-form-urlencoded", strings.NewReader(`{"username":"ulrich","password":"ulrich-password"}`))
	check(t, err)
	form.Body.Close()
	if form.StatusCode != http.StatusBadRequest || len(form.Cookies()) != 0 {
		t.Errorf("form login: %s, cookies %v", form.Status, form.Cookies())
	}

	// Logout needs the CSRF token, revokes the token and clears the cookie.
	if got, _ := send(t, user, "DELETE", url+"/portal/session", ""); got != http.StatusForbidden {
		t.Errorf("logout without CSRF: %d", got)
	}
	if got, body := send(t, user, "DELETE", url+"/portal/session", usess.CSRFToken); got != http.StatusNoContent {
		t.Fatalf("logout: %d %s", got, body)
	}
	if got, _ := send(t, user, "GET", url+"/portal/session", ""); got != http.StatusUnauthorized {
		t.Errorf("session after logout: %d", got)
	}
}

// The revoked token stays revoked even if a browser kept the cookie.
func TestPortalLogoutRevokes(t *testing.T) {
	url, _, a := MustServer(t)
	signup(t, url, a)
	c, resp, sess := portalLogin(t, url, "root", "root-password")
	var kept *http.Cookie
	for _, ck := range resp.Cookies() {
		kept = ck
	}
	if got, _ := send(t, c, "DELETE", url+"/portal/session", sess.CSRFToken); got != http.StatusNoContent {
		t.Fatalf("logout: %d", got)
	}
	req, _ := http.NewRequest("GET", url+"/v1/me", nil)
	req.AddCookie(kept)
	r, err := http.DefaultClient.Do(req)
	check(t, err)
	r.Body.Close()
	if r.StatusCode != http.StatusUnauthorized {
		t.Errorf("a kept cookie after logout: %s", r.Status)
	}
}

func TestPortalPages(t *testing.T) {
	url, _, _ := MustServer(t)
	tests := []struct {
		path, wantType string
		want           int
	}{
		{"/", "text/html", http.StatusOK},
		{"/assets/app.js", "text/javascript", http.StatusOK},
		{"/assets/app.css", "text/css", http.StatusOK},
		{"/assets/", "", http.StatusNotFound},
		{"/nothing", "", http.StatusNotFound},
		{"/v1/nothing", "application/json", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, err := http.Get(url + tt.path)
			check(t, err)
			resp.Body.Close()
			if resp.StatusCode != tt.want || !strings.HasPrefix(resp.Header.Get("Content-Type"), tt.wantType) {
				t.Errorf("GET %s: %s %s, want %d %s", tt.path, resp.Status, resp.Header.Get("Content-Type"), tt.want, tt.wantType)
			}
			csp := resp.Header.Get("Content-Security-Policy")
			if tt.path != "/v1/nothing" && (csp != fhttp.ContentSecurityPolicy || resp.Header.Get("X-Content-Type-Options") != "nosniff") {
				t.Errorf("GET %s: CSP %q", tt.path, csp)
			}
		})
	}
	// No inline script or style: the page loads everything from /assets/.
	resp, err := http.Get(url + "/")
	check(t, err)
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`<script>`), regexp.MustCompile(`<style`), regexp.MustCompile(`\sstyle=`),
		regexp.MustCompile(`\son[a-z]+=`), regexp.MustCompile(`https?://`),
	} {
		if m := bad.Find(page); m != nil {
			t.Errorf("the page holds %q", m)
		}
	}
}

// Over TLS the cookie is Secure and __Host- prefixed.
func TestPortalSessionTLS(t *testing.T) {
	url, _, a := MustServer(t)
	signup(t, url, a)
	ts := httptest.NewTLSServer(fhttp.NewServer(a, nil))
	defer ts.Close()
	c := ts.Client()
	jar, err := cookiejar.New(nil)
	check(t, err)
	c.Jar = jar
	resp, err := c.Post(ts.URL+"/portal/session", "application/json", strings.NewReader(`{"username":"root","password":"root-password"}`))
	check(t, err)
	resp.Body.Close()
	cookies := resp.Cookies()
	if len(cookies) != 1 || cookies[0].Name != fhttp.SecureSessionCookie || !cookies[0].Secure || !cookies[0].HttpOnly ||
		cookies[0].SameSite != http.SameSiteStrictMode || cookies[0].Path != "/" || cookies[0].Domain != "" {
		t.Fatalf("cookies over TLS: %v", cookies)
	}
	if got, body := send(t, c, "GET", ts.URL+"/portal/session", ""); got != http.StatusOK {
		t.Errorf("session over TLS: %d %s", got, body)
	}
}

var _ fhttp.DeployPreviewer = (*app.App)(nil)

// The portal's compile preview returns the plan a deployment gets, to its
// owner only, and deploys nothing.
func TestPortalCompile(t *testing.T) {
	url, _, a := MustServer(t)
	newAccount := signup(t, url, a)
	owner, user := newAccount("olivia", fheserve.RoleOwner), newAccount("ulrich", fheserve.RoleUser)
	req := &fheserve.DeployRequest{Name: "square", ONNX: mustONNX(t, "mlp_square")}
	body, ct := multipartDeploy(t, req)
	compile := func(token string) (int, []byte) {
		r, err := http.NewRequest("POST", url+"/portal/compile", bytes.NewReader(body))
		check(t, err)
		r.Header.Set("Content-Type", ct)
		r.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(r)
		check(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if code, b := compile(user.Token()); code != http.StatusForbidden {
		t.Errorf("a user's compile: %d %s", code, b)
	}
	code, b := compile(owner.Token())
	if code != http.StatusOK {
		t.Fatalf("compile: %d %s", code, b)
	}
	var p plan.Plan
	check(t, json.Unmarshal(b, &p))
	if models, err := owner.Models(context.Background()); err != nil || len(models) != 0 {
		t.Fatalf("after a preview, the owner's models: %v, %v", models, err)
	}
	m, err := owner.Deploy(context.Background(), req)
	check(t, err)
	if p.Fingerprint == "" || p.Fingerprint != m.PlanFingerprint || p.Validate() != nil {
		t.Errorf("preview plan %s, deployed %s", p.Fingerprint, m.PlanFingerprint)
	}
}
