package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/fheserve/fheserve"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// maxResponse bounds a response body: a page of MaxLimit records with
// proofs is well under it.
const maxResponse = 16 << 20

// Client calls the API of NewHandler. It trusts nothing it receives:
// checkpoints are checked against a pinned key and records against proofs.
type Client struct {
	URL        string       // where the handler is mounted, e.g. "https://host" + PathPrefix
	Token      string       // bearer token; "" sends none
	HTTPClient *http.Client // nil: http.DefaultClient
}

// Checkpoint returns the latest signed checkpoint, unverified.
func (c *Client) Checkpoint(ctx context.Context) ([]byte, error) {
	return c.get(ctx, "/checkpoint", nil)
}

// VerifierKey returns the key the server says signs its checkpoints. Only
// trust it on first use, after comparing it with the key the operator
// publishes.
func (c *Client) VerifierKey(ctx context.Context) (string, error) {
	b, err := c.get(ctx, "/key", nil)
	return strings.TrimSpace(string(b)), err
}

// Record returns record i with its proof of inclusion in the tree of n
// records (0: the latest).
func (c *Client) Record(ctx context.Context, i, n int64) (*Item, error) {
	q := url.Values{}
	if n > 0 {
		q.Set("tree", strconv.FormatInt(n, 10))
	}
	var it Item
	return &it, c.getJSON(ctx, "/records/"+strconv.FormatInt(i, 10), q, &it)
}

// Query selects records for Records; zero fields match everything.
type Query struct {
	From  int64
	Since time.Time
	Actor string
	// Object, if not zero, asks for the records naming it only.
	Object Object
	Limit  int
	// Tree, if not 0, asks for the records of the tree of Tree records
	// only, each with its proof of inclusion in it.
	Tree int64
}

// Records returns a page of the records the caller may see.
func (c *Client) Records(ctx context.Context, q Query) (*Page, error) {
	v := url.Values{}
	if q.From > 0 {
		v.Set("from", strconv.FormatInt(q.From, 10))
	}
	if !q.Since.IsZero() {
		v.Set("since", q.Since.UTC().Format(time.RFC3339Nano))
	}
	if q.Actor != "" {
		v.Set("actor", q.Actor)
	}
	if q.Object != (Object{}) {
		v.Set("object", q.Object.String())
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Tree > 0 {
		v.Set("tree", strconv.FormatInt(q.Tree, 10))
	}
	var p Page
	return &p, c.getJSON(ctx, "/records", v, &p)
}

// Consistency returns the proof that the tree of old records is a prefix
// of the tree of n records.
func (c *Client) Consistency(ctx context.Context, old, n int64) (tlog.TreeProof, error) {
	v := url.Values{"old": {strconv.FormatInt(old, 10)}, "new": {strconv.FormatInt(n, 10)}}
	var p Consistency
	if err := c.getJSON(ctx, "/consistency", v, &p); err != nil {
		return nil, err
	}
	return p.Proof, nil
}

func (c *Client) getJSON(ctx context.Context, path string, q url.Values, v any) error {
	b, err := c.get(ctx, path, q)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fheserve.Errorf(fheserve.EINTERNAL, "malformed response from the audit API: %v", err)
	}
	return nil
}

func (c *Client) get(ctx context.Context, path string, q url.Values) ([]byte, error) {
	u := strings.TrimSuffix(c.URL, "/") + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fheserve.Errorf(fheserve.EINVALID, "bad audit API URL %q: %v", clip(c.URL), err)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fheserve.Errorf(fheserve.EUNAVAILABLE, "cannot reach the audit API: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, fheserve.Errorf(fheserve.EUNAVAILABLE, "cannot read from the audit API: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e errorBody
		if json.Unmarshal(b, &e) == nil && e.Code != "" {
			return nil, &fheserve.Error{Code: e.Code, Message: e.Message}
		}
		return nil, fheserve.Errorf(codeOf(resp.StatusCode), "audit API: %s", resp.Status)
	}
	return b, nil
}

// codeOf maps an HTTP status without an error body back to a code.
func codeOf(status int) string {
	for code, s := range statuses {
		if s == status {
			return code
		}
	}
	return fheserve.EINTERNAL
}

