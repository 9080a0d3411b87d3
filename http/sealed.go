package http

import (
	"net/http"

	"github.com/fheserve/fheserve"
)

// sealedRoutes serves sealed models: the owner's deployment of a plan and
// a program without weights, the key sets waiting for sealed weights, and
// the upload of a key set's sealed weights.
func (s *Server) sealedRoutes() {
	s.handle("POST /v1/models/sealed", false, s.deploySealed)
	s.handle("GET /v1/models/{id}/seal", false, s.sealTasks)
	s.handle("PUT /v1/keysets/{id}/sealed", false, s.uploadSealed)
}

// deploySealed reads a JSON fheserve.SealedDeployRequest of at most the
// model size limit.
func (s *Server) deploySealed(w http.ResponseWriter, r *http.Request, c *fheserve.Caller) error {
	if err := s.svc.CheckDeploy(c.Account); err != nil {
		return err
	}
	limit := s.svc.MaxModelBytes() + maxJSON
	if r.ContentLength > limit {
		return fheserve.Errorf(fheserve.ETOOLARGE, "request body of %d bytes is larger than the limit of %d", r.ContentLength, limit)
	}
	if err := jsonBody(r); err != nil {
		return err
	}
	release, err := s.svc.DeploySlot(r.Context(), c.Account)
	if err != nil {
		return err
	}
	defer release()
	var req fheserve.SealedDeployRequest
	if err := decodeBody(w, r, &req, limit); err != nil {
		return err
	}
	m, err := s.svc.DeploySealed(r.Context(), c.Account, &req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, m)
}

func (s *Server) sealTasks(w http.ResponseWriter, r *http.Request, c *fheserve.Caller) error {
	t, err := s.svc.SealTasks(r.Context(), c.Account, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, t)
}

func (s *Server) uploadSealed(w http.ResponseWriter, r *http.Request, c *fheserve.Caller) error {
	if err := binaryBody(r); err != nil {
		return err
	}
	ks, err := s.svc.UploadSealed(r.Context(), c.Account, r.PathValue("id"), r.Body, r.ContentLength)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, ks)
}
