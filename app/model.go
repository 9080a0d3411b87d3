package app

import (
	"bytes"
	"context"
	"encoding/gob"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/he"
	"github.com/fheserve/fheserve/he/server"
	"github.com/fheserve/fheserve/nn/onnx"
	"github.com/fheserve/fheserve/npy"
	"github.com/fheserve/fheserve/plan"
)

// planInfo is a model's decoded plan and its CKKS parameters.
type planInfo struct {
	plan   *plan.Plan
	params he.Parameters
	// rotation of each Galois element, for messages about missing keys
	rotation map[uint64]int
}

// preparedModel is a model's weights encoded for evaluation.
type preparedModel struct {
	*planInfo
	model  *server.Model
	memory int64 // one evaluation's memory estimate
}

// Deploy imports, compiles and stores a model of the calling owner. The
// weights are stored encrypted under a fresh data key.
func (a *App) Deploy(ctx context.Context, who *fheserve.Account, req *fheserve.DeployRequest) (*fheserve.Model, error) {
	res, err := a.compileChecked(ctx, who, req)
	if err != nil {
		return nil, err
	}
	info, err := newPlanInfo(res.Plan)
	if err != nil {
		return nil, deployError(req.Name, err)
	}
	sm, err := server.Prepare(res.Plan, res.Program)
	if err != nil {
		return nil, deployError(req.Name, err)
	}
	m, err := a.newModel(who, req, res.Plan, info)
	if err != nil {
		return nil, err
	}
	if err := a.storeWeights(ctx, m, res.Program); err != nil {
		return nil, err
	}
	if err := a.store.CreateModel(ctx, m); err != nil {
		a.blobs.Delete(ctx, m.WeightsKey)
		return nil, err
	}
	a.plans.add(m.ID, info, 1)
	a.models.add(m.ID, a.newPrepared(info, sm), 1)
	a.audit(ctx, who, "model.deploy", modelObj(m.ID))
	return m, nil
}

// compileDeployment imports the request's model and calibration data and
// compiles them with the owner's settings.
func compileDeployment(req *fheserve.DeployRequest) (*compiler.Result, error) {
	g, err := onnx.Import(req.ONNX, onnx.Options{})
	if err != nil {
		return nil, deployError(req.Name, err)
	}
	g.Name = req.Name
	var calib []float64
	if len(req.Calibration) > 0 {
		arr, err := npy.Read(bytes.NewReader(req.Calibration), int64(len(req.Calibration)))
		if err != nil {
			return nil, fheserve.Errorf(fheserve.EINVALID, "calibration data: %s", fheserve.ErrorMessage(err))
		}
		size := g.Input.Size()
		if len(arr.Data) == 0 || len(arr.Data)%size != 0 {
			return nil, fheserve.Errorf(fheserve.EINVALID, "calibration data of shape %v does not hold whole samples of the model's input %v", arr.Shape, g.Input)
		}
		calib = arr.Data
	}
	res, err := compiler.Compile(g, CompilerOptions(req.Packing, &req.CompileSettings, calib))
	if err != nil {
		return nil, deployError(req.Name, err)
	}
	return res, nil
}

// newModel is the model record of a deployment of plan p by who.
func (a *App) newModel(who *fheserve.Account, req *fheserve.DeployRequest, p *plan.Plan, info *planInfo) (*fheserve.Model, error) {
	planJSON, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	m := &fheserve.Model{
		ID:                newID("mdl"),
		OwnerID:           who.ID,
		Owner:             who.Username,
		Name:              req.Name,
		Status:            fheserve.ModelActive,
		Allow:             req.Allow,
		Labels:            req.Labels,
		Packing:           p.Packing,
		LogN:              p.Params.LogN,
		InputShape:        p.InputShape,
		OutputShape:       p.OutputShape,
		BatchSize:         p.BatchSize,
		Rotations:         len(p.Rotations),
		OutputError:       p.Precision.OutputError,
		PlanFingerprint:   p.Fingerprint,
		ParamsFingerprint: he.Fingerprint(info.params),
		ModelBytes:        int64(len(req.ONNX)),
		PlanJSON:          planJSON,
		CreatedAt:         a.cfg.Now().UTC(),
	}
	m.WeightsKey = "models/" + m.ID + "/weights"
	return m, nil
}

