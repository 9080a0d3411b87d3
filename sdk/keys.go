package sdk

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/he"
	"github.com/fheserve/fheserve/he/client"
	"github.com/fheserve/fheserve/plan"
)

// Keys are a user's keys for one model's plan: the secret key, which
// stays here, and until they are uploaded, the public and evaluation keys.
type Keys struct {
	ModelID string
	Plan    *plan.Plan
	// KeySetID is the server's id of the uploaded public part ("" before
	// UploadKeys).
	KeySetID string

	params he.Parameters
	secret *client.Keys // safe for concurrent use
	eval   *he.EvalKeys // nil for keys loaded from a secret
}

// GenerateKeys fetches a model's plan and generates keys for it.
func (c *Client) GenerateKeys(ctx context.Context, modelID string) (*Keys, error) {
	p, err := c.Plan(ctx, modelID)
	if err != nil {
		return nil, err
	}
	return NewKeys(modelID, p)
}

// NewKeys generates keys for a model's plan: a secret key, the public key
// and exactly the evaluation keys the plan lists.
func NewKeys(modelID string, p *plan.Plan) (*Keys, error) {
	return NewKeysProgress(modelID, p, nil)
}

// NewKeysProgress is NewKeys that calls progress, if not nil, after each
// evaluation key it generates: done of total (client.GenerateKeysProgress).
func NewKeysProgress(modelID string, p *plan.Plan, progress func(done, total int)) (*Keys, error) {
	params, err := he.NewParameters(p.Params)
	if err != nil {
		return nil, err
	}
	secret, eval, err := client.GenerateKeysProgress(params, he.PlanKeys(p), progress)
	if err != nil {
		return nil, err
	}
	return &Keys{ModelID: modelID, Plan: p, params: params, secret: secret, eval: eval}, nil
}

// LoadKeys restores keys from MarshalSecret's bytes, for encryption and
// decryption under an uploaded key set.
func LoadKeys(modelID, keySetID string, p *plan.Plan, secret []byte) (*Keys, error) {
	params, err := he.NewParameters(p.Params)
	if err != nil {
		return nil, err
	}
	sk, err := client.UnmarshalSecret(params, secret)
	if err != nil {
		return nil, err
	}
	return &Keys{ModelID: modelID, KeySetID: keySetID, Plan: p, params: params, secret: sk}, nil
}

// MarshalSecret encodes the secret key for storage on the device. The
// bytes are the secret: store them protected (mode 0600).
func (k *Keys) MarshalSecret() ([]byte, error) { return k.secret.MarshalSecret() }

// EvalKeysSize is the size of the public and evaluation keys upload.
func (k *Keys) EvalKeysSize() int {
	return he.EvalKeysSize(k.params, he.PlanKeys(k.Plan))
}

// WriteEvalKeys writes the public and evaluation keys in the wire format
// the server takes (EvalKeysSize bytes); UploadKeys sends the same bytes.
func (k *Keys) WriteEvalKeys(w io.Writer) error {
	if k.eval == nil {
		return fheserve.Errorf(fheserve.EINVALID, "these keys were loaded from a secret key and hold no evaluation keys to upload; generate new keys")
	}
	return he.MarshalEvalKeys(w, k.params, k.eval)
}

// UploadKeys uploads the public and evaluation keys of k (never the
// secret key), streaming them, and sets k.KeySetID. It checks that the
// server stored exactly the bytes sent. replaces, if not empty, names a
// key set of the user for the same model that the new one replaces.
func (c *Client) UploadKeys(ctx context.Context, k *Keys, replaces string) (*fheserve.KeySet, error) {
	if k.eval == nil {
		return nil, k.WriteEvalKeys(nil)
	}
	pr, pw := io.Pipe()
	h := sha256.New()
	go func() {
		pw.CloseWithError(k.WriteEvalKeys(io.MultiWriter(pw, h)))
	}()
	ks, err := c.API.UploadKeys(ctx, k.ModelID, pr, int64(k.EvalKeysSize()), replaces)
	pr.Close()
	if err != nil {
		return nil, err
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != ks.Fingerprint {
		return nil, fheserve.Errorf(fheserve.EINTERNAL, "the server reports fingerprint %s for the key set, not %s", ks.Fingerprint, sum)
	}
	k.KeySetID = ks.ID
	return ks, nil
}

// Encrypt encodes and encrypts n samples (row-major, n*InputSize values,
// n at most the plan's batch size) as one call's input, in the wire
// format the server takes.
func (k *Keys) Encrypt(x []float64, n int) ([]byte, error) {
	p := k.Plan
	vecs, err := p.EncodeInput(x, n)
	if err != nil {
		return nil, err
	}
	return k.secret.EncryptSeeded(vecs, p.Input.Level, k.params.DefaultScale(), p.Input.Encoding != plan.Coeffs)
}

// Decrypt reads one call's encrypted result, decrypts it and decodes the
// n samples' outputs (row-major) with the plan's head applied.
//
// Before the head, it checks each sample's values against the plan's
// output bound (plan.Plan.OutOfBound). When some exceed it, Decrypt
// returns every output and an *OutOfBoundError naming those samples: their
// inputs probably left the interval an activation was calibrated on, or
// their values wrapped around the modulus, and their outputs mean nothing
// (a sigmoid would turn garbage into a plausible probability).
func (k *Keys) Decrypt(result io.Reader, n int) ([]float64, error) {
	p := k.Plan
	y, err := k.DecryptRaw(result, n)
	if err != nil {
		return nil, err
	}
	bad := outOfBound(p, y, n)
	plan.ApplyHead(p.Head, y, p.OutputSize())
	if bad != nil {
		return y, bad
	}
	return y, nil
}

// DecryptRaw is Decrypt without the head and without the check: the
// values the server computed, as they decrypt.
func (k *Keys) DecryptRaw(result io.Reader, n int) ([]float64, error) {
	return k.decrypt(k.Plan, result, n)
}

// decrypt decrypts a result and decodes it with plan p, k's plan or a
// view of it (plan.Plan.DecisionView).
func (k *Keys) decrypt(p *plan.Plan, result io.Reader, n int) ([]float64, error) {
	cts, err := he.UnmarshalResult(result, k.params, he.Limits{MaxCount: p.Output.Ciphertexts})
	if err != nil {
		return nil, err
	}
	var vals [][]float64
	if p.Output.Encoding == plan.Coeffs {
		vals, err = k.secret.DecryptCoeffs(cts)
	} else {
		vals, err = k.secret.Decrypt(cts)
	}
	if err != nil {
		return nil, err
	}
	return p.DecodeRaw(vals, n)
}
