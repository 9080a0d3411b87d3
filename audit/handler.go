package audit

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/fheserve/fheserve"
	"golang.org/x/mod/sumdb/tlog"
)

// PathPrefix is where the service mounts the handler:
//
//	mux.Handle(audit.PathPrefix+"/", http.StripPrefix(audit.PathPrefix, audit.NewHandler(log, authz)))
const PathPrefix = "/v1/audit"

// Authorizer tells which records the caller of a request may see. It
// fails with EUNAUTHORIZED when the request has no valid credentials; a
// caller it lets in may fetch checkpoints, the key and proofs, which
// hold hashes only, and the records its scope allows (none if nil).
type Authorizer interface {
	Scope(r *http.Request) (*Scope, error)
}

// AuthorizerFunc is an Authorizer as a function.
type AuthorizerFunc func(r *http.Request) (*Scope, error)

// Scope implements Authorizer.
func (f AuthorizerFunc) Scope(r *http.Request) (*Scope, error) { return f(r) }

// Item is a record as the API serves it.
type Item struct {
	Index int64 `json:"index"`
	// Record is the record's canonical encoding, exactly the bytes that
	// were hashed into the log (it is JSON, so it is sent as is).
	Record json.RawMessage `json:"record"`
	// Proof, when asked for, proves the record is in the tree of
	// TreeSize records.
	TreeSize int64            `json:"tree_size,omitempty"`
	Proof    tlog.RecordProof `json:"proof,omitempty"`
}

// Page is a list of records and where the next page starts.
type Page struct {
	Records []*Item `json:"records"`
	Next    int64   `json:"next,omitempty"` // the From of the next page; 0: this is the last
}

// Consistency proves that the tree of Old records is a prefix of the tree
// of New records.
type Consistency struct {
	Old   int64          `json:"old"`
	New   int64          `json:"new"`
	Proof tlog.TreeProof `json:"proof"`
}

// errorBody is the body of every error response, as in package http.
type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// statuses maps the error codes the handler returns to HTTP statuses, as
// package http does; this package cannot import it, since the service
// that package http serves appends to the log.
var statuses = map[string]int{
	fheserve.EINVALID:      http.StatusBadRequest,
	fheserve.ENOTFOUND:     http.StatusNotFound,
	fheserve.EUNAUTHORIZED: http.StatusUnauthorized,
	fheserve.EFORBIDDEN:    http.StatusForbidden,
	fheserve.ERATELIMIT:    http.StatusTooManyRequests,
	fheserve.EUNAVAILABLE:  http.StatusServiceUnavailable,
}

// NewHandler returns the log's HTTP API, with paths relative to where it
// is mounted (see PathPrefix):
//
//	GET /checkpoint                    the latest signed checkpoint (text/plain)
//	GET /key                           the verifier key (text/plain)
//	GET /records/{index}?tree=N        a record and its inclusion proof in the tree of N records (default: latest)
//	GET /records?from=I&since=T&actor=U&limit=K&tree=N
//	                                   the caller's records from index I, at or after T (RFC 3339), by U; with
//	                                   inclusion proofs in the tree of N records (and only its records) if tree is given
//	GET /consistency?old=M&new=N       the proof that the tree of M records is a prefix of the one of N
func NewHandler(l *Log, authz Authorizer) http.Handler {
	h := &handler{log: l, authz: authz}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /checkpoint", h.serve(h.checkpoint))
	mux.HandleFunc("GET /key", h.serve(h.key))
	mux.HandleFunc("GET /records/{index}", h.serve(h.record))
	mux.HandleFunc("GET /records", h.serve(h.records))
	mux.HandleFunc("GET /consistency", h.serve(h.consistency))
	mux.HandleFunc("/", h.serve(func(w http.ResponseWriter, r *http.Request, s *Scope) error {
		return fheserve.Errorf(fheserve.ENOTFOUND, "no audit endpoint %s %s", r.Method, r.URL.Path)
	}))
	return mux
}

type handler struct {
	log   *Log
	authz Authorizer
}

