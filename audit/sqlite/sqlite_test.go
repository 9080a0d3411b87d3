package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/fheserve/fheserve/audit"
	"github.com/fheserve/fheserve/audit/audittest"
	"github.com/fheserve/fheserve/audit/sqlite"
	"golang.org/x/mod/sumdb/tlog"
)

// MustOpen opens a new store in a temporary directory.
func MustOpen(tb testing.TB) *sqlite.Store {
	tb.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), "audit.db"))
	if err != nil {
		tb.Fatal(err)
	}
	return st
}

func TestStore(t *testing.T) {
	audittest.Run(t, func(t *testing.T) audit.Store { return MustOpen(t) })
}

// TestManyRecords appends thousands of records from concurrent appenders
// and checks every inclusion proof and the consistency of the checkpoints.
func TestManyRecords(t *testing.T) {
	ctx := context.Background()
	st := MustOpen(t)
	defer st.Close()
	l, key := audittest.MustNew(t, st)
	const n = 5000
	audittest.MustAppend(t, l, 0, n)

	msg, size := l.Checkpoint()
	latest, err := audit.OpenCheckpoint(msg, key.VerifierKey())
	if err != nil || size != n || latest.N != n {
		t.Fatalf("latest checkpoint: size %d, %v", size, err)
	}
	var cps []*audit.Checkpoint
	for after := int64(-1); ; {
		page, err := st.Checkpoints(ctx, after, audit.MaxLimit)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, sc := range page {
			c, err := audit.OpenCheckpoint(sc.Note, key.VerifierKey())
			if err != nil {
				t.Fatal(err)
			}
			cps = append(cps, c)
		}
		after = page[len(page)-1].Size
	}
	t.Logf("%d records, %d checkpoints (group commit)", n, len(cps))

	// Every record is in the latest tree, and in a checkpoint's older
	// tree when it is old enough.
	mid := cps[len(cps)/2]
	es := audittest.MustRecords(t, st, audit.Filter{})
	if len(es) != n {
		t.Fatalf("%d records, want %d", len(es), n)
	}
	for _, e := range es {
		for _, c := range []*audit.Checkpoint{latest, mid} {
			if e.Index >= c.N {
				continue
			}
			p, err := l.ProveRecord(ctx, e.Index, c.N)
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.CheckRecord(p, c.N, c.Hash, e.Index, tlog.RecordHash(e.Data)); err != nil {
				t.Fatalf("record %d in the tree of %d: %v", e.Index, c.N, err)
			}
		}
	}
	// Every checkpoint's tree is a prefix of every later one's.
	step := max(1, len(cps)/40)
	for i := 1; i < len(cps); i += step {
		for j := i; j < len(cps); j += step {
			p, err := l.ProveTree(ctx, cps[i].N, cps[j].N)
			if err != nil {
				t.Fatal(err)
			}
			if err := tlog.CheckTree(p, cps[j].N, cps[j].Hash, cps[i].N, cps[i].Hash); err != nil {
				t.Fatalf("consistency %d -> %d: %v", cps[i].N, cps[j].N, err)
			}
		}
	}
	v, err := audit.Verify(ctx, st, key.VerifierKey())
	if err != nil || v.Records != n || v.Checkpoints != int64(len(cps)) {
		t.Fatalf("Verify = %+v, %v", v, err)
	}
}

func BenchmarkAppend(b *testing.B) {
	ctx := context.Background()
	st := MustOpen(b)
	defer st.Close()
	l, _ := audittest.MustNew(b, st)
	i := 0
	for b.Loop() {
		if _, err := l.Append(ctx, audittest.Rec(i)); err != nil {
			b.Fatal(err)
		}
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkAppendParallel appends from many goroutines at once, as
// concurrent requests do: group commit shares transactions and signatures.
func BenchmarkAppendParallel(b *testing.B) {
	ctx := context.Background()
	st := MustOpen(b)
	defer st.Close()
	l, _ := audittest.MustNew(b, st)
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := l.Append(ctx, audittest.Rec(7)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}
