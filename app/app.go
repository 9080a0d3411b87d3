// Package app is fheserve's application logic: it checks every caller's
// role and ownership, validates requests, compiles deployed models, keeps
// their weights encrypted at rest, checks uploaded keys and ciphertexts
// against the plans, and runs jobs on a pool of workers. Storage, blobs and
// the queue come in through the interfaces of package fheserve, so that
// other implementations plug in without touching this package or the HTTP
// handlers.
package app

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/audit"
)

// Config configures an App. Store, Blobs, Queue, MasterKey and Audit are
// required.
type Config struct {
	Store     fheserve.Store
	Blobs     fheserve.BlobStore
	Queue     fheserve.Queue
	MasterKey []byte // 32 bytes; wraps the data keys of the weights at rest
	// Audit is the signed transparency log, the one record of every
	// security-relevant action; Close closes it. Required.
	Audit *audit.Log
	// AuditStore, if not nil, is the log's store, which Close closes
	// after the log: the wiring that opened it hands it over.
	AuditStore io.Closer

	// JobEvents, if set, carries job changes between the processes that
	// share the store: the App publishes its own and wakes its progress
	// streams on the others' (natsjs.Events).
	JobEvents JobEvents

	// Workers is the number of jobs evaluated at once (0: one per core;
	// negative: none, when separate worker processes share the queue);
	// under a memory bound, fewer when their memory estimates do not fit
	// in EvalMemory together. EvalThreads is
	// the number of goroutines one evaluation may use (default: one per
	// core).
	Workers     int
	EvalThreads int
	// MaxAttempts is how many times a job on a LeaseQueue may be started
	// and interrupted (its worker died or lost the queue) before it fails
	// with that cause (default 3). A run given back on a clean shutdown
	// does not count.
	MaxAttempts int
	// EvalMemory bounds the memory the evaluations in progress may hold
	// together, by their estimates (default: half of GOMEMLIMIT; without
	// GOMEMLIMIT, no bound beyond Workers).
	EvalMemory int64

	SessionTTL  time.Duration // lifetime of a login token (default 24h)
	APITokenTTL time.Duration // default lifetime of an API token (default 90 days)
	ResultTTL   time.Duration // how long results are kept (default 24h)

	// MaxModelBytes bounds an uploaded ONNX file plus calibration data
	// (default 256 MiB).
	MaxModelBytes int64
	// ModelCache bounds the prepared models kept in memory (default 8);
	// EvaluatorCacheBytes bounds the evaluation keys held by cached
	// evaluators (default 2 GiB, or a quarter of GOMEMLIMIT).
	ModelCache          int
	EvaluatorCacheBytes int64
	// Bounds caps uploads, deployments, queued jobs, stored key sets and
	// slow request bodies.
	Bounds Bounds
	// JanitorInterval is how often expired results are deleted (default 1m).
	JanitorInterval time.Duration

	Logger *slog.Logger
	Now    func() time.Time // for tests
}

func (c *Config) setDefaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	switch {
	case c.Workers == 0:
		c.Workers = runtime.NumCPU()
	case c.Workers < 0:
		c.Workers = 0
	}
	def(&c.MaxAttempts, 3)
	if c.EvalMemory <= 0 {
		c.EvalMemory = defaultEvalMemory()
	}
	def(&c.EvalThreads, runtime.NumCPU())
	def(&c.ModelCache, 8)
	defDur(&c.SessionTTL, 24*time.Hour)
	defDur(&c.APITokenTTL, 90*24*time.Hour)
	defDur(&c.ResultTTL, 24*time.Hour)
	defDur(&c.JanitorInterval, time.Minute)
	if c.MaxModelBytes <= 0 {
		c.MaxModelBytes = 256 << 20
	}
	if c.EvaluatorCacheBytes <= 0 {
		c.EvaluatorCacheBytes = defaultEvaluatorCacheBytes()
	}
	c.Bounds.setDefaults()
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// JobEvents signals job changes to the other processes of a cluster.
type JobEvents interface {
	// Publish signals that a job changed.
	Publish(jobID string)
	// Subscribe calls f with every job id signalled, until stop.
	Subscribe(f func(jobID string)) (stop func(), err error)
}

