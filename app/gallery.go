package app

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/gob"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/he/server"
	"github.com/fheserve/fheserve/plan"
)

var _ fheserve.GalleryService = (*App)(nil)

// CreateGallery compiles the plan of an empty gallery of the calling
// owner: one plan for every verification and identification on up to
// its capacity templates (compiler.CompileGalleryPlan), so that users'
// keys survive enrolments. The gallery is a model: access lists, limits,
// key sets, jobs and retirement are the model's.
func (a *App) CreateGallery(ctx context.Context, who *fheserve.Account, req *fheserve.GalleryRequest) (*fheserve.Gallery, error) {
	if err := require(who, fheserve.RoleOwner); err != nil {
		return nil, err
	}
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if err := a.checkAllow(ctx, req.Allow); err != nil {
		return nil, err
	}
	capacity := req.Capacity
	if capacity == 0 {
		capacity = fheserve.DefaultGalleryCapacity
	}
	spec := &compiler.Gallery{Name: req.Name, Dim: req.Dim, Metric: compiler.MetricCosine, Threshold: req.Threshold}
	opts := compiler.GalleryOptions{Margin: req.Margin, Decision: req.Decision}
	if opts.Decision == "" {
		opts.Decision = fheserve.DefaultGalleryDecision
	}
	opts.LogN = req.LogN
	res, err := compiler.CompileGalleryPlan(spec, capacity, opts)
	if err != nil {
		return nil, deployError(req.Name, err)
	}
	info, err := newPlanInfo(res.Plan)
	if err != nil {
		return nil, deployError(req.Name, err)
	}
	m, err := a.newModel(who, &fheserve.DeployRequest{Name: req.Name, Allow: req.Allow}, res.Plan, info)
	if err != nil {
		return nil, err
	}
	// The stored program is the plan's, with stand-in rows; the
	// templates are stored apart, under the same data key.
	if err := a.storeWeights(ctx, m, res.Program); err != nil {
		return nil, err
	}
	g := &fheserve.Gallery{ModelID: m.ID, Name: m.Name, Owner: m.Owner, Dim: req.Dim, Metric: fheserve.GalleryCosine,
		Threshold: req.Threshold, Capacity: capacity, Labels: []string{}, UpdatedAt: m.CreatedAt}
	if err := a.store.CreateGallery(ctx, m, g); err != nil {
		a.blobs.Delete(ctx, m.WeightsKey)
		return nil, err
	}
	a.plans.add(m.ID, info, 1)
	a.audit(ctx, who, "gallery.create", modelObj(m.ID))
	setDecision(g, res.Plan.Decision)
	return g, nil
}

// Gallery describes a gallery with its labels in the order of an
// identification's decisions, for its owner and the users it allows;
// never its templates.
func (a *App) Gallery(ctx context.Context, who *fheserve.Account, id string) (*fheserve.Gallery, error) {
	m, err := a.visibleModel(ctx, who, id)
	if err != nil {
		return nil, err
	}
	g, tpl, err := a.gallery(ctx, m)
	if err != nil {
		return nil, err
	}
	g.Labels = tpl.Labels
	return g, nil
}

// Enroll adds templates to a gallery of the calling owner. The new
// gallery is checked as a whole (dimension, finite values, unit norm,
// unique labels, capacity) and its identification program built before
// it replaces the old one in one step: an enrolment that fails leaves
// the gallery as it was.
func (a *App) Enroll(ctx context.Context, who *fheserve.Account, id string, req *fheserve.EnrollRequest) (*fheserve.Gallery, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	return a.changeGallery(ctx, who, id, "gallery.enroll", func(g *fheserve.Gallery, tpl *compiler.Gallery) (*compiler.Gallery, error) {
		if n := tpl.Labels; len(n)+len(req.Labels) > g.Capacity {
			return nil, fheserve.Errorf(fheserve.EINVALID, "gallery %s holds %d templates; %d more exceed its capacity of %d: remove some, or create a gallery with a larger --capacity", g.ModelID, len(n), len(req.Labels), g.Capacity)
		}
		flat := make([]float64, 0, len(req.Labels)*g.Dim)
		for i, e := range req.Embeddings {
			if len(e) != g.Dim {
				return nil, fheserve.Errorf(fheserve.EINVALID, "embedding %d (%q) has %d values; gallery %s takes embeddings of dimension %d: extract them with the gallery's embedding network", i, clipLabel(req.Labels[i]), len(e), g.ModelID, g.Dim)
			}
			flat = append(flat, e...)
		}
		// The gallery's own capacity is checked above; the options only
		// bound it by the largest gallery's.
		return tpl.Enroll(req.Labels, flat, &compiler.GalleryOptions{Options: compiler.Options{LogN: 16}, Decision: plan.Randomized})
	})
}

