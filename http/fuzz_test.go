package http

import (
	"context"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/app"
	"github.com/fheserve/fheserve/audit"
	"github.com/fheserve/fheserve/blob"
	"github.com/fheserve/fheserve/inproc"
	"github.com/fheserve/fheserve/internal/allocs"
	"github.com/fheserve/fheserve/sdk/api"
	"github.com/fheserve/fheserve/sqlite"
)

type validator interface{ Validate() error }

// jsonBodies are the types the server decodes from JSON request bodies.
var jsonBodies = []func() validator{
	func() validator { return &fheserve.RegisterRequest{} },
	func() validator { return &fheserve.LoginRequest{} },
	func() validator { return &fheserve.APITokenRequest{} },
	func() validator { return &fheserve.AccessRequest{} },
	func() validator { return &fheserve.ModelLimits{} },
	// The metadata part; the model file is another part of the form, so
	// the decoded request gets one before it is validated.
	func() validator { return &fheserve.DeployRequest{ONNX: []byte{1}} },
}

// validBodies holds a valid body of each of jsonBodies, in order.
var validBodies = []string{
	`{"username":"ulrich","password":"a-password","role":"user"}`,
	`{"username":"ulrich","password":"pw"}`,
	`{"name":"ci","ttl_hours":24}`,
	`{"allow":["ulrich","ursula"]}`,
	`{"rate_per_minute":1.5,"burst":3,"daily":100,"model_rate_per_minute":60,"model_burst":10,"model_daily":1000}`,
	`{"name":"mnist","packing":"batch","degree":7,"allow":[]}`,
}

// TestValidBodiesValidate checks FuzzJSONBody's seeds: each valid body
// decodes and validates as its own type, so the fuzzer starts from inputs
// that reach past decoding.
func TestValidBodiesValidate(t *testing.T) {
	if len(validBodies) != len(jsonBodies) {
		t.Fatalf("%d valid bodies for %d types", len(validBodies), len(jsonBodies))
	}
	for kind, body := range validBodies {
		v := jsonBodies[kind]()
		r := httptest.NewRequest("POST", "/v1/x", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		if err := readJSON(httptest.NewRecorder(), r, v); err != nil {
			t.Errorf("%T from %s: %v", v, body, err)
		} else if err := v.Validate(); err != nil {
			t.Errorf("%T from %s: %v", v, body, err)
		}
	}
}

// FuzzJSONBody decodes arbitrary bytes as each JSON request body and
// validates the result: nothing may panic, and every refusal is a 400 or
// 413 with a message, never an internal error.
func FuzzJSONBody(f *testing.F) {
	for kind, s := range validBodies {
		f.Add(byte(kind), s)
	}
	for _, s := range []string{
		`{"rate_per_minute":-1e308}`, `{"daily":1e400}`, `{"allow":null}`, `[]`, `null`, `{"a":`, "\xff\xfe{", `{"username":"\u0000"}`,
	} {
		for kind := range jsonBodies {
			f.Add(byte(kind), s)
		}
	}
	f.Fuzz(func(t *testing.T, kind byte, body string) {
		v := jsonBodies[int(kind)%len(jsonBodies)]()
		r := httptest.NewRequest("POST", "/v1/x", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		var err error
		// Bodies are read up to 1 MiB; decoding takes a small multiple.
		allocs.Bound(t, 64*uint64(min(len(body), 1<<20))+256<<10, func() {
			if err = readJSON(httptest.NewRecorder(), r, v); err == nil {
				err = v.Validate()
			}
		})
		if err == nil {
			return
		}
		code := fheserve.ErrorCode(errorOf(err))
		if code != fheserve.EINVALID && code != fheserve.ETOOLARGE && !(code == fheserve.EUNAUTHORIZED && kind%byte(len(jsonBodies)) == 1) {
			t.Fatalf("%T from %q: code %q (%v), want invalid or too_large", v, body, code, err)
		}
		if fheserve.ErrorMessage(err) == "" {
			t.Fatalf("%T from %q: an error without a message", v, body)
		}
	})
}

// FuzzAuthorization sends arbitrary Authorization headers to a server
// with one valid token: only that token may authenticate, and every other
// header gets a 401 with a message, never an internal error.
func FuzzAuthorization(f *testing.F) {
	dir := f.TempDir()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(dir, "db"))
	if err != nil {
		f.Fatal(err)
	}
	blobs, err := blob.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		f.Fatal(err)
	}
	key := make([]byte, 32)
	rand.Read(key)
	akey, err := audit.GenerateKey("")
	if err != nil {
		f.Fatal(err)
	}
	alog, err := audit.New(ctx, audit.NewMemStore(), akey)
	if err != nil {
		f.Fatal(err)
	}
	a, err := app.New(app.Config{Store: store, Blobs: blobs, Queue: inproc.NewQueue(), MasterKey: key, Audit: alog})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { a.Close() })
	if _, err := a.InitAdmin(ctx, "root", "root-password"); err != nil {
		f.Fatal(err)
	}
	sess, err := a.Login(ctx, &fheserve.LoginRequest{Username: "root", Password: "root-password"})
	if err != nil {
		f.Fatal(err)
	}
	s := NewServer(a, nil)
	valid := "Bearer " + sess.Token
	for _, h := range []string{valid, "", "Bearer ", "Bearer fhs_", "bearer " + sess.Token, "Bearer " + sess.Token + " ",
		"Basic cm9vdDpyb290LXBhc3N3b3Jk", "Bearer " + strings.Repeat("A", 5000), "Bearer fhs_\x00\xff", valid[:len(valid)-1]} {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, h string) {
		r := httptest.NewRequest("GET", "/v1/me", nil).WithContext(ctx)
		r.Header["Authorization"] = []string{h}
		var c *fheserve.Caller
		var err error
		// Parsing the header, hashing the token and one SQLite lookup.
		allocs.Bound(t, 16*uint64(len(h))+1<<20, func() { c, err = s.authenticate(r) })
		if h == valid {
			if err != nil || c.Account.Username != "root" {
				t.Fatalf("the valid token failed: %v", err)
			}
			return
		}
		if err == nil {
			t.Fatalf("header %q authenticated as %s", h, c.Account.Username)
		}
		if code := fheserve.ErrorCode(err); api.StatusOf(code) != http.StatusUnauthorized || fheserve.ErrorMessage(err) == "" {
			t.Fatalf("header %q: %q %v, want 401 with a message", h, code, err)
		}
	})
}