// App is the service. Its methods take the calling account (nil for an
// anonymous caller) and check what it may do.
type App struct {
	cfg     Config
	store   fheserve.Store
	blobs   fheserve.BlobStore
	queue   fheserve.Queue
	keys    *keyring
	log     *slog.Logger
	limits  *limiter
	evalMem *budget
	ops     ops

	plans      *lru[*planInfo]
	models     *lru[*preparedModel]
	evaluators *lru[*evaluator]

	keySetMu sync.Mutex // between counting a user's key sets and storing one

	watchMu  sync.Mutex
	watchers map[string]map[*Watcher]bool

	cancel     context.CancelFunc
	stopEvents func()
	wg         sync.WaitGroup
}

// New returns an App. Call Start to run jobs.
func New(cfg Config) (*App, error) {
	if cfg.Store == nil || cfg.Blobs == nil || cfg.Queue == nil || cfg.Audit == nil {
		return nil, errors.New("app: Store, Blobs, Queue and Audit are required")
	}
	cfg.setDefaults()
	kr, err := newKeyring(cfg.MasterKey)
	if err != nil {
		return nil, err
	}
	a := &App{
		cfg:        cfg,
		store:      cfg.Store,
		blobs:      cfg.Blobs,
		queue:      cfg.Queue,
		keys:       kr,
		log:        cfg.Logger,
		limits:     newLimiter(cfg.Now),
		evalMem:    &budget{cap: cfg.EvalMemory},
		plans:      newLRU[*planInfo](256),
		models:     newLRU[*preparedModel](int64(cfg.ModelCache)),
		evaluators: newLRU[*evaluator](cfg.EvaluatorCacheBytes),
		watchers:   map[string]map[*Watcher]bool{},
	}
	b := cfg.Bounds
	a.limits.uploads = slots{total: &budget{cap: int64(b.Uploads)}, perUser: b.UploadsPerUser, what: "uploads"}
	a.limits.deploys = slots{total: &budget{cap: int64(b.Deploys)}, perUser: 1, what: "deployments"}
	return a, nil
}

// Start queues again the jobs that were queued or running when the
// service last stopped, then starts the workers and the janitor. They
// stop when Close is called. On a LeaseQueue, which other processes
// share, a running job may be running elsewhere: Start pushes it again
// as it is (the queue keeps one entry per job, leased or not), and the
// worker that leases it next counts it as interrupted.
func (a *App) Start(ctx context.Context) error {
	jobs, err := a.store.Jobs(ctx, fheserve.JobFilter{Statuses: []string{fheserve.JobQueued, fheserve.JobRunning}})
	if err != nil {
		return fmt.Errorf("cannot list unfinished jobs: %w", err)
	}
	_, leased := a.queue.(fheserve.LeaseQueue)
	for _, j := range jobs {
		if j.Status == fheserve.JobRunning && !leased {
			j.Status, j.Done = fheserve.JobQueued, 0
			if err := a.store.UpdateJob(ctx, j); err != nil {
				return err
			}
		}
		if err := a.push(ctx, j); err != nil {
			return err
		}
	}
	if len(jobs) > 0 {
		a.log.Info("requeued unfinished jobs", "count", len(jobs))
	}
	if a.cfg.JobEvents != nil {
		stop, err := a.cfg.JobEvents.Subscribe(a.notifyHere)
		if err != nil {
			return fmt.Errorf("cannot follow job events: %w", err)
		}
		a.stopEvents = stop
	}
	ctx, a.cancel = context.WithCancel(context.WithoutCancel(ctx))
	for range a.cfg.Workers {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			a.work(ctx)
		}()
	}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		a.janitor(ctx)
	}()
	return nil
}

// Close stops the workers (a job being evaluated stays running in the
// store and runs again on the next start) and closes the audit log and
// the store.
func (a *App) Close() error {
	if a.cancel != nil {
		a.cancel()
		a.wg.Wait()
	}
	if a.stopEvents != nil {
		a.stopEvents()
	}
	err := a.cfg.Audit.Close()
	if a.cfg.AuditStore != nil {
		err = errors.Join(err, a.cfg.AuditStore.Close())
	}
	return errors.Join(err, a.store.Close())
}

// newID returns a random id with a prefix, like "job_3q2...": 128 bits,
// so ids cannot be guessed.
func newID(prefix string) string {
	var b [16]byte
	rand.Read(b[:]) // never fails
	return prefix + "_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))
}

// MaxModelBytes is the limit on an uploaded model plus its calibration data.
func (a *App) MaxModelBytes() int64 { return a.cfg.MaxModelBytes }
