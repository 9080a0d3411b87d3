package audit

import (
	"context"
	"slices"
	"sort"
	"sync"

	"github.com/fheserve/fheserve"
	"golang.org/x/mod/sumdb/tlog"
)

var _ Store = (*MemStore)(nil)

// MemStore is a Store in memory, for tests.
type MemStore struct {
	mu          sync.RWMutex
	entries     []*Entry
	hashes      []tlog.Hash
	checkpoints []*StoredCheckpoint // by size, ascending
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{} }

// Size implements Store.
func (m *MemStore) Size(ctx context.Context) (int64, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return int64(len(m.entries)), nil
}

// Append implements Store.
func (m *MemStore) Append(ctx context.Context, b *Batch) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if b.Size != int64(len(m.entries)) {
		return fheserve.Errorf(fheserve.ECONFLICT, "audit log has %d records, not %d", len(m.entries), b.Size)
	}
	if tlog.StoredHashCount(b.Size) != int64(len(m.hashes)) {
		return fheserve.Errorf(fheserve.ECONFLICT, "audit log has %d stored hashes, not %d", len(m.hashes), tlog.StoredHashCount(b.Size))
	}
	for _, e := range b.Entries {
		c := *e
		c.Data = slices.Clone(e.Data)
		m.entries = append(m.entries, &c)
	}
	m.hashes = append(m.hashes, b.Hashes...)
	n := b.Size + int64(len(b.Entries))
	if k := len(m.checkpoints); k > 0 && m.checkpoints[k-1].Size == n {
		m.checkpoints[k-1].Note = slices.Clone(b.Checkpoint)
	} else {
		m.checkpoints = append(m.checkpoints, &StoredCheckpoint{Size: n, Note: slices.Clone(b.Checkpoint)})
	}
	return nil
}

// ReadHashes implements Store.
func (m *MemStore) ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if x < 0 || x >= int64(len(m.hashes)) {
			return nil, fheserve.Errorf(fheserve.ENOTFOUND, "stored hash %d is missing", x)
		}
		out[i] = m.hashes[x]
	}
	return out, nil
}

// Records implements Store.
func (m *MemStore) Records(ctx context.Context, f Filter) ([]*Entry, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []*Entry
	for i := max(f.From, 0); i < int64(len(m.entries)) && len(out) < f.PageSize(); i++ {
		if e := m.entries[i]; f.Matches(e) {
			c := *e
			out = append(out, &c)
		}
	}
	return out, nil
}

// Checkpoint implements Store.
func (m *MemStore) Checkpoint(ctx context.Context, n int64) ([]byte, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	k := len(m.checkpoints)
	if n < 0 {
		if k == 0 {
			return nil, fheserve.Errorf(fheserve.ENOTFOUND, "the audit log has no checkpoint")
		}
		return m.checkpoints[k-1].Note, nil
	}
	i := sort.Search(k, func(i int) bool { return m.checkpoints[i].Size >= n })
	if i < k && m.checkpoints[i].Size == n {
		return m.checkpoints[i].Note, nil
	}
	return nil, fheserve.Errorf(fheserve.ENOTFOUND, "no audit checkpoint of %d records", n)
}

// Checkpoints implements Store.
func (m *MemStore) Checkpoints(ctx context.Context, after int64, limit int) ([]*StoredCheckpoint, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	i := sort.Search(len(m.checkpoints), func(i int) bool { return m.checkpoints[i].Size > after })
	j := min(len(m.checkpoints), i+limit)
	return slices.Clone(m.checkpoints[i:j]), nil
}

// Close implements Store.
func (m *MemStore) Close() error { return nil }
