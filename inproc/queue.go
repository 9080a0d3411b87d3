// Package inproc holds the in-process fheserve.Queue: a FIFO in memory,
// for a single server. The store remains the record of which jobs must
// run, so the queue's loss on a restart loses no job.
package inproc

import (
	"context"
	"sync"

	"github.com/fheserve/fheserve"
)

var _ fheserve.Queue = (*Queue)(nil)

// Queue is a first-in, first-out queue of job ids.
type Queue struct {
	mu    sync.Mutex
	ids   []string
	ready chan struct{} // closed and replaced when ids grows
}

// NewQueue returns an empty queue.
func NewQueue() *Queue {
	return &Queue{ready: make(chan struct{})}
}

// Push implements fheserve.Queue. Pushing an id already queued does nothing.
func (q *Queue) Push(ctx context.Context, jobID string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, id := range q.ids {
		if id == jobID {
			return nil
		}
	}
	q.ids = append(q.ids, jobID)
	close(q.ready)
	q.ready = make(chan struct{})
	return nil
}

// Pop implements fheserve.Queue.
func (q *Queue) Pop(ctx context.Context) (string, error) {
	for {
		q.mu.Lock()
		if len(q.ids) > 0 {
			id := q.ids[0]
			q.ids = q.ids[1:]
			q.mu.Unlock()
			return id, nil
		}
		ready := q.ready
		q.mu.Unlock()
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-ready:
		}
	}
}

// Position implements fheserve.Queue.
func (q *Queue) Position(jobID string) (int, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, id := range q.ids {
		if id == jobID {
			return i, true
		}
	}
	return 0, false
}

// Len returns the number of queued ids.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.ids)
}
