package http

import (
	"context"
	"net/http"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/plan"
)

// DeployPreviewer compiles a deployment without making it, so that the
// portal can show an owner the compile report (what 'fheserve compile'
// prints on the owner's machine) before the owner confirms. *app.App
// provides it.
type DeployPreviewer interface {
	PreviewDeploy(ctx context.Context, who *fheserve.Account, req *fheserve.DeployRequest) (*plan.Plan, error)
}

// portalCompile takes the body of POST /v1/models and returns the plan
// the deployment would get, storing nothing. It is the portal's (a
// program compiles on its own machine), so it is not in the API document.
func (s *Server) portalCompile(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	err := func() error {
		c, err := s.authenticate(r)
		if err != nil {
			return err
		}
		pv, ok := s.svc.(DeployPreviewer)
		if !ok {
			return fheserve.Errorf(fheserve.EUNAVAILABLE, "this server cannot compile a model without deploying it")
		}
		req, release, err := s.readDeploy(w, r, c)
		if err != nil {
			return err
		}
		defer release()
		p, err := pv.PreviewDeploy(r.Context(), c.Account, req)
		if err != nil {
			return err
		}
		// The plan and the output labels the model would get (the
		// request's, or those of the ONNX file's metadata).
		return writeJSON(w, http.StatusOK, struct {
			*plan.Plan
			Labels []string `json:"labels,omitempty"`
		}{p, req.Labels})
	}()
	if err != nil {
		s.writeError(w, r, err)
	}
}
