package postgres

import (
	"context"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
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

func BenchmarkAppend(b *testing.B) {
	ctx := context.Background()
	l, _ := audittest.MustNew(b, MustOpen(b, pgtest.NewDB(b)))
	i := 0
	for b.Loop() {
		if _, err := l.Append(ctx, audittest.Rec(i)); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkAppendNodes appends from 16 goroutines at once spread over
// nodes Logs (a pool each) on one database: group commit within a node,
// and batches that lose the race to another node built again.
func BenchmarkAppendNodes(b *testing.B) {
	for _, nodes := range []int{1, 2, 4} {
		b.Run(strconv.Itoa(nodes), func(b *testing.B) {
			ctx := context.Background()
			url := pgtest.NewDB(b)
			key, err := audit.GenerateKey("test.example/audit")
			if err != nil {
				b.Fatal(err)
			}
			logs := make([]*audit.Log, nodes)
			for i := range logs {
				if logs[i], err = audit.New(ctx, MustOpen(b, url), key); err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { logs[i].Close() })
			}
			var next atomic.Int64
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				l := logs[next.Add(1)%int64(nodes)]
				for pb.Next() {
					if _, err := l.Append(ctx, audittest.Rec(7)); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
		})
	}
}

// TestStaleNode reads the log through a node that did not append last: it
// serves the latest checkpoint in the store, every record, and proofs up
// to it, not the older tree of its own last append (which a client that
// saw the newer would take for a log rolled back).
func TestStaleNode(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDB(t)
	key, err := audit.GenerateKey("test.example/audit")
	if err != nil {
		t.Fatal(err)
	}
	var logs [2]*audit.Log
	for i := range logs {
		if logs[i], err = audit.New(ctx, MustOpen(t, url), key); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { logs[i].Close() })
	}
	a, b := logs[0], logs[1]
	audittest.MustAppend(t, b, 0, 5)
	audittest.MustAppend(t, a, 5, 12)
	if _, n := b.Checkpoint(); n != 5 {
		t.Fatalf("b holds a checkpoint of %d records before reading the store, want its own 5", n)
	}
	note, n, err := b.Latest(ctx)
	if err != nil || n != 12 {
		t.Fatalf("b's Latest: %d records, %v; want 12", n, err)
	}
	if cp, err := audit.OpenCheckpoint(note, key.VerifierKey()); err != nil || cp.N != 12 {
		t.Fatalf("b's latest checkpoint: %+v, %v", cp, err)
	}
	if es, err := b.Records(ctx, audit.Filter{Limit: audit.MaxLimit}); err != nil || len(es) != 12 {
		t.Fatalf("b lists %d records, %v; want 12", len(es), err)
	}
	// A fresh node asked for proofs up to a tree it has not seen yet.
	c, err := audit.New(ctx, MustOpen(t, url), key)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	audittest.MustAppend(t, a, 12, 15)
	if _, err := c.ProveTree(ctx, 5, 15); err != nil {
		t.Fatalf("ProveTree(5, 15) through a node that has seen 12: %v", err)
	}
	if _, err := c.ProveRecord(ctx, 14, 15); err != nil {
		t.Fatalf("ProveRecord(14, 15) through a node that has seen 12: %v", err)
	}
}
