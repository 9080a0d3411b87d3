package audit

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/fheserve/fheserve"
	"golang.org/x/mod/sumdb/tlog"
)

// Files of the log in the server's data directory.
const (
	DBFile  = "audit.db"  // the SQLite store (package audit/sqlite)
	KeyFile = "audit.key" // the signing key (mode 0600); KeyFile+".pub" holds the verifier key
)

// maxBatch bounds the records one transaction appends.
const maxBatch = 512

// Log is a tamper-evident log on a Store. Appends are serialized by one
// writer goroutine, which commits the records waiting at once (group
// commit) with their tree hashes and a newly signed checkpoint in one
// transaction: every record is covered by a signed checkpoint as soon as
// Append returns. Several Logs with one key may share a Store (API nodes
// on one PostgreSQL): the Store takes one batch at a time and refuses a
// batch built on a tree another Log has since extended, which the Log
// then builds again on the tree it finds.
type Log struct {
	store Store
	key   *Key

	reqs chan *appendReq
	done chan struct{} // closed when the writer has stopped

	closeMu sync.RWMutex // held to send on reqs; Close takes it to close reqs
	closed  bool

	front *frontier // the tree's right edge; the writer's own

	mu     sync.RWMutex
	latest []byte // the latest signed checkpoint
	size   int64  // its tree size
}

type appendReq struct {
	e   *Entry
	err chan error
}

// New returns the log kept in st, signed with key. It checks that the
// latest stored checkpoint is signed by key and matches the stored tree,
// and signs the checkpoint of the empty tree in a new store. Close stops
// the log; st is the caller's to close after it.
func New(ctx context.Context, st Store, key *Key) (*Log, error) {
	l := &Log{store: st, key: key, reqs: make(chan *appendReq, maxBatch), done: make(chan struct{})}
	if err := l.load(ctx); err != nil {
		return nil, err
	}
	if l.latest == nil {
		err := l.commit(ctx, nil)
		if fheserve.ErrorCode(err) == fheserve.ECONFLICT {
			// Another Log sharing the store appended first.
			err = l.load(ctx)
		}
		if err != nil {
			return nil, err
		}
	}
	go l.run()
	return l, nil
}

// load reads the log's size, frontier and latest checkpoint from the store.
func (l *Log) load(ctx context.Context) error {
	n, err := l.store.Size(ctx)
	if err != nil {
		return fmt.Errorf("cannot open the audit log: %w", err)
	}
	front, err := newFrontier(n, storeReader(ctx, l.store))
	if err != nil {
		return fmt.Errorf("cannot open the audit log: %w", err)
	}
	latest, err := l.store.Checkpoint(ctx, -1)
	if fheserve.ErrorCode(err) == fheserve.ENOTFOUND && n == 0 {
		l.front = front
		return nil
	} else if err != nil {
		return fmt.Errorf("cannot open the audit log: %w", err)
	}
	if cp, err := openCheckpoint(latest, l.key.verifier); err == nil && cp.N > n {
		// Another Log appended between the two reads: its batch and
		// checkpoint were stored together, so the checkpoint of size n is
		// there too.
		if latest, err = l.store.Checkpoint(ctx, n); err != nil {
			return fmt.Errorf("cannot open the audit log: %w", err)
		}
	}
	cp, err := openCheckpoint(latest, l.key.verifier)
	if err != nil {
		return fheserve.Errorf(fheserve.EINTERNAL, "the audit log's latest checkpoint does not verify with its signing key (%v): restore the key file or the database", err)
	}
	root, err := front.root()
	if err != nil {
		return err
	}
	if cp.N != n || cp.Hash != root {
		return fheserve.Errorf(fheserve.EINTERNAL, "the audit log's latest checkpoint (%d records) does not match the stored tree (%d records): run 'fheserve audit verify --data-dir'", cp.N, n)
	}
	l.front = front
	l.mu.Lock()
	l.latest, l.size = latest, n
	l.mu.Unlock()
	return nil
}

