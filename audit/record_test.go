package audit_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/audit"
	"github.com/fheserve/fheserve/internal/allocs"
)

func validRecord() *audit.Record {
	return &audit.Record{
		Time:      time.Date(2026, 11, 22, 4, 27, 0, 123456789, time.FixedZone("CET", 3600)),
		ActorID:   "acc_1",
		Actor:     "alice",
		Action:    "job.submit",
		Objects:   []audit.Object{{Kind: audit.KindModel, ID: "m1"}, {Kind: audit.KindJob, ID: "j1"}, {Kind: audit.KindModel, ID: "m1"}},
		Outcome:   audit.OutcomeOK,
		RequestID: "r-1",
	}
}

func TestRecordValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(r *audit.Record)
		ok     bool
	}{
		{"valid", func(r *audit.Record) {}, true},
		{"system actor", func(r *audit.Record) { r.ActorID, r.Actor = "", "" }, true},
		{"refused", func(r *audit.Record) { r.Outcome = fheserve.EFORBIDDEN }, true},
		{"no objects", func(r *audit.Record) { r.Objects = nil }, true},
		{"no time", func(r *audit.Record) { r.Time = time.Time{} }, false},
		{"bad action", func(r *audit.Record) { r.Action = "Job Submit" }, false},
		{"long action", func(r *audit.Record) { r.Action = strings.Repeat("a", 65) }, false},
		{"bad outcome", func(r *audit.Record) { r.Outcome = "success" }, false},
		{"password as actor", func(r *audit.Record) { r.Actor = "Hunter2!" }, false},
		{"bad actor id", func(r *audit.Record) { r.ActorID = "a b" }, false},
		{"token-like object id", func(r *audit.Record) { r.Objects[0].ID = "abc+/def==" }, false},
		{"long object id", func(r *audit.Record) { r.Objects[0].ID = strings.Repeat("x", 129) }, false},
		{"bad kind", func(r *audit.Record) { r.Objects[0].Kind = "Model" }, false},
		{"bad request id", func(r *audit.Record) { r.RequestID = "r\n1" }, false},
		{"too many objects", func(r *audit.Record) {
			r.Objects = nil
			for i := range audit.MaxObjects + 1 {
				r.Objects = append(r.Objects, audit.Object{Kind: audit.KindJob, ID: fmt.Sprint("j", i)})
			}
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := validRecord()
			tt.change(r)
			err := r.Validate()
			if tt.ok && err != nil {
				t.Errorf("Validate: %v", err)
			}
			if !tt.ok && fheserve.ErrorCode(err) != fheserve.EINVALID {
				t.Errorf("Validate: %v, want %s", err, fheserve.EINVALID)
			}
		})
	}
}

