package app

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/audit"
	auditsqlite "github.com/fheserve/fheserve/audit/sqlite"
	"github.com/fheserve/fheserve/blob"
	"github.com/fheserve/fheserve/inproc"
	"github.com/fheserve/fheserve/sqlite"
	"github.com/fheserve/fheserve/storetest"
)

// BenchmarkRequestAudit measures an action on the request path (creating
// an API token: a token row and a signed-log record with its hashes and a
// signed checkpoint) with the log in memory and on disk; the difference is
// the cost of storing a record durably.
func BenchmarkRequestAudit(b *testing.B) {
	for _, onDisk := range []bool{false, true} {
		name := "log-in-memory"
		if onDisk {
			name = "log-on-disk"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			dir := b.TempDir()
			store, err := sqlite.Open(ctx, filepath.Join(dir, "db"))
			if err != nil {
				b.Fatal(err)
			}
			blobs, err := blob.Open(filepath.Join(dir, "blobs"))
			if err != nil {
				b.Fatal(err)
			}
			cfg := Config{Store: store, Blobs: blobs, Queue: inproc.NewQueue(), MasterKey: make([]byte, 32), Audit: mustLog(b)}
			if onDisk {
				cfg.Audit.Close()
				st, err := auditsqlite.Open(ctx, filepath.Join(dir, audit.DBFile))
				if err != nil {
					b.Fatal(err)
				}
				defer st.Close()
				key, err := audit.GenerateKey("")
				if err != nil {
					b.Fatal(err)
				}
				if cfg.Audit, err = audit.New(ctx, st, key); err != nil {
					b.Fatal(err)
				}
			}
			a, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer a.Close()
			who := &fheserve.Account{ID: "acc_1", Username: "alice", Role: fheserve.RoleUser, Status: fheserve.AccountActive, CreatedAt: time.Now()}
			if err := store.CreateAccount(ctx, who); err != nil {
				b.Fatal(err)
			}
			ctx = fheserve.WithRequestID(ctx, "req_bench")
			b.ResetTimer()
			for range b.N {
				if _, err := a.CreateAPIToken(ctx, who, &fheserve.APITokenRequest{Name: "ci"}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestAuditRecords checks that each security-relevant action appends one
// record to the signed log, with its actor, objects and outcome, and the
// request's id.
func TestAuditRecords(t *testing.T) {
	a, _ := mustApp(t)
	ctx := fheserve.WithRequestID(context.Background(), "req_1")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	root, err := a.InitAdmin(ctx, "root", "root-password")
	must(err)
	u, err := a.Register(ctx, &fheserve.RegisterRequest{Username: "ulrich", Password: "user-password", Role: fheserve.RoleUser})
	must(err)
	_, err = a.Login(ctx, &fheserve.LoginRequest{Username: "ulrich", Password: "user-password"})
	wantCode(t, err, fheserve.EFORBIDDEN)
	_, err = a.Review(ctx, root, "ulrich", Approve)
	must(err)
	_, err = a.Login(ctx, &fheserve.LoginRequest{Username: "ulrich", Password: "a-wrong-password"})
	wantCode(t, err, fheserve.EUNAUTHORIZED)
	_, err = a.Login(ctx, &fheserve.LoginRequest{Username: "nobody", Password: "user-password"})
	wantCode(t, err, fheserve.EUNAUTHORIZED)
	s, err := a.Login(ctx, &fheserve.LoginRequest{Username: "ulrich", Password: "user-password"})
	must(err)
	u = s.Account
	api, err := a.CreateAPIToken(ctx, u, &fheserve.APITokenRequest{Name: "ci"})
	must(err)
	must(a.RevokeToken(ctx, u, api.TokenID))
	c, err := a.Authenticate(ctx, s.Token)
	must(err)
	must(a.Logout(ctx, c))

	owner := storetest.MustAccount(t, a.store, "olivia", fheserve.RoleOwner)
	user := storetest.MustAccount(t, a.store, "ursula", fheserve.RoleUser)
	m := storetest.MustModel(t, a.store, owner, "mdl_1", "m")
	ks := storetest.MustKeySet(t, a.store, user, m, "key_1")
	_, err = a.SetAccess(ctx, owner, m.ID, &fheserve.AccessRequest{Allow: []string{"ursula"}})
	must(err)
	_, err = a.SetLimits(ctx, owner, m.ID, &fheserve.ModelLimits{Daily: 10})
	must(err)
	_, err = a.RevokeKeySet(ctx, user, ks.ID)
	must(err)
	_, err = a.Retire(ctx, owner, m.ID)
	must(err)

	ids := map[string]string{"root": root.ID, "ulrich": u.ID, "olivia": owner.ID, "ursula": user.ID}
	acct := func(id string) audit.Object { return accountObj(id) }
	want := []struct {
		actor, action, outcome string
		objs                   []audit.Object
	}{
		{"root", "account.init_admin", "ok", []audit.Object{acct(root.ID)}},
		{"ulrich", "account.register", "ok", []audit.Object{acct(u.ID)}},
		{"ulrich", "auth.login", fheserve.EFORBIDDEN, []audit.Object{acct(u.ID)}},
		{"root", "account.approve", "ok", []audit.Object{acct(u.ID)}},
		{"", "auth.login", fheserve.EUNAUTHORIZED, []audit.Object{acct(u.ID)}},
		{"", "auth.login", fheserve.EUNAUTHORIZED, []audit.Object{}},
		{"ulrich", "auth.login", "ok", []audit.Object{acct(u.ID), tokenObj(s.TokenID)}},
		{"ulrich", "token.create", "ok", []audit.Object{acct(u.ID), tokenObj(api.TokenID)}},
		{"ulrich", "token.revoke", "ok", []audit.Object{acct(u.ID), tokenObj(api.TokenID)}},
		{"ulrich", "auth.logout", "ok", []audit.Object{acct(u.ID), tokenObj(s.TokenID)}},
		{"olivia", "model.access", "ok", []audit.Object{modelObj(m.ID)}},
		{"olivia", "model.limits", "ok", []audit.Object{modelObj(m.ID)}},
		{"ursula", "keyset.revoke", "ok", []audit.Object{keySetObj(ks.ID), modelObj(m.ID)}},
		{"olivia", "model.retire", "ok", []audit.Object{modelObj(m.ID)}},
	}
	es, err := a.AuditLog().Records(ctx, audit.Filter{Limit: audit.MaxLimit})
	must(err)
	if len(es) != len(want) {
		for _, e := range es {
			t.Logf("%s", e.Data)
		}
		t.Fatalf("%d records, want %d", len(es), len(want))
	}
	for i, w := range want {
		r := es[i].Record
		wr := &audit.Record{Time: r.Time, Actor: w.actor, Action: w.action, Outcome: w.outcome, Objects: w.objs, RequestID: "req_1"}
		if w.actor != "" {
			wr.ActorID = ids[w.actor]
		}
		wantData, err := wr.Encode()
		must(err)
		if !bytes.Equal(es[i].Data, wantData) {
			t.Errorf("record %d:\n got %s\nwant %s", i, es[i].Data, wantData)
		}
	}
}
