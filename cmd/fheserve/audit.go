package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/audit"
	auditpostgres "github.com/fheserve/fheserve/audit/postgres"
	auditsqlite "github.com/fheserve/fheserve/audit/sqlite"
	"github.com/fheserve/fheserve/node"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/mod/sumdb/note"
)

// tokenEnv overrides the token of the last login for the audit verbs.
const tokenEnv = "FHESERVE_TOKEN"

func newAuditCmd(f *Factory) *cobra.Command {
	return group(&cobra.Command{
		Use:   "audit",
		Short: "Verify and read the tamper-evident audit log",
		Long: `The server appends every security-relevant action to a Merkle-tree log and
signs a checkpoint of it (size and root hash) after each append. Clients
keep the checkpoints they saw, so the operator cannot rewrite or roll back
history without them noticing; operators verify the stored log offline.`,
	}, newAuditVerifyCmd(f, nil), newAuditLogCmd(f, nil), newAuditKeyCmd(f, nil))
}

// auditSource is where the audit verbs read the log: a server (--server,
// --token) or a data directory (--data-dir).
type auditSource struct {
	DataDir string // offline: the server's data directory
	Store   string // offline: the servers' PostgreSQL, which holds the log then
	Token   string // --server: bearer token (default $FHESERVE_TOKEN, then the last login's)
	remote
}

// register adds the flags that choose where the log is read.
func (s *auditSource) register(fs *pflag.FlagSet) {
	fs.StringVar(&s.DataDir, "data-dir", "", "read the log offline from the server data `directory`")
	storeFlag(fs, s.f.Getenv, &s.Store)
	fs.StringVar(&s.Token, "token", "", "bearer `token` for --server (default: $"+tokenEnv+", then the last login's)")
	s.remote.register(fs)
}

// fromSource is the run of an audit verb: offline with --data-dir, from
// the server otherwise.
func fromSource[O any](s *auditSource, offline, server func(*O) error) func(*O) error {
	return func(opts *O) error {
		if s.DataDir != "" {
			return offline(opts)
		}
		return server(opts)
	}
}

func (s *auditSource) validate() error {
	switch {
	case s.DataDir != "" && s.Server != "":
		return fheserve.Errorf(fheserve.EINVALID, "give --server or --data-dir, not both")
	case s.DataDir != "" && s.Token != "":
		return fheserve.Errorf(fheserve.EINVALID, "--token is for --server only")
	}
	return nil
}

type auditVerifyOptions struct {
	IO  *IOStreams
	Ctx context.Context

	Pin string // the verifier key to pin
	auditSource
}

func newAuditVerifyCmd(f *Factory, runF func(*auditVerifyOptions) error) *cobra.Command {
	opts := &auditVerifyOptions{IO: f.IO, auditSource: auditSource{remote: newRemote(f)}}
	cmd := leaf(&cobra.Command{
		Use:   "verify (--server URL [--pin KEY] | --data-dir D [--pin KEY])",
		Short: "Check the audit log: from outside against a server, or offline in a data directory",
		Long: `With --server, fetch the latest signed checkpoint, check its signature with
the server's pinned key (the first use pins the key the server names, like
SSH; --pin gives it), check that the log extends the last checkpoint seen,
check that each of your records is in it, and that every key set of a
sealed model it records under your name was made here (key transparency:
a server could upload a key of its own under your name to read the
weights an owner seals for you); one made elsewhere fails the check,
naming it. The key and the checkpoint are kept under $FHESERVE_HOME/audit/.

With --data-dir (the operator, offline), recompute the whole tree from the
stored records and check it against the stored hashes and every signed
checkpoint; the first record altered, removed or moved is named. Servers on
PostgreSQL keep the log there: give it with --store (or $FHESERVE_STORE)
beside the data directory that holds the signing key.`,
		Example: `  fheserve audit verify --server https://fhe.example.com
  fheserve audit verify --server https://fhe.example.com --pin 'fheserve.audit/1f2e...+1a2b3c4d+AbC...'
  fheserve audit verify --data-dir /var/lib/fheserve
  fheserve audit verify --data-dir /var/lib/fheserve --store postgres://fheserve@db.internal/fheserve`,
	}, opts, &opts.Ctx, runF, fromSource(&opts.auditSource, auditVerifyOffline, auditVerifyServer), validated(opts.validate),
		func(*cobra.Command, []string) error {
			if opts.Pin != "" {
				if _, err := note.NewVerifier(opts.Pin); err != nil {
					return fheserve.Errorf(fheserve.EINVALID, "--pin is not a verifier key (name+hash+key): %v", err)
				}
			}
			return nil
		})
	opts.auditSource.register(cmd.Flags())
	cmd.Flags().StringVar(&opts.Pin, "pin", "", "the log's verifier `KEY`, as the operator publishes it")
	return cmd
}

