// Package audittest is the conformance suite of audit.Store: every
// implementation runs Run in its tests.
package audittest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/audit"
	"golang.org/x/mod/sumdb/tlog"
)

// Run runs the suite; open returns a new, empty store.
func Run(t *testing.T, open func(t *testing.T) audit.Store) {
	tests := []struct {
		name string
		f    func(t *testing.T, st audit.Store)
	}{
		{"Empty", testEmpty},
		{"AppendAndProve", testAppendAndProve},
		{"Conflict", testConflict},
		{"Filters", testFilters},
		{"Checkpoints", testCheckpoints},
		{"Reopen", testReopen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := open(t)
			t.Cleanup(func() { st.Close() })
			tt.f(t, st)
		})
	}
}

// Epoch is the time of the first record MustAppend appends.
var Epoch = time.Date(2026, 11, 22, 4, 0, 0, 0, time.UTC)

// Rec returns the i-th test record: actors a0..a4 in turn, each record
// naming model m(i%7) and job j(i), one minute after the previous one.
func Rec(i int) *audit.Record {
	return &audit.Record{
		Time:    Epoch.Add(time.Duration(i) * time.Minute),
		ActorID: fmt.Sprintf("acc%d", i%5),
		Actor:   fmt.Sprintf("a%d", i%5),
		Action:  "job.submit",
		Objects: []audit.Object{
			{Kind: audit.KindModel, ID: fmt.Sprintf("m%d", i%7)},
			{Kind: audit.KindJob, ID: fmt.Sprintf("j%d", i)},
		},
		Outcome:   audit.OutcomeOK,
		RequestID: fmt.Sprintf("req%d", i),
	}
}

// MustNew returns a new log on st with a new key.
func MustNew(tb testing.TB, st audit.Store) (*audit.Log, *audit.Key) {
	tb.Helper()
	key, err := audit.GenerateKey("test.example/audit")
	if err != nil {
		tb.Fatal(err)
	}
	l, err := audit.New(context.Background(), st, key)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	return l, key
}

// MustAppend appends Rec(from) to Rec(to-1) from 8 goroutines at once,
// so in no set order.
func MustAppend(tb testing.TB, l *audit.Log, from, to int) {
	tb.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, to-from)
	next := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				if _, err := l.Append(context.Background(), Rec(i)); err != nil {
					errs <- err
				}
			}
		})
	}
	for i := from; i < to; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
}

func testEmpty(t *testing.T, st audit.Store) {
	ctx := context.Background()
	if n, err := st.Size(ctx); err != nil || n != 0 {
		t.Fatalf("Size = %d, %v; want 0", n, err)
	}
	if _, err := st.Checkpoint(ctx, -1); fheserve.ErrorCode(err) != fheserve.ENOTFOUND {
		t.Errorf("Checkpoint(-1) on an empty store: %v, want %s", err, fheserve.ENOTFOUND)
	}
	if _, err := st.ReadHashes(ctx, []int64{0}); fheserve.ErrorCode(err) != fheserve.ENOTFOUND {
		t.Errorf("ReadHashes([0]) on an empty store: %v, want %s", err, fheserve.ENOTFOUND)
	}
	l, key := MustNew(t, st)
	cp, n := l.Checkpoint()
	c, err := audit.OpenCheckpoint(cp, key.VerifierKey())
	if err != nil || n != 0 || c.N != 0 {
		t.Fatalf("checkpoint of a new log: %v (size %d)", err, n)
	}
}

