package natsjs

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/fheserve/fheserve"
)

var _ fheserve.LeaseQueue = (*Queue)(nil)

// QueueConfig names the job stream and sets its consumer's timing. Zero
// fields take the defaults.
type QueueConfig struct {
	Stream   string // default "FHESERVE_JOBS"
	Subject  string // subject prefix; a job is published on Subject.ID (default "fheserve.jobs")
	Consumer string // the workers' durable consumer (default "workers")
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
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
}

// Queue is the job queue on a JetStream work-queue stream: one subject
// per job id holding at most one message, so pushing an id that is
// queued or being worked on does nothing; a pull consumer with explicit
// acks shared by every worker.
type Queue struct {
	cfg    QueueConfig
	js     jetstream.JetStream
	stream jetstream.Stream
	cons   jetstream.Consumer
}

// OpenQueue creates or updates the stream and the consumer and returns
// the queue on them.
func OpenQueue(ctx context.Context, js jetstream.JetStream, cfg QueueConfig) (*Queue, error) {
	cfg.setDefaults()
	storage := jetstream.FileStorage
	if cfg.Memory {
		storage = jetstream.MemoryStorage
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
	})
	if err != nil {
		return nil, fmt.Errorf("natsjs: cannot create stream %s: %w", cfg.Stream, err)
	}
	cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:   cfg.Consumer,
		AckPolicy: jetstream.AckExplicitPolicy,
		AckWait:   cfg.AckWait,
		// Unbounded here: the service fails a job interrupted too often
		// (it counts the attempts in the store) and acknowledges it. A
		// message past a MaxDeliver would stay in the work queue for
		// good and refuse every later push of its id.
		MaxDeliver:    -1,
		MaxAckPending: -1,
	})
	if err != nil {
		return nil, fmt.Errorf("natsjs: cannot create consumer %s: %w", cfg.Consumer, err)
	}
	return &Queue{cfg: cfg, js: js, stream: st, cons: cons}, nil
}

func (q *Queue) subject(jobID string) (string, error) {
	if jobID == "" || strings.ContainsAny(jobID, ".*> \t\r\n") {
		return "", fheserve.Errorf(fheserve.EINVALID, "invalid job id %q", jobID)
	}
	return q.cfg.Subject + "." + jobID, nil
}

// Push implements fheserve.Queue. Pushing an id already queued, or leased
// and not done, does nothing.
func (q *Queue) Push(ctx context.Context, jobID string) error {
	subj, err := q.subject(jobID)
	if err != nil {
		return err
	}
	_, err = q.js.Publish(ctx, subj, []byte(jobID))
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

// maxFetchWait bounds one pull request, so that a Lease without a
// deadline still notices a closed connection.
const maxFetchWait = 10 * time.Second

// Lease implements fheserve.LeaseQueue.
func (q *Queue) Lease(ctx context.Context) (fheserve.Lease, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		fctx, cancel := context.WithTimeout(ctx, maxFetchWait)
		msg, err := q.cons.Next(jetstream.FetchContext(fctx))
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, jetstream.ErrNoMessages) || isTimeout(err) {
				continue
			}
			if errors.Is(err, jetstream.ErrInvalidOption) {
				// The deadline is too close for a pull request: wait it out.
				<-ctx.Done()
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("natsjs: cannot fetch a job: %w", err)
		}
		md, err := msg.Metadata()
		if err != nil {
			msg.Term()
			continue
		}
		return &lease{msg: msg, id: string(msg.Data()), attempt: int(md.NumDelivered), every: q.cfg.AckWait / 3}, nil
	}
}

func isTimeout(err error) bool {
	return err != nil && strings.Contains(err.Error(), "timeout")
}

// Position implements fheserve.Queue: the job's message counts the
// messages between the last one handed out and itself. An id handed out
// and not done (being worked on, or waiting to be handed out again) is
// not queued.
func (q *Queue) Position(jobID string) (int, bool) {
	subj, err := q.subject(jobID)
	if err != nil {
		return 0, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	m, err := q.stream.GetLastMsgForSubject(ctx, subj)
	if err != nil {
		return 0, false
	}
	info, err := q.cons.Info(ctx)
	if err != nil {
		return 0, false
	}
	last := info.Delivered.Stream
	if m.Sequence <= last {
		return 0, false
	}
	// Messages past the last delivered one are all still in the stream
	// (only a delivered message is acknowledged), so the gap counts them.
	return int(m.Sequence - last - 1), true
}

// Len returns the number of ids queued and not yet handed out.
func (q *Queue) Len(ctx context.Context) (int, error) {
	info, err := q.cons.Info(ctx)
	if err != nil {
		return 0, err
	}
	return int(info.NumPending), nil
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

// Check reports whether the queue answers: its consumer's state is read
// from the server (readiness probes).
func (q *Queue) Check(ctx context.Context) error {
	if _, err := q.cons.Info(ctx); err != nil {
		return fmt.Errorf("natsjs: job stream %s: %w", q.cfg.Stream, err)
	}
	return nil
}