// RemoveTemplates removes templates from a gallery of the calling owner
// by label; an unknown label is refused and nothing is removed.
func (a *App) RemoveTemplates(ctx context.Context, who *fheserve.Account, id string, req *fheserve.RemoveRequest) (*fheserve.Gallery, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	return a.changeGallery(ctx, who, id, "gallery.remove", func(_ *fheserve.Gallery, tpl *compiler.Gallery) (*compiler.Gallery, error) {
		return tpl.Remove(req.Labels...)
	})
}

func clipLabel(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// changeGallery replaces a gallery's templates by change's result: the
// new templates are stored under a new blob and the gallery's revision
// moves to them only if no other change came first; the old blob is
// deleted after. Any failure before leaves the gallery as it was.
func (a *App) changeGallery(ctx context.Context, who *fheserve.Account, id, action string, change func(*fheserve.Gallery, *compiler.Gallery) (*compiler.Gallery, error)) (*fheserve.Gallery, error) {
	if err := require(who, fheserve.RoleOwner); err != nil {
		return nil, err
	}
	m, err := a.ownModel(ctx, who, id)
	if err != nil {
		return nil, err
	}
	if m.Status != fheserve.ModelActive {
		return nil, fheserve.Errorf(fheserve.ECONFLICT, "gallery %s is retired", id)
	}
	g, tpl, err := a.gallery(ctx, m)
	if err != nil {
		return nil, err
	}
	next, err := change(g, tpl)
	if err != nil {
		return nil, err
	}
	// The identification program of the new templates: refused here, not
	// at the first query, if they do not fit the plan.
	if err := a.checkGalleryProgram(ctx, m, next); err != nil {
		return nil, err
	}
	old, rev := g.BlobKey, g.Revision
	g.Revision++
	g.Templates, g.BlobKey, g.UpdatedAt = len(next.Labels), "", a.cfg.Now().UTC()
	if len(next.Labels) > 0 {
		g.BlobKey = "models/" + m.ID + "/templates/" + strconv.Itoa(g.Revision)
		if err := a.storeTemplates(ctx, m, g, next); err != nil {
			return nil, err
		}
	}
	if err := a.store.UpdateGallery(ctx, g, rev); err != nil {
		if g.BlobKey != "" {
			a.blobs.Delete(context.WithoutCancel(ctx), g.BlobKey)
		}
		return nil, err
	}
	if old != "" {
		a.blobs.Delete(context.WithoutCancel(ctx), old)
	}
	a.audit(ctx, who, action, modelObj(m.ID))
	a.warmQueryLater(context.WithoutCancel(ctx), m, g.Templates)
	g.Labels = next.Labels
	return g, nil
}

// warmQueryLater prepares a gallery's identification in the background
// after a change, when users hold keys for it and their next query
// would otherwise wait for the preparation (18 s at 1,000 templates on
// a loaded machine, see BENCHMARKS.md). Warm-ups share the bound of the
// key sets' (Bounds.Uploads at once). An App with no workers of its own
// prepares nothing, as warmLater.
func (a *App) warmQueryLater(ctx context.Context, m *fheserve.Model, templates int) {
	if templates == 0 || a.cfg.Workers == 0 {
		return
	}
	if kss, err := a.store.KeySets(ctx, fheserve.KeySetFilter{ModelID: m.ID, Status: fheserve.KeySetActive}); err != nil || len(kss) == 0 {
		return
	}
	if a.limits.warming.Add(1) > int32(a.cfg.Bounds.Uploads) {
		a.limits.warming.Add(-1)
		return
	}
	go func() {
		defer a.limits.warming.Add(-1)
		if _, err := a.preparedQuery(ctx, m, ""); err != nil {
			a.log.Warn("cannot prepare the gallery's identification", "model", m.ID, "err", err)
		}
	}()
}

// checkGalleryProgram builds the identification program of templates
// tpl for m's plan.
func (a *App) checkGalleryProgram(ctx context.Context, m *fheserve.Model, tpl *compiler.Gallery) error {
	if len(tpl.Labels) == 0 {
		return nil
	}
	info, err := a.planOf(m)
	if err != nil {
		return err
	}
	v, err := info.plan.DecisionView(plan.Identify, tpl.Labels)
	if err != nil {
		return err
	}
	prog, err := a.loadWeights(ctx, m)
	if err != nil {
		return err
	}
	_, err = compiler.GalleryProgram(prog, v, tpl, "")
	return err
}

// gallery returns m's gallery and its templates, decrypted.
func (a *App) gallery(ctx context.Context, m *fheserve.Model) (*fheserve.Gallery, *compiler.Gallery, error) {
	g, err := a.store.Gallery(ctx, m.ID)
	if fheserve.ErrorCode(err) == fheserve.ENOTFOUND {
		return nil, nil, fheserve.Errorf(fheserve.EINVALID, "model %s is not a gallery: galleries are made with 'fheserve gallery create'", m.ID)
	} else if err != nil {
		return nil, nil, err
	}
	info, err := a.planOf(m)
	if err != nil {
		return nil, nil, err
	}
	setDecision(g, info.plan.Decision)
	tpl := &compiler.Gallery{Name: g.Name, Dim: g.Dim, Metric: compiler.MetricCosine, Threshold: g.Threshold, Labels: []string{}}
	if g.BlobKey == "" {
		return g, tpl, nil
	}
	data, err := a.openAtRest(ctx, m, g.BlobKey, templatesAAD(m.ID, g.Revision))
	if err != nil {
		return nil, nil, err
	}
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(tpl); err != nil {
		return nil, nil, fmt.Errorf("cannot decode the templates of %s: %w", m.ID, err)
	}
	return g, tpl, nil
}

// setDecision describes how g's plan decides: its method (polynomial for
// plans made before there was a choice), margin and spread.
func setDecision(g *fheserve.Gallery, d *plan.Decision) {
	g.Margin, g.Decision, g.Spread = d.Margin, fheserve.GalleryPolynomial, 0
	if d.IsRandomized() {
		g.Decision, g.Spread = fheserve.GalleryRandomized, d.Spread
	}
}

func templatesAAD(modelID string, revision int) string {
	return "templates:" + modelID + ":" + strconv.Itoa(revision)
}

// storeTemplates seals tpl under m's data key at g.BlobKey.
func (a *App) storeTemplates(ctx context.Context, m *fheserve.Model, g *fheserve.Gallery, tpl *compiler.Gallery) error {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(tpl); err != nil {
		return fmt.Errorf("cannot encode templates: %w", err)
	}
	key, err := a.keys.unwrap(m.WrappedKey, m.ID)
	if err != nil {
		return err
	}
	aead, err := newGCM(key)
	if err != nil {
		return err
	}
	w, err := a.blobs.Create(ctx, g.BlobKey)
	if err != nil {
		return err
	}
	defer w.Abort()
	if _, err := w.Write(seal(aead, buf.Bytes(), templatesAAD(m.ID, g.Revision))); err != nil {
		return err
	}
	return w.Commit()
}

// isGallery reports whether m's plan is a gallery's (only galleries
// have decision plans).
func (a *App) isGallery(m *fheserve.Model) (bool, error) {
	info, err := a.planOf(m)
	if err != nil {
		return false, err
	}
	return info.plan.Decision != nil, nil
}

// checkQuery checks a job's claim against its model: a claim only on a
// gallery, of an enrolled label; an identification only on a gallery
// with templates. It returns the audit action of the job.
func (a *App) checkQuery(ctx context.Context, m *fheserve.Model, claim string) (string, error) {
	gal, err := a.isGallery(m)
	if err != nil {
		return "", err
	}
	if !gal {
		if claim != "" {
			return "", fheserve.Errorf(fheserve.EINVALID, "model %s is not a gallery: a claim goes with 'fheserve verify' on a gallery", m.ID)
		}
		return "job.submit", nil
	}
	_, tpl, err := a.gallery(ctx, m)
	if err != nil {
		return "", err
	}
	if len(tpl.Labels) == 0 {
		return "", fheserve.Errorf(fheserve.ECONFLICT, "gallery %s has no templates yet: its owner enrols them with 'fheserve gallery enroll'", m.ID)
	}
	if claim == "" {
		return "gallery.identify", nil
	}
	if !slices.Contains(tpl.Labels, claim) {
		return "", fheserve.Errorf(fheserve.ENOTFOUND, "gallery %s has no template labelled %q: claim an enrolled label ('fheserve gallery list %s')", m.ID, clipLabel(claim), m.ID)
	}
	return "gallery.verify", nil
}

// preparedQuery returns a gallery job's query prepared for evaluation:
// the view of the gallery's plan with the job's declared decisions and
// the program of the gallery's current templates (the claimed row for a
// verification), cached (queryKey).
func (a *App) preparedQuery(ctx context.Context, m *fheserve.Model, claim string) (*preparedModel, error) {
	g, tpl, err := a.gallery(ctx, m)
	if err != nil {
		return nil, err
	}
	key, err := queryKey(m.ID, g.Revision, tpl, claim)
	if err != nil {
		return nil, err
	}
	for {
		if pm, ok := a.models.get(key); ok {
			return pm, nil
		}
		// One preparation of a query at a time: a job waits for the
		// one under way (the warm-up after an enrolment, or another job).
		done := make(chan struct{})
		other, busy := preparing.LoadOrStore(key, done)
		if !busy {
			defer func() { preparing.Delete(key); close(done) }()
			return a.prepareQuery(ctx, m, tpl, claim, key)
		}
		select {
		case <-other.(chan struct{}):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// preparing holds a channel per query key being prepared, closed when the
// preparation ends (keys name models, whose ids are unique).
var preparing sync.Map

// prepareQuery prepares a query on templates tpl and caches it under key.
func (a *App) prepareQuery(ctx context.Context, m *fheserve.Model, tpl *compiler.Gallery, claim, key string) (*preparedModel, error) {
	base, err := a.planOf(m)
	if err != nil {
		return nil, err
	}
	mode, labels := plan.Identify, tpl.Labels
	if claim != "" {
		mode, labels = plan.Verify, nil
	}
	v, err := base.plan.DecisionView(mode, labels)
	if err != nil {
		return nil, err
	}
	prog, err := a.loadWeights(ctx, m)
	if err != nil {
		return nil, err
	}
	prog, err = compiler.GalleryProgram(prog, v, tpl, claim)
	if err != nil {
		return nil, err
	}
	sm, err := server.Prepare(v, prog)
	if err != nil {
		return nil, err
	}
	info := &planInfo{plan: v, params: base.params, rotation: base.rotation}
	pm := a.newPrepared(info, sm)
	a.models.add(key, pm, 1)
	return pm, nil
}

// queryKey names a prepared query in the cache: an identification by
// the gallery's revision, a verification by the claimed template's row
// (a hash of it), so that enrolling or removing other templates does not
// make a claim's program be prepared again.
func queryKey(modelID string, revision int, tpl *compiler.Gallery, claim string) (string, error) {
	if claim == "" {
		return modelID + "/identify/" + strconv.Itoa(revision), nil
	}
	i := slices.Index(tpl.Labels, claim)
	if i < 0 {
		return "", fheserve.Errorf(fheserve.ENOTFOUND, "gallery %s has no template labelled %q: claim an enrolled label ('fheserve gallery list %s')", modelID, clipLabel(claim), modelID)
	}
	h := sha256.New()
	for _, v := range tpl.Templates[i*tpl.Dim : (i+1)*tpl.Dim] {
		h.Write(binary.LittleEndian.AppendUint64(nil, math.Float64bits(v)))
	}
	return modelID + "/verify/" + hex.EncodeToString(h.Sum(nil)), nil
}

// warmPrepared is what a new key set's evaluator is prepared on: the
// model, or for a gallery its identification (nil while it has no
// templates), never the gallery plan's stand-in program.
func (a *App) warmPrepared(ctx context.Context, m *fheserve.Model) (*preparedModel, error) {
	switch gal, err := a.isGallery(m); {
	case err != nil:
		return nil, err
	case !gal:
		return a.prepared(ctx, m)
	}
	g, err := a.store.Gallery(ctx, m.ID)
	if err != nil || g.Templates == 0 {
		return nil, err
	}
	return a.preparedQuery(ctx, m, "")
}