// testAppendAndProve appends records concurrently and checks every
// inclusion proof in the final tree and consistency proofs between sizes.
func testAppendAndProve(t *testing.T, st audit.Store) {
	ctx := context.Background()
	l, key := MustNew(t, st)
	const n = 300
	MustAppend(t, l, 0, n)
	msg, size := l.Checkpoint()
	c, err := audit.OpenCheckpoint(msg, key.VerifierKey())
	if err != nil || size != n || c.N != n {
		t.Fatalf("checkpoint after %d appends: size %d, %v", n, size, err)
	}
	es := MustRecords(t, st, audit.Filter{})
	if len(es) != n {
		t.Fatalf("%d records stored, want %d", len(es), n)
	}
	seen := map[string]bool{}
	for i, e := range es {
		if e.Index != int64(i) {
			t.Fatalf("record %d has index %d", i, e.Index)
		}
		p, err := l.ProveRecord(ctx, e.Index, n)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckRecord(p, c.N, c.Hash, e.Index, tlog.RecordHash(e.Data)); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		seen[e.Record.RequestID] = true
	}
	if len(seen) != n {
		t.Errorf("%d distinct records, want %d", len(seen), n)
	}
	for _, old := range []int64{1, 2, 7, 64, 100, 299} {
		oldMsg, err := st.Checkpoint(ctx, old)
		if fheserve.ErrorCode(err) == fheserve.ENOTFOUND {
			continue // inside a batch
		} else if err != nil {
			t.Fatal(err)
		}
		oc, err := audit.OpenCheckpoint(oldMsg, key.VerifierKey())
		if err != nil {
			t.Fatal(err)
		}
		p, err := l.ProveTree(ctx, old, n)
		if err != nil {
			t.Fatal(err)
		}
		if err := tlog.CheckTree(p, c.N, c.Hash, oc.N, oc.Hash); err != nil {
			t.Errorf("consistency %d -> %d: %v", old, n, err)
		}
	}
}

func testConflict(t *testing.T, st audit.Store) {
	ctx := context.Background()
	l, _ := MustNew(t, st)
	MustAppend(t, l, 0, 3)
	err := st.Append(ctx, &audit.Batch{Size: 2, Checkpoint: []byte("x")})
	if fheserve.ErrorCode(err) != fheserve.ECONFLICT {
		t.Errorf("Append at size 2 of 3: %v, want %s", err, fheserve.ECONFLICT)
	}
	if n, _ := st.Size(ctx); n != 3 {
		t.Errorf("Size = %d after a refused append, want 3", n)
	}
}

func testFilters(t *testing.T, st audit.Store) {
	l, _ := MustNew(t, st)
	for i := range 70 {
		if _, err := l.Append(context.Background(), Rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	indexes := func(es []*audit.Entry) []int64 {
		var out []int64
		for _, e := range es {
			out = append(out, e.Index)
		}
		return out
	}
	upTo := func(n int64, keep func(i int64) bool) []int64 {
		var out []int64
		for i := range n {
			if keep(i) {
				out = append(out, i)
			}
		}
		return out
	}
	tests := []struct {
		name string
		f    audit.Filter
		want []int64
	}{
		{"limit", audit.Filter{Limit: 3}, []int64{0, 1, 2}},
		{"from", audit.Filter{From: 67}, []int64{67, 68, 69}},
		{"end", audit.Filter{From: 10, End: 12}, []int64{10, 11}},
		{"since", audit.Filter{Since: Epoch.Add(68 * time.Minute)}, []int64{68, 69}},
		{"actor", audit.Filter{Actor: "a3", Limit: 5}, []int64{3, 8, 13, 18, 23}},
		{"actor from", audit.Filter{Actor: "a3", From: 60}, []int64{63, 68}},
		{"scope all", audit.Filter{Scope: &audit.Scope{All: true}, From: 68}, []int64{68, 69}},
		{"scope account", audit.Filter{Scope: &audit.Scope{AccountID: "acc1"}}, upTo(70, func(i int64) bool { return i%5 == 1 })},
		{"scope model", audit.Filter{Scope: &audit.Scope{Objects: []audit.Object{{Kind: audit.KindModel, ID: "m2"}}}},
			upTo(70, func(i int64) bool { return i%7 == 2 })},
		{"scope account or models", audit.Filter{Scope: &audit.Scope{AccountID: "acc0", Objects: []audit.Object{
			{Kind: audit.KindModel, ID: "m1"}, {Kind: audit.KindJob, ID: "j3"}}}},
			upTo(70, func(i int64) bool { return i%5 == 0 || i%7 == 1 || i == 3 })},
		{"scope and actor", audit.Filter{Actor: "a2", Scope: &audit.Scope{Objects: []audit.Object{{Kind: audit.KindModel, ID: "m0"}}}},
			[]int64{7, 42}},
		{"scope of nothing", audit.Filter{Scope: &audit.Scope{}}, nil},
		{"object", audit.Filter{Object: audit.Object{Kind: audit.KindModel, ID: "m4"}, Limit: 3}, []int64{4, 11, 18}},
		{"object from", audit.Filter{Object: audit.Object{Kind: audit.KindJob, ID: "j33"}, From: 30}, []int64{33}},
		{"object of another kind", audit.Filter{Object: audit.Object{Kind: audit.KindKeySet, ID: "m4"}}, nil},
		{"object and actor", audit.Filter{Object: audit.Object{Kind: audit.KindModel, ID: "m0"}, Actor: "a2"}, []int64{7, 42}},
		{"object in scope", audit.Filter{Object: audit.Object{Kind: audit.KindModel, ID: "m1"}, Scope: &audit.Scope{AccountID: "acc1"}},
			[]int64{1, 36}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := indexes(MustRecords(t, l, tt.f))
			if !slices.Equal(got, tt.want) {
				t.Errorf("Records(%+v) = %v, want %v", tt.f, got, tt.want)
			}
		})
	}
}

// recordsReader is a Store or a Log.
type recordsReader interface {
	Records(ctx context.Context, f audit.Filter) ([]*audit.Entry, error)
}

// MustRecords returns every record matching f, paging if f.Limit is 0.
func MustRecords(tb testing.TB, r recordsReader, f audit.Filter) []*audit.Entry {
	tb.Helper()
	var out []*audit.Entry
	for {
		es, err := r.Records(context.Background(), f)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, es...)
		if f.Limit != 0 || len(es) < f.PageSize() {
			return out
		}
		f.From = es[len(es)-1].Index + 1
	}
}