// CompilerOptions maps an owner's compile settings to the compiler's
// options. With calibration data and no approximation setting the
// compiler chooses degrees, fit and margin from the data (its activation
// search); with calibration data and a degree or margin but no fit, the
// fit is least squares (on ReLU CNNs it measured more accurate than
// interpolation: a stride-2 digits CNN went from 60/64 to 64/64
// agreement with the plaintext model). 'fheserve compile' uses this too,
// so that a compiled plan is the one a deployment gets.
func CompilerOptions(packing string, s *fheserve.CompileSettings, calibration []float64) compiler.Options {
	fit := s.Fit
	if fit == "" && len(calibration) > 0 && (s.Degree != 0 || len(s.Degrees) > 0 || s.Margin != 0) {
		fit = compiler.FitLeastSquares
	}
	return compiler.Options{
		Packing:       packing,
		Calibration:   calibration,
		Degree:        s.Degree,
		Degrees:       s.Degrees,
		Fit:           fit,
		Margin:        s.Margin,
		LogN:          s.LogN,
		PrivacyBits:   s.PrivacyBits,
		QueryBudget:   s.QueryBudget,
		PrecisionBits: s.PrecisionBits,
		Precision:     s.Precision,
		Keys:          s.Keys,
		NoTiles:       s.NoTiles,
	}
}

// CheckDeploy reports whether who may deploy models, so that a server can
// refuse a large upload before reading it.
func (a *App) CheckDeploy(who *fheserve.Account) error {
	return require(who, fheserve.RoleOwner)
}

// DeploySlot reserves one of the Bounds.Deploys places for a deployment
// of who, to hold from before its body is read until Deploy returns: 429
// at once when who is deploying already, 503 when no place frees up
// within UploadWait.
func (a *App) DeploySlot(ctx context.Context, who *fheserve.Account) (release func(), err error) {
	if err := a.CheckDeploy(who); err != nil {
		return nil, err
	}
	return a.limits.deploys.take(ctx, who, a.cfg.Bounds.UploadWait)
}

// deployError keeps the importer's and compiler's messages, which name the
// node and what to use instead, and their codes.
func deployError(name string, err error) error {
	code := fheserve.ErrorCode(err)
	if code == fheserve.EINTERNAL {
		return err
	}
	return fheserve.Errorf(code, "cannot deploy %q: %s", name, fheserve.ErrorMessage(err))
}

// checkAllow checks that an allow-list names model users.
func (a *App) checkAllow(ctx context.Context, allow []string) error {
	for _, u := range allow {
		acct, err := a.store.AccountByUsername(ctx, u)
		if fheserve.ErrorCode(err) == fheserve.ENOTFOUND {
			return fheserve.Errorf(fheserve.EINVALID, "allow-list names %q, which is not an account", u)
		} else if err != nil {
			return err
		}
		if acct.Role != fheserve.RoleUser {
			return fheserve.Errorf(fheserve.EINVALID, "allow-list names %q, which is not a model user", u)
		}
	}
	return nil
}

// storeWeights seals the program under a fresh data key.
func (a *App) storeWeights(ctx context.Context, m *fheserve.Model, prog *plan.Program) error {
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(prog); err != nil {
		return fmt.Errorf("cannot encode weights: %w", err)
	}
	key, wrapped := a.keys.newDataKey(m.ID)
	aead, err := newGCM(key)
	if err != nil {
		return err
	}
	sealed := seal(aead, buf.Bytes(), "weights:"+m.ID)
	w, err := a.blobs.Create(ctx, m.WeightsKey)
	if err != nil {
		return err
	}
	if _, err := w.Write(sealed); err != nil {
		w.Abort()
		return err
	}
	if err := w.Commit(); err != nil {
		return err
	}
	m.WrappedKey = wrapped
	return nil
}

// loadWeights reads and decrypts a model's program.
func (a *App) loadWeights(ctx context.Context, m *fheserve.Model) (*plan.Program, error) {
	data, err := a.openAtRest(ctx, m, m.WeightsKey, "weights:"+m.ID)
	if err != nil {
		return nil, err
	}
	var prog plan.Program
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(&prog); err != nil {
		return nil, fmt.Errorf("cannot decode the weights of %s: %w", m.ID, err)
	}
	return &prog, nil
}

