// Package natsq holds the fheserve.Queue and fheserve.BlobStore on NATS
// JetStream, which several nodes share: the queue is a work-queue stream
// with a subject per job, read by one durable pull consumer that all
// workers share; the blobs are a JetStream object store bucket.
package natsq

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

var _ fheserve.Queue = (*Queue)(nil)

// Queue is a fheserve.Queue on a JetStream work-queue stream. A job id is
// published on its own subject, of which the stream keeps one message
// (DiscardNewPerSubject), so pushing a queued id again does nothing. Pop
// acknowledges the message it returns: the store is the record of what
// must run, and a job popped by a worker that died runs again when a
// node requeues the unfinished jobs, as with the in-process queue.
type Queue struct {
	js      jetstream.JetStream
	stream  jetstream.Stream
	cons    jetstream.Consumer
	subject string // the subjects' prefix, "<name>.jobs."
}

// Options configures the stream of a Queue.
type Options struct {
	// Name names the stream (upper case) and its subjects (lower case);
	// default FHESERVE.
	Name string
	// AckWait is how long a popped message waits for its ack before
	// JetStream delivers it again (default 30 s).
	AckWait time.Duration
}

// OpenQueue creates (or finds) the queue's stream and its consumer.
func OpenQueue(ctx context.Context, js jetstream.JetStream, o Options) (*Queue, error) {
	if o.Name == "" {
		o.Name = "FHESERVE"
	}
	if o.AckWait == 0 {
		o.AckWait = 30 * time.Second
	}
	name := strings.ToUpper(o.Name) + "_JOBS"
	subject := strings.ToLower(o.Name) + ".jobs."
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: name, Subjects: []string{subject + "*"}, Retention: jetstream.WorkQueuePolicy,
		Discard: jetstream.DiscardNew, DiscardNewPerSubject: true, MaxMsgsPerSubject: 1, Storage: jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("cannot create the job stream: %w", err)
	}
	cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: "workers", AckPolicy: jetstream.AckExplicitPolicy, AckWait: o.AckWait,
	})
	if err != nil {
		return nil, fmt.Errorf("cannot create the job consumer: %w", err)
	}
	return &Queue{js: js, stream: st, cons: cons, subject: subject}, nil
}

// checkID refuses an id that is not one subject token.
func checkID(id string) error {
	if id == "" || strings.ContainsAny(id, ".*> \t\r\n") {
		return fheserve.Errorf(fheserve.EINVALID, "invalid job id %q for the queue", id)
	}
	return nil
}

// Push implements fheserve.Queue.
func (q *Queue) Push(ctx context.Context, jobID string) error {
	if err := checkID(jobID); err != nil {
		return err
	}
	_, err := q.js.Publish(ctx, q.subject+jobID, nil)
	if err != nil && strings.Contains(err.Error(), "maximum messages per subject exceeded") {
		return nil // queued already
	}
	return err
}

// Pop implements fheserve.Queue.
func (q *Queue) Pop(ctx context.Context) (string, error) {
	for {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		msg, err := q.cons.Next(jetstream.FetchContext(ctx))
		if err != nil {
			// The pull request expires with ctx's deadline, and its
			// timeout may come back a moment before ctx ends.
			if d, ok := ctx.Deadline(); ok && time.Until(d) < 50*time.Millisecond {
				<-ctx.Done()
			}
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			if errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
				continue
			}
			return "", err
		}
		if err := msg.DoubleAck(ctx); err != nil {
			// Not acknowledged: JetStream delivers it again after AckWait.
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			continue
		}
		return strings.TrimPrefix(msg.Subject(), q.subject), nil
	}
}

// Position implements fheserve.Queue: the messages before the job's that
// are neither acknowledged nor deleted.
func (q *Queue) Position(jobID string) (int, bool) {
	if checkID(jobID) != nil {
		return 0, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := q.stream.GetLastMsgForSubject(ctx, q.subject+jobID)
	if err != nil {
		return 0, false
	}
	info, err := q.stream.Info(ctx, jetstream.WithDeletedDetails(true))
	if err != nil {
		return 0, false
	}
	n := int(m.Sequence) - int(info.State.FirstSeq)
	for _, d := range info.State.Deleted {
		if d >= info.State.FirstSeq && d < m.Sequence {
			n--
		}
	}
	return max(n, 0), true
}
