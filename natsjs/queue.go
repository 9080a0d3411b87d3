package natsjs

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fheserve/fheserve"
)

var _ fheserve.AffinityQueue = (*Queue)(nil)

// QueueConfig names the job stream and sets its consumer's timing. Zero
// fields take the defaults.
type QueueConfig struct {
	Stream string // default "FHESERVE_JOBS"
	// Subject is the subjects' prefix (default "fheserve.jobs"): a job is
	// published on Subject.SHARD.ID, its key set's shard, or on
	// Subject.ID when its key set is not given (Push; and every job
	// queued before shards).
	Subject string
	// Consumer names the workers' durable consumers (default "workers"):
	// Consumer for Subject.ID, Consumer-SHARD for each shard.
	Consumer string
	// Shards is how many shards key sets are hashed into (default 16):
	// a worker prefers the shards of the key sets it holds. The stream
	// records the number it was created with, which every process then
	// uses, so that a job has one subject whatever process pushes it.
	Shards int
	// Patience is how long a shard's jobs wait for a worker that prefers
	// them, while every worker is busy with its own (default 10s): then
	// a busy worker takes one.
	Patience time.Duration
	// AckWait is how long a lease holds without Extend (default 30s); a
	// worker that dies leaves its job for another after at most this long.
	AckWait  time.Duration
	Replicas int // default 1
	// Memory keeps the stream in memory instead of on disk (tests).
	Memory bool
}

func (c *QueueConfig) setDefaults() {
	if c.Stream == "" {
		c.Stream = "FHESERVE_JOBS"
	}
	if c.Subject == "" {
		c.Subject = "fheserve.jobs"
	}
	if c.Consumer == "" {
		c.Consumer = "workers"
	}
	if c.AckWait <= 0 {
		c.AckWait = 30 * time.Second
	}
	if c.Shards <= 0 {
		c.Shards = 16
	}
	if c.Patience <= 0 {
		c.Patience = 10 * time.Second
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
}

// Queue is the job queue on a JetStream work-queue stream: one subject
// per job id holding at most one message, so pushing an id that is
// queued or being worked on does nothing; pull consumers with explicit
// acks shared by every worker, one per key-set shard and one for the jobs
// of no shard.
//
// A worker leases first from the shards of the key sets it holds
// (LeasePreferring), so that a key set is read by few workers. It learns
// which shards have jobs from the jobs' own publications (a core NATS
// subscription to the stream's subjects, which costs a small message per
// job and worker) and by looking at every shard each second (jobs handed
// back or whose lease lapsed are not published again); a fetch is
// never left waiting on one shard while another has a job.
type Queue struct {
	cfg    QueueConfig
	js     jetstream.JetStream
	stream jetstream.Stream
	// cons[s] is shard s's consumer; cons[cfg.Shards] is the one of the
	// jobs of no shard.
	cons []jetstream.Consumer

	mu sync.Mutex
	// since[s] is when this process learnt that shard s may have a job
	// for it (zero: none as far as it knows); rang[s] counts the
	// publications seen on it, so that one seen during a fetch that
	// found nothing is not forgotten.
	since   []time.Time
	rang    []uint64
	scanned time.Time     // the last look at every shard
	bell    chan struct{} // closed, and replaced, when a job is published
	sub     *nats.Subscription
	offset  int // where this process starts among equally old shards
}

// shardsKey is the stream's metadata entry holding its number of shards.
const shardsKey = "fheserve_shards"

// OpenQueue creates or updates the stream and the consumers and returns
// the queue on them. A stream of the single-consumer layout (before
// shards) is taken over: its consumer keeps the jobs it holds.
func OpenQueue(ctx context.Context, js jetstream.JetStream, cfg QueueConfig) (*Queue, error) {
	cfg.setDefaults()
	storage := jetstream.FileStorage
	if cfg.Memory {
		storage = jetstream.MemoryStorage
	}
	if st, err := js.Stream(ctx, cfg.Stream); err == nil {
		if n, err := strconv.Atoi(st.CachedInfo().Config.Metadata[shardsKey]); err == nil && n > 0 {
			cfg.Shards = n
		}
	}
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:      cfg.Stream,
		Subjects:  []string{cfg.Subject + ".>"},
		Retention: jetstream.WorkQueuePolicy,
		Storage:   storage,
		Replicas:  cfg.Replicas,
		// One message per job id: a second push of a queued or running
		// job is refused by the server, which Push takes as done.
		MaxMsgsPerSubject:    1,
		Discard:              jetstream.DiscardNew,
		DiscardNewPerSubject: true,
		AllowDirect:          true,
		Metadata:             map[string]string{shardsKey: strconv.Itoa(cfg.Shards)},
	})
	if err != nil {
		return nil, fmt.Errorf("natsjs: cannot create stream %s: %w", cfg.Stream, err)
	}
	q := &Queue{
		cfg: cfg, js: js, stream: st,
		since: make([]time.Time, cfg.Shards+1), rang: make([]uint64, cfg.Shards+1),
		bell: make(chan struct{}), offset: rand.IntN(cfg.Shards + 1),
	}
	// The consumers of a work queue may not overlap: the one of the jobs
	// of no shard (unfiltered before shards) is narrowed first.
	noShard, err := q.consumer(ctx, cfg.Consumer, cfg.Subject+".*")
	if err != nil {
		return nil, err
	}
	for s := range cfg.Shards {
		cons, err := q.consumer(ctx, fmt.Sprintf("%s-%d", cfg.Consumer, s), fmt.Sprintf("%s.%d.*", cfg.Subject, s))
		if err != nil {
			return nil, err
		}
		q.cons = append(q.cons, cons)
	}
	q.cons = append(q.cons, noShard)
	return q, nil
}

