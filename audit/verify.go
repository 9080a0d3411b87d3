package audit

import (
	"context"
	"fmt"

	"github.com/fheserve/fheserve"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// VerifyError is a stored log that does not verify.
type VerifyError struct {
	Index  int64  // the first bad record, or -1 when no one record can be named
	Reason string // what is wrong, naming the record or the checkpoint
}

func (e *VerifyError) Error() string { return "audit log does not verify: " + e.Reason }

func badRecord(i int64, format string, args ...any) *VerifyError {
	return &VerifyError{Index: i, Reason: fmt.Sprintf("record %d: ", i) + fmt.Sprintf(format, args...)}
}

// Verified summarizes a stored log that verifies.
type Verified struct {
	Records     int64       // all of them, recomputed and matched
	Checkpoints int64       // signed checkpoints checked
	Latest      *Checkpoint // the latest, which covers every record
}

// Verify recomputes the whole Merkle tree from the records in st, in
// index order, and checks it against the stored hashes and against every
// stored checkpoint, whose signatures it checks with the verifier key
// vkey. It returns a *VerifyError naming the first record (or checkpoint)
// that was altered, removed or moved. It reads only O(log n) hashes into
// memory at a time.
func Verify(ctx context.Context, st Store, vkey string) (*Verified, error) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fheserve.Errorf(fheserve.EINVALID, "bad verifier key %q: %v", clip(vkey), err)
	}
	w := &verifier{st: st, v: v, front: &frontier{h: map[int64]tlog.Hash{}}, checked: -1}
	if err := w.checkpoints(ctx); err != nil {
		return nil, err
	}
	for {
		page, rerr := st.Records(ctx, Filter{From: w.front.n, Limit: MaxLimit})
		if err := w.records(ctx, page); err != nil {
			return nil, err
		}
		if rerr != nil {
			return nil, badRecord(w.front.n, "%v", rerr)
		}
		if len(page) == 0 {
			break
		}
	}
	n := w.front.n
	if len(w.cps) > 0 {
		c := w.cps[0]
		return nil, &VerifyError{Index: n, Reason: fmt.Sprintf("the checkpoint of %d records covers more than the %d stored: records from %d on were removed", c.Size, n, n)}
	}
	if w.good != n || w.latest == nil {
		return nil, badRecord(w.good, "records %d to %d are not covered by any signed checkpoint", w.good, n-1)
	}
	return &Verified{Records: n, Checkpoints: w.count, Latest: w.latest}, nil
}

// verifier walks the records and the checkpoints in step.
type verifier struct {
	st    Store
	v     note.Verifier
	front *frontier // the tree of the records checked so far

	cps     []*StoredCheckpoint // the next checkpoints to check
	cpsEnd  bool                // no more checkpoints in the store
	checked int64               // size of the last checkpoint checked; -1: none
	good    int64               // tree size of the last checkpoint that matched
	latest  *Checkpoint
	count   int64
}

// records checks a page of records against their stored hashes.
func (w *verifier) records(ctx context.Context, page []*Entry) error {
	if len(page) == 0 {
		return nil
	}
	start := tlog.StoredHashCount(w.front.n)
	stored, err := w.st.ReadHashes(ctx, indexRange(start, tlog.StoredHashCount(w.front.n+int64(len(page)))))
	if err != nil {
		stored = nil // find the missing one record by record
	}
	for _, e := range page {
		i := w.front.n
		if e.Index != i {
			return badRecord(i, "it is missing (the next stored record is %d)", e.Index)
		}
		next, hashes, err := w.front.add(e.Data)
		if err != nil {
			return err
		}
		from := tlog.StoredHashCount(i)
		var want []tlog.Hash
		if stored != nil {
			want = stored[from-start : from-start+int64(len(hashes))]
		} else if want, err = w.st.ReadHashes(ctx, indexRange(from, from+int64(len(hashes)))); err != nil {
			return badRecord(i, "%v", err)
		}
		for k, h := range hashes {
			if h == want[k] {
				continue
			}
			level, _ := tlog.SplitStoredHashIndex(from + int64(k))
			if level == 0 {
				return badRecord(i, "its hash does not match its stored hash: the record or its hash was altered, or records were moved")
			}
			lo := i + 1 - 1<<level
			return badRecord(lo, "the stored hash of records %d to %d does not match them: a record or a stored hash was altered", lo, i)
		}
		w.front = next
		if err := w.checkpoints(ctx); err != nil {
			return err
		}
	}
	return nil
}

// checkpoints checks the stored checkpoints of the current tree size.
func (w *verifier) checkpoints(ctx context.Context) error {
	n := w.front.n
	for {
		if len(w.cps) == 0 && !w.cpsEnd {
			cps, err := w.st.Checkpoints(ctx, w.checked, MaxLimit)
			if err != nil {
				return err
			}
			w.cps, w.cpsEnd = cps, len(cps) == 0
		}
		if len(w.cps) == 0 || w.cps[0].Size > n {
			return nil
		}
		sc := w.cps[0]
		w.cps, w.checked = w.cps[1:], sc.Size
		c, err := openCheckpoint(sc.Note, w.v)
		if err != nil {
			return &VerifyError{Index: -1, Reason: fmt.Sprintf("the checkpoint stored for %d records: %s", sc.Size, fheserve.ErrorMessage(err))}
		}
		if c.N != sc.Size {
			return &VerifyError{Index: -1, Reason: fmt.Sprintf("the checkpoint stored for %d records is for %d", sc.Size, c.N)}
		}
		root, err := w.front.root()
		if err != nil {
			return err
		}
		if c.Hash != root {
			lo := w.good
			if lo == n-1 {
				return badRecord(lo, "it does not match the signed checkpoint of %d records: it was altered", n)
			}
			return badRecord(lo, "records %d to %d do not match the signed checkpoint of %d records: one of them was altered", lo, n-1, n)
		}
		w.good, w.latest = n, c
		w.count++
	}
}

func indexRange(from, to int64) []int64 {
	idx := make([]int64, 0, to-from)
	for x := from; x < to; x++ {
		idx = append(idx, x)
	}
	return idx
}
