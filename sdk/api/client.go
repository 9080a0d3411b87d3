// Package api is the wire contract of fheserve's HTTP API and its
// low-level Go client: one method per endpoint, JSON bodies for control
// requests, binary bodies in the engine's wire format for keys,
// ciphertexts and results, server-sent events for job progress. Error
// codes map to HTTP statuses here, in both directions, so that a
// fheserve.Error crosses the network unchanged.
//
// It lives with the SDK, on the device's side of the seam: it imports the
// root package and the standard library only, so that every client (the
// SDK, the CLI, a WebAssembly build) carries none of the server. The
// server (package http) imports it for the same contract.
package api

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/fheserve/fheserve"
)

// Client is the low-level Go client of the API: one method per endpoint.
// Errors are *fheserve.Error with the server's code and message.
type Client struct {
	// URL is the server's base URL, like "http://127.0.0.1:8080".
	URL string
	// Token is the bearer token sent with every request, if not empty.
	Token string
	// HTTP is the client used (http.DefaultClient if nil).
	HTTP *http.Client
}

// NewClient returns a client of the server at baseURL.
func NewClient(baseURL string) *Client {
	return &Client{URL: strings.TrimRight(baseURL, "/")}
}

func (c *Client) httpClient() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return http.DefaultClient
}

// request describes one call.
type request struct {
	method, path string
	query        url.Values
	body         io.Reader
	length       int64 // of body; -1 unknown
	contentType  string
}

func (c *Client) send(ctx context.Context, req *request) (*http.Response, error) {
	u := c.URL + req.path
	if len(req.query) > 0 {
		u += "?" + req.query.Encode()
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, u, req.body)
	if err != nil {
		return nil, fheserve.Errorf(fheserve.EINVALID, "invalid server URL %q: %v", c.URL, err)
	}
	if req.body != nil && req.length >= 0 {
		hr.ContentLength = req.length
	}
	if req.contentType != "" {
		hr.Header.Set("Content-Type", req.contentType)
	}
	if c.Token != "" {
		hr.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.httpClient().Do(hr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fheserve.Errorf(fheserve.EUNAVAILABLE, "cannot reach the fheserve server at %s: %v", c.URL, rootCause(err))
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		return nil, responseError(resp)
	}
	return resp, nil
}

// rootCause drops the URL wrapper of a transport error.
func rootCause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var unknown x509.UnknownAuthorityError
	var verify *tls.CertificateVerificationError
	if errors.As(err, &unknown) || errors.As(err, &verify) {
		return fmt.Errorf("%v (if its certificate is signed by your own authority, set SSL_CERT_FILE to that authority's PEM file)", err)
	}
	return err
}

// responseError turns an error response into a *fheserve.Error.
func responseError(resp *http.Response) error {
	var e ErrorResponse
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(body, &e) == nil && e.Code != "" && e.Message != "" {
		return &fheserve.Error{Code: e.Code, Message: e.Message, RetryAfter: retryAfterOf(resp)}
	}
	return fheserve.Errorf(CodeOf(resp.StatusCode), "the server answered %s", resp.Status)
}

// do sends req and decodes a JSON response into out (if not nil).
func (c *Client) do(ctx context.Context, req *request, out any) error {
	resp, err := c.send(ctx, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fheserve.Errorf(fheserve.EINTERNAL, "cannot decode the server's response to %s %s: %v", req.method, req.path, err)
	}
	return nil
}

func jsonRequest(method, path string, in any) *request {
	b, err := json.Marshal(in)
	if err != nil {
		panic(err) // request types always marshal
	}
	return &request{method: method, path: path, body: bytes.NewReader(b), length: int64(len(b)), contentType: "application/json"}
}

func get(path string, query url.Values) *request {
	return &request{method: http.MethodGet, path: path, query: query}
}

func esc(s string) string { return url.PathEscape(s) }

// Health checks that the server answers.
func (c *Client) Health(ctx context.Context) error {
	return c.do(ctx, get("/v1/health", nil), nil)
}

// Register creates a pending account.
func (c *Client) Register(ctx context.Context, req *fheserve.RegisterRequest) (*fheserve.Account, error) {
	var a fheserve.Account
	return &a, c.do(ctx, jsonRequest(http.MethodPost, "/v1/accounts", req), &a)
}

// Login returns a session token. It does not set c.Token.
func (c *Client) Login(ctx context.Context, req *fheserve.LoginRequest) (*fheserve.Session, error) {
	var s fheserve.Session
	return &s, c.do(ctx, jsonRequest(http.MethodPost, "/v1/sessions", req), &s)
}

// Logout revokes c.Token.
func (c *Client) Logout(ctx context.Context) error {
	return c.do(ctx, &request{method: http.MethodDelete, path: "/v1/sessions/current"}, nil)
}