// consumer creates or updates a durable consumer of the workers.
func (q *Queue) consumer(ctx context.Context, name, filter string) (jetstream.Consumer, error) {
	cons, err := q.stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       name,
		FilterSubject: filter,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       q.cfg.AckWait,
		// Unbounded here: the service fails a job interrupted too often
		// (it counts the attempts in the store) and acknowledges it. A
		// message past a MaxDeliver would stay in the work queue for
		// good and refuse every later push of its id.
		MaxDeliver:    -1,
		MaxAckPending: -1,
	})
	if err != nil {
		return nil, fmt.Errorf("natsjs: cannot create consumer %s: %w", name, err)
	}
	return cons, nil
}

// Shard returns the shard of a key set: FNV-1a of its id modulo the
// number of shards.
func (q *Queue) Shard(keySetID string) int {
	h := fnv.New32a()
	h.Write([]byte(keySetID))
	return int(h.Sum32() % uint32(q.cfg.Shards))
}

// subject returns the subject of a job of no shard.
func (q *Queue) subject(jobID string) (string, error) {
	if jobID == "" || strings.ContainsAny(jobID, ".*> \t\r\n") {
		return "", fheserve.Errorf(fheserve.EINVALID, "invalid job id %q", jobID)
	}
	return q.cfg.Subject + "." + jobID, nil
}

// Push implements fheserve.Queue: the job goes on the subject of no
// shard. Pushing an id already queued, or leased and not done, does
// nothing.
func (q *Queue) Push(ctx context.Context, jobID string) error {
	subj, err := q.subject(jobID)
	if err != nil {
		return err
	}
	return q.publish(ctx, subj, jobID)
}

// PushFor implements fheserve.AffinityQueue: the job goes on its key
// set's shard, unless it is queued on the subject of no shard already
// (pushed before shards, and pushed again by a node that starts), where
// it stays. Pushing an id already queued, or leased and not done, does
// nothing.
func (q *Queue) PushFor(ctx context.Context, jobID, keySetID string) error {
	subj, err := q.subject(jobID)
	if err != nil {
		return err
	}
	_, err = q.stream.GetLastMsgForSubject(ctx, subj)
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, jetstream.ErrMsgNotFound):
		return fmt.Errorf("natsjs: cannot queue job %s: %w", jobID, err)
	}
	return q.publish(ctx, fmt.Sprintf("%s.%d.%s", q.cfg.Subject, q.Shard(keySetID), jobID), jobID)
}

func (q *Queue) publish(ctx context.Context, subj, jobID string) error {
	_, err := q.js.Publish(ctx, subj, []byte(jobID))
	if isPerSubjectLimit(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("natsjs: cannot queue job %s: %w", jobID, err)
	}
	return nil
}

// isPerSubjectLimit reports whether err is the server's refusal of a
// second message on a job's subject.
func isPerSubjectLimit(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && strings.Contains(apiErr.Description, "maximum messages per subject")
}

// Pop implements fheserve.Queue. It removes the id from the queue at
// once: a worker that dies afterwards loses the job to the next restart's
// recovery. Workers use Lease.
func (q *Queue) Pop(ctx context.Context) (string, error) {
	l, err := q.Lease(ctx)
	if err != nil {
		return "", err
	}
	if err := l.Done(); err != nil {
		return "", err
	}
	return l.JobID(), nil
}

// Timing of LeasePreferring.
const (
	// rescanEvery is how often a worker looks at every shard, for the
	// jobs that were handed back or whose lease lapsed (not published
	// again).
	rescanEvery = time.Second
	// handoff is how long an idle worker leaves a job just published on
	// a shard it does not prefer to the workers that do.
	handoff = 25 * time.Millisecond
	// alwaysAsk is how many of the shards of the key sets a worker used
	// last it asks at every look, whether or not it knows they have jobs.
	alwaysAsk = 4
)

