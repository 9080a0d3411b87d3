// Package sdk is the Go SDK of fheserve. A model user's program registers,
// logs in, lists the models it may use, fetches a model's public plan,
// generates keys for it on the device (the secret key never leaves the
// process unless the program stores it), uploads only the public and
// evaluation keys, and runs encrypted predictions: encrypt, submit, wait
// with progress, fetch, decrypt. Predict paces itself: it keeps at most 16
// jobs queued or running (the server's cap per user), sizes and spaces
// its jobs to the owner's rate limits, and waits as long as a 429 or 503
// answer's Retry-After says. Owners deploy models and administrators
// approve accounts through the same client.
//
// The SDK produces the same outputs as 'fheserve predict --local' on the
// same model and input, within the plan's stated precision. It declares
// each job's samples, which the owner's limits count, and checks every
// decrypted sample against the plan's output bound before the head: a
// sample beyond it comes back with an *OutOfBoundError, never silently.
package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/plan"
	"github.com/fheserve/fheserve/sdk/api"
)

// Client talks to one fheserve server as one account.
type Client struct {
	// API is the low-level client, for endpoints the SDK does not wrap.
	API *api.Client
}

// New returns a client of the server at serverURL, like
// "http://127.0.0.1:8080". It is anonymous until Login or SetToken.
func New(serverURL string) *Client {
	return &Client{API: api.NewClient(serverURL)}
}

// SetToken makes the client act with a session or API token.
func (c *Client) SetToken(token string) { c.API.Token = token }

// Token returns the client's token ("" when anonymous).
func (c *Client) Token() string { return c.API.Token }

// Register asks for an account with the role fheserve.RoleOwner or
// fheserve.RoleUser. It is pending until an administrator approves it.
func (c *Client) Register(ctx context.Context, username, password, role string) (*fheserve.Account, error) {
	return c.API.Register(ctx, &fheserve.RegisterRequest{Username: username, Password: password, Role: role})
}

// Login logs in and makes the client use the session token.
func (c *Client) Login(ctx context.Context, username, password string) (*fheserve.Session, error) {
	s, err := c.API.Login(ctx, &fheserve.LoginRequest{Username: username, Password: password})
	if err != nil {
		return nil, err
	}
	c.SetToken(s.Token)
	return s, nil
}

// Logout revokes the client's token.
func (c *Client) Logout(ctx context.Context) error {
	if err := c.API.Logout(ctx); err != nil {
		return err
	}
	c.SetToken("")
	return nil
}

// Me returns the client's account.
func (c *Client) Me(ctx context.Context) (*fheserve.Account, error) { return c.API.Me(ctx) }

// Pending lists the accounts waiting for approval (administrators).
func (c *Client) Pending(ctx context.Context) ([]*fheserve.Account, error) {
	return c.API.Accounts(ctx, fheserve.AccountFilter{Status: fheserve.AccountPending})
}

// Approve approves a pending account (administrators).
func (c *Client) Approve(ctx context.Context, username string) (*fheserve.Account, error) {
	return c.API.Review(ctx, username, "approve")
}

// Reject rejects a pending account (administrators).
func (c *Client) Reject(ctx context.Context, username string) (*fheserve.Account, error) {
	return c.API.Review(ctx, username, "reject")
}

// Disable disables an account and revokes its tokens (administrators).
func (c *Client) Disable(ctx context.Context, username string) (*fheserve.Account, error) {
	return c.API.Review(ctx, username, "disable")
}

// Deploy uploads an ONNX model (owners); the server compiles it and
// refuses it with the compiler's message if it cannot be evaluated.
func (c *Client) Deploy(ctx context.Context, req *fheserve.DeployRequest) (*fheserve.Model, error) {
	return c.API.Deploy(ctx, req)
}

// Models lists the models the client may see: for a user, the ones it
// may run predictions on.
func (c *Client) Models(ctx context.Context) ([]*fheserve.Model, error) { return c.API.Models(ctx) }

// Model describes one model.
func (c *Client) Model(ctx context.Context, id string) (*fheserve.Model, error) {
	return c.API.Model(ctx, id)
}

// ModelNamed finds a model by name among those the client may see: its
// latest version. Two owners may use the same name: then it refuses, and
// names each owner's model, rather than pick one.
func (c *Client) ModelNamed(ctx context.Context, name string) (*fheserve.Model, error) {
	ms, err := c.Models(ctx)
	if err != nil {
		return nil, err
	}
	var latest *fheserve.Model
	owners := map[string]*fheserve.Model{}
	for _, m := range ms {
		if m.Name != name {
			continue
		}
		if o := owners[m.Owner]; o == nil || m.Version > o.Version {
			owners[m.Owner] = m
		}
		if latest == nil || m.Version > latest.Version {
			latest = m
		}
	}
	switch {
	case latest == nil:
		return nil, fheserve.Errorf(fheserve.ENOTFOUND, "no model called %q among the models you may see ('fheserve model list' shows them)", name)
	case len(owners) > 1:
		var each []string
		for _, m := range owners {
			each = append(each, fmt.Sprintf("%s by %s", m.ID, m.Owner))
		}
		sort.Strings(each)
		return nil, fheserve.Errorf(fheserve.EINVALID, "%d owners have a model called %q (%s): give the model's id", len(owners), name, strings.Join(each, ", "))
	}
	return latest, nil
}

// ModelByRef finds a model by id or, when no model has that id, by name
// (ModelNamed).
func (c *Client) ModelByRef(ctx context.Context, ref string) (*fheserve.Model, error) {
	m, err := c.Model(ctx, ref)
	if fheserve.ErrorCode(err) != fheserve.ENOTFOUND {
		return m, err
	}
	if named, nerr := c.ModelNamed(ctx, ref); fheserve.ErrorCode(nerr) != fheserve.ENOTFOUND {
		return named, nerr
	}
	return nil, fheserve.Errorf(fheserve.ENOTFOUND, "no model with the id or name %q among the models you may see ('fheserve model list' shows them)", ref)
}

// Plan fetches and checks a model's public plan: its fingerprint must
// match its contents and the model's description.
func (c *Client) Plan(ctx context.Context, modelID string) (*plan.Plan, error) {
	m, err := c.API.Model(ctx, modelID)
	if err != nil {
		return nil, err
	}
	data, err := c.API.Plan(ctx, modelID)
	if err != nil {
		return nil, err
	}
	var p plan.Plan
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fheserve.Errorf(fheserve.EINTERNAL, "the server sent a plan that does not decode: %v", err)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if p.Fingerprint != m.PlanFingerprint {
		return nil, fheserve.Errorf(fheserve.EINTERNAL, "the plan of model %s does not have the fingerprint the server lists for it", modelID)
	}
	return &p, nil
}

// Usage summarizes the jobs on one of the owner's models.
func (c *Client) Usage(ctx context.Context, modelID string) (*fheserve.Usage, error) {
	return c.API.Usage(ctx, modelID)
}
