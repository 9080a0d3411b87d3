package audit

import (
	"fmt"

	"golang.org/x/mod/sumdb/tlog"
)

// frontier holds the hashes of the complete subtrees along the right edge
// of a tree of n records: all that tlog.StoredHashes needs to add the next
// record and tlog.TreeHash needs to compute the root, so that appending
// reads nothing from the store.
type frontier struct {
	n int64
	h map[int64]tlog.Hash // stored-hash index -> hash
}

// frontierIndexes returns the stored-hash indexes of the frontier of a
// tree of n records: one complete subtree per bit set in n.
func frontierIndexes(n int64) []int64 {
	var idx []int64
	for l := 0; n>>l > 0; l++ {
		if (n>>l)&1 == 1 {
			idx = append(idx, tlog.StoredHashIndex(l, (n>>l)-1))
		}
	}
	return idx
}

// newFrontier builds the frontier of a tree of n records from hashes read
// with r.
func newFrontier(n int64, r tlog.HashReader) (*frontier, error) {
	idx := frontierIndexes(n)
	hs, err := r.ReadHashes(idx)
	if err != nil {
		return nil, err
	}
	f := &frontier{n: n, h: make(map[int64]tlog.Hash, len(idx))}
	for i, x := range idx {
		f.h[x] = hs[i]
	}
	return f, nil
}

// add returns the frontier after appending records with the given
// encodings, and the stored hashes the records add, from stored-hash
// index tlog.StoredHashCount(f.n) on. f is unchanged.
func (f *frontier) add(data ...[]byte) (*frontier, []tlog.Hash, error) {
	start := tlog.StoredHashCount(f.n)
	var added []tlog.Hash
	r := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			if x >= start && x-start < int64(len(added)) {
				out[i] = added[x-start]
				continue
			}
			h, ok := f.h[x]
			if !ok {
				return nil, fmt.Errorf("audit: stored hash %d is not on the frontier of %d records", x, f.n)
			}
			out[i] = h
		}
		return out, nil
	})
	for i, d := range data {
		hs, err := tlog.StoredHashes(f.n+int64(i), d, r)
		if err != nil {
			return nil, nil, err
		}
		added = append(added, hs...)
	}
	next, err := newFrontier(f.n+int64(len(data)), r)
	if err != nil {
		return nil, nil, err
	}
	return next, added, nil
}

// root returns the root hash of the tree.
func (f *frontier) root() (tlog.Hash, error) {
	return tlog.TreeHash(f.n, tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = f.h[x]
		}
		return out, nil
	}))
}