// Lease implements fheserve.LeaseQueue: LeasePreferring with no key set.
func (q *Queue) Lease(ctx context.Context) (fheserve.Lease, error) {
	return q.LeasePreferring(ctx, nil)
}

// LeasePreferring implements fheserve.AffinityQueue. Of the shards it
// knows have jobs, it tries, each with a request that does not wait:
// first those whose jobs waited more than Patience for a worker, then
// those of the key sets held returns, then the others, the oldest news
// first, each once a job published there is handoff old. With nothing to
// take, it waits for a job to be published or for its next look at
// every shard.
func (q *Queue) LeasePreferring(ctx context.Context, held func() []string) (fheserve.Lease, error) {
	if err := q.subscribe(); err != nil {
		return nil, err
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var keys []string
		if held != nil {
			keys = held()
		}
		// Taken before looking, so that a job published meanwhile wakes it.
		q.mu.Lock()
		bell := q.bell
		q.mu.Unlock()
		l, wait, err := q.tryLease(ctx, keys)
		if l != nil || err != nil {
			return l, err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-bell:
		case <-t.C:
		}
		t.Stop()
	}
}

// subscribe starts listening to the jobs' publications, once.
func (q *Queue) subscribe() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.sub != nil {
		return nil
	}
	sub, err := q.js.Conn().Subscribe(q.cfg.Subject+".>", func(m *nats.Msg) { q.ring(m.Subject) })
	if err != nil {
		return fmt.Errorf("natsjs: cannot follow the job stream: %w", err)
	}
	q.sub = sub
	return nil
}

// ring records a job published on subj.
func (q *Queue) ring(subj string) {
	s := q.cfg.Shards
	if rest, ok := strings.CutPrefix(subj, q.cfg.Subject+"."); ok {
		if shard, _, ok := strings.Cut(rest, "."); ok {
			n, err := strconv.Atoi(shard)
			if err != nil || n < 0 || n >= q.cfg.Shards {
				return
			}
			s = n
		}
	}
	q.mu.Lock()
	if q.since[s].IsZero() {
		q.since[s] = time.Now()
	}
	q.rang[s]++
	// Every waiting worker of this process looks.
	close(q.bell)
	q.bell = make(chan struct{})
	q.mu.Unlock()
}

// tryLease fetches a job from the shards in order (see LeasePreferring),
// or returns how long to wait before trying again.
func (q *Queue) tryLease(ctx context.Context, held []string) (fheserve.Lease, time.Duration, error) {
	order, wait := q.order(held)
	for _, s := range order {
		// A pull that does not wait still waits a second for its answer
		// while NATS is unreachable: a worker that stops must not ask
		// every shard first.
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		q.mu.Lock()
		rang := q.rang[s]
		q.mu.Unlock()
		msg, err := q.fetch(ctx, s)
		if err != nil {
			return nil, 0, err
		}
		q.mu.Lock()
		switch now := time.Now(); {
		case msg != nil:
			// More may wait there, for the workers that prefer it first.
			q.since[s] = now
		case now.Sub(q.since[s]) < handoff:
			// A pull that does not wait can miss a message just stored:
			// asked again shortly.
			wait = min(wait, handoff)
		case q.rang[s] == rang:
			q.since[s] = time.Time{}
		}
		q.mu.Unlock()
		if msg == nil {
			continue
		}
		md, err := msg.Metadata()
		if err != nil {
			msg.Term()
			continue
		}
		return &lease{msg: msg, id: string(msg.Data()), attempt: int(md.NumDelivered), every: q.cfg.AckWait / 3}, 0, nil
	}
	return nil, wait, nil
}

// order returns the shards to try, and how long to wait if none has a
// job.
func (q *Queue) order(held []string) ([]int, time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := time.Now()
	if now.Sub(q.scanned) >= rescanEvery {
		for s := range q.since {
			if q.since[s].IsZero() {
				q.since[s] = now
			}
		}
		q.scanned = now
	}
	wait := q.scanned.Add(rescanEvery).Sub(now)
	preferred := make([]bool, len(q.since))
	var mine []int
	for _, k := range held {
		if s := q.Shard(k); !preferred[s] {
			preferred[s] = true
			mine = append(mine, s)
		}
	}
	var overdue, others []int
	for i := range q.since {
		s := (i + q.offset) % len(q.since)
		switch since := q.since[s]; {
		case since.IsZero() || preferred[s]:
		case now.Sub(since) >= q.cfg.Patience:
			overdue = append(overdue, s)
		case now.Sub(since) >= handoff:
			others = append(others, s)
		default:
			wait = min(wait, handoff-now.Sub(since))
		}
	}
	byAge := func(a, b int) int { return q.since[a].Compare(q.since[b]) }
	slices.SortStableFunc(overdue, byAge)
	slices.SortStableFunc(others, byAge)
	// The shards of the key sets used last are asked whatever this
	// process knows of them: a pull that does not wait finds nothing now
	// and then on a consumer that has messages (often under load), and a
	// shard thought empty would be passed over until the next look.
	order := overdue
	for i, s := range mine {
		if i < alwaysAsk || !q.since[s].IsZero() {
			order = append(order, s)
		}
	}
	return append(order, others...), max(wait, time.Millisecond)
}

