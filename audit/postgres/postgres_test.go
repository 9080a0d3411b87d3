package postgres

import (
	"context"
	"os"
	"sync"
	"testing"

	"github.com/fheserve/fheserve/audit"
	"github.com/fheserve/fheserve/audit/audittest"
	"github.com/fheserve/fheserve/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// MustOpen opens a store on url, closed at the end of the test.
func MustOpen(tb testing.TB, url string) *Store {
	tb.Helper()
	s, err := Open(context.Background(), url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func TestStore(t *testing.T) {
	audittest.Run(t, func(t *testing.T) audit.Store {
		s, err := Open(context.Background(), pgtest.NewDB(t))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestNodes appends from several nodes at once, each a Log on a pool of
// its own with the log's one key, several goroutines each: the records
// form one sequence (every record once, indexes 0..n-1) that Verify
// accepts with every stored checkpoint, and a node opened while the
// others append starts on a consistent tree.
func TestNodes(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDB(t)
	key, err := audit.GenerateKey("test.example/audit")
	if err != nil {
		t.Fatal(err)
	}
	const nodes, each = 4, 60
	var wg sync.WaitGroup
	for node := range nodes {
		wg.Go(func() {
			l, err := audit.New(ctx, MustOpen(t, url), key)
			if err != nil {
				t.Error(err)
				return
			}
			defer l.Close()
			audittest.MustAppend(t, l, node*each, (node+1)*each)
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	st := MustOpen(t, url)
	v, err := audit.Verify(ctx, st, key.VerifierKey())
	if err != nil {
		t.Fatal(err)
	}
	es := audittest.MustRecords(t, st, audit.Filter{Limit: audit.MaxLimit})
	seen := map[string]bool{}
	for i, e := range es {
		if e.Index != int64(i) {
			t.Fatalf("record %d has index %d", i, e.Index)
		}
		seen[e.Record.RequestID] = true
	}
	if len(es) != nodes*each || len(seen) != nodes*each {
		t.Fatalf("%d records, %d distinct, want %d", len(es), len(seen), nodes*each)
	}
	cps, err := st.Checkpoints(ctx, -1, audit.MaxLimit)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d records from %d nodes in %d checkpoints; verified: %+v", len(es), nodes, len(cps), v)
}
