package audit_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/audit"
	"github.com/fheserve/fheserve/audit/audittest"
	"golang.org/x/mod/sumdb/tlog"
)

// testAuthz knows three tokens: an administrator's, the account acc1's,
// and the owner of model m2's (account acc9, which acts in no record).
var testAuthz = audit.AuthorizerFunc(func(r *http.Request) (*audit.Scope, error) {
	switch r.Header.Get("Authorization") {
	case "Bearer admin":
		return &audit.Scope{All: true}, nil
	case "Bearer user":
		return &audit.Scope{AccountID: "acc1", Objects: []audit.Object{{Kind: audit.KindAccount, ID: "acc1"}}}, nil
	case "Bearer owner":
		return &audit.Scope{AccountID: "acc9", Objects: []audit.Object{{Kind: audit.KindAccount, ID: "acc9"}, {Kind: audit.KindModel, ID: "m2"}}}, nil
	}
	return nil, fheserve.Errorf(fheserve.EUNAUTHORIZED, "log in first")
})

// newServer serves the log of st like the service does, under PathPrefix,
// and returns a client for token.
func newServer(t *testing.T, l *audit.Log) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(audit.PathPrefix+"/", http.StripPrefix(audit.PathPrefix, audit.NewHandler(l, testAuthz)))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func client(srv *httptest.Server, token string) *audit.Client {
	return &audit.Client{URL: srv.URL + audit.PathPrefix, Token: token, HTTPClient: srv.Client()}
}