// fetch takes one job of shard s if it has one now.
func (q *Queue) fetch(ctx context.Context, s int) (jetstream.Msg, error) {
	batch, err := q.cons[s].FetchNoWait(1)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("natsjs: cannot fetch a job: %w", err)
	}
	var msg jetstream.Msg
	for m := range batch.Messages() {
		msg = m
	}
	if err := batch.Error(); err != nil && msg == nil && !errors.Is(err, jetstream.ErrNoMessages) && !isTimeout(err) {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("natsjs: cannot fetch a job: %w", err)
	}
	return msg, nil
}

func isTimeout(err error) bool {
	return err != nil && strings.Contains(err.Error(), "timeout")
}

// Position implements fheserve.Queue. For a job of no shard, it counts
// the messages between the last one its consumer handed out and the
// job's; for a job on a shard, the same within its shard, at most the
// shard's jobs not handed out (an upper bound: workers take from several
// shards). An id handed out and not done (being worked on, or waiting to
// be handed out again) is not queued.
func (q *Queue) Position(jobID string) (int, bool) {
	subj, err := q.subject(jobID)
	if err != nil {
		return 0, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s := q.cfg.Shards
	m, err := q.stream.GetLastMsgForSubject(ctx, q.cfg.Subject+".*."+jobID)
	if err == nil {
		shard, _, _ := strings.Cut(strings.TrimPrefix(m.Subject, q.cfg.Subject+"."), ".")
		if s, err = strconv.Atoi(shard); err != nil {
			return 0, false
		}
	} else if m, err = q.stream.GetLastMsgForSubject(ctx, subj); err != nil {
		return 0, false
	}
	if s < 0 || s >= len(q.cons) {
		return 0, false
	}
	info, err := q.cons[s].Info(ctx)
	if err != nil {
		return 0, false
	}
	last := info.Delivered.Stream
	if m.Sequence <= last {
		return 0, false
	}
	// Messages past the last delivered one are all still in the stream
	// (only a delivered message is acknowledged), so the gap counts them
	// and, on a shard, other shards' too.
	pos := int(m.Sequence - last - 1)
	if s < q.cfg.Shards {
		pos = min(pos, int(info.NumPending)-1)
	}
	return max(pos, 0), true
}

// Len returns the number of ids queued and not yet handed out.
func (q *Queue) Len(ctx context.Context) (int, error) {
	n := 0
	for _, c := range q.cons {
		info, err := c.Info(ctx)
		if err != nil {
			return 0, err
		}
		n += int(info.NumPending)
	}
	return n, nil
}

type lease struct {
	msg     jetstream.Msg
	id      string
	attempt int
	every   time.Duration
}

func (l *lease) JobID() string            { return l.id }
func (l *lease) Attempt() int             { return l.attempt }
func (l *lease) Heartbeat() time.Duration { return l.every }
func (l *lease) Extend() error            { return l.msg.InProgress() }
func (l *lease) Release() error           { return l.msg.Nak() }

// ReleaseAfter hands the id back to be handed out again after d.
func (l *lease) ReleaseAfter(d time.Duration) error { return l.msg.NakWithDelay(d) }

func (l *lease) Done() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A double ack: the server confirms the id left the queue.
	if err := l.msg.DoubleAck(ctx); err != nil {
		return fmt.Errorf("natsjs: cannot acknowledge job %s: %w", l.id, err)
	}
	return nil
}

// Check reports whether the queue answers: a consumer's state is read
// from the server (readiness probes).
func (q *Queue) Check(ctx context.Context) error {
	if _, err := q.cons[q.cfg.Shards].Info(ctx); err != nil {
		return fmt.Errorf("natsjs: job stream %s: %w", q.cfg.Stream, err)
	}
	return nil
}

// Close stops following the jobs' publications; the connection is the
// caller's.
func (q *Queue) Close() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.sub == nil {
		return nil
	}
	return q.sub.Unsubscribe()
}
