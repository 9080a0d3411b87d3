package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/sdk"
	"github.com/spf13/pflag"
)

// The client's state lives under FHESERVE_HOME (default: the user config
// directory's fheserve/): config.json with the server and the session
// token, and keys/ with one metadata file and one secret-key file per key
// set. Files holding a token or a secret key are mode 0600.
const (
	homeEnv   = "FHESERVE_HOME"
	serverEnv = "FHESERVE_SERVER"
	// defaultServer is where 'fheserve serve' listens by default.
	defaultServer = "http://127.0.0.1:8080"
)

// clientConfig is FHESERVE_HOME/config.json.
type clientConfig struct {
	Server    string    `json:"server,omitempty"`
	Username  string    `json:"username,omitempty"`
	Role      string    `json:"role,omitempty"`
	Token     string    `json:"token,omitempty"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// remote is what every verb that talks to a server has: the --server
// flag, and from the Factory, the environment, the client's state and SDK
// clients.
type remote struct {
	Server string // --server
	f      *Factory
}

func newRemote(f *Factory) remote { return remote{f: f} }

func (r *remote) register(fs *pflag.FlagSet) {
	fs.StringVar(&r.Server, "server", "", "server `URL` (default: $"+serverEnv+", then the server of the last login, then "+defaultServer+")")
}

func (r *remote) loadConfig() (*clientConfig, error) {
	h, err := r.f.Home()
	if err != nil {
		return nil, err
	}
	var c clientConfig
	data, err := os.ReadFile(filepath.Join(h, "config.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return &c, nil
	} else if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fheserve.Errorf(fheserve.EINVALID, "%s: %v; delete it and log in again", filepath.Join(h, "config.json"), err)
	}
	return &c, nil
}

func (r *remote) saveConfig(c *clientConfig) error {
	h, err := r.f.Home()
	if err != nil {
		return err
	}
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return writePrivate(filepath.Join(h, "config.json"), append(data, '\n'))
}

// writePrivate writes a file readable by its owner only, atomically.
func writePrivate(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// serverURL picks the server: the flag, the environment, the last login.
// It must be an http:// or https:// URL: without a scheme, "host:8080"
// would parse as scheme "host", and plain HTTP is never assumed, not
// even for a loopback address, so that what is sent in the clear is
// always written out.
func (r *remote) serverURL(c *clientConfig) (string, error) {
	u, from := defaultServer, "the default"
	switch {
	case r.Server != "":
		u, from = strings.TrimRight(r.Server, "/"), "--server"
	case r.f.Getenv(serverEnv) != "":
		u, from = strings.TrimRight(r.f.Getenv(serverEnv), "/"), "$"+serverEnv
	case c.Server != "":
		u, from = c.Server, "the server of the last login"
	}
	if err := checkServerURL(u); err != nil {
		return "", fheserve.Errorf(fheserve.EINVALID, "%s %q %s", from, u, fheserve.ErrorMessage(err))
	}
	return u, nil
}

// checkServerURL says what is wrong with a server URL, and the fix.
func checkServerURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Opaque != "" || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		host := s
		if i := strings.Index(s, "://"); i >= 0 {
			host = s[i+3:]
		}
		return fheserve.Errorf(fheserve.EINVALID, "is not a server URL: write https://%s (or http://%s for a server without TLS)", host, host)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return fheserve.Errorf(fheserve.EINVALID, "is not a server URL: give only the scheme, host and port, like https://%s", u.Host)
	}
	return nil
}

// anonymous returns an SDK client without credentials.
func (r *remote) anonymous() (*sdk.Client, *clientConfig, error) {
	c, err := r.loadConfig()
	if err != nil {
		return nil, nil, err
	}
	u, err := r.serverURL(c)
	if err != nil {
		return nil, nil, err
	}
	return r.f.Client(u), c, nil
}

// session returns an SDK client acting with the saved token.
func (r *remote) session() (*sdk.Client, *clientConfig, error) {
	cl, c, err := r.anonymous()
	if err != nil {
		return nil, nil, err
	}
	switch {
	case c.Token == "":
		return nil, nil, fheserve.Errorf(fheserve.EUNAUTHORIZED, "not logged in: run 'fheserve login --username U --password-stdin'")
	case cl.API.URL != c.Server:
		return nil, nil, fheserve.Errorf(fheserve.EUNAUTHORIZED, "logged in to %s, not %s: log in to this server first", c.Server, cl.API.URL)
	case !c.ExpiresAt.IsZero() && time.Now().After(c.ExpiresAt):
		return nil, nil, fheserve.Errorf(fheserve.EUNAUTHORIZED, "the session of %q expired at %s: log in again", c.Username, c.ExpiresAt.Format(time.RFC3339))
	}
	cl.SetToken(c.Token)
	return cl, c, nil
}

// sessionModel returns a client acting with the saved token, the saved
// state, and the model id as the server shows it to the session.
func (r *remote) sessionModel(ctx context.Context, id string) (*sdk.Client, *clientConfig, *fheserve.Model, error) {
	c, cfg, err := r.session()
	if err != nil {
		return nil, nil, nil, err
	}
	m, err := c.Model(ctx, id)
	if err != nil {
		return nil, nil, nil, err
	}
	return c, cfg, m, nil
}

// withSession is the run of a verb that acts with the saved session: it
// gets a client acting with the token, then calls run with it.
func withSession[O any](r *remote, run func(*O, *sdk.Client) error) func(*O) error {
	return func(opts *O) error {
		c, _, err := r.session()
		if err != nil {
			return err
		}
		return run(opts, c)
	}
}

// withPassword is the run of a verb that sends a password: it reads the
// password from the first line of standard input, gets a client without
// credentials, then calls run with both.
func withPassword[O any](r *remote, streams *IOStreams, run func(*O, *sdk.Client, string) error) func(*O) error {
	return func(opts *O) error {
		pw, err := readPassword(streams.In)
		if err != nil {
			return err
		}
		c, _, err := r.anonymous()
		if err != nil {
			return err
		}
		return run(opts, c, pw)
	}
}

// readPassword reads a password from the first line of r.
func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, fheserve.MaxPasswordLen+2)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("cannot read the password from standard input: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", fheserve.Errorf(fheserve.EINVALID, "no password on standard input")
	}
	return pw, nil
}

// keyRecord is the metadata of a key set in FHESERVE_HOME/keys/ID.json;
// its secret key is in FHESERVE_HOME/keys/ID.secret.
type keyRecord struct {
	ID              string    `json:"id"`
	Server          string    `json:"server"`
	Username        string    `json:"username"`
	ModelID         string    `json:"model_id"`
	Fingerprint     string    `json:"fingerprint"`
	PlanFingerprint string    `json:"plan_fingerprint"`
	CreatedAt       time.Time `json:"created_at"`
	// PublicKey is the fingerprint of the public key, which the audit log
	// records for a sealed model's key set (seal.go, checkLoggedKeys).
	PublicKey string `json:"public_key,omitempty"`
}

func (r *remote) keysDir() (string, error) {
	h, err := r.f.Home()
	if err != nil {
		return "", err
	}
	return filepath.Join(h, "keys"), nil
}

// saveKeys stores a key set's metadata and secret key.
func (r *remote) saveKeys(rec *keyRecord, secret []byte) error {
	dir, err := r.keysDir()
	if err != nil {
		return err
	}
	if err := writePrivate(filepath.Join(dir, rec.ID+".secret"), secret); err != nil {
		return fmt.Errorf("cannot store the secret key: %w", err)
	}
	data, _ := json.MarshalIndent(rec, "", "  ")
	return writePrivate(filepath.Join(dir, rec.ID+".json"), append(data, '\n'))
}

// localKeys lists the key sets stored locally, newest first.
func (r *remote) localKeys() ([]*keyRecord, error) {
	dir, err := r.keysDir()
	if err != nil {
		return nil, err
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	var out []*keyRecord
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var rec keyRecord
		if err := json.Unmarshal(data, &rec); err != nil {
			return nil, fheserve.Errorf(fheserve.EINVALID, "%s: %v", f, err)
		}
		out = append(out, &rec)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.After(out[j].CreatedAt) })
	return out, nil
}

// readSecret returns a key set's secret key.
func (r *remote) readSecret(id string) ([]byte, error) {
	dir, err := r.keysDir()
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(filepath.Join(dir, id+".secret"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fheserve.Errorf(fheserve.ENOTFOUND, "no secret key for key set %s in %s: keys are usable only where they were created", id, dir)
	}
	return data, err
}

// forgetKeys deletes a key set's local files.
func (r *remote) forgetKeys(id string) error {
	dir, err := r.keysDir()
	if err != nil {
		return err
	}
	for _, ext := range []string{".secret", ".json"} {
		if err := os.Remove(filepath.Join(dir, id+ext)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// printList prints items: as a JSON array with --json (asJSON), else as a
// table of a header line and a row of each item, columns separated by
// tabs.
func printList[T any](out io.Writer, asJSON bool, items []T, header string, row func(T) string) error {
	if asJSON {
		return printJSON(out, orEmpty(items))
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, it := range items {
		fmt.Fprintln(tw, row(it))
	}
	return tw.Flush()
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
