package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/fheserve/fheserve/audit"
	"github.com/fheserve/fheserve/internal/allocs"
	"golang.org/x/mod/sumdb/tlog"
)

// proofWorld is a log of 11 records, its checkpoint, and genuine proofs,
// the seeds and the oracle of FuzzProofs.
type proofWorld struct {
	records [][]byte // index -> encoded record
	cp      *audit.Checkpoint
	old     *audit.Checkpoint // of the first 4 records
	items   [][]byte          // JSON of an Item with its proof
	cons    []byte            // JSON of the Consistency of old with cp
	// consProof is the genuine consistency proof of old with cp.
	consProof tlog.TreeProof
}

func newProofWorld(tb testing.TB) *proofWorld {
	ctx := context.Background()
	key, err := audit.GenerateKey("o")
	if err != nil {
		tb.Fatal(err)
	}
	l, err := audit.New(ctx, audit.NewMemStore(), key)
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	w := &proofWorld{}
	for i := range 11 {
		r := validRecord()
		r.RequestID = fmt.Sprintf("r-%d", i)
		if i == 4 {
			signed, _ := l.Checkpoint()
			if w.old, err = audit.OpenCheckpoint(signed, key.VerifierKey()); err != nil {
				tb.Fatal(err)
			}
		}
		if _, err := l.Append(ctx, r); err != nil {
			tb.Fatal(err)
		}
		data, _ := r.Encode()
		w.records = append(w.records, data)
	}
	signed, _ := l.Checkpoint()
	if w.cp, err = audit.OpenCheckpoint(signed, key.VerifierKey()); err != nil {
		tb.Fatal(err)
	}
	for _, i := range []int64{0, 5, 10} {
		p, err := l.ProveRecord(ctx, i, w.cp.N)
		if err != nil {
			tb.Fatal(err)
		}
		b, _ := json.Marshal(&audit.Item{Index: i, Record: w.records[i], TreeSize: w.cp.N, Proof: p})
		w.items = append(w.items, b)
	}
	p, err := l.ProveTree(ctx, w.old.N, w.cp.N)
	if err != nil {
		tb.Fatal(err)
	}
	w.cons, _ = json.Marshal(&audit.Consistency{Old: w.old.N, New: w.cp.N, Proof: p})
	w.consProof = p
	return w
}

// TestProofWorld checks the oracle of FuzzProofs: the genuine proofs verify.
func TestProofWorld(t *testing.T) {
	w := newProofWorld(t)
	for _, b := range w.items {
		var it audit.Item
		if err := json.Unmarshal(b, &it); err != nil {
			t.Fatal(err)
		}
		if _, err := it.Verify(w.cp); err != nil {
			t.Fatalf("genuine item %s: %v", b, err)
		}
	}
	var c audit.Consistency
	if err := json.Unmarshal(w.cons, &c); err != nil {
		t.Fatal(err)
	}
	if err := tlog.CheckTree(c.Proof, w.cp.N, w.cp.Hash, w.old.N, w.old.Hash); err != nil {
		t.Fatalf("genuine consistency proof: %v", err)
	}
	// The oracle refuses what it must: a proof with one hash changed,
	// a proof between other sizes, and an item whose record was changed.
	forged := append(tlog.TreeProof(nil), c.Proof...)
	forged[0][0] ^= 1
	if tlog.CheckTree(forged, w.cp.N, w.cp.Hash, w.old.N, w.old.Hash) == nil {
		t.Fatal("a consistency proof with a changed hash verified")
	}
	if tlog.CheckTree(c.Proof, w.cp.N, w.cp.Hash, w.old.N+1, w.old.Hash) == nil {
		t.Fatal("a consistency proof verified between other sizes")
	}
	var it audit.Item
	if err := json.Unmarshal(w.items[1], &it); err != nil {
		t.Fatal(err)
	}
	it.Record = w.records[2]
	if _, err := it.Verify(w.cp); err == nil {
		t.Fatal("an item holding another record verified")
	}
}

// FuzzProofs feeds the audit client's decoding and checking of what the
// server sends (an item with its proof of inclusion, a consistency proof)
// arbitrary bytes: it must never panic, and whatever verifies against the
// checkpoint must be the genuine record at that index (a forged record or
// proof is refused).
func FuzzProofs(f *testing.F) {
	w := newProofWorld(f)
	for _, b := range w.items {
		f.Add(b)
	}
	f.Add(w.cons)
	f.Add([]byte(`{"index":3,"record":{},"tree_size":11,"proof":["AAAA"]}`))
	f.Add([]byte(`{"old":4,"new":11,"proof":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		// Decoding and checking allocate in proportion to the input (a
		// proof of k hashes is k*32 bytes from at least k*44 of base64).
		allocs.Bound(t, 64*uint64(len(data))+64<<10, func() { checkProofs(t, w, data) })
	})
}

// checkProofs decodes data as an item and as a consistency proof and
// checks them as the audit client would.
func checkProofs(t *testing.T, w *proofWorld, data []byte) {
	var it audit.Item
	if json.Unmarshal(data, &it) == nil {
		r, err := it.Verify(w.cp)
		if err == nil {
			if it.Index < 0 || it.Index >= int64(len(w.records)) || !bytes.Equal(it.Record, w.records[it.Index]) || r == nil {
				t.Fatalf("a forged item verified: %s", data)
			}
		}
	}
	var c audit.Consistency
	if json.Unmarshal(data, &c) == nil {
		// Against the genuine trees, and against the sizes the input
		// claims, as the client would with a server's numbers: a proof
		// that verifies is the genuine proof between the genuine sizes
		// (anything else would be a SHA-256 collision).
		if tlog.CheckTree(c.Proof, w.cp.N, w.cp.Hash, w.old.N, w.old.Hash) == nil && !sameProof(c.Proof, w.consProof) {
			t.Fatalf("a forged consistency proof verified: %s", data)
		}
		if c.Old > 0 && c.New >= c.Old && c.New < 1<<40 &&
			tlog.CheckTree(c.Proof, c.New, w.cp.Hash, c.Old, w.old.Hash) == nil &&
			(c.Old != w.old.N || c.New != w.cp.N || !sameProof(c.Proof, w.consProof)) {
			t.Fatalf("a consistency proof between forged sizes verified: %s", data)
		}
	}
}

func sameProof(a, b tlog.TreeProof) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
