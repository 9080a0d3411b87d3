package main

import (
	"io"
	"os"
	"path/filepath"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/sdk"
)

// Factory is what the commands take from outside the process: the
// standard streams, the environment, the directory of the client's state
// and clients of a server. main makes the process's own (systemFactory);
// tests make one on buffers and temporary directories, so that every
// command runs in the test's process.
type Factory struct {
	IO *IOStreams
	// Getenv reads an environment variable ($FHESERVE_SERVER,
	// $FHESERVE_TOKEN, $FHESERVE_DATA).
	Getenv func(string) string
	// Home returns the directory of the client's state.
	Home func() (string, error)
	// Client returns an SDK client of the server at url, anonymous.
	Client func(url string) *sdk.Client
}

// IOStreams are a command's standard streams.
type IOStreams struct {
	In     io.Reader
	Out    io.Writer
	ErrOut io.Writer
	// ErrTTY says whether ErrOut is a terminal, where people read: progress
	// bars and text logs go there, JSON logs elsewhere.
	ErrTTY bool
}

// systemFactory is the process's own: its standard streams and
// environment, $FHESERVE_HOME (default: the user config directory's
// fheserve/), and SDK clients on Go's default HTTP client.
func systemFactory() *Factory {
	return &Factory{
		IO:     &IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr, ErrTTY: isTerminal(os.Stderr)},
		Getenv: os.Getenv,
		Home: func() (string, error) {
			if h := os.Getenv(homeEnv); h != "" {
				return h, nil
			}
			dir, err := os.UserConfigDir()
			if err != nil {
				return "", fheserve.Errorf(fheserve.EINVALID, "cannot find a directory for the client's state: set $%s (%v)", homeEnv, err)
			}
			return filepath.Join(dir, "fheserve"), nil
		},
		Client: sdk.New,
	}
}

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
