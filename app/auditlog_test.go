package app

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/blob"
	"github.com/fheserve/fheserve/inproc"
	"github.com/fheserve/fheserve/sqlite"
)

// BenchmarkRequestAudit measures an action on the request path (creating
// an API token: a token row, an event row, and with the log an audit
// record with its hashes and a signed checkpoint, all on disk) without
// and with the transparency log; the difference is the cost of a record.
func BenchmarkRequestAudit(b *testing.B) {
	for _, withLog := range []bool{false, true} {
		name := "without-log"
		if withLog {
			name = "with-log"
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
			cfg := Config{Store: store, Blobs: blobs, Queue: inproc.NewQueue(), MasterKey: make([]byte, 32)}
			if withLog {
				l, st, err := openAudit(ctx, dir)
				if err != nil {
					b.Fatal(err)
				}
				defer st.Close()
				cfg.Audit = l
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
			ctx = WithRequestID(ctx, "req_bench")
			b.ResetTimer()
			for range b.N {
				if _, err := a.CreateAPIToken(ctx, who, &fheserve.APITokenRequest{Name: "ci"}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
