package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/audit"
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

// Seal is SealWith with progress only and no check against the audit log.
func (c *Client) Seal(ctx context.Context, modelID string, p *plan.Plan, prog *plan.Program, progress func(SealProgress)) (int, error) {
	return c.SealWith(ctx, modelID, p, prog, &SealOptions{Progress: progress})
}

// SealOptions are the options of SealWith.
type SealOptions struct {
	// Progress, if not nil, is called with each key set sealed or not.
	Progress func(SealProgress)
	// AuditKey, if not empty, is the audit log's verifier key the owner
	// pinned: a key set is sealed only if the upload record of its public
	// key by its user is in the log's latest checkpoint, signed by that
	// key and consistent with Seen (key transparency: a server that hands
	// the owner a key of its own under a user's name must log it under
	// that name, where the user sees it). On success Seen is the checkpoint
	// verified, to keep for the next time.
	AuditKey string
	Seen     []byte
}

// SealWith encrypts the model's weights (prog, with its weights, which
// never leave this machine in the clear) under the public key of every key
// set waiting for them and uploads each, reporting each one to
// opts.Progress. It returns how many it sealed; a key set that fails does
// not stop the others, and the first error is returned.
func (c *Client) SealWith(ctx context.Context, modelID string, p *plan.Plan, prog *plan.Program, opts *SealOptions) (int, error) {
	tasks, err := c.SealTasks(ctx, modelID)
	if err != nil {
		return 0, err
	}
	params, err := he.NewParameters(p.Params)
	if err != nil {
		return 0, err
	}
	var verify func(*fheserve.SealTask) error
	if opts.AuditKey != "" && len(tasks.Tasks) > 0 {
		if verify, err = c.auditVerifier(ctx, opts); err != nil {
			return 0, err
		}
	}
	var first error
	done := 0
	for _, t := range tasks.Tasks {
		t0 := time.Now()
		var ks *fheserve.KeySet
		err := error(nil)
		if verify != nil {
			err = verify(t)
		}
		if err == nil {
			ks, err = c.sealOne(ctx, params, p, prog, t)
		}
		if err == nil {
			done++
		} else if first == nil {
			first = err
		}
		if opts.Progress != nil {
			opts.Progress(SealProgress{Task: t, KeySet: ks, Err: err, Duration: time.Since(t0)})
		}
	}
	return done, first
}

// auditVerifier checks the audit log's latest checkpoint against
// opts.AuditKey and opts.Seen and returns the check of each key set's
// public key against the records in it.
func (c *Client) auditVerifier(ctx context.Context, opts *SealOptions) (func(*fheserve.SealTask) error, error) {
	ac := &audit.Client{URL: c.API.URL + audit.PathPrefix, Token: c.Token(), HTTPClient: c.API.HTTP}
	chk, err := ac.CheckLog(ctx, opts.AuditKey, opts.Seen)
	if err != nil {
		return nil, err
	}
	opts.Seen = chk.Note
	cp := chk.Checkpoint
	return func(t *fheserve.SealTask) error {
		want := audit.Object{Kind: fheserve.PublicKeyKind, ID: fheserve.PublicKeyFingerprint(t.PublicKey)}
		found := false
		err := ac.EachRecord(ctx, audit.Query{Object: audit.Object{Kind: audit.KindKeySet, ID: t.KeySetID}, Tree: cp.N, Limit: audit.MaxLimit}, func(it *audit.Item) error {
			r, err := it.Verify(cp)
			if err != nil {
				return err
			}
			if r.Action == "keyset.upload" && r.Outcome == audit.OutcomeOK && r.Actor == t.User && r.Names(want) {
				found = true
			}
			return nil
		})
		if err != nil {
			return err
		}
		if !found {
			return fheserve.Errorf(fheserve.EFORBIDDEN, "key set %s: the signed audit log (checkpoint of %d records) records no upload of this public key by %q; not sealed: the server may have substituted a key of its own", t.KeySetID, cp.N, t.User)
		}
		return nil
	}, nil
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

// PublicKeyFingerprint returns the fingerprint of k's public key as the
// audit log records it for a sealed model's key set
// (fheserve.PublicKeyFingerprint), for keys generated here (not loaded
// from a secret).
func (k *Keys) PublicKeyFingerprint() (string, error) {
	if k.eval == nil || k.eval.PublicSeed == nil {
		return "", fheserve.Errorf(fheserve.EINVALID, "the public key is not held: keys loaded from a secret")
	}
	pk, err := he.MarshalPublicKey(k.params, k.eval)
	if err != nil {
		return "", err
	}
	return fheserve.PublicKeyFingerprint(pk), nil
}

// LoggedKey is a key-set upload the audit log records under a user's
// name with the fingerprint of its public key.
type LoggedKey struct {
	KeySetID  string
	ModelID   string
	PublicKey string // fingerprint
	Time      time.Time
}

// LoggedKeys returns the key-set uploads of sealed models that the
// server's signed audit log records under username, each proven to be in
// the log's latest checkpoint, which is checked against the pinned
// auditKey and the checkpoint seen (and returned, to keep). The user
// compares them with the keys it made: one it did not make is a key the
// server may use to read the weights sealed for it.
func (c *Client) LoggedKeys(ctx context.Context, auditKey string, seen []byte, username string) ([]LoggedKey, []byte, error) {
	ac := &audit.Client{URL: c.API.URL + audit.PathPrefix, Token: c.Token(), HTTPClient: c.API.HTTP}
	chk, err := ac.CheckLog(ctx, auditKey, seen)
	if err != nil {
		return nil, nil, err
	}
	cp := chk.Checkpoint
	var out []LoggedKey
	if cp.N == 0 {
		return nil, chk.Note, nil
	}
	err = ac.EachRecord(ctx, audit.Query{Actor: username, Tree: cp.N, Limit: audit.MaxLimit}, func(it *audit.Item) error {
		r, err := it.Verify(cp)
		if err != nil {
			return err
		}
		if r.Action != "keyset.upload" || r.Outcome != audit.OutcomeOK || r.Actor != username {
			return nil
		}
		var k LoggedKey
		for _, o := range r.Objects {
			switch o.Kind {
			case audit.KindKeySet:
				k.KeySetID = o.ID
			case audit.KindModel:
				k.ModelID = o.ID
			case fheserve.PublicKeyKind:
				k.PublicKey = o.ID
			}
		}
		if k.PublicKey != "" {
			k.Time = r.Time
			out = append(out, k)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return out, chk.Note, nil
}
