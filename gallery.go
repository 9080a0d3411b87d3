package fheserve

import (
	"context"
	"math"
	"strings"
	"time"
)

// Gallery metrics.
const GalleryCosine = "cosine"

// How a gallery decides (GalleryRequest.Decision; plan.Decision.Method).
const (
	// GalleryRandomized returns r (score - threshold) per template, r > 0
	// drawn by the server for every slot and call: the sign is the
	// decision, and the magnitude is known only within the factors'
	// spread. Two levels, a small ring: fast (docs/security.md says what a
	// result reveals).
	GalleryRandomized = "randomized"
	// GalleryPolynomial returns a composite polynomial approximation of
	// the step of score - threshold: the decision and nothing of the
	// score beyond the margin, at depth 11 and a ring 2 to 4 times larger:
	// some 50 times slower.
	GalleryPolynomial = "polynomial"
	// DefaultGalleryDecision: randomized, the method that meets real-time
	// verification and identification at scale (BENCHMARKS.md); an owner
	// for whom a few bits of each query's scores are too much chooses
	// polynomial.
	DefaultGalleryDecision = GalleryRandomized
)

// Bounds of a gallery.
const (
	DefaultGalleryCapacity = 1024  // templates, when a request gives none
	MaxGalleryCapacity     = 65536 // randomized, over 8 ciphertexts; polynomial: 32768, the slots of the largest ring
	MaxGalleryDim          = 4096
	MaxEnroll              = 4096 // templates in one enrolment request
	MaxLabel               = 128  // bytes of a label
	// GalleryNormTolerance is how far from 1 the norm of a cosine
	// gallery's embedding may be (compiler.UnitNormTolerance).
	GalleryNormTolerance = 0.01
)

// Gallery is a model whose weights are enrolled face templates, one
// labelled embedding each. Its plan (one for every query: verification of
// a claimed label and identification) is compiled for its capacity and
// does not change when templates are enrolled or removed, so users' keys
// stay valid; a query's result carries match decisions, never scores.
// The templates are stored encrypted at rest like weights, and the
// model's access list, limits and audit records apply to its queries.
type Gallery struct {
	ModelID   string  `json:"id"`
	Name      string  `json:"name"`
	Owner     string  `json:"owner"`
	Dim       int     `json:"dim"`
	Metric    string  `json:"metric"`
	Threshold float64 `json:"threshold"`
	Capacity  int     `json:"capacity"`
	// Margin is the plan's decision margin: a template whose score is
	// within Margin of Threshold may decide either way.
	Margin float64 `json:"margin"`
	// Decision is how the plan decides: GalleryRandomized or
	// GalleryPolynomial. Spread (randomized) is the factor within which a
	// result gives |score - threshold|.
	Decision string  `json:"decision"`
	Spread   float64 `json:"spread,omitempty"`
	// Templates counts the enrolled templates; Labels names them in the
	// order of an identification's decisions (filled by Gallery only).
	Templates int      `json:"templates"`
	Labels    []string `json:"labels"`
	// Revision counts the enrolments and removals.
	Revision  int       `json:"revision"`
	BlobKey   string    `json:"-"` // the encrypted templates ("" while empty)
	UpdatedAt time.Time `json:"updated_at"`
}

// GalleryRequest creates an empty gallery.
type GalleryRequest struct {
	Name      string  `json:"name"`
	Dim       int     `json:"dim"`
	Metric    string  `json:"metric,omitempty"` // GalleryCosine (the default)
	Threshold float64 `json:"threshold"`
	Capacity  int     `json:"capacity,omitempty"` // 0: DefaultGalleryCapacity
	// Decision is GalleryRandomized or GalleryPolynomial (""
	// DefaultGalleryDecision).
	Decision string `json:"decision,omitempty"`
	// Margin is the widest decision margin the owner accepts, in score
	// units (0: the compiler's default for the decision method); a
	// narrower one costs depth (polynomial) or a smaller spread of the
	// random factors (randomized).
	Margin float64 `json:"margin,omitempty"`
	// LogN forces the ring degree 2^LogN (0: the smallest that fits).
	LogN  int      `json:"log_n,omitempty"`
	Allow []string `json:"allow,omitempty"` // empty: every approved user
}

