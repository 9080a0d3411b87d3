package http

import (
	"context"
	"time"

	"github.com/fheserve/fheserve/app"
)

// Daemon is an App on the embedded defaults served over HTTP: what
// 'fheserve serve' runs, and what the demo and the end-to-end tests start.
type Daemon struct {
	App    *app.App
	Server *Server
	done   chan error
}

// StartDaemon opens the App in dataDir (app.Open), starts its workers and
// serves it on addr ("127.0.0.1:0" picks a free port) until Close.
func StartDaemon(ctx context.Context, dataDir, addr string, cfg app.Config, configure ...func(*Server)) (*Daemon, error) {
	a, err := app.Open(ctx, dataDir, cfg)
	if err != nil {
		return nil, err
	}
	s := NewServer(a, cfg.Logger)
	for _, f := range configure {
		f(s) // before it serves: say, UseTLS
	}
	if err := s.Listen(addr); err != nil {
		a.Close()
		return nil, err
	}
	if err := a.Start(ctx); err != nil {
		s.ln.Close()
		a.Close()
		return nil, err
	}
	d := &Daemon{App: a, Server: s, done: make(chan error, 1)}
	go func() { d.done <- s.Serve() }()
	return d, nil
}

// URL is the daemon's base URL.
func (d *Daemon) URL() string { return d.Server.URL() }

// Done receives Serve's result when the server stops.
func (d *Daemon) Done() <-chan error { return d.done }

// Close stops serving (waiting up to 5 seconds for requests in flight),
// then stops the workers and closes the store. A job being evaluated runs
// again on the next start.
func (d *Daemon) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d.Server.Shutdown(ctx)
	return d.App.Close()
}