// Me returns the account of c.Token.
func (c *Client) Me(ctx context.Context) (*fheserve.Account, error) {
	var a fheserve.Account
	return &a, c.do(ctx, get("/v1/me", nil), &a)
}

// CreateAPIToken creates a long-lived token for a program.
func (c *Client) CreateAPIToken(ctx context.Context, req *fheserve.APITokenRequest) (*fheserve.Session, error) {
	var s fheserve.Session
	return &s, c.do(ctx, jsonRequest(http.MethodPost, "/v1/tokens", req), &s)
}

// Tokens lists the caller's tokens.
func (c *Client) Tokens(ctx context.Context) ([]*fheserve.Token, error) {
	var l TokenList
	return l.Tokens, c.do(ctx, get("/v1/tokens", nil), &l)
}

// RevokeToken revokes one of the caller's tokens.
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	return c.do(ctx, &request{method: http.MethodDelete, path: "/v1/tokens/" + esc(id)}, nil)
}

// Accounts lists accounts (administrators only).
func (c *Client) Accounts(ctx context.Context, f fheserve.AccountFilter) ([]*fheserve.Account, error) {
	q := url.Values{}
	if f.Status != "" {
		q.Set("status", f.Status)
	}
	if f.Role != "" {
		q.Set("role", f.Role)
	}
	var l AccountList
	return l.Accounts, c.do(ctx, get("/v1/accounts", q), &l)
}

// Review approves, rejects or disables an account (administrators only).
func (c *Client) Review(ctx context.Context, username, action string) (*fheserve.Account, error) {
	var a fheserve.Account
	return &a, c.do(ctx, &request{method: http.MethodPost, path: "/v1/accounts/" + esc(username) + "/" + esc(action)}, &a)
}

// Deploy uploads and compiles a model (owners only).
func (c *Client) Deploy(ctx context.Context, req *fheserve.DeployRequest) (*fheserve.Model, error) {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		err := func() error {
			meta, err := mw.CreateFormField("metadata")
			if err != nil {
				return err
			}
			if err := json.NewEncoder(meta).Encode(req); err != nil {
				return err
			}
			for _, part := range []struct {
				name, file string
				data       []byte
			}{{"model", "model.onnx", req.ONNX}, {"calibration", "calibration.npy", req.Calibration}} {
				if part.data == nil {
					continue
				}
				fw, err := mw.CreateFormFile(part.name, part.file)
				if err != nil {
					return err
				}
				if _, err := fw.Write(part.data); err != nil {
					return err
				}
			}
			return mw.Close()
		}()
		pw.CloseWithError(err)
	}()
	var m fheserve.Model
	err := c.do(ctx, &request{method: http.MethodPost, path: "/v1/models", body: pr, length: -1, contentType: mw.FormDataContentType()}, &m)
	pr.Close()
	return &m, err
}

// Models lists the models the caller may see.
func (c *Client) Models(ctx context.Context) ([]*fheserve.Model, error) {
	var l ModelList
	return l.Models, c.do(ctx, get("/v1/models", nil), &l)
}

// Model describes one model.
func (c *Client) Model(ctx context.Context, id string) (*fheserve.Model, error) {
	var m fheserve.Model
	return &m, c.do(ctx, get("/v1/models/"+esc(id), nil), &m)
}

// Plan returns a model's public plan as JSON (decode it into a plan.Plan).
func (c *Client) Plan(ctx context.Context, id string) ([]byte, error) {
	resp, err := c.send(ctx, get("/v1/models/"+esc(id)+"/plan", nil))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fheserve.Errorf(fheserve.EUNAVAILABLE, "cannot read the plan of %s: %v", id, err)
	}
	return b, nil
}

// SetAccess replaces a model's allow-list (its owner or an administrator).
func (c *Client) SetAccess(ctx context.Context, id string, req *fheserve.AccessRequest) (*fheserve.Model, error) {
	var m fheserve.Model
	return &m, c.do(ctx, jsonRequest(http.MethodPut, "/v1/models/"+esc(id)+"/access", req), &m)
}

// Retire retires a model (its owner or an administrator).
func (c *Client) Retire(ctx context.Context, id string) (*fheserve.Model, error) {
	var m fheserve.Model
	return &m, c.do(ctx, &request{method: http.MethodPost, path: "/v1/models/" + esc(id) + "/retire"}, &m)
}

// Usage summarizes the jobs on a model (its owner or an administrator).
func (c *Client) Usage(ctx context.Context, id string) (*fheserve.Usage, error) {
	var u fheserve.Usage
	return &u, c.do(ctx, get("/v1/models/"+esc(id)+"/usage", nil), &u)
}

// UploadKeys uploads a key set (he.MarshalEvalKeys format, size bytes
// long, or -1 if unknown) for a model. replaces, if not empty, names a
// key set it replaces.
func (c *Client) UploadKeys(ctx context.Context, modelID string, body io.Reader, size int64, replaces string) (*fheserve.KeySet, error) {
	q := url.Values{}
	if replaces != "" {
		q.Set("replaces", replaces)
	}
	var k fheserve.KeySet
	return &k, c.do(ctx, &request{method: http.MethodPost, path: "/v1/models/" + esc(modelID) + "/keysets", query: q,
		body: body, length: size, contentType: "application/octet-stream"}, &k)
}

