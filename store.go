package fheserve

import (
	"context"
	"io"
	"regexp"
	"time"
)

// Store keeps accounts, tokens, models, key sets and jobs; the record of
// what was done with them is the signed log of package audit.
// Implementations return *Error with ENOTFOUND for unknown ids and
// ECONFLICT for duplicates; every method is safe for concurrent use.
// storetest.Run is the conformance suite every implementation passes.
type Store interface {
	CreateAccount(ctx context.Context, a *Account) error
	Account(ctx context.Context, id string) (*Account, error)
	AccountByUsername(ctx context.Context, username string) (*Account, error)
	Accounts(ctx context.Context, f AccountFilter) ([]*Account, error)
	// UpdateAccount stores a's status and review fields.
	UpdateAccount(ctx context.Context, a *Account) error

	CreateToken(ctx context.Context, t *Token) error
	TokenByHash(ctx context.Context, hash string) (*Token, error)
	Tokens(ctx context.Context, accountID string) ([]*Token, error)
	// RevokeToken revokes one token of an account; RevokeTokens all of them.
	RevokeToken(ctx context.Context, accountID, tokenID string, at time.Time) error
	RevokeTokens(ctx context.Context, accountID string, at time.Time) error

	// CreateModel assigns m.Version: one more than the owner's latest
	// version of m.Name.
	CreateModel(ctx context.Context, m *Model) error
	Model(ctx context.Context, id string) (*Model, error)
	Models(ctx context.Context, f ModelFilter) ([]*Model, error)
	// UpdateModel stores m's status, retirement time, allow-list and limits.
	UpdateModel(ctx context.Context, m *Model) error

	// CreateGallery creates a gallery's model (as CreateModel) and the
	// gallery itself, together.
	CreateGallery(ctx context.Context, m *Model, g *Gallery) error
	Gallery(ctx context.Context, modelID string) (*Gallery, error)
	// UpdateGallery stores g's templates, count and revision if the
	// stored revision is still revision (ECONFLICT otherwise).
	UpdateGallery(ctx context.Context, g *Gallery, revision int) error

	CreateKeySet(ctx context.Context, k *KeySet) error
	KeySet(ctx context.Context, id string) (*KeySet, error)
	KeySets(ctx context.Context, f KeySetFilter) ([]*KeySet, error)
	// UpdateKeySet stores k's status, revocation time and replacement.
	UpdateKeySet(ctx context.Context, k *KeySet) error

	CreateJob(ctx context.Context, j *Job) error
	Job(ctx context.Context, id string) (*Job, error)
	// Jobs returns matching jobs, oldest first.
	Jobs(ctx context.Context, f JobFilter) ([]*Job, error)
	// UpdateJob stores everything of j but its id, owner and objects.
	UpdateJob(ctx context.Context, j *Job) error
	// CountJobs counts matching jobs (Limit is ignored).
	CountJobs(ctx context.Context, f JobFilter) (int, error)
	// CountSamples sums the samples of matching jobs (Limit is ignored):
	// the stored counters behind daily quotas.
	CountSamples(ctx context.Context, f JobFilter) (int, error)

	Close() error
}

// AccountFilter selects accounts; empty fields match everything.
type AccountFilter struct {
	Status string
	Role   string
}

// ModelFilter selects models; empty fields match everything.
type ModelFilter struct {
	OwnerID string
	Name    string
	Status  string
}

// KeySetFilter selects key sets; empty fields match everything.
type KeySetFilter struct {
	AccountID string
	ModelID   string
	Status    string
}

// JobFilter selects jobs; empty fields match everything.
type JobFilter struct {
	AccountID string
	ModelID   string
	Statuses  []string
	// ExpiresBefore selects jobs whose result expires before this time.
	ExpiresBefore time.Time
	// CreatedAfter selects jobs submitted at or after this time.
	CreatedAfter time.Time
	Limit        int // 0: no limit
}

// BlobStore keeps large opaque objects: encrypted weights, key sets,
// ciphertexts. Keys are slash-separated paths of [a-z0-9_-] elements.
// blob.Store is the local-file implementation.
type BlobStore interface {
	// Create starts writing a blob; nothing is visible under key until
	// Commit returns. Abort (or Commit) must be called.
	Create(ctx context.Context, key string) (BlobWriter, error)
	// Open returns a reader of a committed blob and its size.
	Open(ctx context.Context, key string) (io.ReadCloser, int64, error)
	// Delete removes a blob; deleting a missing blob is not an error.
	Delete(ctx context.Context, key string) error
}

var blobKeyRE = regexp.MustCompile(`^[a-z0-9_-]+(/[a-z0-9_-]+)*$`)

