package natsjs_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/natsjs"
	"github.com/fheserve/fheserve/natsjs/natstest"
	"github.com/fheserve/fheserve/storetest"
)

func dial(t *testing.T, s *natstest.Server) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, js, err := natsjs.Dial(s.URL(), t.Name())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc, js
}

func openQueue(t *testing.T, js jetstream.JetStream, cfg natsjs.QueueConfig) *natsjs.Queue {
	t.Helper()
	q, err := natsjs.OpenQueue(context.Background(), js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func TestQueue(t *testing.T) {
	s := natstest.Start(t)
	n := 0
	storetest.Queue(t, func(t *testing.T) fheserve.Queue {
		_, js := dial(t, s)
		n++
		return openQueue(t, js, natsjs.QueueConfig{Stream: fmt.Sprint("Q", n), Subject: fmt.Sprint("q", n)})
	})
}

// leaseWithin leases from q or fails after d.
func leaseWithin(t *testing.T, q *natsjs.Queue, d time.Duration) fheserve.Lease {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	l, err := q.Lease(ctx)
	if err != nil {
		t.Fatalf("Lease: %v", err)
	}
	return l
}

// noLease checks that nothing is handed out for d.
func noLease(t *testing.T, q *natsjs.Queue, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if l, err := q.Lease(ctx); err == nil {
		t.Fatalf("leased %s (attempt %d), want nothing", l.JobID(), l.Attempt())
	}
}

// A worker that dies holding a lease (its connection closes without an
// acknowledgement) leaves the job to another after the ack wait.
func TestQueueRedelivery(t *testing.T) {
	s := natstest.Start(t)
	cfg := natsjs.QueueConfig{AckWait: 500 * time.Millisecond}
	ctx := context.Background()
	nc1, js1 := dial(t, s)
	q1 := openQueue(t, js1, cfg)
	_, js2 := dial(t, s)
	q2 := openQueue(t, js2, cfg)

	if err := q1.Push(ctx, "job_1"); err != nil {
		t.Fatal(err)
	}
	l := leaseWithin(t, q1, 5*time.Second)
	if l.JobID() != "job_1" || l.Attempt() != 1 {
		t.Fatalf("leased %s attempt %d", l.JobID(), l.Attempt())
	}
	// Leased and not done: pushing again does nothing, and it is not queued.
	if err := q2.Push(ctx, "job_1"); err != nil {
		t.Fatal(err)
	}
	if _, ok := q2.Position("job_1"); ok {
		t.Fatal("a leased job has a queue position")
	}
	nc1.Close() // the worker dies

	l2 := leaseWithin(t, q2, 10*time.Second)
	if l2.JobID() != "job_1" || l2.Attempt() != 2 {
		t.Fatalf("redelivered %s attempt %d, want job_1 attempt 2", l2.JobID(), l2.Attempt())
	}
	if err := l2.Done(); err != nil {
		t.Fatal(err)
	}
	noLease(t, q2, 1500*time.Millisecond)
	// Done: the id may be queued again.
	if err := q2.Push(ctx, "job_1"); err != nil {
		t.Fatal(err)
	}
	if p, ok := q2.Position("job_1"); !ok || p != 0 {
		t.Fatalf("Position after a new push = %d, %v", p, ok)
	}
	if l3 := leaseWithin(t, q2, 5*time.Second); l3.JobID() != "job_1" || l3.Attempt() != 1 {
		t.Fatalf("pushed again: %s attempt %d", l3.JobID(), l3.Attempt())
	}
}

// Heartbeats keep a job that runs for several ack waits with its worker.
func TestQueueHeartbeat(t *testing.T) {
	s := natstest.Start(t)
	cfg := natsjs.QueueConfig{AckWait: 400 * time.Millisecond}
	ctx := context.Background()
	_, js1 := dial(t, s)
	q1 := openQueue(t, js1, cfg)
	_, js2 := dial(t, s)
	q2 := openQueue(t, js2, cfg)
	if err := q1.Push(ctx, "job_long"); err != nil {
		t.Fatal(err)
	}
	l := leaseWithin(t, q1, 5*time.Second)
	if l.Heartbeat() <= 0 || l.Heartbeat() >= cfg.AckWait {
		t.Fatalf("Heartbeat %v for an ack wait of %v", l.Heartbeat(), cfg.AckWait)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(l.Heartbeat())
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				if err := l.Extend(); err != nil {
					t.Error(err)
				}
			}
		}
	}()
	// Five ack waits: another worker gets nothing.
	noLease(t, q2, 5*cfg.AckWait)
	close(stop)
	<-done
	if err := l.Done(); err != nil {
		t.Fatal(err)
	}
	noLease(t, q2, 3*cfg.AckWait)

	// Without heartbeats the same job goes to the other worker.
	if err := q1.Push(ctx, "job_short"); err != nil {
		t.Fatal(err)
	}
	leaseWithin(t, q1, 5*time.Second)
	if l2 := leaseWithin(t, q2, 5*time.Second); l2.JobID() != "job_short" || l2.Attempt() != 2 {
		t.Fatalf("without heartbeats: %s attempt %d", l2.JobID(), l2.Attempt())
	}
}

// Release hands a job to another worker at once.
func TestQueueRelease(t *testing.T) {
	s := natstest.Start(t)
	cfg := natsjs.QueueConfig{AckWait: time.Minute}
	_, js := dial(t, s)
	q := openQueue(t, js, cfg)
	if err := q.Push(context.Background(), "job_r"); err != nil {
		t.Fatal(err)
	}
	if err := leaseWithin(t, q, 5*time.Second).Release(); err != nil {
		t.Fatal(err)
	}
	if l := leaseWithin(t, q, 5*time.Second); l.JobID() != "job_r" || l.Attempt() != 2 {
		t.Fatalf("after release: %s attempt %d", l.JobID(), l.Attempt())
	}
}
