package app

import (
	"context"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/nn/onnx"
	"github.com/fheserve/fheserve/plan"
)

// PreviewDeploy compiles a deployment as Deploy would, with the same
// checks, and returns its public plan; it stores and records nothing. The
// portal shows an owner the plan before the owner deploys.
func (a *App) PreviewDeploy(ctx context.Context, who *fheserve.Account, req *fheserve.DeployRequest) (*plan.Plan, error) {
	res, err := a.compileChecked(ctx, who, req)
	if err != nil {
		return nil, err
	}
	return res.Plan, nil
}

// compileChecked checks that who may deploy req and compiles it.
func (a *App) compileChecked(ctx context.Context, who *fheserve.Account, req *fheserve.DeployRequest) (*compiler.Result, error) {
	if err := require(who, fheserve.RoleOwner); err != nil {
		return nil, err
	}
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if n := int64(len(req.ONNX) + len(req.Calibration)); n > a.cfg.MaxModelBytes {
		return nil, fheserve.Errorf(fheserve.ETOOLARGE, "the model and calibration data take %d bytes, more than the limit of %d", n, a.cfg.MaxModelBytes)
	}
	if err := a.checkAllow(ctx, req.Allow); err != nil {
		return nil, err
	}
	res, err := compileDeployment(req)
	if err != nil {
		return nil, err
	}
	if err := outputLabels(req, res.Plan); err != nil {
		return nil, err
	}
	return res, nil
}

// outputLabels checks req's labels against the plan's outputs; without
// any, it takes the ONNX file's (onnx.LabelsKey) into req.Labels.
func outputLabels(req *fheserve.DeployRequest, p *plan.Plan) error {
	from := "the labels"
	if len(req.Labels) == 0 {
		labels, err := onnx.Labels(req.ONNX)
		if err != nil || labels == nil {
			return err
		}
		req.Labels, from = labels, "the ONNX file's metadata labels"
	}
	if err := fheserve.ValidLabels(req.Labels, p.OutputSize()); err != nil {
		return fheserve.Errorf(fheserve.EINVALID, "%s: %s", from, fheserve.ErrorMessage(err))
	}
	return nil
}