// CheckBlobKey refuses a blob key that is not a slash-separated path of
// [a-z0-9_-] elements of at most 200 bytes, with EINVALID.
func CheckBlobKey(key string) error {
	if !blobKeyRE.MatchString(key) || len(key) > 200 {
		return Errorf(EINVALID, "invalid blob key %q", key)
	}
	return nil
}

// BlobWriter writes one blob.
type BlobWriter interface {
	io.Writer
	// Commit makes the blob durable and visible, atomically.
	Commit() error
	// Abort discards the blob; after Commit it does nothing.
	Abort()
}

// Pinger is implemented by a Store, BlobStore or Queue that lives on a
// server (PostgreSQL, NATS): Ping says whether that server answers now,
// within ctx. The readiness probe and the dependency metrics call it; a
// dependency that comes back is seen at the next call.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Queue hands job ids to workers in order. The store is the record of
// what must run; a queue may lose its contents on a restart, after which
// the service pushes every queued or running job again.
type Queue interface {
	Push(ctx context.Context, jobID string) error
	// Pop blocks until a job id is available or ctx ends.
	Pop(ctx context.Context) (string, error)
	// Position returns how many ids are ahead of jobID, or false if it is
	// not queued.
	Position(jobID string) (int, bool)
}

// LeaseQueue is a Queue that several processes share, any of which may
// die while it evaluates a job. Lease hands out a job id without removing
// it: the worker extends the lease while it works (Heartbeat) and removes
// the id with Done when the store records the job's end. An id whose
// lease lapses (the worker died or lost the queue) is handed out again,
// to any worker, with a higher Attempt.
type LeaseQueue interface {
	Queue
	// Lease blocks until a job id is available or ctx ends.
	Lease(ctx context.Context) (Lease, error)
}

// AffinityQueue is a LeaseQueue that files each job under the key set
// its evaluation uses, so that a worker can take first the jobs whose
// keys it holds: a key set (tens to hundreds of MB) is then read by few
// workers, not by every worker that runs one of its jobs. A job that no
// worker holding its keys takes still runs: on an idle worker at once,
// or on a busy one after a bounded wait.
type AffinityQueue interface {
	LeaseQueue
	// PushFor is Push for a job that uses key set keySetID.
	PushFor(ctx context.Context, jobID, keySetID string) error
	// LeasePreferring is Lease, preferring the jobs of the key sets that
	// held returns (called at each look at the queue; nil holds none).
	LeasePreferring(ctx context.Context, held func() []string) (Lease, error)
}

// Lease is one worker's hold on a queued job id.
type Lease interface {
	JobID() string
	// Attempt counts the times the id was handed out, 1 the first time.
	Attempt() int
	// Heartbeat is how often Extend must be called for the lease to hold.
	Heartbeat() time.Duration
	// Extend renews the lease.
	Extend() error
	// Done removes the id from the queue.
	Done() error
	// Release hands the id back at once, for another worker.
	Release() error
}

// QuotaStore is implemented by a Store that several nodes share, where
// one node cannot see the samples another has let through and not stored
// yet. ReserveSamples counts each quota's samples (the jobs created since
// r.Since and the reservations neither released nor lapsed) and, if every
// quota has room for r.Samples, stores r, all in one transaction that
// holds the model's row lock: submissions through different nodes cannot
// pass the same last samples. It returns each quota's count before r.
type QuotaStore interface {
	ReserveSamples(ctx context.Context, r *SampleReservation) (used []int, ok bool, err error)
	// ReleaseSamples drops a reservation, once its job is stored or
	// refused; releasing an unknown one is not an error.
	ReleaseSamples(ctx context.Context, id string) error
}

// RateStore is implemented by a Store that several nodes share: it keeps
// the token buckets of the models' rate limits, so that a user gets a
// rate once over all the nodes rather than once per node. A bucket holds
// up to burst tokens and gains one every every.
type RateStore interface {
	// TakeTokens takes n tokens (at most burst) from the bucket key at now
	// and returns 0, or, if it holds fewer than n, takes nothing and
	// returns how long until it holds n.
	TakeTokens(ctx context.Context, key string, every time.Duration, burst, n int, now time.Time) (time.Duration, error)
	// ReturnTokens gives back n tokens taken from the bucket key (for a
	// job refused after they were taken).
	ReturnTokens(ctx context.Context, key string, every time.Duration, n int) error
}

// SampleReservation holds samples of a model's daily quotas for a job
// that is let through and not stored yet.
type SampleReservation struct {
	ID        string
	ModelID   string
	AccountID string // the job's
	Samples   int
	Quotas    []SampleQuota
	At        time.Time // now: reservations that lapsed before it are not counted
	Since     time.Time // the start of the quotas' day
	Until     time.Time // when the reservation lapses unless released
}

// SampleQuota is a daily quota: Limit samples of the reservation's
// account's jobs on the model (AccountID: that account), or of all
// accounts' (AccountID empty).
type SampleQuota struct {
	AccountID string
	Limit     int
}
