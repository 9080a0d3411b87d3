package http

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/sdk/api"
)

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func (s *Server) register(w http.ResponseWriter, r *http.Request, _ *fheserve.Caller) error {
	var req fheserve.RegisterRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	acct, err := s.svc.Register(r.Context(), &req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, acct)
}

func (s *Server) login(w http.ResponseWriter, r *http.Request, _ *fheserve.Caller) error {
	var req fheserve.LoginRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	req.Addr = s.clientAddr(r)
	sess, err := s.svc.Login(r.Context(), &req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, sess)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request, c *fheserve.Caller) error {
	if err := s.svc.Logout(r.Context(), c); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) me(w http.ResponseWriter, r *http.Request, c *fheserve.Caller) error {
	return writeJSON(w, http.StatusOK, c.Account)
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request, c *fheserve.Caller) error {
	var req fheserve.APITokenRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	sess, err := s.svc.CreateAPIToken(r.Context(), c.Account, &req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, sess)
}

func (s *Server) tokens(w http.ResponseWriter, r *http.Request, c *fheserve.Caller) error {
	ts, err := s.svc.Tokens(r.Context(), c.Account)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, &api.TokenList{Tokens: orEmpty(ts)})
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request, c *fheserve.Caller) error {
	if err := s.svc.RevokeToken(r.Context(), c.Account, r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) accounts(w http.ResponseWriter, r *http.Request, c *fheserve.Caller) error {
	q := r.URL.Query()
	as, err := s.svc.Accounts(r.Context(), c.Account, fheserve.AccountFilter{Status: q.Get("status"), Role: q.Get("role")})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, &api.AccountList{Accounts: orEmpty(as)})
}

func (s *Server) review(w http.ResponseWriter, r *http.Request, c *fheserve.Caller) error {
	acct, err := s.svc.Review(r.Context(), c.Account, r.PathValue("username"), r.PathValue("action"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, acct)
}

// deploy reads a multipart/form-data body: a "metadata" part (the JSON
// DeployRequest), a "model" part (the ONNX file) and an optional
// "calibration" part (.npy).
func (s *Server) deploy(w http.ResponseWriter, r *http.Request, c *fheserve.Caller) error {
	req, release, err := s.readDeploy(w, r, c)
	if err != nil {
		return err
	}
	defer release()
	m, err := s.svc.Deploy(r.Context(), c.Account, req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, m)
}

// readDeploy reads a deployment's body in one of the few deployment slots,
// which the caller releases once it has compiled the request.
func (s *Server) readDeploy(w http.ResponseWriter, r *http.Request, c *fheserve.Caller) (*fheserve.DeployRequest, func(), error) {
	// Check the caller and the request before reading a large body.
	if err := s.svc.CheckDeploy(c.Account); err != nil {
		return nil, nil, err
	}
	limit := s.svc.MaxModelBytes()
	if r.ContentLength > limit+maxJSON {
		return nil, nil, fheserve.Errorf(fheserve.ETOOLARGE, "request body of %d bytes is larger than the limit of %d", r.ContentLength, limit+maxJSON)
	}
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "multipart/form-data" {
		return nil, nil, fheserve.Errorf(fheserve.EINVALID, "the body must be multipart/form-data with parts metadata, model and optionally calibration")
	}
	// The body is held in memory and compiled: a few deployments at once.
	release, err := s.svc.DeploySlot(r.Context(), c.Account)
	if err != nil {
		return nil, nil, err
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit+maxJSON)
	req, err := readDeployRequest(r, limit)
	if err != nil {
		release()
		return nil, nil, err
	}
	return req, release, nil
}

// readDeployRequest reads the parts of a deployment's multipart body,
// each file at most limit bytes.
func readDeployRequest(r *http.Request, limit int64) (*fheserve.DeployRequest, error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, fheserve.Errorf(fheserve.EINVALID, "invalid multipart body: %v", err)
	}
	var req fheserve.DeployRequest
	var haveMeta bool
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fheserve.Errorf(fheserve.EINVALID, "invalid multipart body: %v", errorOf(err))
		}
		switch part.FormName() {
		case "metadata":
			dec := json.NewDecoder(io.LimitReader(part, maxJSON))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&req); err != nil {
				return nil, fheserve.Errorf(fheserve.EINVALID, "invalid metadata part: %v", err)
			}
			haveMeta = true
		case "model", "calibration":
			// The body's length bounds the part's: read into one buffer of
			// that size rather than a growing one, which holds up to twice
			// the part.
			hint := min(r.ContentLength-int64(len(req.ONNX))-int64(len(req.Calibration)), limit+1)
			data, err := readAll(io.LimitReader(part, limit+1), hint)
			if err != nil {
				return nil, errorOf(err)
			}
			if int64(len(data)) > limit {
				return nil, fheserve.Errorf(fheserve.ETOOLARGE, "the %s part is larger than the limit of %d bytes", part.FormName(), limit)
			}
			if part.FormName() == "model" {
				req.ONNX = data
			} else {
				req.Calibration = data
			}
		default:
			return nil, fheserve.Errorf(fheserve.EINVALID, "unexpected multipart part %q (want metadata, model, calibration)", part.FormName())
		}
	}
	if !haveMeta {
		return nil, fheserve.Errorf(fheserve.EINVALID, "the metadata part is missing")
	}
	return &req, nil
}