type auditLogOptions struct {
	IO  *IOStreams
	Ctx context.Context

	Since  time.Time
	Actor  string
	Object audit.Object // only the records naming it
	JSON   bool
	auditSource
}

func newAuditLogCmd(f *Factory, runF func(*auditLogOptions) error) *cobra.Command {
	opts := &auditLogOptions{IO: f.IO, auditSource: auditSource{remote: newRemote(f)}}
	var since string
	cmd := leaf(&cobra.Command{
		Use:   "log [--server URL | --data-dir D] [--since T] [--actor U] [--object KIND:ID] [--json]",
		Short: "List audit records: yours from a server, or all of them offline",
		Long: `List the records of the audit log, oldest first: from a server, those about
you (an administrator sees all); from a data directory, all. --json prints
one object per line, {"index": N, "record": {...}}, the record being the
exact bytes hashed into the log.`,
		Example: `  fheserve audit log --since 24h
  fheserve audit log --object keyset:key_4f2a...
  fheserve audit log --data-dir /var/lib/fheserve --actor alice --json`,
	}, opts, &opts.Ctx, runF, fromSource(&opts.auditSource, auditLogOffline, auditLogServer), func(*cobra.Command, []string) error {
		if since != "" {
			t, err := parseSince(since, time.Now())
			if err != nil {
				return err
			}
			opts.Since = t
		}
		return nil
	}, validated(opts.validate))
	opts.auditSource.register(cmd.Flags())
	cmd.Flags().StringVar(&since, "since", "", "records at or after `T`: an RFC 3339 time, a date (YYYY-MM-DD, UTC) or a duration ago (24h)")
	cmd.Flags().StringVar(&opts.Actor, "actor", "", "records by the account named `U`")
	cmd.Flags().Var((*objectFlag)(&opts.Object), "object", "records naming the object `KIND:ID` (account, model, job, keyset, token)")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print JSON lines")
	return cmd
}

type auditKeyOptions struct {
	IO *IOStreams

	DataDir string
}

func newAuditKeyCmd(f *Factory, runF func(*auditKeyOptions) error) *cobra.Command {
	opts := &auditKeyOptions{IO: f.IO}
	cmd := leaf(&cobra.Command{
		Use:   "key --data-dir D",
		Short: "Print the audit log's verifier key, for clients to pin",
	}, opts, nil, runF, auditKeyRun, required("data-dir"))
	cmd.Flags().StringVar(&opts.DataDir, "data-dir", "", "server data `directory` (required)")
	return cmd
}

func auditKeyRun(opts *auditKeyOptions) error {
	vkey, err := dataDirKey(opts.DataDir)
	if err != nil {
		return err
	}
	fmt.Fprintln(opts.IO.Out, vkey)
	return nil
}

// openAuditStore opens the log of a data directory for reading, or of
// store, the servers' PostgreSQL, if given.
func openAuditStore(ctx context.Context, dataDir, store string) (audit.Store, error) {
	if store != "" {
		if err := (node.Engines{Store: store}).Check(); err != nil {
			return nil, err
		}
		return auditpostgres.Open(ctx, store)
	}
	st, err := auditsqlite.OpenReadOnly(ctx, filepath.Join(dataDir, audit.DBFile))
	if fheserve.ErrorCode(err) == fheserve.ENOTFOUND {
		return nil, fheserve.Errorf(fheserve.ENOTFOUND, "no audit log in %s: is it the server's --data-dir?", dataDir)
	}
	return st, err
}

// dataDirKey returns the verifier key of the signing key in a data directory.
func dataDirKey(dataDir string) (string, error) {
	path := filepath.Join(dataDir, audit.KeyFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fheserve.Errorf(fheserve.ENOTFOUND, "cannot read the audit signing key: %v", err)
	}
	k, err := audit.ParseKey(string(data))
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return k.VerifierKey(), nil
}

