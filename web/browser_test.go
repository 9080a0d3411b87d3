package web_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/fheserve/fheserve/app"
	fhttp "github.com/fheserve/fheserve/http"
	"github.com/fheserve/fheserve/node"
)

// exchange is one request the browser sent and the server's answer.
type exchange struct {
	method, path string
	header       http.Header
	body, resp   []byte
}

// recorder is a reverse proxy in front of the server that keeps every
// request body the browser sends and every response body it gets.
type recorder struct {
	mu  sync.Mutex
	log []exchange
}

func (rec *recorder) handler(target string) http.Handler {
	u, _ := url.Parse(target)
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.FlushInterval = -1 // progress streams
	proxy.ModifyResponse = func(resp *http.Response) error {
		if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			return nil
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(b))
		rec.mu.Lock()
		rec.log[resp.Request.Context().Value(exchangeKey{}).(int)].resp = b
		rec.mu.Unlock()
		return err
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec.mu.Lock()
		rec.log = append(rec.log, exchange{method: r.Method, path: r.URL.Path, header: r.Header.Clone(), body: body})
		i := len(rec.log) - 1
		rec.mu.Unlock()
		proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), exchangeKey{}, i)))
	})
}

type exchangeKey struct{}

func (rec *recorder) exchanges() []exchange {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]exchange(nil), rec.log...)
}

// chromium finds the browser: $FHESERVE_CHROMIUM, else Debian's chromium.
// The test fails without one: .ci/run installs it.
func chromium(t *testing.T) string {
	if p := os.Getenv("FHESERVE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no chromium found for the browser test: install Debian's chromium (apt-get install chromium, as .ci/run does) or set FHESERVE_CHROMIUM")
	return ""
}

// browser is a headless chromium on a fresh profile, with its console
// errors, CSP violations and uncaught exceptions collected.
type browser struct {
	t      *testing.T
	ctx    context.Context
	shots  string
	mu     sync.Mutex
	errors []string
}

func newBrowser(t *testing.T) *browser {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b := &browser{t: t, ctx: ctx, shots: os.Getenv("FHESERVE_SCREENSHOTS")}
	if b.shots != "" {
		check(t, os.MkdirAll(b.shots, 0o755))
		t.Logf("screenshots in %s", b.shots)
	}
	if _, err := chromedp.Call(ctx, log.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("cannot start %s: %v", chromium(t), err)
	}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			// A failed request logs an error too (a refused login's
			// 401): the network's are the test's to judge.
			if m.Type == chromedp.ConsoleError && m.Source != "network" || m.IsException() ||
				strings.Contains(m.Text, "Content Security Policy") {
				b.mu.Lock()
				b.errors = append(b.errors, m.String())
				b.mu.Unlock()
			}
		}
	}()
	return b
}

// do runs steps in the page, each within 30 seconds.
func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.fail(what, err)
	}
}

// fail ends the test with the page as it was in failed.png, in
// $FHESERVE_SCREENSHOTS or the test's temporary directory.
func (b *browser) fail(what string, err error) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	dir := b.shots
	if dir == "" {
		dir = b.t.TempDir()
	}
	if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		os.WriteFile(filepath.Join(dir, "failed.png"), png, 0o644)
	}
	b.t.Fatalf("%s: %v (browser errors: %q; the page is in %s)", what, err, b.pageErrors(), filepath.Join(dir, "failed.png"))
}

// get runs one step that returns a value.
func get[T any](b *browser, what string, step chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, step)
	if err != nil {
		b.fail(what, err)
	}
	return v
}