// readAll reads r to its end into one buffer of size bytes (if
// positive), growing it only if r holds more.
func readAll(r io.Reader, size int64) ([]byte, error) {
	if size <= 0 {
		return io.ReadAll(r)
	}
	buf := make([]byte, size)
	n, err := io.ReadFull(r, buf)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return buf[:n], nil
	case err != nil:
		return nil, err
	}
	rest, err := io.ReadAll(r)
	return append(buf, rest...), err
}

func (s *Server) models(w http.ResponseWriter, r *http.Request, c *fheserve.Caller) error {
	ms, err := s.svc.Models(r.Context(), c.Account)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, &api.ModelList{Models: orEmpty(ms)})
}

func (s *Server) model(w http.ResponseWriter, r *http.Request, c *fheserve.Caller) error {
	m, err := s.svc.Model(r.Context(), c.Account, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, m)
}

func (s *Server) plan(w http.ResponseWriter, r *http.Request, c *fheserve.Caller) error {
	p, err := s.svc.Plan(r.Context(), c.Account, r.PathValue("id"))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	_, err = w.Write(p)
	return err
}

func (s *Server) setAccess(w http.ResponseWriter, r *http.Request, c *fheserve.Caller) error {
	var req fheserve.AccessRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	m, err := s.svc.SetAccess(r.Context(), c.Account, r.PathValue("id"), &req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, m)
}

func (s *Server) retire(w http.ResponseWriter, r *http.Request, c *fheserve.Caller) error {
	m, err := s.svc.Retire(r.Context(), c.Account, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, m)
}

func (s *Server) usage(w http.ResponseWriter, r *http.Request, c *fheserve.Caller) error {
	u, err := s.svc.Usage(r.Context(), c.Account, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, u)
}