// openAtRest reads and decrypts a blob sealed under m's data key.
func (a *App) openAtRest(ctx context.Context, m *fheserve.Model, blobKey, aad string) ([]byte, error) {
	key, err := a.keys.unwrap(m.WrappedKey, m.ID)
	if err != nil {
		return nil, err
	}
	r, _, err := a.blobs.Open(ctx, blobKey)
	if err != nil {
		return nil, err
	}
	sealed, err := io.ReadAll(r)
	r.Close()
	if err != nil {
		return nil, err
	}
	aead, err := newGCM(key)
	if err != nil {
		return nil, err
	}
	return open(aead, sealed, aad)
}

func newPlanInfo(p *plan.Plan) (*planInfo, error) {
	params, err := he.NewParameters(p.Params)
	if err != nil {
		return nil, err
	}
	rot := make(map[uint64]int, len(p.Rotations))
	for _, r := range p.Rotations {
		rot[params.GaloisElement(r)] = r
	}
	return &planInfo{plan: p, params: params, rotation: rot}, nil
}

// planOf returns a model's decoded plan, from the cache if it is there.
func (a *App) planOf(m *fheserve.Model) (*planInfo, error) {
	if info, ok := a.plans.get(m.ID); ok {
		return info, nil
	}
	var p plan.Plan
	if err := json.Unmarshal(m.PlanJSON, &p); err != nil {
		return nil, fmt.Errorf("stored plan of %s: %w", m.ID, err)
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("stored plan of %s: %w", m.ID, err)
	}
	info, err := newPlanInfo(&p)
	if err != nil {
		return nil, err
	}
	a.plans.add(m.ID, info, 1)
	return info, nil
}

// prepared returns a model ready for evaluation, from the cache if it is
// there.
func (a *App) prepared(ctx context.Context, m *fheserve.Model) (*preparedModel, error) {
	if pm, ok := a.models.get(m.ID); ok {
		return pm, nil
	}
	info, err := a.planOf(m)
	if err != nil {
		return nil, err
	}
	prog, err := a.loadWeights(ctx, m)
	if err != nil {
		return nil, err
	}
	sm, err := server.Prepare(info.plan, prog)
	if err != nil {
		return nil, err
	}
	pm := a.newPrepared(info, sm)
	a.models.add(m.ID, pm, 1)
	return pm, nil
}

func (a *App) newPrepared(info *planInfo, sm *server.Model) *preparedModel {
	return &preparedModel{planInfo: info, model: sm, memory: sm.MemoryEstimate(a.cfg.EvalThreads)}
}

// visibleModel returns the model if who may see it: an administrator, its
// owner, or a user it allows.
func (a *App) visibleModel(ctx context.Context, who *fheserve.Account, id string) (*fheserve.Model, error) {
	if err := require(who); err != nil {
		return nil, err
	}
	m, err := a.store.Model(ctx, id)
	if err != nil {
		return nil, err
	}
	switch who.Role {
	case fheserve.RoleAdmin:
	case fheserve.RoleOwner:
		if m.OwnerID != who.ID {
			return nil, fheserve.Errorf(fheserve.EFORBIDDEN, "model %s belongs to another owner", id)
		}
	default:
		if !m.Allows(who.Username) {
			return nil, fheserve.Errorf(fheserve.EFORBIDDEN, "%q is not allowed to use model %s; ask its owner %q to add you", who.Username, id, m.Owner)
		}
		hideAllow(m, who.Username)
	}
	return m, nil
}

// hideAllow shows a model's user only its own name on the allow-list:
// the list names the other users. An open model stays open.
func hideAllow(m *fheserve.Model, username string) {
	if !m.Open() {
		m.Allow = []string{username}
	}
}

// usableModel returns the model if who is a user it allows and it is
// active.
func (a *App) usableModel(ctx context.Context, who *fheserve.Account, id string) (*fheserve.Model, error) {
	if err := require(who, fheserve.RoleUser); err != nil {
		return nil, err
	}
	m, err := a.visibleModel(ctx, who, id)
	if err != nil {
		return nil, err
	}
	if m.Status != fheserve.ModelActive {
		return nil, fheserve.Errorf(fheserve.ECONFLICT, "model %s was retired by its owner; list the models you can use with 'fheserve model list'", id)
	}
	return m, nil
}

