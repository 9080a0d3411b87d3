// Package pgtest runs a throwaway PostgreSQL cluster for the tests of the
// PostgreSQL stores: initdb in a temporary directory, the server on a Unix
// socket inside it (no TCP port), one cluster per test binary, started on
// first use and stopped by Main. Each test gets a database of its own.
//
// The tests need Debian's postgresql package (initdb, pg_ctl, postgres);
// without it they fail, saying how to install it. As root, the cluster runs
// as the postgres user (initdb refuses to run as root).
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
)

var (
	once    sync.Once
	cluster *Cluster
	errOnce error
	dbs     atomic.Int64
)

// Main runs the tests and stops the cluster if one was started; a test
// package that uses NewDB calls it from TestMain: os.Exit(pgtest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	if cluster != nil {
		if err := cluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
		}
	}
	return code
}

// NewDB creates an empty database in the package's cluster, starting the
// cluster on first use, and returns its connection URL.
func NewDB(tb testing.TB) string {
	tb.Helper()
	once.Do(func() { cluster, errOnce = Start() })
	if errOnce != nil {
		tb.Fatal(errOnce)
	}
	name := "t" + strconv.FormatInt(dbs.Add(1), 10)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, cluster.URL("postgres"))
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatal(err)
	}
	return cluster.URL(name)
}

// Restart restarts the package's cluster (NewDB started it), closing
// every connection, as a fault test's PostgreSQL restart.
func Restart(tb testing.TB) {
	tb.Helper()
	if cluster == nil {
		tb.Fatal("pgtest.Restart before NewDB")
	}
	if err := cluster.Restart(); err != nil {
		tb.Fatal(err)
	}
}

// Down stops the package's cluster (NewDB started it), closing every
// connection, and returns the function that starts it again on the same
// data: a fault test's PostgreSQL outage, however long it needs.
func Down(tb testing.TB) (up func()) {
	tb.Helper()
	if cluster == nil {
		tb.Fatal("pgtest.Down before NewDB")
	}
	if err := cluster.run("pg_ctl", "-D", cluster.data(), "-m", "fast", "-w", "stop"); err != nil {
		tb.Fatal(err)
	}
	return func() {
		tb.Helper()
		if err := cluster.start(); err != nil {
			tb.Fatal(err)
		}
	}
}

// Cluster is a running PostgreSQL server on a Unix socket.
type Cluster struct {
	dir  string // holds data/, the socket and the log
	bin  string // the directory of initdb, pg_ctl and postgres
	cred *syscall.Credential
}

// URL returns the connection URL of database name, as the superuser.
func (c *Cluster) URL(name string) string {
	q := url.Values{"host": {c.dir}, "user": {"postgres"}, "sslmode": {"disable"}}
	return "postgres:///" + name + "?" + q.Encode()
}

// Start creates a cluster in a new temporary directory and starts it.
func Start() (*Cluster, error) {
	bin, err := binDir()
	if err != nil {
		return nil, err
	}
	// Under /tmp rather than $TMPDIR: the postgres user must reach the
	// directory (root's own temporary directory may be closed to it), and
	// the socket's path must stay under the 107 bytes a Unix socket takes.
	base := ""
	if st, err := os.Stat("/tmp"); err == nil && st.IsDir() {
		base = "/tmp"
	}
	dir, err := os.MkdirTemp(base, "pgtest")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, bin: bin}
	if os.Geteuid() == 0 {
		if c.cred, err = unprivileged(dir); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	if err := c.run("initdb", "-D", c.data(), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C"); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := c.start(); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "log"))
		os.RemoveAll(dir)
		return nil, fmt.Errorf("%w\n%s", err, log)
	}
	return c, nil
}

// start starts the server on the cluster's data.
func (c *Cluster) start() error {
	// No TCP, durability off: a test cluster is thrown away.
	opts := fmt.Sprintf("-k %s -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200", c.dir)
	return c.run("pg_ctl", "-D", c.data(), "-l", filepath.Join(c.dir, "log"), "-w", "-o", opts, "start")
}

// Stop stops the server at once and removes its directory.
func (c *Cluster) Stop() error {
	err := c.run("pg_ctl", "-D", c.data(), "-m", "immediate", "-w", "stop")
	return errors.Join(err, os.RemoveAll(c.dir))
}

// Restart stops the server (fast: connections are closed) and starts it
// again on the same data.
func (c *Cluster) Restart() error {
	return c.run("pg_ctl", "-D", c.data(), "-m", "fast", "-w", "restart")
}

func (c *Cluster) data() string { return filepath.Join(c.dir, "data") }

func (c *Cluster) run(prog string, args ...string) error {
	cmd := exec.Command(filepath.Join(c.bin, prog), args...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	// Into a file, not a pipe: the server pg_ctl starts inherits it and
	// would hold a pipe open until it stops.
	out, err := os.CreateTemp(c.dir, prog)
	if err != nil {
		return err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(out.Name())
		return fmt.Errorf("pgtest: %s %s: %w\n%s", prog, strings.Join(args, " "), err, b)
	}
	return nil
}

// binDir finds PostgreSQL's server programs: Debian keeps them in
// /usr/lib/postgresql/VERSION/bin, off the PATH.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return version(b) - version(a) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if p, err = filepath.EvalSymlinks(p); err == nil {
			return filepath.Dir(p), nil
		}
	}
	return "", errors.New("pgtest: PostgreSQL is not installed (no initdb in /usr/lib/postgresql/*/bin or on the PATH); " +
		"the PostgreSQL tests need it: apt-get install postgresql")
}

// version is the number in /usr/lib/postgresql/VERSION/bin.
func version(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

// unprivileged returns the credential of the postgres user (the one
// Debian's package creates) and gives it dir.
func unprivileged(dir string) (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root, the cluster must run as the postgres user: %w (apt-get install postgresql creates it)", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, err
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}