func (s *Server) uploadKeys(w http.ResponseWriter, r *http.Request, c *fheserve.Caller) error {
	if err := binaryBody(r); err != nil {
		return err
	}
	ks, err := s.svc.UploadKeys(r.Context(), c.Account, r.PathValue("id"), r.Body, r.ContentLength, r.URL.Query().Get("replaces"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, ks)
}

func (s *Server) keySets(w http.ResponseWriter, r *http.Request, c *fheserve.Caller) error {
	ks, err := s.svc.KeySets(r.Context(), c.Account, r.URL.Query().Get("model"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, &api.KeySetList{KeySets: orEmpty(ks)})
}

func (s *Server) keySet(w http.ResponseWriter, r *http.Request, c *fheserve.Caller) error {
	ks, err := s.svc.KeySet(r.Context(), c.Account, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, ks)
}

func (s *Server) revokeKeySet(w http.ResponseWriter, r *http.Request, c *fheserve.Caller) error {
	ks, err := s.svc.RevokeKeySet(r.Context(), c.Account, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, ks)
}

func (s *Server) submit(w http.ResponseWriter, r *http.Request, c *fheserve.Caller) error {
	if err := binaryBody(r); err != nil {
		return err
	}
	req := &fheserve.SubmitRequest{ModelID: r.PathValue("id"), KeySetID: r.URL.Query().Get("keyset"), Samples: 1, Claim: r.URL.Query().Get("claim")}
	if r.URL.Query().Has("samples") {
		n, err := intQuery(r, "samples")
		if err != nil {
			return err
		}
		req.Samples = n
	}
	j, err := s.svc.Submit(r.Context(), c.Account, req, r.Body, r.ContentLength)
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/jobs/"+j.ID)
	return writeJSON(w, http.StatusAccepted, j)
}

func (s *Server) jobs(w http.ResponseWriter, r *http.Request, c *fheserve.Caller) error {
	js, err := s.svc.Jobs(r.Context(), c.Account)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, &api.JobList{Jobs: orEmpty(js)})
}

func (s *Server) job(w http.ResponseWriter, r *http.Request, c *fheserve.Caller) error {
	j, err := s.svc.Job(r.Context(), c.Account, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, j)
}

// keepAlive is how often an idle progress stream sends a comment, so that
// proxies keep it open.
const keepAlive = 15 * time.Second

// reauthEvery is how often an open progress stream checks that its token
// is still valid: a stream ends within this time of a logout, a revoked
// token or a disabled account, with an error event.
const reauthEvery = time.Second

// jobEvents streams a job's status as server-sent events ("event: job",
// data: the job as JSON) whenever it changes, until it is done or failed.
func (s *Server) jobEvents(w http.ResponseWriter, r *http.Request, c *fheserve.Caller) error {
	wt, err := s.svc.Watch(r.Context(), c.Account, r.PathValue("id"))
	if err != nil {
		return err
	}
	defer wt.Stop()
	es, err := openEventStream(w)
	if err != nil {
		return err
	}
	tick := time.NewTicker(keepAlive)
	defer tick.Stop()
	reauth := time.NewTicker(reauthEvery)
	defer reauth.Stop()
	var last []byte
	var j *fheserve.Job
	for {
		if j, err = s.watchedJob(r, c, wt, j); err != nil {
			return es.end(r, err)
		}
		b, err := json.Marshal(j)
		if err != nil {
			return nil
		}
		if string(b) != string(last) {
			es.event("job", fmt.Sprintf("%s-%d-%s", j.ID, j.Done, j.Status), b)
			last = b
		}
		if j.Terminal() {
			return nil
		}
		select {
		case <-r.Context().Done():
			return nil
		case <-wt.Wake():
		case <-tick.C:
			es.comment("keep-alive")
		case <-reauth.C:
		}
		// Nothing more is sent to a token that was revoked since the
		// stream opened.
		if _, err := s.authenticate(r); err != nil {
			return es.end(r, err)
		}
	}
}

// watchedJob returns the status of the job wt follows. The store is read
// when the job changed (or first, when j is nil); when only the queue
// moved, j's position is updated in memory.
func (s *Server) watchedJob(r *http.Request, c *fheserve.Caller, wt fheserve.JobWatcher, j *fheserve.Job) (*fheserve.Job, error) {
	if j == nil || wt.Changed() {
		return s.svc.Job(r.Context(), c.Account, r.PathValue("id"))
	}
	wt.Refresh(j)
	return j, nil
}

// eventStream writes server-sent events, each flushed at once.
type eventStream struct {
	w http.ResponseWriter
	f http.Flusher
}

// openEventStream answers with a stream of server-sent events.
func openEventStream(w http.ResponseWriter) (*eventStream, error) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		return nil, fheserve.Errorf(fheserve.EINTERNAL, "streaming is not supported")
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	return &eventStream{w: w, f: flusher}, nil
}

// event sends an event with an id ("" for none) and one line of data.
func (e *eventStream) event(name, id string, data []byte) {
	if id != "" {
		fmt.Fprintf(e.w, "event: %s\nid: %s\ndata: %s\n\n", name, id, data)
	} else {
		fmt.Fprintf(e.w, "event: %s\ndata: %s\n\n", name, data)
	}
	e.f.Flush()
}

// comment sends a comment, which keeps the connection alive.
func (e *eventStream) comment(text string) {
	fmt.Fprintf(e.w, ": %s\n\n", text)
	e.f.Flush()
}

// end ends the stream of r for err: with an error event, unless the
// client went away.
func (e *eventStream) end(r *http.Request, err error) error {
	if r.Context().Err() == nil {
		b, _ := json.Marshal(&api.ErrorResponse{Code: fheserve.ErrorCode(err), Message: fheserve.ErrorMessage(err)})
		e.event("error", "", b)
	}
	return nil
}

func (s *Server) result(w http.ResponseWriter, r *http.Request, c *fheserve.Caller) error {
	rc, size, err := s.svc.Result(r.Context(), c.Account, r.PathValue("id"))
	if err != nil {
		return err
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	w.WriteHeader(http.StatusOK)
	_, err = io.Copy(w, rc)
	if err != nil {
		// The status is sent; the client sees a short body.
		s.log.Warn("result download interrupted", "job", r.PathValue("id"), "err", err)
	}
	return nil
}
