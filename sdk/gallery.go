package sdk

import (
	"bytes"
	"context"
	"math"
	"slices"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/plan"
)

// CreateGallery creates an empty gallery (owners): its one plan serves
// every verification and identification on up to its capacity templates.
func (c *Client) CreateGallery(ctx context.Context, req *fheserve.GalleryRequest) (*fheserve.Gallery, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	return c.API.CreateGallery(ctx, req)
}

// Gallery returns a gallery's labels (in the order of identification
// decisions) and counts.
func (c *Client) Gallery(ctx context.Context, id string) (*fheserve.Gallery, error) {
	return c.API.Gallery(ctx, id)
}

// Enroll adds embeddings[i] under labels[i] to a gallery (its owner).
// The server checks the whole enrolment; one that fails changes nothing.
func (c *Client) Enroll(ctx context.Context, id string, labels []string, embeddings [][]float64) (*fheserve.Gallery, error) {
	req := &fheserve.EnrollRequest{Labels: labels, Embeddings: embeddings}
	if err := req.Validate(); err != nil {
		return nil, err
	}
	return c.API.Enroll(ctx, id, req)
}

// RemoveTemplates removes templates by label (its owner).
func (c *Client) RemoveTemplates(ctx context.Context, id string, labels ...string) (*fheserve.Gallery, error) {
	req := &fheserve.RemoveRequest{Labels: labels}
	if err := req.Validate(); err != nil {
		return nil, err
	}
	return c.API.RemoveTemplates(ctx, id, req)
}

// CheckProbe refuses a probe embedding that a gallery plan cannot decide
// on: of another dimension, with a non-finite value, or, for a cosine
// gallery, not of unit norm. The server never sees the probe, so only
// the device can check it.
func CheckProbe(p *plan.Plan, probe []float64) error {
	d := p.Decision
	if d == nil {
		return fheserve.Errorf(fheserve.EINVALID, "model %q is not a gallery: verify and identify take a gallery made with 'fheserve gallery create'", p.Model)
	}
	if len(probe) != p.InputSize() {
		return fheserve.Errorf(fheserve.EINVALID, "the embedding has %d values; the gallery takes embeddings of dimension %d: extract it with the gallery's embedding network", len(probe), p.InputSize())
	}
	var s float64
	for i, v := range probe {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fheserve.Errorf(fheserve.EINVALID, "the embedding has a non-finite value at %d: re-extract it", i)
		}
		s += v * v
	}
	if n := math.Sqrt(s); d.Metric == fheserve.GalleryCosine && math.Abs(n-1) > fheserve.GalleryNormTolerance {
		return fheserve.Errorf(fheserve.EINVALID, "the embedding has norm %.4g, not 1 (within %g): normalize it to unit length for a cosine gallery", n, fheserve.GalleryNormTolerance)
	}
	return nil
}

// Verify runs a 1:1 verification of probe against the template labelled
// claim, under encryption: the probe is encrypted here, and the result,
// decrypted here, holds the one match decision and nothing else. k are
// keys for the gallery's plan, uploaded.
func (c *Client) Verify(ctx context.Context, k *Keys, claim string, probe []float64) (bool, error) {
	if claim == "" {
		return false, fheserve.Errorf(fheserve.EINVALID, "no claim: name the enrolled label to verify against")
	}
	v, err := k.Plan.DecisionView(plan.Verify, nil)
	if err != nil {
		return false, err
	}
	out, err := c.query(ctx, k, v, claim, probe)
	if err != nil {
		return false, err
	}
	return v.Decision.Decisions(out)[0], nil
}

// Identify runs a 1:N identification of probe under encryption and
// returns the labels whose templates match, in the gallery's order: the
// result holds one match decision per enrolled template, never a score.
// If the gallery changes while the query runs it returns ECONFLICT, as
// its decisions would be named by other labels.
func (c *Client) Identify(ctx context.Context, k *Keys, probe []float64) ([]string, error) {
	before, err := c.Gallery(ctx, k.ModelID)
	if err != nil {
		return nil, err
	}
	if len(before.Labels) == 0 {
		return nil, fheserve.Errorf(fheserve.ECONFLICT, "gallery %s has no templates yet: its owner enrols them with 'fheserve gallery enroll'", k.ModelID)
	}
	v, err := k.Plan.DecisionView(plan.Identify, before.Labels)
	if err != nil {
		return nil, err
	}
	out, err := c.query(ctx, k, v, "", probe)
	if err != nil {
		return nil, err
	}
	after, err := c.Gallery(ctx, k.ModelID)
	if err != nil {
		return nil, err
	}
	if after.Revision != before.Revision {
		return nil, fheserve.Errorf(fheserve.ECONFLICT, "gallery %s changed while the identification ran: run it again", k.ModelID)
	}
	match := []string{}
	for i, ok := range v.Decision.Decisions(out) {
		if ok {
			match = append(match, before.Labels[i])
		}
	}
	return match, nil
}

// query encrypts probe, runs it as one job on k's gallery (a
// verification of claim, or an identification) and decrypts the
// decisions of view v.
func (c *Client) query(ctx context.Context, k *Keys, v *plan.Plan, claim string, probe []float64) ([]float64, error) {
	if k.KeySetID == "" {
		return nil, fheserve.Errorf(fheserve.EINVALID, "the keys are not uploaded: call UploadKeys first")
	}
	if err := CheckProbe(k.Plan, probe); err != nil {
		return nil, err
	}
	ct, err := k.Encrypt(slices.Clone(probe), 1)
	if err != nil {
		return nil, err
	}
	req := &fheserve.SubmitRequest{ModelID: k.ModelID, KeySetID: k.KeySetID, Samples: 1, Claim: claim}
	j, err := c.API.Submit(ctx, req, bytes.NewReader(ct), int64(len(ct)))
	if err != nil {
		return nil, err
	}
	if _, err := c.Wait(ctx, j.ID, nil); err != nil {
		return nil, err
	}
	r, err := c.API.Result(ctx, j.ID)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return k.decrypt(v, r, 1)
}
