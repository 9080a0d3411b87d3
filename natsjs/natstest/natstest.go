// Package natstest runs an embedded NATS server with JetStream for tests:
// the real server, in the test's process, listening on a loopback port
// with its store in a temporary directory.
package natstest

import (
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Server is a running embedded server.
type Server struct {
	*server.Server
	opts *server.Options
}

// Start starts a JetStream server on 127.0.0.1 with its store in a
// temporary directory of t; it stops when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	opts := &server.Options{
		Host:      "127.0.0.1",
		Port:      server.RANDOM_PORT,
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoLog:     true,
		NoSigs:    true,
	}
	s := &Server{opts: opts}
	s.start(t)
	t.Cleanup(s.Shutdown)
	return s
}

func (s *Server) start(t testing.TB) {
	t.Helper()
	ns, err := server.NewServer(s.opts)
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("natstest: the server did not start")
	}
	s.Server = ns
	// A restart listens on the same port, with the same store.
	s.opts.Port = ns.Addr().(*net.TCPAddr).Port
}

// URL is the address clients connect to.
func (s *Server) URL() string { return s.ClientURL() }

// Restart stops the server and, after pause, starts it again on the same
// port and store.
func (s *Server) Restart(t testing.TB, pause time.Duration) {
	t.Helper()
	s.Server.Shutdown()
	s.Server.WaitForShutdown()
	time.Sleep(pause)
	s.start(t)
}

// Shutdown stops the server.
func (s *Server) Shutdown() { s.Server.Shutdown() }