// shot checks that the page fits laptop and phone width, and with
// $FHESERVE_SCREENSHOTS set saves a screenshot of it at each (the
// captures took a fifth of the package's time).
func (b *browser) shot(name string) {
	b.t.Helper()
	for _, size := range []struct {
		suffix        string
		width, height int64
	}{{"", 1280, 900}, {"-phone", 390, 844}} {
		b.do("viewport", chromedp.EmulateViewport(size.width, size.height))
		// Readable at this width: nothing makes the page scroll sideways.
		if w := get(b, "the page's width", chromedp.Evaluate[int64](`document.documentElement.scrollWidth`)); w > size.width {
			b.t.Errorf("%s%s: the page is %d px wide on a %d px screen", name, size.suffix, w, size.width)
		}
		if b.shots == "" {
			continue
		}
		// From the top: the page's sticky header is drawn where the
		// viewport is, and a full-page capture of a scrolled page shows
		// it over the middle of the page.
		b.do("scroll to the top", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := chromedp.Evaluate[bool](`(window.scrollTo(0, 0), true)`)(ctx, t)
			return err
		}), chromedp.Sleep(100*time.Millisecond))
		png := get(b, "screenshot "+name, chromedp.FullScreenshot(100))
		check(b.t, os.WriteFile(filepath.Join(b.shots, name+size.suffix+".png"), png, 0o644))
	}
	b.do("viewport", chromedp.EmulateViewport(1280, 900))
}

func (b *browser) pageErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errors...)
}

func check(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// clear empties an input.
func clear(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](fmt.Sprintf(`(e => (e.value = '', true))(document.querySelector(%q))`, sel))(ctx, t)
		return err
	})
}

// fill types into a form's fields and submits it.
func fill(form string, values ...string) chromedp.Action[chromedp.Void] {
	var steps []chromedp.Action[chromedp.Void]
	for i := 0; i+1 < len(values); i += 2 {
		steps = append(steps, chromedp.WaitVisible(values[i]), clear(values[i]), chromedp.SendKeys(values[i], values[i+1]))
	}
	return chromedp.Steps(append(steps, chromedp.Click(form+` button[type=submit]`))...)
}

// startNode starts a server with the administrator root and a recording
// proxy in front; it returns the proxy's URL.
func startNode(t *testing.T, configure ...func(*fhttp.Server)) (*node.Node, string, *recorder) {
	ctx := context.Background()
	n, err := node.Start(ctx, t.TempDir(), "127.0.0.1:0", app.Config{Workers: 1}, configure...)
	check(t, err)
	t.Cleanup(func() { n.Close() })
	_, err = n.App.InitAdmin(ctx, "root", "root-password")
	check(t, err)
	rec := &recorder{}
	front := httptest.NewServer(rec.handler(n.URL()))
	t.Cleanup(front.Close)
	return n, front.URL, rec
}

