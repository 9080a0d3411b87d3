// Package natsjs puts fheserve's job queue and blob store on NATS
// JetStream, so that API nodes and evaluation workers in separate
// processes share them: Queue is a work-queue stream with explicit
// acknowledgements and leases kept alive by in-progress heartbeats
// (fheserve.LeaseQueue), and Blobs is a JetStream object store that
// streams blobs in chunks. Messages carry job ids only; keys,
// ciphertexts, results and weights are blobs.
package natsjs

import (
	"fmt"
	neturl "net/url"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Dial connects to the NATS servers at url (nats://host:port, several
// separated by commas) and returns the connection and its JetStream
// context. The connection reconnects for ever; close it when done.
func Dial(url, name string) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(url,
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.RetryOnFailedConnect(false),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("natsjs: cannot connect to %s: %w", redact(url), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

// redact drops a password from a URL for messages.
func redact(url string) string {
	if u, err := neturl.Parse(url); err == nil && u.User != nil {
		return u.Redacted()
	}
	return url
}
