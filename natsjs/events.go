package natsjs

import (
	"strings"

	"github.com/nats-io/nats.go"
)

// Events carries "this job changed" signals between the processes of a
// cluster on NATS core subjects (Subject.ID, default "fheserve.events"),
// so that the API node that streams a job's progress to its client wakes
// when a worker elsewhere moves the job on. A signal holds the job id
// only: whoever wakes reads the job from the store. Signals are best
// effort; a lost one delays a progress event, never loses the job.
type Events struct {
	nc      *nats.Conn
	subject string
}

// NewEvents returns the signals on nc under subject ("" for
// "fheserve.events").
func NewEvents(nc *nats.Conn, subject string) *Events {
	if subject == "" {
		subject = "fheserve.events"
	}
	return &Events{nc: nc, subject: subject}
}

// Publish signals that job id changed.
func (e *Events) Publish(jobID string) {
	if jobID == "" || strings.ContainsAny(jobID, ".*> \t\r\n") {
		return
	}
	e.nc.Publish(e.subject+"."+jobID, nil)
}

// Subscribe calls f with the id of every job signalled, from one
// goroutine, until stop is called.
func (e *Events) Subscribe(f func(jobID string)) (stop func(), err error) {
	prefix := e.subject + "."
	sub, err := e.nc.Subscribe(prefix+"*", func(m *nats.Msg) {
		f(strings.TrimPrefix(m.Subject, prefix))
	})
	if err != nil {
		return nil, err
	}
	return func() { sub.Unsubscribe() }, nil
}
