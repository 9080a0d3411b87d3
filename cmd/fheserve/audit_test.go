package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/audit"
	"github.com/fheserve/fheserve/audit/audittest"
	auditsqlite "github.com/fheserve/fheserve/audit/sqlite"
	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"
)

func TestAuditFlags(t *testing.T) {
	key, err := audit.GenerateKey("test.example/audit")
	if err != nil {
		t.Fatal(err)
	}
	pin := key.VerifierKey()
	since := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	verifyCmd := func(f *Factory, p *parsed) *cobra.Command {
		return newAuditVerifyCmd(f, capture[auditVerifyOptions](p))
	}
	logCmd := func(f *Factory, p *parsed) *cobra.Command { return newAuditLogCmd(f, capture[auditLogOptions](p)) }
	keyCmd := func(f *Factory, p *parsed) *cobra.Command { return newAuditKeyCmd(f, capture[auditKeyOptions](p)) }
	tests := []struct {
		name    string
		cmd     func(*Factory, *parsed) *cobra.Command
		args    []string
		want    any
		wantErr string
	}{
		{"verify server", verifyCmd, []string{"--server", "http://h:1", "--token", "t"},
			&auditVerifyOptions{auditSource: auditSource{Token: "t", remote: remote{Server: "http://h:1"}}}, ""},
		{"verify pinned", verifyCmd, []string{"--pin", pin}, &auditVerifyOptions{Pin: pin}, ""},
		{"verify offline", verifyCmd, []string{"--data-dir", "d"}, &auditVerifyOptions{auditSource: auditSource{DataDir: "d"}}, ""},
		{"log", logCmd, []string{"--data-dir", "d", "--since", "2026-11-01", "--actor", "alice", "--json"},
			&auditLogOptions{auditSource: auditSource{DataDir: "d"}, Since: since, Actor: "alice", JSON: true}, ""},
		{"log object", logCmd, []string{"--object", "keyset:key_1"},
			&auditLogOptions{Object: audit.Object{Kind: audit.KindKeySet, ID: "key_1"}}, ""},
		{"bad object", logCmd, []string{"--object", "key_1"}, nil, fheserve.EINVALID},
		{"key", keyCmd, []string{"--data-dir", "d"}, &auditKeyOptions{DataDir: "d"}, ""},
		{"key without data dir", keyCmd, nil, nil, fheserve.EINVALID},
		{"server and data dir", verifyCmd, []string{"--server", "http://h", "--data-dir", "d"}, nil, fheserve.EINVALID},
		{"token offline", logCmd, []string{"--data-dir", "d", "--token", "t"}, nil, fheserve.EINVALID},
		{"bad pin", verifyCmd, []string{"--pin", "nope"}, nil, fheserve.EINVALID},
		{"bad since", logCmd, []string{"--since", "last week"}, nil, fheserve.EINVALID},
		{"argument", verifyCmd, []string{"http://h"}, nil, fheserve.EINVALID},
	}
	unexported := cmp.AllowUnexported(auditVerifyOptions{}, auditLogOptions{}, auditSource{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &parsed{}
			err := execute(t, tt.cmd(testFactory(t), p), tt.args...)
			if tt.wantErr != "" {
				if fheserve.ErrorCode(err) != tt.wantErr {
					t.Fatalf("error %v, want code %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, p.opts, injected, unexported); diff != "" {
				t.Errorf("options (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
	}{
		{"2026-11-20T10:00:00+01:00", time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)},
		{"2026-11-20", time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)},
		{"36h", time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		got, err := parseSince(tt.in, now)
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"-1h", "yesterday", ""} {
		if _, err := parseSince(bad, now); err == nil {
			t.Errorf("parseSince(%q) accepted", bad)
		}
	}
}

// auditServer is a server's audit log in a data directory, as the service
// keeps it, which tests can stop and open again.
type auditServer struct {
	dir string
	st  *auditsqlite.Store
	log *audit.Log
}

func openAuditServer(t *testing.T, dir string) *auditServer {
	t.Helper()
	ctx := context.Background()
	key, err := audit.LoadOrCreateKey(filepath.Join(dir, audit.KeyFile), "test.example/audit")
	if err != nil {
		t.Fatal(err)
	}
	st, err := auditsqlite.Open(ctx, filepath.Join(dir, audit.DBFile))
	if err != nil {
		t.Fatal(err)
	}
	l, err := audit.New(ctx, st, key)
	if err != nil {
		t.Fatal(err)
	}
	s := &auditServer{dir: dir, st: st, log: l}
	t.Cleanup(s.close)
	return s
}

func (s *auditServer) close() {
	s.log.Close()
	s.st.Close()
}

// appendRecs appends audittest.Rec(i) for i in [from, to), one by one.
func (s *auditServer) appendRecs(t *testing.T, from, to int, change func(*audit.Record)) {
	t.Helper()
	for i := from; i < to; i++ {
		r := audittest.Rec(i)
		if change != nil {
			change(r)
		}
		if _, err := s.log.Append(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
}

// sqlExec runs SQL statements on the database file, as someone with access
// to it would.
func sqlExec(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// TestAuditVerifyDataDir alters, deletes and reorders stored records, each
// separately, and checks that offline verification names the record.
func TestAuditVerifyDataDir(t *testing.T) {
	tests := []struct {
		name  string
		stmts []string
		want  string
	}{
		{"altered", []string{`UPDATE records SET data = CAST(replace(CAST(data AS TEXT), '"actor":"a2"', '"actor":"a4"') AS BLOB), actor = 'a4' WHERE idx = 42`},
			"record 42: its hash does not match its stored hash"},
		{"deleted", []string{`DELETE FROM records WHERE idx = 42`, `DELETE FROM objects WHERE idx = 42`},
			"record 42: it is missing"},
		{"reordered", []string{`UPDATE records SET idx = -1 WHERE idx = 42`, `UPDATE records SET idx = 42 WHERE idx = 43`, `UPDATE records SET idx = 43 WHERE idx = -1`,
			`UPDATE objects SET idx = -1 WHERE idx = 42`, `UPDATE objects SET idx = 42 WHERE idx = 43`, `UPDATE objects SET idx = 43 WHERE idx = -1`},
			"record 42: its hash does not match its stored hash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openAuditServer(t, dir)
			s.appendRecs(t, 0, 100, nil)
			s.close()

			r := runCLI(t, "audit", "verify", "--data-dir", dir)
			mustSucceed(t, r)
			if !strings.Contains(r.stdout, "100 records, 101 signed checkpoints") {
				t.Errorf("verify output:\n%s", r.stdout)
			}
			sqlExec(t, filepath.Join(dir, audit.DBFile), tt.stmts...)
			mustFail(t, runCLI(t, "audit", "verify", "--data-dir", dir), 1, "audit log does not verify", tt.want)
		})
	}
}

func TestAuditKeyAndLogOffline(t *testing.T) {
	dir := t.TempDir()
	s := openAuditServer(t, dir)
	s.appendRecs(t, 0, 12, nil)

	r := runCLI(t, "audit", "key", "--data-dir", dir)
	mustSucceed(t, r)
	if strings.TrimSpace(r.stdout) != s.log.VerifierKey() {
		t.Errorf("audit key printed %q, want %q", r.stdout, s.log.VerifierKey())
	}
	mustSucceed(t, runCLI(t, "audit", "verify", "--data-dir", dir, "--pin", s.log.VerifierKey()))
	other, _ := audit.GenerateKey("test.example/audit")
	mustFail(t, runCLI(t, "audit", "verify", "--data-dir", dir, "--pin", other.VerifierKey()), 1, "not signed by the key")

	r = runCLI(t, "audit", "log", "--data-dir", dir, "--actor", "a3")
	mustSucceed(t, r)
	want := "INDEX  TIME (UTC)           ACTOR  ACTION      OUTCOME  OBJECTS          REQUEST\n" +
		"3      2026-11-22 04:03:00  a3     job.submit  ok       job:j3,model:m3  req3\n" +
		"8      2026-11-22 04:08:00  a3     job.submit  ok       job:j8,model:m1  req8\n"
	if r.stdout != want {
		t.Errorf("audit log:\n%s\nwant\n%s", r.stdout, want)
	}
	r = runCLI(t, "audit", "log", "--data-dir", dir, "--object", "model:m1")
	mustSucceed(t, r)
	if got := strings.Fields(r.stdout); !slices.Contains(got, "1") || !slices.Contains(got, "8") || strings.Count(r.stdout, "\n") != 3 {
		t.Errorf("audit log --object model:m1, want records 1 and 8:\n%s", r.stdout)
	}
	r = runCLI(t, "audit", "log", "--data-dir", dir, "--since", "2026-11-22T04:10:00Z", "--json")
	mustSucceed(t, r)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 2 {
		t.Fatalf("audit log --json printed %d lines, want 2:\n%s", len(lines), r.stdout)
	}
	var it audit.Item
	if err := json.Unmarshal([]byte(lines[1]), &it); err != nil || it.Index != 11 {
		t.Fatalf("line %q: %+v, %v", lines[1], it, err)
	}
	if rec, err := audit.DecodeRecord(it.Record); err != nil || rec.RequestID != "req11" {
		t.Errorf("record of line %q: %+v, %v", lines[1], rec, err)
	}
	mustFail(t, runCLI(t, "audit", "verify", "--data-dir", t.TempDir()), 2, "audit signing key")
	mustFail(t, runCLI(t, "audit", "log", "--data-dir", t.TempDir()), 2, "no audit log in")
	mustFail(t, runCLI(t, "audit", "log", "--data-dir", t.TempDir(), "--store", "mysql://db/fheserve"), 2, "unknown store")
}

// TestAuditVerifyServer verifies a server's log from outside as it grows,
// then rolls the server's log back to an older copy of its database, and
// checks that the client detects it from the checkpoint it saw before.
func TestAuditVerifyServer(t *testing.T) {
	alice := newParty(t, "")
	dir := t.TempDir()
	s := openAuditServer(t, dir)
	s.appendRecs(t, 0, 40, nil)

	// The service mounts the handler under audit.PathPrefix; alice's
	// token sees the records about account acc1.
	var handler atomic.Pointer[http.Handler]
	serve := func(l *audit.Log) {
		h := http.StripPrefix(audit.PathPrefix, audit.NewHandler(l, audit.AuthorizerFunc(func(r *http.Request) (*audit.Scope, error) {
			if r.Header.Get("Authorization") != "Bearer alice-token" {
				return nil, fheserve.Errorf(fheserve.EUNAUTHORIZED, "log in first")
			}
			return &audit.Scope{AccountID: "acc1", Objects: []audit.Object{{Kind: audit.KindAccount, ID: "acc1"}}}, nil
		})))
		handler.Store(&h)
	}
	serve(s.log)
	// The service also tells alice who she is, for the check that the log
	// records no key set under her name that she did not make.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/me" && r.Header.Get("Authorization") == "Bearer alice-token" {
			json.NewEncoder(w).Encode(&fheserve.Account{ID: "acc1", Username: "alice", Role: fheserve.RoleUser})
			return
		}
		(*handler.Load()).ServeHTTP(w, r)
	}))
	defer srv.Close()
	verify := func(args ...string) result {
		return alice.run("", append([]string{"audit", "verify", "--server", srv.URL, "--token", "alice-token"}, args...)...)
	}

	mustFail(t, alice.run("", "audit", "verify", "--server", srv.URL), 1, "log in first")
	r := verify()
	mustSucceed(t, r)
	if !strings.Contains(r.stderr, "pinning the audit key "+s.log.VerifierKey()) ||
		!strings.Contains(r.stdout, "40 records") || !strings.Contains(r.stdout, "8 of your records are in it") {
		t.Fatalf("first verify:\nstdout: %s\nstderr: %s", r.stdout, r.stderr)
	}

	// A snapshot of the database, as a backup would take it.
	old := filepath.Join(t.TempDir(), audit.DBFile)
	sqlExec(t, filepath.Join(dir, audit.DBFile), `VACUUM INTO '`+old+`'`)

	s.appendRecs(t, 40, 60, nil)
	alice.env[tokenEnv] = "alice-token"
	r = alice.run("", "audit", "verify", "--server", srv.URL)
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "60 records") || !strings.Contains(r.stdout, "extends the log of 40 records") || r.stderr != "" {
		t.Fatalf("second verify:\nstdout: %s\nstderr: %s", r.stdout, r.stderr)
	}
	r = alice.run("", "audit", "log", "--server", srv.URL, "--since", "2026-11-22T04:50:00Z")
	mustSucceed(t, r)
	if strings.Count(r.stdout, "\n") != 3 || !strings.Contains(r.stdout, "req51") || !strings.Contains(r.stdout, "req56") {
		t.Errorf("audit log --server:\n%s", r.stdout)
	}

	// The operator restores the old copy: the log is rolled back.
	s.close()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		os.Remove(filepath.Join(dir, audit.DBFile+suffix))
	}
	if err := os.Rename(old, filepath.Join(dir, audit.DBFile)); err != nil {
		t.Fatal(err)
	}
	s = openAuditServer(t, dir)
	serve(s.log)
	mustSucceed(t, runCLI(t, "audit", "verify", "--data-dir", dir)) // consistent in itself
	mustFail(t, verify(), 1, "40 records, fewer than the 60 of the checkpoint seen before: it was rolled back")

	// ... and grows again past the checkpoint seen, with other records.
	s.appendRecs(t, 40, 70, func(r *audit.Record) { r.Outcome = fheserve.EFORBIDDEN })
	mustFail(t, verify(), 1, "log of 70 records does not extend the log of 60 records seen before")

	// Pins: another key than the pinned one is refused; a client that
	// pinned a wrong key rejects the server's checkpoints.
	other, _ := audit.GenerateKey("test.example/audit")
	mustFail(t, verify("--pin", other.VerifierKey()), 1, "--pin is not the key pinned")
	alice.home = t.TempDir()
	mustFail(t, verify("--pin", other.VerifierKey()), 1, "checkpoint is not signed by the key")
}