func auditVerifyOffline(opts *auditVerifyOptions) error {
	vkey := opts.Pin
	if vkey == "" {
		// The key beside the log: this checks the records against the
		// checkpoints, but someone who replaced the key could re-sign;
		// --pin with the published key rules that out.
		var err error
		if vkey, err = dataDirKey(opts.DataDir); err != nil {
			return fmt.Errorf("%w; give the published verifier key with --pin", err)
		}
	}
	st, err := openAuditStore(opts.Ctx, opts.DataDir, opts.Store)
	if err != nil {
		return err
	}
	defer st.Close()
	v, err := audit.Verify(opts.Ctx, st, vkey)
	if err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.Out, "audit log in %s verified: %d records, %d signed checkpoints\n", opts.DataDir, v.Records, v.Checkpoints)
	fmt.Fprintf(opts.IO.Out, "root hash %s, signed by %s\n", v.Latest.Hash, vkey)
	return nil
}

// auditClient returns a client of the audit API of the chosen server and
// the server's URL.
func (s *auditSource) auditClient() (*audit.Client, string, error) {
	cfg, err := s.loadConfig()
	if err != nil {
		return nil, "", err
	}
	server, err := s.serverURL(cfg)
	if err != nil {
		return nil, "", err
	}
	token := s.Token
	switch {
	case token != "":
	case s.f.Getenv(tokenEnv) != "":
		token = s.f.Getenv(tokenEnv)
	case cfg.Server == server:
		token = cfg.Token
	}
	return &audit.Client{URL: server + audit.PathPrefix, Token: token}, server, nil
}

var unsafeInFileName = regexp.MustCompile(`[^A-Za-z0-9.-]+`)

// auditStateDir is where the client keeps what it trusts about a server's
// log: the pinned verifier key ("key") and the latest checkpoint it
// verified ("checkpoint").
func (r *remote) auditStateDir(server string) (string, error) {
	h, err := r.f.Home()
	if err != nil {
		return "", err
	}
	name := strings.TrimPrefix(strings.TrimPrefix(server, "https://"), "http://")
	name = unsafeInFileName.ReplaceAllString(name, "_")
	return filepath.Join(h, "audit", name), nil
}

// readState returns a state file's contents, nil if there is none.
func readState(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return data, err
}

func auditVerifyServer(opts *auditVerifyOptions) error {
	c, server, err := opts.auditClient()
	if err != nil {
		return err
	}
	dir, err := opts.auditStateDir(server)
	if err != nil {
		return err
	}
	keyFile, seenFile := filepath.Join(dir, "key"), filepath.Join(dir, "checkpoint")
	pinned, err := readState(keyFile)
	if err != nil {
		return err
	}
	vkey := strings.TrimSpace(string(pinned))
	switch {
	case vkey != "" && opts.Pin != "" && opts.Pin != vkey:
		return fheserve.Errorf(fheserve.ECONFLICT, "--pin is not the key pinned for %s in %s (%s): if the operator announced a new key, delete that file and the checkpoint beside it", server, keyFile, vkey)
	case vkey == "" && opts.Pin != "":
		vkey = opts.Pin
	case vkey == "":
		if vkey, err = c.VerifierKey(opts.Ctx); err != nil {
			return err
		}
		if _, err := note.NewVerifier(vkey); err != nil {
			return fheserve.Errorf(fheserve.EINVALID, "the server's audit key %q is not a verifier key", vkey)
		}
		fmt.Fprintf(opts.IO.ErrOut, "fheserve: warning: pinning the audit key %s on first use: compare it with the key the operator publishes\n", vkey)
	}
	seen, err := readState(seenFile)
	if err != nil {
		return err
	}
	res, err := c.CheckLog(opts.Ctx, vkey, seen)
	var ve *audit.VerifyError
	if errors.As(err, &ve) {
		return fmt.Errorf("%w (the checkpoint seen before is kept in %s as evidence)", err, seenFile)
	} else if err != nil {
		return err
	}
	if len(pinned) == 0 {
		if err := writePrivate(keyFile, []byte(vkey+"\n")); err != nil {
			return err
		}
	}
	if err := writePrivate(seenFile, res.Note); err != nil {
		return err
	}
	cp := res.Checkpoint
	fmt.Fprintf(opts.IO.Out, "audit log of %s verified: %d records, root hash %s\n", server, cp.N, cp.Hash)
	if seen != nil {
		old, _ := audit.OpenCheckpoint(seen, vkey)
		fmt.Fprintf(opts.IO.Out, "it extends the log of %d records seen before\n", old.N)
	}
	fmt.Fprintf(opts.IO.Out, "%d of your records are in it\n", res.Records)
	if c.Token == "" {
		return nil
	}
	return checkNoForeignKeys(opts, server, c.Token)
}