// TestPortalAccounts drives the portal in chromium: sign up, the
// administrator's approval, log in and out, with the session cookie's
// flags, the CSRF check and the Content-Security-Policy seen by a browser.
func TestPortalAccounts(t *testing.T) {
	_, base, rec := startNode(t)
	b := newBrowser(t)

	b.do("open the portal", chromedp.Navigate(base+"/"), chromedp.WaitVisible(`#login-username`))
	b.shot("login")
	b.do("sign up", chromedp.Click(`#to-signup`), chromedp.WaitVisible(`#signup-username`))
	b.do("fill the sign-up form",
		chromedp.SendKeys(`#signup-username`, "ulrich"), chromedp.SendKeys(`#signup-password`, "ulrich-password"),
		chromedp.SetValue(`#signup-role`, "user"))
	b.shot("signup")
	b.do("submit the sign-up form", chromedp.Click(`form button[type=submit]`), chromedp.WaitVisible(`p.notice`))
	notice := get(b, "notice", chromedp.Text(`p.notice`))
	if !strings.Contains(notice, "ulrich") {
		t.Errorf("after sign-up: %q", notice)
	}
	b.do("a pending account cannot log in",
		fill(`form`, `#login-username`, "ulrich", `#login-password`, "ulrich-password"), chromedp.WaitVisible(`p.error`))
	refused := get(b, "error", chromedp.Text(`p.error`))
	if refused == "" {
		t.Error("a pending account's login showed no error")
	}

	b.do("log in as the administrator",
		fill(`form`, `#login-username`, "root", `#login-password`, "root-password"),
		chromedp.WaitVisible(`#pending button[data-action=approve][data-user=ulrich]`))
	b.shot("admin")

	// The session cookie as the browser keeps it.
	got, err := chromedp.Call(b.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{base}})
	check(t, err)
	cookies := got.Cookies
	script := get(b, "document.cookie", chromedp.Evaluate[string](`document.cookie`))
	if len(cookies) != 1 || !cookies[0].HTTPOnly || cookies[0].SameSite != network.CookieSameSiteStrict || cookies[0].Path != "/" {
		t.Errorf("cookies: %+v", cookies)
	}
	if script != "" {
		t.Errorf("the page's scripts read the cookie: %q", script)
	}
	// A state-changing request without the CSRF token, as a forged one
	// would be, is refused even though the browser sends the cookie.
	status := get(b, "a request without the CSRF token", chromedp.Evaluate[int](
		`fetch('/v1/accounts/ulrich/approve', {method: 'POST'}).then(r => r.status)`, chromedp.EvalAwaitPromise))
	if status != http.StatusForbidden {
		t.Errorf("POST without the CSRF token: %d, want 403", status)
	}

	b.do("approve ulrich", chromedp.Click(`#pending button[data-action=approve][data-user=ulrich]`),
		chromedp.WaitVisible(`#pending p.empty`), chromedp.WaitVisible(`#accounts button[data-action=disable][data-user=ulrich]`))
	b.shot("admin-approved")
	b.do("log out", chromedp.Click(`#logout`), chromedp.WaitVisible(`#login-username`))
	b.do("log in as ulrich",
		fill(`form`, `#login-username`, "ulrich", `#login-password`, "ulrich-password"),
		chromedp.WaitVisible(`#models`))
	b.shot("user")
	role := get(b, "the user's page", chromedp.Text(`#who-role`))
	if role != "user" {
		t.Errorf("logged in as ulrich, the page says role %q", role)
	}

	if errs := b.pageErrors(); len(errs) > 0 {
		t.Errorf("the browser reported errors (CSP violations, exceptions): %q", errs)
	}
	checkExchanges(t, rec.exchanges())

	// The policy holds in the browser: an injected inline script and
	// inline style are refused, and the refusals are seen.
	ran := get(b, "inject an inline script", chromedp.Evaluate[bool](`(() => {
		const s = document.createElement('script');
		s.textContent = 'window.injected = true';
		document.body.append(s);
		const d = document.createElement('div');
		d.setAttribute('style', 'color: red');
		document.body.append(d);
		return window.injected === true;
	})()`))
	if ran {
		t.Error("an inline script ran despite the Content-Security-Policy")
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(b.pageErrors()) < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if errs := b.pageErrors(); len(errs) < 2 || !strings.Contains(strings.Join(errs, " "), "inline script") || !strings.Contains(strings.Join(errs, " "), "inline style") {
		t.Errorf("the injected inline script and style gave %q, want two CSP refusals", errs)
	}
}

// checkExchanges checks what the browser sent: every state-changing
// request of a session carried its CSRF token, none an Authorization
// header, and the session token never appeared in a body.
func checkExchanges(t *testing.T, log []exchange) {
	t.Helper()
	var tokens []string
	for _, x := range log {
		for _, c := range (&http.Request{Header: x.header}).Cookies() {
			tokens = append(tokens, c.Value)
		}
	}
	if len(tokens) == 0 {
		t.Fatal("the browser sent no session cookie")
	}
	for _, x := range log {
		if x.header.Get("Authorization") != "" {
			t.Errorf("%s %s carried an Authorization header", x.method, x.path)
		}
		for _, tok := range tokens {
			if bytes.Contains(x.body, []byte(tok)) || bytes.Contains(x.resp, []byte(tok)) {
				t.Errorf("%s %s: a session token in a body", x.method, x.path)
			}
		}
	}
}