// Verify checks that it is the record at its index in the tree of the
// checkpoint c, and returns the record.
func (it *Item) Verify(c *Checkpoint) (*Record, error) {
	if it.TreeSize != c.N {
		return nil, badRecord(it.Index, "the server sent no proof of inclusion in the tree of %d records", c.N)
	}
	if err := tlog.CheckRecord(it.Proof, c.N, c.Hash, it.Index, tlog.RecordHash(it.Record)); err != nil {
		return nil, badRecord(it.Index, "its proof of inclusion in the tree of %d records fails: the server altered it or the log", c.N)
	}
	r, err := DecodeRecord(it.Record)
	if err != nil {
		return nil, badRecord(it.Index, "%s", fheserve.ErrorMessage(err))
	}
	return r, nil
}

// Checked is the outcome of CheckLog.
type Checked struct {
	Note       []byte      // the latest signed checkpoint, to keep for the next check
	Checkpoint *Checkpoint // Note, verified
	Records    int         // the caller's records proven to be in the log
}

// CheckLog checks the log from outside: it fetches the latest checkpoint
// and checks its signature with the pinned verifier key vkey; checks that
// the log is an extension of the one of the checkpoint seen (signed, kept
// from an earlier check; nil on the first), so that a log rolled back or
// rewritten since is detected; and checks the inclusion of every record
// the server returns to the caller. A failed check is a *VerifyError.
func (c *Client) CheckLog(ctx context.Context, vkey string, seen []byte) (*Checked, error) {
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, fheserve.Errorf(fheserve.EINVALID, "bad verifier key %q: %v", clip(vkey), err)
	}
	msg, err := c.Checkpoint(ctx)
	if err != nil {
		return nil, err
	}
	cp, err := openCheckpoint(msg, v)
	if err != nil {
		return nil, &VerifyError{Index: -1, Reason: "the server's latest checkpoint: " + fheserve.ErrorMessage(err)}
	}
	if seen != nil {
		if err := c.checkConsistent(ctx, v, seen, cp); err != nil {
			return nil, err
		}
	}
	n := 0
	if cp.N > 0 {
		err := c.EachRecord(ctx, Query{Tree: cp.N, Limit: MaxLimit}, func(it *Item) error {
			n++
			_, err := it.Verify(cp)
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	return &Checked{Note: msg, Checkpoint: cp, Records: n}, nil
}

// EachRecord calls f with each record q selects among those the caller
// may see, in index order, page after page (q.Limit records a page), until
// f fails or the records end. It checks only their order: CheckLog checks
// them against the signed log.
func (c *Client) EachRecord(ctx context.Context, q Query, f func(*Item) error) error {
	for {
		p, err := c.Records(ctx, q)
		if err != nil {
			return err
		}
		for _, it := range p.Records {
			if it.Index < q.From {
				return badRecord(it.Index, "the server sent it out of order")
			}
			if err := f(it); err != nil {
				return err
			}
			q.From = it.Index + 1
		}
		if p.Next == 0 {
			return nil
		}
		if p.Next < q.From {
			return fheserve.Errorf(fheserve.EINTERNAL, "the audit API's next page goes back to %d", p.Next)
		}
		q.From = p.Next
	}
}

// checkConsistent checks that the log of checkpoint cp extends the one of
// the signed checkpoint seen.
func (c *Client) checkConsistent(ctx context.Context, v note.Verifier, seen []byte, cp *Checkpoint) error {
	old, err := openCheckpoint(seen, v)
	if err != nil {
		return &VerifyError{Index: -1, Reason: "the checkpoint seen before: " + fheserve.ErrorMessage(err)}
	}
	switch {
	case cp.N < old.N:
		return &VerifyError{Index: cp.N, Reason: fmt.Sprintf("the server's log has %d records, fewer than the %d of the checkpoint seen before: it was rolled back", cp.N, old.N)}
	case cp.N == old.N && cp.Hash != old.Hash:
		return &VerifyError{Index: -1, Reason: fmt.Sprintf("the server's log of %d records has another root hash than the checkpoint of %d records seen before: its history was rewritten", cp.N, old.N)}
	case cp.N == old.N || old.N == 0:
		return nil
	}
	proof, err := c.Consistency(ctx, old.N, cp.N)
	if err != nil {
		return err
	}
	if err := tlog.CheckTree(proof, cp.N, cp.Hash, old.N, old.Hash); err != nil {
		return &VerifyError{Index: -1, Reason: fmt.Sprintf("the server's log of %d records does not extend the log of %d records seen before: its history was rewritten", cp.N, old.N)}
	}
	return nil
}