// checkNoForeignKeys fails naming each key set the verified log records
// under the caller's name that was not made here (foreignKeys): the key
// transparency check of a user, as 'keys list' makes it.
func checkNoForeignKeys(opts *auditVerifyOptions, server, token string) error {
	sc := opts.f.Client(server)
	sc.SetToken(token)
	foreign, err := opts.foreignKeys(opts.Ctx, sc)
	if err != nil {
		return err
	}
	if len(foreign) == 0 {
		fmt.Fprintln(opts.IO.Out, "every key set it records under your name was made here")
		return nil
	}
	names := make([]string, len(foreign))
	for i, k := range foreign {
		names[i] = describeLoggedKey(k)
	}
	return fheserve.Errorf(fheserve.ECONFLICT, "THE AUDIT LOG RECORDS %d KEY SET(S) YOU DID NOT MAKE HERE: %s; %s", len(foreign), strings.Join(names, "; "), foreignKeyAdvice)
}

func auditLogOffline(opts *auditLogOptions) error {
	st, err := openAuditStore(opts.Ctx, opts.DataDir, opts.Store)
	if err != nil {
		return err
	}
	defer st.Close()
	p := newRecordPrinter(opts)
	f := audit.Filter{Since: opts.Since, Actor: opts.Actor, Object: opts.Object, Limit: audit.MaxLimit}
	for {
		es, err := st.Records(opts.Ctx, f)
		for _, e := range es {
			p.print(e.Index, e.Data, e.Record)
		}
		if err != nil {
			return err
		}
		if len(es) < f.PageSize() {
			return p.flush()
		}
		f.From = es[len(es)-1].Index + 1
	}
}

func auditLogServer(opts *auditLogOptions) error {
	c, _, err := opts.auditClient()
	if err != nil {
		return err
	}
	p := newRecordPrinter(opts)
	q := audit.Query{Since: opts.Since, Actor: opts.Actor, Object: opts.Object, Limit: audit.MaxLimit}
	err = c.EachRecord(opts.Ctx, q, func(it *audit.Item) error {
		r, err := audit.DecodeRecord(it.Record)
		if err != nil {
			return fmt.Errorf("audit record %d from the server: %w", it.Index, err)
		}
		p.print(it.Index, it.Record, r)
		return nil
	})
	if err != nil {
		return err
	}
	return p.flush()
}

// objectFlag is an audit.Object flag written KIND:ID.
type objectFlag audit.Object

func (o *objectFlag) Set(s string) error {
	v, err := audit.ParseObject(s)
	*o = objectFlag(v)
	return err
}

func (o *objectFlag) String() string {
	if *o == (objectFlag{}) {
		return ""
	}
	return audit.Object(*o).String()
}

func (o *objectFlag) Type() string { return "object" }

// recordPrinter prints records as a table or as JSON lines.
type recordPrinter struct {
	json bool
	out  io.Writer
	tw   *tabwriter.Writer
}

func newRecordPrinter(opts *auditLogOptions) *recordPrinter {
	p := &recordPrinter{json: opts.JSON, out: opts.IO.Out}
	if !p.json {
		p.tw = tabwriter.NewWriter(opts.IO.Out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(p.tw, "INDEX\tTIME (UTC)\tACTOR\tACTION\tOUTCOME\tOBJECTS\tREQUEST")
	}
	return p
}

func (p *recordPrinter) print(i int64, data []byte, r *audit.Record) {
	if p.json {
		line, _ := json.Marshal(audit.Item{Index: i, Record: data})
		fmt.Fprintf(p.out, "%s\n", line)
		return
	}
	objs := make([]string, len(r.Objects))
	for k, o := range r.Objects {
		objs[k] = o.Kind + ":" + o.ID
	}
	fmt.Fprintf(p.tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", i, r.Time.Format("2006-01-02 15:04:05"), cell(orDash(r.Actor)), cell(r.Action),
		cell(r.Outcome), cell(orDash(strings.Join(objs, ","))), cell(orDash(r.RequestID)))
}

// cell returns s as a table shows it: unchanged if it is valid UTF-8 of
// printable characters, else quoted with Go's escapes (%q), so that no
// field can move the terminal's cursor, recolour it, break the columns
// or start a line of its own, whatever a record holds.
func cell(s string) string {
	if !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (p *recordPrinter) flush() error {
	if p.tw != nil {
		return p.tw.Flush()
	}
	return nil
}

// parseSince reads --since: an RFC 3339 time, a UTC date, or a duration
// before now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fheserve.Errorf(fheserve.EINVALID, "--since %q is not an RFC 3339 time, a date (YYYY-MM-DD) or a duration (24h)", s)
}