func testCheckpoints(t *testing.T, st audit.Store) {
	ctx := context.Background()
	l, key := MustNew(t, st)
	for i := range 5 {
		if _, err := l.Append(ctx, Rec(i)); err != nil {
			t.Fatal(err)
		}
	}
	cps, err := st.Checkpoints(ctx, -1, 100)
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int64
	for _, c := range cps {
		sizes = append(sizes, c.Size)
		oc, err := audit.OpenCheckpoint(c.Note, key.VerifierKey())
		if err != nil || oc.N != c.Size {
			t.Errorf("checkpoint stored for %d: %v, size %d", c.Size, err, oc.N)
		}
	}
	if want := []int64{0, 1, 2, 3, 4, 5}; !slices.Equal(sizes, want) {
		t.Errorf("checkpoint sizes %v, want %v (one per sequential append)", sizes, want)
	}
	if cps, _ := st.Checkpoints(ctx, 3, 1); len(cps) != 1 || cps[0].Size != 4 {
		t.Errorf("Checkpoints(after 3, limit 1) = %v, want size 4", cps)
	}
	latest, _ := st.Checkpoint(ctx, -1)
	if mine, _ := l.Checkpoint(); string(latest) != string(mine) {
		t.Errorf("stored latest checkpoint differs from the log's")
	}
}

func testReopen(t *testing.T, st audit.Store) {
	ctx := context.Background()
	l, key := MustNew(t, st)
	MustAppend(t, l, 0, 10)
	l.Close()
	if _, err := l.Append(ctx, Rec(10)); fheserve.ErrorCode(err) != fheserve.EUNAVAILABLE {
		t.Errorf("Append after Close: %v, want %s", err, fheserve.EUNAVAILABLE)
	}
	l2, err := audit.New(ctx, st, key)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if i, err := l2.Append(ctx, Rec(10)); err != nil || i != 10 {
		t.Fatalf("Append after reopening = %d, %v; want 10", i, err)
	}
	other, _ := audit.GenerateKey("test.example/audit")
	if _, err := audit.New(ctx, st, other); err == nil {
		t.Errorf("New with another key than the log's: no error")
	}
	if _, err := audit.Verify(ctx, st, key.VerifierKey()); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

// StoredHashes computes the hashes a log of the given records stores, as
// someone holding the records alone would, and a reader over them.
func StoredHashes(tb testing.TB, records [][]byte) ([]tlog.Hash, tlog.HashReader) {
	tb.Helper()
	var hashes []tlog.Hash
	r := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = hashes[x]
		}
		return out, nil
	})
	for n, data := range records {
		hs, err := tlog.StoredHashes(int64(n), data, r)
		if err != nil {
			tb.Fatal(err)
		}
		hashes = append(hashes, hs...)
	}
	return hashes, r
}
