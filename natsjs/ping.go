package natsjs

import (
	"context"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fheserve/fheserve"
)

var (
	_ fheserve.Pinger = (*Blobs)(nil)
	_ fheserve.Pinger = (*Queue)(nil)
)

// Ping implements fheserve.Pinger: the connection is up and the bucket
// answers (Check).
func (b *Blobs) Ping(ctx context.Context) error {
	if err := connected(b.js); err != nil {
		return err
	}
	return b.Check(ctx)
}

// Ping implements fheserve.Pinger: the connection is up and the stream's
// consumer answers (Check).
func (q *Queue) Ping(ctx context.Context) error {
	if err := connected(q.js); err != nil {
		return err
	}
	return q.Check(ctx)
}

// connected fails at once while the connection is down (the client
// reconnects on its own), rather than after a request's timeout.
func connected(js jetstream.JetStream) error {
	if st := js.Conn().Status(); st != nats.CONNECTED {
		return fmt.Errorf("not connected to NATS (%s)", strings.ToLower(st.String()))
	}
	return nil
}
