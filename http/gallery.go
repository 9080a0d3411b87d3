package http

import (
	"net/http"

	"github.com/fheserve/fheserve"
)

// galleryRoutes serve galleries: creation, the labels and counts, and
// enrolment and removal of templates. Queries are jobs on the gallery's
// model (POST /v1/models/{id}/jobs, with ?claim= for a verification).
func (s *Server) galleryRoutes() {
	s.handle("POST /v1/galleries", false, s.createGallery)
	s.handle("GET /v1/galleries/{id}", false, s.gallery)
	s.handle("POST /v1/galleries/{id}/templates", false, s.enroll)
	s.handle("POST /v1/galleries/{id}/remove", false, s.removeTemplates)
}

func (s *Server) createGallery(w http.ResponseWriter, r *http.Request, c *fheserve.Caller) error {
	var req fheserve.GalleryRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	g, err := s.svc.CreateGallery(r.Context(), c.Account, &req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, g)
}

func (s *Server) gallery(w http.ResponseWriter, r *http.Request, c *fheserve.Caller) error {
	g, err := s.svc.Gallery(r.Context(), c.Account, r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, g)
}

// maxEnrollJSON bounds an enrolment's body: MaxEnroll embeddings of 512
// values at about 24 bytes each in JSON, and their labels.
const maxEnrollJSON = fheserve.MaxEnroll * (512*24 + fheserve.MaxLabel + 16)

// enroll reads a JSON fheserve.EnrollRequest.
func (s *Server) enroll(w http.ResponseWriter, r *http.Request, c *fheserve.Caller) error {
	if r.ContentLength > maxEnrollJSON {
		return fheserve.Errorf(fheserve.ETOOLARGE, "request body of %d bytes is larger than the limit of %d: enrol the templates in parts", r.ContentLength, maxEnrollJSON)
	}
	if err := jsonBody(r); err != nil {
		return err
	}
	var req fheserve.EnrollRequest
	if err := decodeBody(w, r, &req, maxEnrollJSON); err != nil {
		return err
	}
	g, err := s.svc.Enroll(r.Context(), c.Account, r.PathValue("id"), &req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, g)
}

func (s *Server) removeTemplates(w http.ResponseWriter, r *http.Request, c *fheserve.Caller) error {
	var req fheserve.RemoveRequest
	if err := readJSON(w, r, &req); err != nil {
		return err
	}
	g, err := s.svc.RemoveTemplates(r.Context(), c.Account, r.PathValue("id"), &req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, g)
}