// ownModel returns the model if who owns it or is an administrator.
func (a *App) ownModel(ctx context.Context, who *fheserve.Account, id string) (*fheserve.Model, error) {
	if err := require(who, fheserve.RoleOwner, fheserve.RoleAdmin); err != nil {
		return nil, err
	}
	return a.visibleModel(ctx, who, id)
}

// Models lists the models who may see: all for an administrator, its own
// for an owner, the active ones it may use for a user.
func (a *App) Models(ctx context.Context, who *fheserve.Account) ([]*fheserve.Model, error) {
	if err := require(who); err != nil {
		return nil, err
	}
	switch who.Role {
	case fheserve.RoleAdmin:
		return a.store.Models(ctx, fheserve.ModelFilter{})
	case fheserve.RoleOwner:
		return a.store.Models(ctx, fheserve.ModelFilter{OwnerID: who.ID})
	}
	all, err := a.store.Models(ctx, fheserve.ModelFilter{Status: fheserve.ModelActive})
	if err != nil {
		return nil, err
	}
	ms := slices.DeleteFunc(all, func(m *fheserve.Model) bool { return !m.Allows(who.Username) })
	for _, m := range ms {
		hideAllow(m, who.Username)
	}
	return ms, nil
}

// Model returns one model's description.
func (a *App) Model(ctx context.Context, who *fheserve.Account, id string) (*fheserve.Model, error) {
	return a.visibleModel(ctx, who, id)
}

// Plan returns a model's public plan as JSON. The weights never leave.
func (a *App) Plan(ctx context.Context, who *fheserve.Account, id string) ([]byte, error) {
	m, err := a.visibleModel(ctx, who, id)
	if err != nil {
		return nil, err
	}
	return m.PlanJSON, nil
}

// Retire stops new keys and jobs on a model; queued jobs still run.
func (a *App) Retire(ctx context.Context, who *fheserve.Account, id string) (*fheserve.Model, error) {
	m, err := a.ownModel(ctx, who, id)
	if err != nil {
		return nil, err
	}
	if m.Status == fheserve.ModelRetired {
		return nil, fheserve.Errorf(fheserve.ECONFLICT, "model %s is already retired", id)
	}
	now := a.cfg.Now().UTC()
	m.Status, m.RetiredAt = fheserve.ModelRetired, &now
	if err := a.store.UpdateModel(ctx, m); err != nil {
		return nil, err
	}
	a.audit(ctx, who, "model.retire", modelObj(id))
	return m, nil
}

// SetAccess replaces a model's allow-list.
func (a *App) SetAccess(ctx context.Context, who *fheserve.Account, id string, req *fheserve.AccessRequest) (*fheserve.Model, error) {
	m, err := a.ownModel(ctx, who, id)
	if err != nil {
		return nil, err
	}
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if err := a.checkAllow(ctx, req.Allow); err != nil {
		return nil, err
	}
	m.Allow = req.Allow
	if err := a.store.UpdateModel(ctx, m); err != nil {
		return nil, err
	}
	a.audit(ctx, who, "model.access", modelObj(id))
	return m, nil
}

// Usage summarizes the jobs on a model: all of them for its owner or an
// administrator, their own for a user the model allows. It never shows
// inputs or results.
func (a *App) Usage(ctx context.Context, who *fheserve.Account, id string) (*fheserve.Usage, error) {
	m, err := a.visibleModel(ctx, who, id)
	if err != nil {
		return nil, err
	}
	jf := fheserve.JobFilter{ModelID: m.ID}
	kf := fheserve.KeySetFilter{ModelID: m.ID, Status: fheserve.KeySetActive}
	if who.Role == fheserve.RoleUser {
		jf.AccountID, kf.AccountID = who.ID, who.ID
	}
	jobs, err := a.store.Jobs(ctx, jf)
	if err != nil {
		return nil, err
	}
	keySets, err := a.store.KeySets(ctx, kf)
	if err != nil {
		return nil, err
	}
	u := usageOf(m.ID, jobs)
	jobsOf, samplesOf := map[string]int{}, map[string]int{}
	for _, j := range jobs {
		jobsOf[j.KeySetID]++
		samplesOf[j.KeySetID] += j.Samples
	}
	u.KeySets = []fheserve.KeySetUsage{}
	for _, ks := range keySets {
		u.KeySets = append(u.KeySets, fheserve.KeySetUsage{ID: ks.ID, User: ks.Username, CreatedAt: ks.CreatedAt,
			Jobs: jobsOf[ks.ID], Samples: samplesOf[ks.ID]})
	}
	u.Quota = quotaState(m.Limits, jobs, a.cfg.Now())
	return u, nil
}

