package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/he"
	"github.com/fheserve/fheserve/he/client"
	"github.com/fheserve/fheserve/plan"
)

// Sealed models: the owner compiles the model on its own machine (the
// compiler, with Options.Sealed; the SDK does not carry the compiler, so
// the caller passes its result), deploys the plan and the program
// stripped of its weights, and then seals the weights under each user's
// public key as users create keys. No request of these verbs carries a
// plaintext weight.

// DeploySealed deploys a sealed model from a compiled plan and program:
// it sends the plan and the program stripped of its weights
// (he.StripWeights), never the weights. req's Plan and Program are set
// here.
func (c *Client) DeploySealed(ctx context.Context, req fheserve.SealedDeployRequest, p *plan.Plan, prog *plan.Program) (*fheserve.Model, error) {
	if !p.Sealed {
		return nil, fheserve.Errorf(fheserve.EINVALID, "the plan is not compiled for sealed weights (compile with --sealed)")
	}
	stripped := he.StripWeights(prog)
	if name := he.HasWeights(stripped); name != "" {
		return nil, fheserve.Errorf(fheserve.EINTERNAL, "step %q still holds weights after stripping", name)
	}
	var err error
	if req.Plan, err = json.Marshal(p); err != nil {
		return nil, err
	}
	if req.Program, err = json.Marshal(stripped); err != nil {
		return nil, err
	}
	return c.API.DeploySealed(ctx, &req)
}

// SealProgress is one step of sealing: a key set sealed (or refused).
type SealProgress struct {
	Task     *fheserve.SealTask
	KeySet   *fheserve.KeySet // after the upload; nil on error
	Err      error
	Duration time.Duration // encryption and upload
}

// SealTasks lists the key sets waiting for the owner's sealed weights of
// a model, with the size each takes.
func (c *Client) SealTasks(ctx context.Context, modelID string) (*fheserve.SealTasks, error) {
	return c.API.SealTasks(ctx, modelID)
}

// Seal encrypts the model's weights (prog, with its weights, which never
// leave this machine in the clear) under the public key of every key set
// waiting for them and uploads each, reporting each one to progress (if
// not nil). It returns how many it sealed; a key set that fails does not
// stop the others, and the first error is returned.
func (c *Client) Seal(ctx context.Context, modelID string, p *plan.Plan, prog *plan.Program, progress func(SealProgress)) (int, error) {
	tasks, err := c.SealTasks(ctx, modelID)
	if err != nil {
		return 0, err
	}
	params, err := he.NewParameters(p.Params)
	if err != nil {
		return 0, err
	}
	var first error
	done := 0
	for _, t := range tasks.Tasks {
		t0 := time.Now()
		ks, err := c.sealOne(ctx, params, p, prog, t)
		if err == nil {
			done++
		} else if first == nil {
			first = err
		}
		if progress != nil {
			progress(SealProgress{Task: t, KeySet: ks, Err: err, Duration: time.Since(t0)})
		}
	}
	return done, first
}

func (c *Client) sealOne(ctx context.Context, params he.Parameters, p *plan.Plan, prog *plan.Program, t *fheserve.SealTask) (*fheserve.KeySet, error) {
	pk, err := he.UnmarshalEvalKeys(bytes.NewReader(t.PublicKey), params, he.KeyLimits{Keys: &he.KeySpec{}})
	if err != nil {
		return nil, fmt.Errorf("public key of key set %s: %w", t.KeySetID, err)
	}
	var buf bytes.Buffer
	buf.Grow(int(t.SealedBytes))
	if err := client.Seal(&buf, params, p, prog, pk.Public); err != nil {
		return nil, err
	}
	if int64(buf.Len()) != t.SealedBytes {
		return nil, fheserve.Errorf(fheserve.EINVALID, "the sealed weights take %d bytes, the server expects %d: the local model is not the deployed one", buf.Len(), t.SealedBytes)
	}
	return c.API.UploadSealed(ctx, t.KeySetID, buf.Bytes())
}