func storeReader(ctx context.Context, st Store) tlog.HashReader {
	return tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) { return st.ReadHashes(ctx, idx) })
}

// Append adds r to the log and returns its index once r and a signed
// checkpoint covering it are stored. It fails with EINVALID if r does not
// validate. A record whose append has begun is stored even if ctx ends.
func (l *Log) Append(ctx context.Context, r *Record) (int64, error) {
	data, err := r.Encode()
	if err != nil {
		return -1, err
	}
	req := &appendReq{e: &Entry{Data: data, Record: r.normalize()}, err: make(chan error, 1)}
	l.closeMu.RLock()
	if l.closed {
		l.closeMu.RUnlock()
		return -1, fheserve.Errorf(fheserve.EUNAVAILABLE, "the audit log is closed")
	}
	select {
	case l.reqs <- req:
	case <-ctx.Done():
		l.closeMu.RUnlock()
		return -1, ctx.Err()
	}
	l.closeMu.RUnlock()
	if err := <-req.err; err != nil {
		return -1, err
	}
	return req.e.Index, nil
}

// run is the writer: it commits what is waiting, in batches.
func (l *Log) run() {
	defer close(l.done)
	for req := range l.reqs {
		batch := []*appendReq{req}
	drain:
		for len(batch) < maxBatch {
			select {
			case r, ok := <-l.reqs:
				if !ok {
					break drain
				}
				batch = append(batch, r)
			default:
				break drain
			}
		}
		entries := make([]*Entry, len(batch))
		for i, r := range batch {
			entries[i] = r.e
		}
		// A batch is not cancelled by any one caller's context.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := l.commit(ctx, entries)
		for err != nil {
			// The store may hold the batch even though it reported an
			// error; start again from what it holds.
			if lerr := l.load(ctx); lerr != nil {
				err = fmt.Errorf("%w; then: %v", err, lerr)
				break
			}
			// Another Log sharing the store appended first: build the
			// batch again on the longer tree.
			if fheserve.ErrorCode(err) != fheserve.ECONFLICT || ctx.Err() != nil {
				break
			}
			err = l.commit(ctx, entries)
		}
		cancel()
		for _, r := range batch {
			r.err <- err
		}
	}
}

// commit appends entries with their hashes and the signed checkpoint of
// the new tree in one store transaction.
func (l *Log) commit(ctx context.Context, entries []*Entry) error {
	n := l.front.n
	data := make([][]byte, len(entries))
	for i, e := range entries {
		e.Index = n + int64(i)
		data[i] = e.Data
	}
	next, hashes, err := l.front.add(data...)
	if err != nil {
		return err
	}
	root, err := next.root()
	if err != nil {
		return err
	}
	cp, err := l.key.sign(&Checkpoint{Origin: l.key.Origin(), Tree: tlog.Tree{N: next.n, Hash: root}})
	if err != nil {
		return err
	}
	if err := l.store.Append(ctx, &Batch{Size: n, Entries: entries, Hashes: hashes, Checkpoint: cp}); err != nil {
		return fmt.Errorf("cannot append to the audit log: %w", err)
	}
	l.front = next
	l.mu.Lock()
	l.latest, l.size = cp, next.n
	l.mu.Unlock()
	return nil
}

// Close stops the log after the appends under way. Later appends fail
// with EUNAVAILABLE.
func (l *Log) Close() error {
	l.closeMu.Lock()
	if !l.closed {
		l.closed = true
		close(l.reqs)
	}
	l.closeMu.Unlock()
	<-l.done
	return nil
}

// Checkpoint returns the latest signed checkpoint this Log holds and its
// tree size: its own last append's, or a newer one Latest read.
func (l *Log) Checkpoint() ([]byte, int64) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.latest, l.size
}

// Latest returns the latest signed checkpoint in the store and its tree
// size. When several Logs share the store (API nodes), another's appends
// make it newer than Checkpoint's; a node that served its own older one
// would look to a client that saw the newer as a log rolled back.
func (l *Log) Latest(ctx context.Context) ([]byte, int64, error) {
	if err := l.refresh(ctx); err != nil {
		return nil, 0, err
	}
	cp, n := l.Checkpoint()
	return cp, n, nil
}