func (h *handler) serve(f func(http.ResponseWriter, *http.Request, *Scope) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		s, err := h.authz.Scope(r)
		if s == nil {
			s = &Scope{} // a nil scope sees nothing, never everything
		}
		if err == nil {
			err = f(w, r, s)
		}
		if err != nil {
			status, ok := statuses[fheserve.ErrorCode(err)]
			if !ok {
				status = http.StatusInternalServerError
			}
			writeJSON(w, status, errorBody{Code: fheserve.ErrorCode(err), Message: fheserve.ErrorMessage(err)})
		}
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeText(w http.ResponseWriter, text []byte) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write(text)
}

func (h *handler) checkpoint(w http.ResponseWriter, r *http.Request, _ *Scope) error {
	cp, _, err := h.log.Latest(r.Context())
	if err != nil {
		return err
	}
	writeText(w, cp)
	return nil
}

func (h *handler) key(w http.ResponseWriter, r *http.Request, _ *Scope) error {
	writeText(w, []byte(h.log.VerifierKey()+"\n"))
	return nil
}

func (h *handler) record(w http.ResponseWriter, r *http.Request, s *Scope) error {
	i, err := intParam(r.PathValue("index"), "record index", -1)
	if err != nil {
		return err
	}
	_, size, err := h.log.Latest(r.Context())
	if err != nil {
		return err
	}
	tree, err := intParam(r.FormValue("tree"), "tree", size)
	if err != nil {
		return err
	}
	e, err := h.log.Entry(r.Context(), i, s)
	if err != nil {
		return err
	}
	it, err := h.item(r, e, tree)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, it)
	return nil
}

func (h *handler) item(r *http.Request, e *Entry, tree int64) (*Item, error) {
	it := &Item{Index: e.Index, Record: e.Data}
	if tree > 0 {
		p, err := h.log.ProveRecord(r.Context(), e.Index, tree)
		if err != nil {
			return nil, err
		}
		it.TreeSize, it.Proof = tree, p
	}
	return it, nil
}

func (h *handler) records(w http.ResponseWriter, r *http.Request, s *Scope) error {
	f := Filter{Actor: r.FormValue("actor"), Scope: s}
	var err error
	if f.From, err = intParam(r.FormValue("from"), "from", 0); err != nil {
		return err
	}
	limit, err := intParam(r.FormValue("limit"), "limit", DefaultLimit)
	if err != nil {
		return err
	}
	f.Limit = int(min(limit, MaxLimit))
	tree, err := intParam(r.FormValue("tree"), "tree", 0)
	if err != nil {
		return err
	}
	f.End = tree
	if v := r.FormValue("object"); v != "" {
		if f.Object, err = ParseObject(v); err != nil {
			return err
		}
	}
	if v := r.FormValue("since"); v != "" {
		if f.Since, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return fheserve.Errorf(fheserve.EINVALID, "since must be an RFC 3339 time, not %q", clip(v))
		}
	}
	es, err := h.log.Records(r.Context(), f)
	if err != nil {
		return err
	}
	page := Page{Records: make([]*Item, len(es))}
	for i, e := range es {
		if page.Records[i], err = h.item(r, e, tree); err != nil {
			return err
		}
	}
	if len(es) > 0 && len(es) == f.PageSize() {
		page.Next = es[len(es)-1].Index + 1
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

func (h *handler) consistency(w http.ResponseWriter, r *http.Request, _ *Scope) error {
	old, err := intParam(r.FormValue("old"), "old", -1)
	if err != nil {
		return err
	}
	n, err := intParam(r.FormValue("new"), "new", -1)
	if err != nil {
		return err
	}
	p, err := h.log.ProveTree(r.Context(), old, n)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, Consistency{Old: old, New: n, Proof: p})
	return nil
}

// intParam parses a non-negative integer parameter; def < 0 makes it
// required.
func intParam(v, name string, def int64) (int64, error) {
	if v == "" {
		if def < 0 {
			return 0, fheserve.Errorf(fheserve.EINVALID, "%s is required", name)
		}
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fheserve.Errorf(fheserve.EINVALID, "%s must be a non-negative integer, not %q", name, clip(v))
	}
	return n, nil
}