// TestRecordPrinterEscapes checks that the table of audit records shows a
// field holding a newline, terminal escapes or invalid UTF-8 quoted, so
// that no record can forge a line or drive the terminal, whatever the
// record holds (such records do not validate today; the table does not
// rely on it).
func TestRecordPrinterEscapes(t *testing.T) {
	var out bytes.Buffer
	p := newRecordPrinter(&auditLogOptions{IO: &IOStreams{Out: &out}})
	p.print(7, nil, &audit.Record{Time: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC), Actor: "a\n\x1b[31mb", Action: "token.create",
		Objects: []audit.Object{{Kind: "token", ID: "tok\x1b[2J\u202e"}}, Outcome: "ok", RequestID: "req\r\xff"})
	p.print(8, nil, &audit.Record{Time: time.Date(2026, 11, 22, 12, 0, 1, 0, time.UTC), Actor: "alice", Action: "auth.login", Outcome: "ok"})
	if err := p.flush(); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if strings.ContainsAny(got, "\x1b\r\u202e") || !utf8.ValidString(got) || strings.Count(got, "\n") != 3 {
		t.Fatalf("table holds raw control characters or extra lines:\n%q", got)
	}
	for _, want := range []string{`"a\n\x1b[31mb"`, `"token:tok\x1b[2J\u202e"`, `"req\r\xff"`, " alice ", " auth.login "} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %s:\n%s", want, got)
		}
	}
}