// refresh takes the store's latest checkpoint if it verifies and is newer
// than the one held. Its records, hashes and checkpoint were stored in
// one transaction, so the tree it names is all there.
func (l *Log) refresh(ctx context.Context) error {
	latest, err := l.store.Checkpoint(ctx, -1)
	if err != nil {
		return err
	}
	cp, err := openCheckpoint(latest, l.key.verifier)
	if err != nil {
		return fheserve.Errorf(fheserve.EINTERNAL, "the audit log's latest stored checkpoint does not verify with its signing key: %v", err)
	}
	l.mu.Lock()
	if cp.N > l.size {
		l.latest, l.size = latest, cp.N
	}
	l.mu.Unlock()
	return nil
}

// sizeAtLeast returns the tree size held, after reading the store's
// latest if n is beyond it.
func (l *Log) sizeAtLeast(ctx context.Context, n int64) (int64, error) {
	if _, size := l.Checkpoint(); n <= size {
		return size, nil
	}
	_, size, err := l.Latest(ctx)
	return size, err
}

// Origin returns the log's origin, the name of its key.
func (l *Log) Origin() string { return l.key.Origin() }

// VerifierKey returns the key that verifies the log's checkpoints, in
// note.NewVerifier's form, for clients to pin.
func (l *Log) VerifierKey() string { return l.key.VerifierKey() }

// Records returns the records matching f, in index order, among those
// covered by the latest checkpoint.
func (l *Log) Records(ctx context.Context, f Filter) ([]*Entry, error) {
	_, size, err := l.Latest(ctx)
	if err != nil {
		return nil, err
	}
	if f.End <= 0 || f.End > size {
		f.End = size
	}
	if f.From >= f.End {
		return nil, nil
	}
	return l.store.Records(ctx, f)
}

// Entry returns record i; ENOTFOUND if the scope s (nil: all) may not see
// it or it is not in the log.
func (l *Log) Entry(ctx context.Context, i int64, s *Scope) (*Entry, error) {
	es, err := l.Records(ctx, Filter{From: i, End: i + 1, Scope: s, Limit: 1})
	if err != nil {
		return nil, err
	}
	if len(es) == 0 || es[0].Index != i {
		return nil, fheserve.Errorf(fheserve.ENOTFOUND, "no audit record %d for you", i)
	}
	return es[0], nil
}

// ProveRecord returns the proof that record i is in the tree of the
// first n records.
func (l *Log) ProveRecord(ctx context.Context, i, n int64) (tlog.RecordProof, error) {
	size, err := l.sizeAtLeast(ctx, n)
	if err != nil {
		return nil, err
	}
	if i < 0 || i >= n || n > size {
		return nil, fheserve.Errorf(fheserve.EINVALID, "no proof of record %d in a tree of %d records: want 0 <= record < tree size <= %d", i, n, size)
	}
	p, err := tlog.ProveRecord(n, i, storeReader(ctx, l.store))
	if err != nil {
		return nil, fmt.Errorf("cannot prove audit record %d: %w", i, err)
	}
	return p, nil
}

// ProveTree returns the proof that the tree of the first old records is a
// prefix of the tree of the first n records.
func (l *Log) ProveTree(ctx context.Context, old, n int64) (tlog.TreeProof, error) {
	size, err := l.sizeAtLeast(ctx, n)
	if err != nil {
		return nil, err
	}
	if old < 1 || old > n || n > size {
		return nil, fheserve.Errorf(fheserve.EINVALID, "no consistency proof from %d to %d records: want 1 <= old <= new <= %d", old, n, size)
	}
	p, err := tlog.ProveTree(n, old, storeReader(ctx, l.store))
	if err != nil {
		return nil, fmt.Errorf("cannot prove audit tree consistency: %w", err)
	}
	return p, nil
}