func appendN(t *testing.T, l *audit.Log, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if _, err := l.Append(context.Background(), audittest.Rec(i)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestHandlerScopes(t *testing.T) {
	l, key := newLog(t, audit.NewMemStore())
	appendN(t, l, 0, 30)
	srv := newServer(t, l)
	ctx := context.Background()

	tests := []struct {
		token string
		want  func(i int64) bool
	}{
		{"admin", func(i int64) bool { return true }},
		{"user", func(i int64) bool { return i%5 == 1 }},
		{"owner", func(i int64) bool { return i%7 == 2 }},
	}
	for _, tt := range tests {
		t.Run(tt.token, func(t *testing.T) {
			c := client(srv, tt.token)
			res, err := c.CheckLog(ctx, key.VerifierKey(), nil)
			if err != nil {
				t.Fatal(err)
			}
			var want []int64
			for i := range int64(30) {
				if tt.want(i) {
					want = append(want, i)
				}
			}
			if res.Records != len(want) || res.Checkpoint.N != 30 {
				t.Errorf("CheckLog proved %d records of a tree of %d, want %d of 30", res.Records, res.Checkpoint.N, len(want))
			}
			p, err := c.Records(ctx, audit.Query{Limit: 2, From: 3})
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			for _, it := range p.Records {
				got = append(got, it.Index)
			}
			if i := slices.IndexFunc(want, func(i int64) bool { return i >= 3 }); !slices.Equal(got, want[i:i+2]) || p.Next != got[1]+1 {
				t.Errorf("page from 3 of 2: %v next %d, want %v", got, p.Next, want[i:i+2])
			}
			// The object filter keeps the caller's records naming it.
			p, err = c.Records(ctx, audit.Query{Object: audit.Object{Kind: audit.KindModel, ID: "m2"}})
			if err != nil {
				t.Fatal(err)
			}
			got = nil
			for _, it := range p.Records {
				got = append(got, it.Index)
			}
			if wantM2 := slices.DeleteFunc(slices.Clone(want), func(i int64) bool { return i%7 != 2 }); !slices.Equal(got, wantM2) {
				t.Errorf("records naming model m2: %v, want %v", got, wantM2)
			}
			// Records outside the scope do not exist for the caller.
			for i := range int64(30) {
				_, err := c.Record(ctx, i, 0)
				if tt.want(i) != (err == nil) {
					t.Fatalf("Record(%d): %v", i, err)
				}
				if err != nil && fheserve.ErrorCode(err) != fheserve.ENOTFOUND {
					t.Fatalf("Record(%d): %v, want %s", i, err, fheserve.ENOTFOUND)
				}
			}
		})
	}
}

func TestHandlerProofs(t *testing.T) {
	l, key := newLog(t, audit.NewMemStore())
	appendN(t, l, 0, 20)
	srv := newServer(t, l)
	c := client(srv, "admin")
	ctx := context.Background()

	msg, err := c.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := audit.OpenCheckpoint(msg, key.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	it, err := c.Record(ctx, 7, 0)
	if err != nil {
		t.Fatal(err)
	}
	r, err := it.Verify(cp)
	if err != nil || r.RequestID != "req7" {
		t.Fatalf("record 7: %+v, %v", r, err)
	}
	// A record altered in transit fails its proof.
	it.Record = []byte(strings.Replace(string(it.Record), "req7", "req8", 1))
	var ve *audit.VerifyError
	if _, err := it.Verify(cp); !errors.As(err, &ve) || ve.Index != 7 {
		t.Errorf("Verify of an altered record: %v", err)
	}
	// An older tree: the proof is for it.
	it, err = c.Record(ctx, 3, 10)
	if err != nil || it.TreeSize != 10 {
		t.Fatalf("Record(3, 10) = %+v, %v", it, err)
	}
	old, _ := l.ProveTree(ctx, 10, 20)
	p, err := c.Consistency(ctx, 10, 20)
	if err != nil || !slices.Equal(p, old) {
		t.Fatalf("Consistency(10, 20) = %v, %v", p, err)
	}
	if err := tlog.CheckTree(p, 20, cp.Hash, 10, mustTreeHash(t, l, 10)); err != nil {
		t.Errorf("consistency proof 10 -> 20: %v", err)
	}
	vkey, err := c.VerifierKey(ctx)
	if err != nil || vkey != key.VerifierKey() {
		t.Errorf("VerifierKey = %q, %v", vkey, err)
	}
}

// mustTreeHash returns the root of the tree of the first n records, as a
// client holding that checkpoint knows it.
func mustTreeHash(t *testing.T, l *audit.Log, n int64) tlog.Hash {
	t.Helper()
	es, err := l.Records(context.Background(), audit.Filter{End: n, Limit: int(n)})
	if err != nil {
		t.Fatal(err)
	}
	records := make([][]byte, len(es))
	for i, e := range es {
		records[i] = e.Data
	}
	_, r := audittest.StoredHashes(t, records)
	h, err := tlog.TreeHash(n, r)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHandlerErrors(t *testing.T) {
	l, _ := newLog(t, audit.NewMemStore())
	appendN(t, l, 0, 3)
	srv := newServer(t, l)
	tests := []struct {
		name, token, path string
		status            int
		code              string
	}{
		{"no token", "", "/checkpoint", 401, fheserve.EUNAUTHORIZED},
		{"bad token", "nope", "/records", 401, fheserve.EUNAUTHORIZED},
		{"bad index", "admin", "/records/x", 400, fheserve.EINVALID},
		{"index beyond", "admin", "/records/3", 404, fheserve.ENOTFOUND},
		{"tree beyond", "admin", "/records/1?tree=4", 400, fheserve.EINVALID},
		{"tree before", "admin", "/records/1?tree=1", 400, fheserve.EINVALID},
		{"bad since", "admin", "/records?since=yesterday", 400, fheserve.EINVALID},
		{"bad limit", "admin", "/records?limit=-1", 400, fheserve.EINVALID},
		{"object without kind", "admin", "/records?object=key_1", 400, fheserve.EINVALID},
		{"object of a bad kind", "admin", "/records?object=Key:key_1", 400, fheserve.EINVALID},
		{"object without id", "admin", "/records?object=keyset:", 400, fheserve.EINVALID},
		{"no old", "admin", "/consistency?new=3", 400, fheserve.EINVALID},
		{"old above new", "admin", "/consistency?old=3&new=2", 400, fheserve.EINVALID},
		{"new beyond", "admin", "/consistency?old=1&new=4", 400, fheserve.EINVALID},
		{"unknown path", "admin", "/nothing", 404, fheserve.ENOTFOUND},
		{"wrong method", "admin", "POST /checkpoint", 404, fheserve.ENOTFOUND},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method, path, ok := strings.Cut(tt.path, " ")
			if !ok {
				method, path = "GET", tt.path
			}
			req, _ := http.NewRequest(method, srv.URL+audit.PathPrefix+path, nil)
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct{ Code, Message string }
			json.NewDecoder(resp.Body).Decode(&body)
			if resp.StatusCode != tt.status || body.Code != tt.code || body.Message == "" {
				t.Errorf("%s %s: %d %+v, want %d %s", method, path, resp.StatusCode, body, tt.status, tt.code)
			}
		})
	}
}

// TestCheckLogDetects shows that a client holding a checkpoint detects a
// log rolled back or rewritten by its operator, who has the signing key.
func TestCheckLogDetects(t *testing.T) {
	ctx := context.Background()
	key, err := audit.GenerateKey("test.example/audit")
	if err != nil {
		t.Fatal(err)
	}
	honest, err := audit.New(ctx, audit.NewMemStore(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer honest.Close()
	appendN(t, honest, 0, 10)
	first, err := client(newServer(t, honest), "user").CheckLog(ctx, key.VerifierKey(), nil)
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, honest, 10, 15)
	second, err := client(newServer(t, honest), "user").CheckLog(ctx, key.VerifierKey(), first.Note)
	if err != nil || second.Checkpoint.N != 15 {
		t.Fatalf("CheckLog after growth: %v", err)
	}

	// Logs the same operator could serve instead, signed with its key.
	rewrite := func(t *testing.T, n int, change func(i int, r *audit.Record)) *audit.Log {
		l, err := audit.New(ctx, audit.NewMemStore(), key)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		for i := range n {
			r := audittest.Rec(i)
			change(i, r)
			if _, err := l.Append(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		return l
	}
	same := func(int, *audit.Record) {}
	refuse3 := func(i int, r *audit.Record) {
		if i == 3 {
			r.Outcome = fheserve.EFORBIDDEN
		}
	}
	tests := []struct {
		name string
		log  func(t *testing.T) *audit.Log
		seen []byte
		want string
	}{
		{"rolled back", func(t *testing.T) *audit.Log { return rewrite(t, 12, same) }, second.Note, "rolled back"},
		{"rewritten, same size", func(t *testing.T) *audit.Log { return rewrite(t, 15, refuse3) }, second.Note, "rewritten"},
		{"rewritten, then grown", func(t *testing.T) *audit.Log { return rewrite(t, 20, refuse3) }, second.Note, "does not extend"},
		{"honest", func(t *testing.T) *audit.Log { return honest }, first.Note, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client(newServer(t, tt.log(t)), "user").CheckLog(ctx, key.VerifierKey(), tt.seen)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ve *audit.VerifyError
			if !errors.As(err, &ve) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("CheckLog: %v, want a VerifyError about %q", err, tt.want)
			}
		})
	}

	other, _ := audit.GenerateKey(key.Origin())
	if _, err := client(newServer(t, honest), "user").CheckLog(ctx, other.VerifierKey(), nil); err == nil || !strings.Contains(err.Error(), "not signed by the key") {
		t.Errorf("CheckLog with the wrong pinned key: %v", err)
	}
}