// usageOf counts jobs and their samples: in all, per user, per day, per
// user and hour or day, and failures by cause; and takes latency
// percentiles.
func usageOf(modelID string, jobs []*fheserve.Job) *fheserve.Usage {
	u := &fheserve.Usage{ModelID: modelID, FailuresByCause: map[string]int{}}
	users, days := map[string]*fheserve.UsageLine{}, map[string]*fheserve.UsageLine{}
	userHours, userDays := map[string]*fheserve.UsageLine{}, map[string]*fheserve.UsageLine{}
	var total, wait, eval []float64
	count := func(m map[string]*fheserve.UsageLine, user, key string, j *fheserve.Job, failed bool) {
		l, ok := m[user+" "+key]
		if !ok {
			l = &fheserve.UsageLine{Key: key, User: user}
			m[user+" "+key] = l
		}
		l.Requests++
		l.Samples += j.Samples
		if failed {
			l.Failures++
		}
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	for _, j := range jobs {
		failed := j.Status == fheserve.JobFailed
		u.Requests++
		u.Samples += j.Samples
		if failed {
			u.Failures++
			u.FailuresByCause[j.ErrorCode]++
		}
		created := j.CreatedAt.UTC()
		count(users, "", j.Username, j, failed)
		count(days, "", created.Format(time.DateOnly), j, failed)
		count(userHours, j.Username, created.Format("2006-01-02T15"), j, failed)
		count(userDays, j.Username, created.Format(time.DateOnly), j, failed)
		if !failed && j.FinishedAt != nil {
			total = append(total, ms(j.FinishedAt.Sub(j.CreatedAt)))
		}
		if j.StartedAt != nil && j.FinishedAt != nil {
			wait = append(wait, ms(j.StartedAt.Sub(j.CreatedAt)))
			eval = append(eval, ms(j.FinishedAt.Sub(*j.StartedAt)))
		}
	}
	u.ByUser, u.ByDay = lines(users), lines(days)
	u.ByUserHour, u.ByUserDay = lines(userHours), lines(userDays)
	u.Latency, u.QueueWait, u.Evaluation = fheserve.LatencyOf(total), fheserve.LatencyOf(wait), fheserve.LatencyOf(eval)
	return u
}

// lines returns m's lines by user, then key.
func lines(m map[string]*fheserve.UsageLine) []fheserve.UsageLine {
	out := []fheserve.UsageLine{}
	for _, l := range m {
		out = append(out, *l)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].User != out[j].User {
			return out[i].User < out[j].User
		}
		return out[i].Key < out[j].Key
	})
	return out
}

// quotaState describes a model's limits and counts the jobs of today and
// their samples.
func quotaState(l fheserve.ModelLimits, jobs []*fheserve.Job, now time.Time) fheserve.QuotaState {
	q := fheserve.QuotaState{Limits: l, Set: l != fheserve.ModelLimits{}}
	today := now.UTC().Truncate(24 * time.Hour)
	for _, j := range jobs {
		if !j.CreatedAt.Before(today) {
			q.Today++
			q.TodaySamples += j.Samples
		}
	}
	if !q.Set {
		q.Summary = "no quota set"
		return q
	}
	var parts []string
	if l.RatePerMinute > 0 {
		parts = append(parts, fmt.Sprintf("%s samples/min per user (bursts of %d)", trimFloat(l.RatePerMinute), fheserve.BurstOr(l.Burst, l.RatePerMinute)))
	}
	if l.Daily > 0 {
		parts = append(parts, fmt.Sprintf("%d samples/day per user", l.Daily))
	}
	if l.ModelRatePerMinute > 0 {
		parts = append(parts, fmt.Sprintf("%s samples/min for all users (bursts of %d)", trimFloat(l.ModelRatePerMinute), fheserve.BurstOr(l.ModelBurst, l.ModelRatePerMinute)))
	}
	if l.ModelDaily > 0 {
		parts = append(parts, fmt.Sprintf("%d samples/day for all users", l.ModelDaily))
	}
	q.Summary = strings.Join(parts, ", ")
	return q
}