// Validate checks the request.
func (r *GalleryRequest) Validate() error {
	if !modelNameRE.MatchString(r.Name) {
		return Errorf(EINVALID, "gallery name %q is not valid: use 1 to 64 letters, digits, '_', '.' or '-'", clip(r.Name, 70))
	}
	switch {
	case r.Dim < 1 || r.Dim > MaxGalleryDim:
		return Errorf(EINVALID, "embedding dimension %d is outside 1..%d: give the length of one embedding (--dim, for example 128)", r.Dim, MaxGalleryDim)
	case r.Metric != "" && r.Metric != GalleryCosine:
		return Errorf(EINVALID, "metric %q is not supported: use %q (unit-norm embeddings)", clip(r.Metric, 20), GalleryCosine)
	case math.IsNaN(r.Threshold) || r.Threshold <= -1 || r.Threshold >= 1:
		return Errorf(EINVALID, "threshold %g is outside (-1, 1): give a cosine similarity strictly between -1 and 1 (--threshold, for example 0.5)", r.Threshold)
	case r.Capacity < 0 || r.Capacity > MaxGalleryCapacity:
		return Errorf(EINVALID, "capacity %d is outside 1..%d: give the most templates the gallery will hold (--capacity)", r.Capacity, MaxGalleryCapacity)
	case r.Decision != "" && r.Decision != GalleryRandomized && r.Decision != GalleryPolynomial:
		return Errorf(EINVALID, "decision %q is not supported: use %q or %q (--decision)", clip(r.Decision, 20), GalleryRandomized, GalleryPolynomial)
	case math.IsNaN(r.Margin) || r.Margin < 0 || r.Margin >= 1:
		return Errorf(EINVALID, "margin %g is outside [0, 1): 0 takes the default", r.Margin)
	case r.LogN != 0 && (r.LogN < 12 || r.LogN > 16):
		return Errorf(EINVALID, "log_n must be 0 (the smallest ring that fits) or between 12 and 16, not %d", r.LogN)
	}
	return validAllow(r.Allow)
}

// EnrollRequest adds templates to a gallery: Embeddings[i] is the
// embedding labelled Labels[i].
type EnrollRequest struct {
	Labels     []string    `json:"labels"`
	Embeddings [][]float64 `json:"embeddings"`
}

// Validate checks the request on its own; the gallery checks it against
// its dimension, norm, labels and capacity.
func (r *EnrollRequest) Validate() error {
	switch {
	case len(r.Labels) == 0:
		return Errorf(EINVALID, "no templates to enrol: give at least one embedding and its label")
	case len(r.Labels) > MaxEnroll:
		return Errorf(EINVALID, "%d templates in one enrolment, the limit is %d: enrol them in parts", len(r.Labels), MaxEnroll)
	case len(r.Embeddings) != len(r.Labels):
		return Errorf(EINVALID, "%d embeddings for %d labels: give one label per embedding (one line per row of the .npy file)", len(r.Embeddings), len(r.Labels))
	}
	if err := validLabels(r.Labels); err != nil {
		return err
	}
	for i, e := range r.Embeddings {
		for j, v := range e {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return Errorf(EINVALID, "embedding %d (%q) has a non-finite value at %d: re-extract it", i, clip(r.Labels[i], 40), j)
			}
		}
	}
	return nil
}

// RemoveRequest removes templates from a gallery by label.
type RemoveRequest struct {
	Labels []string `json:"labels"`
}

// Validate checks the request.
func (r *RemoveRequest) Validate() error {
	if len(r.Labels) == 0 {
		return Errorf(EINVALID, "no labels to remove: name at least one")
	}
	if len(r.Labels) > MaxEnroll {
		return Errorf(EINVALID, "%d labels in one removal, the limit is %d", len(r.Labels), MaxEnroll)
	}
	return validLabels(r.Labels)
}

func validLabels(labels []string) error {
	seen := make(map[string]int, len(labels))
	for i, l := range labels {
		switch {
		case strings.TrimSpace(l) == "":
			return Errorf(EINVALID, "label %d is empty: give every template a label (one per line)", i)
		case len(l) > MaxLabel:
			return Errorf(EINVALID, "label %d (%q) has %d bytes, more than %d: shorten it", i, clip(l, 40), len(l), MaxLabel)
		case strings.ContainsAny(l, "\n\r\x00"):
			return Errorf(EINVALID, "label %d (%q) has a line break or NUL: one label per line", i, clip(l, 40))
		}
		if j, ok := seen[l]; ok {
			return Errorf(EINVALID, "label %q is given twice (%d and %d): labels must be unique", clip(l, 40), j, i)
		}
		seen[l] = i
	}
	return nil
}

// GalleryService creates galleries and enrols and removes their
// templates (their owners), and lists their labels and counts (their
// owners and the users they allow); never the templates. Queries are
// jobs on the gallery's model (JobService.Submit): with a claim, a
// verification, without, an identification.
type GalleryService interface {
	CreateGallery(ctx context.Context, who *Account, req *GalleryRequest) (*Gallery, error)
	Gallery(ctx context.Context, who *Account, id string) (*Gallery, error)
	Enroll(ctx context.Context, who *Account, id string, req *EnrollRequest) (*Gallery, error)
	RemoveTemplates(ctx context.Context, who *Account, id string, req *RemoveRequest) (*Gallery, error)
}