func TestRecordEncoding(t *testing.T) {
	data, err := validRecord().Encode()
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"action":"job.submit","actor":"alice","actor_id":"acc_1","objects":[{"id":"j1","kind":"job"},{"id":"m1","kind":"model"}],"outcome":"ok","request_id":"r-1","time":"2026-11-22T03:27:00.123456Z","v":1}`
	if string(data) != want {
		t.Fatalf("Encode:\n%s\nwant\n%s", data, want)
	}
	r, err := audit.DecodeRecord(data)
	if err != nil {
		t.Fatal(err)
	}
	again, err := r.Encode()
	if err != nil || string(again) != want {
		t.Fatalf("Encode(Decode(x)) = %s, %v", again, err)
	}
	if !r.Time.Equal(time.Date(2026, 11, 22, 3, 27, 0, 123456000, time.UTC)) || len(r.Objects) != 2 {
		t.Errorf("decoded %+v", r)
	}

	// Other encodings of the same record are refused, so that a record
	// has one hash.
	for _, bad := range []string{
		strings.Replace(want, `"action"`, ` "action"`, 1),
		strings.Replace(want, `.123456Z`, `.123456000Z`, 1),
		strings.Replace(want, `"v":1`, `"v":1,"x":2`, 1),
		strings.Replace(want, `"v":1`, `"v":2`, 1),
		strings.Replace(want, `{"id":"j1","kind":"job"},{"id":"m1","kind":"model"}`, `{"id":"m1","kind":"model"},{"id":"j1","kind":"job"}`, 1),
		strings.Replace(want, `"actor":"alice","actor_id":"acc_1"`, `"actor_id":"acc_1","actor":"alice"`, 1),
		want + "\n",
		`{"action":"job.submit"}`,
	} {
		if _, err := audit.DecodeRecord([]byte(bad)); err == nil {
			t.Errorf("DecodeRecord accepted %s", bad)
		}
	}
}

func TestParseCheckpoint(t *testing.T) {
	tests := []struct {
		text string
		ok   bool
	}{
		{"o\n5\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n", true},
		{"o\n5\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\nextension\n", true},
		{"o\n5\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", false},
		{"\n5\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n", false},
		{"o\n05\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n", false},
		{"o\n-1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n", false},
		{"o\n5\nAAAA\n", false},
		{"o\n5\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\next", false},
	}
	for _, tt := range tests {
		c, err := audit.ParseCheckpoint(tt.text)
		if (err == nil) != tt.ok {
			t.Errorf("ParseCheckpoint(%q): %v", tt.text, err)
		}
		if err == nil && (c.Origin != "o" || c.N != 5 || c.Text() != strings.SplitAfterN(tt.text, "\n", 4)[0]+"5\n"+c.Hash.String()+"\n") {
			t.Errorf("ParseCheckpoint(%q) = %+v", tt.text, c)
		}
	}
}

func TestOpenCheckpoint(t *testing.T) {
	l, key := newLog(t, audit.NewMemStore())
	other, _ := audit.GenerateKey(key.Origin())
	msg, _ := l.Checkpoint()
	if _, err := audit.OpenCheckpoint(msg, key.VerifierKey()); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, vkey, want string
	}{
		{"another key of the same name", other.VerifierKey(), "not signed by the key"},
		{"a malformed key", "x+y", "bad verifier key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := audit.OpenCheckpoint(msg, tt.vkey)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("OpenCheckpoint: %v, want %q", err, tt.want)
			}
		})
	}
	forged := strings.Replace(string(msg), "\n0\n", "\n1\n", 1)
	if _, err := audit.OpenCheckpoint([]byte(forged), key.VerifierKey()); err == nil || !strings.Contains(err.Error(), "invalid signature") {
		t.Errorf("OpenCheckpoint of an altered checkpoint: %v", err)
	}
}

func TestKeys(t *testing.T) {
	path := t.TempDir() + "/audit.key"
	k, err := audit.LoadOrCreateKey(path, "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(k.Origin(), "fheserve.audit/") {
		t.Errorf("default origin %q", k.Origin())
	}
	assertMode(t, path, 0o600)
	again, err := audit.LoadOrCreateKey(path, "ignored")
	if err != nil || again.VerifierKey() != k.VerifierKey() {
		t.Fatalf("reloaded key %v, %v; want %s", again, err, k.VerifierKey())
	}
	if _, err := audit.ParseKey("PRIVATE+KEY+x+00000000+AAAA"); err == nil {
		t.Errorf("ParseKey accepted a short key")
	}
}

func FuzzDecodeRecord(f *testing.F) {
	data, _ := validRecord().Encode()
	f.Add(data)
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte(`{"action":"a","actor":"","actor_id":"","objects":[],"outcome":"ok","request_id":"","time":"2026-11-22T03:27:00.000000Z","v":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var r *audit.Record
		var err error
		// The JSON decoder's own state and the record's strings: well
		// within 64 bytes per input byte and 64 KiB.
		allocs.Bound(t, 64*uint64(len(data))+64<<10, func() { r, err = audit.DecodeRecord(data) })
		if err != nil {
			return
		}
		again, err := r.Encode()
		if err != nil || string(again) != string(data) {
			t.Fatalf("decoded %q, re-encoded %q, %v", data, again, err)
		}
	})
}

func FuzzParseCheckpoint(f *testing.F) {
	key, err := audit.GenerateKey("o")
	if err != nil {
		f.Fatal(err)
	}
	l, _ := audit.New(context.Background(), audit.NewMemStore(), key)
	signed, _ := l.Checkpoint()
	l.Close()
	genuine, err := audit.OpenCheckpoint(signed, key.VerifierKey())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(signed))
	f.Add("o\n5\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n")
	f.Add("o\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\n— o abc=\n")
	f.Fuzz(func(t *testing.T, text string) {
		var c *audit.Checkpoint
		var err error
		allocs.Bound(t, 16*uint64(len(text))+64<<10, func() { c, err = audit.ParseCheckpoint(text) })
		if err != nil {
			return
		}
		if again, err := audit.ParseCheckpoint(c.Text()); err != nil || *again != *c {
			t.Fatalf("ParseCheckpoint(%q) = %+v, then %+v, %v", text, c, again, err)
		}
		// The key signed one checkpoint only: whatever opens under it
		// is that checkpoint.
		if opened, err := audit.OpenCheckpoint([]byte(text), key.VerifierKey()); err == nil && *opened != *genuine {
			t.Fatalf("OpenCheckpoint(%q) = %+v, a checkpoint the key never signed", text, opened)
		}
	})
}