// KeySets lists the caller's key sets, for one model if modelID is not empty.
func (c *Client) KeySets(ctx context.Context, modelID string) ([]*fheserve.KeySet, error) {
	q := url.Values{}
	if modelID != "" {
		q.Set("model", modelID)
	}
	var l KeySetList
	return l.KeySets, c.do(ctx, get("/v1/keysets", q), &l)
}

// KeySet describes one of the caller's key sets.
func (c *Client) KeySet(ctx context.Context, id string) (*fheserve.KeySet, error) {
	var k fheserve.KeySet
	return &k, c.do(ctx, get("/v1/keysets/"+esc(id), nil), &k)
}

// RevokeKeySet revokes one of the caller's key sets.
func (c *Client) RevokeKeySet(ctx context.Context, id string) (*fheserve.KeySet, error) {
	var k fheserve.KeySet
	return &k, c.do(ctx, &request{method: http.MethodDelete, path: "/v1/keysets/" + esc(id)}, &k)
}

// Submit queues a job: body holds one call's input ciphertexts (he wire
// format, size bytes long, or -1 if unknown) of req.Samples samples under
// the key set req.KeySetID.
func (c *Client) Submit(ctx context.Context, req *fheserve.SubmitRequest, body io.Reader, size int64) (*fheserve.Job, error) {
	q := url.Values{"keyset": {req.KeySetID}, "samples": {strconv.Itoa(req.Samples)}}
	if req.Claim != "" {
		q.Set("claim", req.Claim)
	}
	var j fheserve.Job
	return &j, c.do(ctx, &request{method: http.MethodPost, path: "/v1/models/" + esc(req.ModelID) + "/jobs",
		query: q, body: body, length: size, contentType: "application/octet-stream"}, &j)
}

// Jobs lists the caller's jobs.
func (c *Client) Jobs(ctx context.Context) ([]*fheserve.Job, error) {
	var l JobList
	return l.Jobs, c.do(ctx, get("/v1/jobs", nil), &l)
}

// Job returns a job's status.
func (c *Client) Job(ctx context.Context, id string) (*fheserve.Job, error) {
	var j fheserve.Job
	return &j, c.do(ctx, get("/v1/jobs/"+esc(id), nil), &j)
}

// WatchJob follows a job's progress stream, calling f with each new
// status, and returns the last one when the job is done or failed.
func (c *Client) WatchJob(ctx context.Context, id string, f func(*fheserve.Job)) (*fheserve.Job, error) {
	resp, err := c.send(ctx, get("/v1/jobs/"+esc(id)+"/events", nil))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var event, data string
	var last *fheserve.Job
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event:"):
			event = strings.TrimSpace(line[len("event:"):])
		case strings.HasPrefix(line, "data:"):
			data += strings.TrimSpace(line[len("data:"):])
		case line == "":
			switch event {
			case "job":
				var j fheserve.Job
				if err := json.Unmarshal([]byte(data), &j); err != nil {
					return nil, fheserve.Errorf(fheserve.EINTERNAL, "bad progress event: %v", err)
				}
				last = &j
				if f != nil {
					f(&j)
				}
				if j.Terminal() {
					return &j, nil
				}
			case "error":
				var e ErrorResponse
				if json.Unmarshal([]byte(data), &e) == nil && e.Code != "" {
					return nil, &fheserve.Error{Code: e.Code, Message: e.Message}
				}
			}
			event, data = "", ""
		}
	}
	if ctx.Err() != nil {
		return last, ctx.Err()
	}
	return last, fheserve.Errorf(fheserve.EUNAVAILABLE, "the progress stream of job %s ended early: %v", id, sc.Err())
}

// Result opens the encrypted result of a finished job (he.MarshalResult
// format). The caller closes it.
func (c *Client) Result(ctx context.Context, id string) (io.ReadCloser, error) {
	resp, err := c.send(ctx, get("/v1/jobs/"+esc(id)+"/result", nil))
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// SetLimits replaces a model's abuse limits (its owner or an administrator).
func (c *Client) SetLimits(ctx context.Context, id string, req *fheserve.ModelLimits) (*fheserve.Model, error) {
	var m fheserve.Model
	return &m, c.do(ctx, jsonRequest(http.MethodPut, "/v1/models/"+esc(id)+"/limits", req), &m)
}

// retryAfterOf reads a Retry-After header in seconds (the server never
// sends the date form).
func retryAfterOf(resp *http.Response) time.Duration {
	n, err := strconv.ParseInt(resp.Header.Get("Retry-After"), 10, 32)
	if err != nil || n <= 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}
