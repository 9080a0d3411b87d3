package audit

import (
	"context"
	"time"

	"github.com/fheserve/fheserve"
	"golang.org/x/mod/sumdb/tlog"
)

// Store keeps a log: its records, the hashes of its Merkle tree (as
// tlog.StoredHashes lays them out) and its signed checkpoints. A Store
// holds one log and is written by one Log at a time; every method is safe
// for concurrent use. audittest.Run is the conformance suite every
// implementation passes.
type Store interface {
	// Size returns the number of records: one more than the highest index.
	Size(ctx context.Context) (int64, error)
	// Append stores the batch in one transaction, or nothing. It fails
	// with ECONFLICT if the log's size is not b.Size.
	Append(ctx context.Context, b *Batch) error
	// ReadHashes returns the stored hashes at the given tlog stored-hash
	// indexes, in order, or fails with ENOTFOUND naming a missing one.
	ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error)
	// Records returns the records matching f in index order. If a stored
	// record cannot be read (it does not decode, or what the store keeps
	// beside it to find it does not match it), Records returns the
	// entries before it and an error naming it.
	Records(ctx context.Context, f Filter) ([]*Entry, error)
	// Checkpoint returns the signed checkpoint of tree size n, or the
	// latest one if n < 0; ENOTFOUND if there is none.
	Checkpoint(ctx context.Context, n int64) ([]byte, error)
	// Checkpoints returns up to limit stored checkpoints of tree sizes
	// above after, smallest first.
	Checkpoints(ctx context.Context, after int64, limit int) ([]*StoredCheckpoint, error)
	Close() error
}

// Entry is a record at its place in the log.
type Entry struct {
	Index  int64
	Data   []byte  // the canonical encoding, which the log hashes
	Record *Record // Data decoded
}

// Batch is what one Append stores.
type Batch struct {
	// Size is the log's size before the batch; Entries have indexes
	// Size, Size+1, ...
	Size    int64
	Entries []*Entry
	// Hashes are the new stored hashes, from stored-hash index
	// tlog.StoredHashCount(Size) on.
	Hashes []tlog.Hash
	// Checkpoint is the signed checkpoint of the new size,
	// Size+len(Entries).
	Checkpoint []byte
}

// StoredCheckpoint is a signed checkpoint with the tree size it is stored
// under.
type StoredCheckpoint struct {
	Size int64
	Note []byte
}

// Default and largest number of records one Records call returns.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Filter selects records; zero fields match everything.
type Filter struct {
	From  int64     // records with Index >= From
	End   int64     // records with Index < End; 0: no bound
	Since time.Time // records at or after this time
	Actor string    // records whose actor has this username
	// Object selects the records naming this object (by kind and id);
	// the zero Object selects all.
	Object Object
	Scope  *Scope // records this scope may see; nil: all
	Limit  int    // 0: DefaultLimit; at most MaxLimit
}

// PageSize returns the number of records f asks for, within bounds.
func (f *Filter) PageSize() int {
	switch {
	case f.Limit <= 0:
		return DefaultLimit
	case f.Limit > MaxLimit:
		return MaxLimit
	}
	return f.Limit
}

// Matches reports whether f selects e; stores without indexes use it.
func (f *Filter) Matches(e *Entry) bool {
	r := e.Record
	return e.Index >= f.From && (f.End <= 0 || e.Index < f.End) &&
		!r.Time.Before(f.Since) && (f.Actor == "" || r.Actor == f.Actor) &&
		(f.Object == Object{} || r.Names(f.Object)) && (f.Scope == nil || f.Scope.Allows(r))
}

// Scope is what one caller may see: everything, or the records whose
// actor is an account, and the records naming some objects. An account's
// scope is its own id as actor and the object {account, id}; an owner's
// adds its models; an administrator's is All.
type Scope struct {
	All       bool
	AccountID string   // records whose ActorID is this (when not "")
	Objects   []Object // records naming any of these
}

// Allows reports whether the scope may see r.
func (s *Scope) Allows(r *Record) bool {
	if s.All || s.AccountID != "" && r.ActorID == s.AccountID {
		return true
	}
	for _, o := range s.Objects {
		if r.Names(o) {
			return true
		}
	}
	return false
}

// HashesInOrder returns the stored hashes of indexes in their order, from
// found (each stored hash by its index, as a store read it), refusing one
// that is missing or not tlog.HashSize bytes long: the shared end of every
// Store's ReadHashes.
func HashesInOrder(indexes []int64, found map[int64][]byte) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		h, ok := found[x]
		if !ok {
			return nil, fheserve.Errorf(fheserve.ENOTFOUND, "stored hash %d is missing", x)
		}
		if len(h) != tlog.HashSize {
			return nil, fheserve.Errorf(fheserve.EINTERNAL, "stored hash %d has %d bytes, not %d", x, len(h), tlog.HashSize)
		}
		out[i] = tlog.Hash(h)
	}
	return out, nil
}
