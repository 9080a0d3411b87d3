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

// The tests run in parallel, each on a NATS server of its own: they
// mostly wait for it (ack waits, redeliveries).

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
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
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
	t.Parallel()
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

// keySetsInShards returns n key set ids of distinct shards of q.
func keySetsInShards(q *natsjs.Queue, n int) []string {
	var ids []string
	used := map[int]bool{}
	for i := 0; len(ids) < n; i++ {
		id := fmt.Sprint("ks_", i)
		if s := q.Shard(id); !used[s] {
			used[s] = true
			ids = append(ids, id)
		}
	}
	return ids
}

// leasePreferring leases from q preferring held, or fails after d.
func leasePreferring(t *testing.T, q *natsjs.Queue, held []string, d time.Duration) fheserve.Lease {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	l, err := q.LeasePreferring(ctx, func() []string { return held })
	if err != nil {
		t.Fatalf("LeasePreferring(%v): %v", held, err)
	}
	return l
}

// A worker takes the jobs of the key sets it holds first, in the order
// they were queued; a job of a key set that no worker holds is taken by
// an idle worker, and by a busy one once it waited Patience.
func TestQueueAffinity(t *testing.T) {
	t.Parallel()
	s := natstest.Start(t)
	cfg := natsjs.QueueConfig{AckWait: time.Minute, Patience: 1500 * time.Millisecond}
	ctx := context.Background()
	_, js := dial(t, s)
	api := openQueue(t, js, cfg)
	_, js1 := dial(t, s)
	w1 := openQueue(t, js1, cfg)
	ks := keySetsInShards(api, 3)
	a, b, c := ks[0], ks[1], ks[2]
	// Interleaved: a1 b1 a2 b2 a3 b3.
	for i := 1; i <= 3; i++ {
		for _, k := range []string{a, b} {
			if err := api.PushFor(ctx, fmt.Sprintf("job_%s_%d", k, i), k); err != nil {
				t.Fatal(err)
			}
		}
	}
	if p, ok := api.Position("job_" + b + "_3"); !ok || p > 2 {
		t.Fatalf("Position of the third job of a shard = %d, %v; want at most 2, true", p, ok)
	}
	for i := 1; i <= 3; i++ {
		want := fmt.Sprintf("job_%s_%d", b, i)
		l := leasePreferring(t, w1, []string{b}, 5*time.Second)
		if l.JobID() != want {
			t.Fatalf("a worker holding %s leased %s, want %s", b, l.JobID(), want)
		}
		if err := l.Done(); err != nil {
			t.Fatal(err)
		}
	}
	// Its key set's jobs done, an idle worker takes another's.
	l := leasePreferring(t, w1, []string{b}, 5*time.Second)
	if l.JobID() != "job_"+a+"_1" {
		t.Fatalf("an idle worker leased %s, want job_%s_1", l.JobID(), a)
	}
	must(t, l.Done())

	// Patience: a worker holding a, with a's jobs always there, still
	// takes c's job once it has waited 1.5 s.
	must(t, api.PushFor(ctx, "job_c", c))
	t0 := time.Now()
	for n := 0; ; n++ {
		l := leasePreferring(t, w1, []string{a}, 5*time.Second)
		if l.JobID() == "job_c" {
			// A shard's wait counts from when the worker first knew it
			// might have jobs, which may be up to a look ahead of the push.
			if time.Since(t0) < cfg.Patience-100*time.Millisecond {
				t.Fatalf("job_c taken after %v, before the patience of %v ran out", time.Since(t0), cfg.Patience)
			}
			break
		}
		if n > 200 {
			t.Fatal("job_c is never taken")
		}
		must(t, l.Done())
		// a's job done, the next one is queued at once.
		must(t, api.PushFor(ctx, fmt.Sprint("job_a_more", n), a))
		time.Sleep(20 * time.Millisecond)
	}
}

// A job pushed before shards (on the subject of no shard, to a stream
// whose one consumer takes every subject) is taken over and leased once:
// pushing it again under its key set does not queue it twice.
func TestQueueMigration(t *testing.T) {
	t.Parallel()
	s := natstest.Start(t)
	ctx := context.Background()
	_, js := dial(t, s)
	// The layout before shards.
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: "FHESERVE_JOBS", Subjects: []string{"fheserve.jobs.>"}, Retention: jetstream.WorkQueuePolicy,
		MaxMsgsPerSubject: 1, Discard: jetstream.DiscardNew, DiscardNewPerSubject: true, AllowDirect: true,
	})
	must(t, err)
	_, err = st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: "workers", AckPolicy: jetstream.AckExplicitPolicy, MaxDeliver: -1, MaxAckPending: -1})
	must(t, err)
	for _, id := range []string{"job_old1", "job_old2"} {
		_, err := js.Publish(ctx, "fheserve.jobs."+id, []byte(id))
		must(t, err)
	}

	q := openQueue(t, js, natsjs.QueueConfig{AckWait: time.Minute})
	must(t, q.PushFor(ctx, "job_old1", "ks_1")) // a node that starts pushes it again
	must(t, q.PushFor(ctx, "job_new", "ks_1"))
	if p, ok := q.Position("job_old2"); !ok || p != 1 {
		t.Fatalf("Position(job_old2) = %d, %v; want 1, true", p, ok)
	}
	seen := map[string]int{}
	for range 3 {
		l := leasePreferring(t, q, []string{"ks_1"}, 5*time.Second)
		seen[l.JobID()]++
		must(t, l.Done())
	}
	noLease(t, q, 1500*time.Millisecond)
	for _, id := range []string{"job_old1", "job_old2", "job_new"} {
		if seen[id] != 1 {
			t.Fatalf("leased %v, want each of job_old1, job_old2, job_new once", seen)
		}
	}
	// The stream keeps its number of shards, whatever a process asks.
	q2 := openQueue(t, js, natsjs.QueueConfig{Shards: 5})
	if q2.Shard("ks_1") != q.Shard("ks_1") {
		t.Fatal("a process opening the queue with another number of shards files jobs elsewhere")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
