package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/audit"
	"github.com/fheserve/fheserve/he"
	"github.com/fheserve/fheserve/he/server"
	"github.com/fheserve/fheserve/plan"
)

// A sealed model's server holds its plan and its program stripped of
// every weight (stored as JSON at the model's WeightsKey, not encrypted:
// there is nothing secret in it), and per key set the weights the owner
// sealed under that key set's public key (at sealedKey). Nothing the
// server stores for it decrypts to a weight, with the master key or
// without it.

// sealedKey is the blob of a key set's sealed weights.
func sealedKey(keySetID string) string { return "sealed/" + keySetID }

// sealedModelKey is the prepared-model cache's key of a sealed model for
// one key set: each key set has its own sealed weights.
func sealedModelKey(modelID, keySetID string) string { return modelID + "/" + keySetID }

// DeploySealed stores a sealed model compiled by its owner: the public
// plan and the program without weights. A program that still holds a
// weight or a bias is refused, so that none is ever stored.
func (a *App) DeploySealed(ctx context.Context, who *fheserve.Account, req *fheserve.SealedDeployRequest) (*fheserve.Model, error) {
	if err := require(who, fheserve.RoleOwner); err != nil {
		return nil, err
	}
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if n := int64(len(req.Plan) + len(req.Program)); n > a.cfg.MaxModelBytes {
		return nil, fheserve.Errorf(fheserve.ETOOLARGE, "the plan and program take %d bytes, more than the limit of %d", n, a.cfg.MaxModelBytes)
	}
	if err := a.checkAllow(ctx, req.Allow); err != nil {
		return nil, err
	}
	var p plan.Plan
	if err := strictJSON(req.Plan, &p); err != nil {
		return nil, fheserve.Errorf(fheserve.EINVALID, "cannot deploy %q: the plan is not valid JSON: %v", req.Name, err)
	}
	if err := p.Validate(); err != nil {
		return nil, deployError(req.Name, err)
	}
	if !p.Sealed {
		return nil, fheserve.Errorf(fheserve.EINVALID, "cannot deploy %q sealed: the plan is not compiled for sealed weights (compile with Options.Sealed)", req.Name)
	}
	var prog plan.Program
	if err := strictJSON(req.Program, &prog); err != nil {
		return nil, fheserve.Errorf(fheserve.EINVALID, "cannot deploy %q: the program is not valid JSON: %v", req.Name, err)
	}
	if name := he.HasWeights(&prog); name != "" {
		return nil, fheserve.Errorf(fheserve.EINVALID, "cannot deploy %q sealed: step %q of the program holds weights; a sealed deployment sends the program stripped of them (he.StripWeights), never a weight", req.Name, name)
	}
	info, err := newPlanInfo(&p)
	if err != nil {
		return nil, deployError(req.Name, err)
	}
	if _, err := sealedLevels(info, &prog); err != nil {
		return nil, deployError(req.Name, err)
	}
	if len(req.Labels) > 0 {
		if err := fheserve.ValidLabels(req.Labels, p.OutputSize()); err != nil {
			return nil, err
		}
	}
	m, err := a.newModel(who, &fheserve.DeployRequest{Name: req.Name, Allow: req.Allow, Labels: req.Labels}, &p, info)
	if err != nil {
		return nil, err
	}
	m.Sealed, m.MaxSealedKeySets = true, req.MaxSealedKeySets
	m.WrappedKey = []byte{} // no data key: nothing is encrypted at rest
	progJSON, err := json.Marshal(&prog)
	if err != nil {
		return nil, err
	}
	m.ModelBytes = int64(len(progJSON))
	if err := a.putBlob(ctx, m.WeightsKey, progJSON); err != nil {
		return nil, err
	}
	if err := a.store.CreateModel(ctx, m); err != nil {
		a.blobs.Delete(ctx, m.WeightsKey)
		return nil, err
	}
	a.plans.add(m.ID, info, 1)
	a.audit(ctx, who, "model.deploy", modelObj(m.ID))
	return m, nil
}

func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("data after the value")
	}
	return nil
}

// sealedLevels returns the level of each sealed ciphertext of a sealed
// program under its plan: what an upload must hold. A program that does
// not fit its plan is refused, not a panic.
func sealedLevels(info *planInfo, prog *plan.Program) ([]int, error) {
	return refusePanic(func() ([]int, error) {
		if prog.Packing != info.plan.Packing {
			return nil, fheserve.Errorf(fheserve.EINVALID, "the program's packing %q is not the plan's %q", prog.Packing, info.plan.Packing)
		}
		items, err := he.SealedLayout(info.params, info.plan, prog)
		if err != nil {
			return nil, err
		}
		if len(items) == 0 {
			return nil, fheserve.Errorf(fheserve.EINVALID, "the program seals no weights")
		}
		return he.SealedLevels(items), nil
	})
}

// refusePanic runs f, which lays out or prepares a sealed program
// (he.SealedLayout, server.PrepareSealed), and refuses rather than panics
// on a program that does not fit its plan: the owner sends the program,
// and the engine indexes it by the plan's sizes.
func refusePanic[T any](f func() (T, error)) (v T, err error) {
	defer func() {
		if r := recover(); r != nil {
			var zero T
			v, err = zero, fheserve.Errorf(fheserve.EINVALID, "the program does not match its plan: %v", r)
		}
	}()
	return f()
}

// putBlob writes data to a new blob at key, atomically.
func (a *App) putBlob(ctx context.Context, key string, data []byte) error {
	w, err := a.blobs.Create(ctx, key)
	if err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		w.Abort()
		return err
	}
	return w.Commit()
}

// strippedProgram reads a sealed model's program (without weights).
func (a *App) strippedProgram(ctx context.Context, m *fheserve.Model) (*plan.Program, error) {
	r, _, err := a.blobs.Open(ctx, m.WeightsKey)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var prog plan.Program
	if err := json.NewDecoder(r).Decode(&prog); err != nil {
		return nil, fmt.Errorf("stored program of %s: %w", m.ID, err)
	}
	if name := he.HasWeights(&prog); name != "" {
		return nil, fmt.Errorf("stored program of sealed model %s holds weights (step %q)", m.ID, name)
	}
	return &prog, nil
}

// sealedSize returns a sealed model's program and the size of the sealed
// weights of one key set.
func (a *App) sealedSize(ctx context.Context, m *fheserve.Model) (*planInfo, *plan.Program, []int, int64, error) {
	info, err := a.planOf(m)
	if err != nil {
		return nil, nil, nil, 0, err
	}
	prog, err := a.strippedProgram(ctx, m)
	if err != nil {
		return nil, nil, nil, 0, err
	}
	levels, err := sealedLevels(info, prog)
	if err != nil {
		return nil, nil, nil, 0, err
	}
	return info, prog, levels, int64(he.SealedSize(info.params, levels)), nil
}

// sealedBytes returns the size of the sealed weights stored for a key
// set, or 0 if there are none.
func (a *App) sealedBytes(ctx context.Context, keySetID string) (int64, error) {
	r, n, err := a.blobs.Open(ctx, sealedKey(keySetID))
	if fheserve.ErrorCode(err) == fheserve.ENOTFOUND {
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	r.Close()
	return n, nil
}

// sealedModel returns a sealed model that who owns, and is active.
func (a *App) sealedModel(ctx context.Context, who *fheserve.Account, id string) (*fheserve.Model, error) {
	if err := require(who, fheserve.RoleOwner); err != nil {
		return nil, err
	}
	m, err := a.ownModel(ctx, who, id)
	if err != nil {
		return nil, err
	}
	if !m.Sealed {
		return nil, fheserve.Errorf(fheserve.ECONFLICT, "model %s is not sealed: the server holds its weights and there is nothing to seal", id)
	}
	if m.Status != fheserve.ModelActive {
		return nil, fheserve.Errorf(fheserve.ECONFLICT, "model %s is retired: it takes no new sealed weights", id)
	}
	return m, nil
}

// SealTasks lists the active key sets of a sealed model that wait for
// their sealed weights, each with its public key, and the size of the
// sealed weights per key set, for the owner to see before sealing.
func (a *App) SealTasks(ctx context.Context, who *fheserve.Account, modelID string) (*fheserve.SealTasks, error) {
	m, err := a.sealedModel(ctx, who, modelID)
	if err != nil {
		return nil, err
	}
	info, _, _, size, err := a.sealedSize(ctx, m)
	if err != nil {
		return nil, err
	}
	sealed, waiting, err := a.sealState(ctx, m)
	if err != nil {
		return nil, err
	}
	out := &fheserve.SealTasks{ModelID: m.ID, SealedBytes: size, Remaining: -1, Tasks: []*fheserve.SealTask{}, Sealed: sealed}
	if m.MaxSealedKeySets > 0 {
		out.Remaining = max(0, m.MaxSealedKeySets-out.Sealed)
		waiting = waiting[:min(len(waiting), out.Remaining)]
	}
	for _, ks := range waiting {
		pk, err := a.publicKeyOf(ctx, info, ks)
		if err != nil {
			return nil, err
		}
		out.Tasks = append(out.Tasks, &fheserve.SealTask{KeySetID: ks.ID, User: ks.Username, Fingerprint: ks.Fingerprint,
			CreatedAt: ks.CreatedAt, SealedBytes: size, PublicKey: pk})
	}
	return out, nil
}

// publicKeyKey is the blob of a sealed model's key set's public key
// alone, which the owner seals for (SealTasks): reading it spares parsing
// the whole key set, hundreds of megabytes for a sealed cnn.
func publicKeyKey(keySetID string) string { return "pubkeys/" + keySetID }

// storePublicKey keeps the public key alone of a key set of a sealed
// model (publicKeyKey), for SealTasks, and returns its fingerprint for the
// audit record of the upload; "" for a model that is not sealed. When it
// cannot be stored, SealTasks reads it from the whole key set instead.
func (a *App) storePublicKey(ctx context.Context, m *fheserve.Model, info *planInfo, keySetID string, keys *he.EvalKeys) string {
	if !m.Sealed {
		return ""
	}
	pk, err := he.MarshalPublicKey(info.params, keys)
	if err != nil {
		a.log.Error("cannot encode a public key for the audit log", "keyset", keySetID, "err", err)
		return ""
	}
	if err := a.putBlob(ctx, publicKeyKey(keySetID), pk); err != nil {
		a.log.Warn("cannot store a public key; the seal tasks read the key set instead", "keyset", keySetID, "err", err)
	}
	return fheserve.PublicKeyFingerprint(pk)
}

// keyUploadObjects are the objects the audit record of a key set's
// upload names: the key set and the model, and for a sealed model the
// fingerprint of the public key the owner will seal for (pk, from
// storePublicKey).
func keyUploadObjects(m *fheserve.Model, keySetID, pk string) []audit.Object {
	objs := []audit.Object{keySetObj(keySetID), modelObj(m.ID)}
	if pk == "" {
		return objs
	}
	return append(objs, audit.Object{Kind: fheserve.PublicKeyKind, ID: pk})
}

// publicKeyOf returns a stored key set's public key alone, in the
// he.MarshalEvalKeys format (no relinearization or Galois key).
func (a *App) publicKeyOf(ctx context.Context, info *planInfo, ks *fheserve.KeySet) ([]byte, error) {
	if r, n, err := a.blobs.Open(ctx, publicKeyKey(ks.ID)); err == nil {
		defer r.Close()
		want := int64(he.EvalKeysSize(info.params, he.KeySpec{}))
		if n != want {
			return nil, fmt.Errorf("stored public key of %s: %d bytes, want %d", ks.ID, n, want)
		}
		return io.ReadAll(r)
	}
	keys, err := a.storedKeys(ctx, info, ks)
	if err != nil {
		return nil, err
	}
	return he.MarshalPublicKey(info.params, keys)
}

// UploadSealed stores the owner's sealed weights for one key set of a
// sealed model. The body must be exactly the plan's sealed layout
// (he.UnmarshalSealed with the levels from the plan, every coefficient
// below its modulus) and prepare with the stripped program; otherwise the
// upload is refused naming the cause and the key set's earlier sealed
// weights, if any, stay as they were.
func (a *App) UploadSealed(ctx context.Context, who *fheserve.Account, keySetID string, body io.Reader, length int64) (*fheserve.KeySet, error) {
	ks, m, err := a.sealTarget(ctx, who, keySetID)
	if err != nil {
		return nil, err
	}
	info, prog, levels, want, err := a.sealedSize(ctx, m)
	if err != nil {
		return nil, err
	}
	if length > want {
		return nil, fheserve.Errorf(fheserve.ETOOLARGE, "sealed weights of %d bytes are larger than the %d bytes the model's plan seals", length, want)
	}
	if length >= 0 && length < want {
		return nil, fheserve.Errorf(fheserve.EINVALID, "sealed weights of %d bytes are truncated: the model's plan seals %d bytes", length, want)
	}
	have, err := a.sealedBytes(ctx, ks.ID)
	if err != nil {
		return nil, err
	}
	if have == 0 && m.MaxSealedKeySets > 0 {
		if err := a.checkSealQuota(ctx, m); err != nil {
			return nil, err
		}
	}
	release, err := a.uploadSlot(ctx, who)
	if err != nil {
		return nil, err
	}
	defer release()
	data, err := io.ReadAll(&limitedReader{r: body, n: want, limit: want, length: length, what: "sealed weights"})
	if err != nil {
		return nil, err
	}
	cts, err := he.UnmarshalSealed(bytes.NewReader(data), info.params, levels)
	if err != nil {
		return nil, fheserve.Errorf(codeOr(err, fheserve.EINVALID), "sealed weights for key set %s: %s", ks.ID, fheserve.ErrorMessage(err))
	}
	sm, err := refusePanic(func() (*server.Model, error) { return server.PrepareSealed(info.plan, prog, cts) })
	if err != nil {
		return nil, fheserve.Errorf(codeOr(err, fheserve.EINVALID), "sealed weights for key set %s do not fit the model's plan: %s", ks.ID, fheserve.ErrorMessage(err))
	}
	if err := a.putBlob(ctx, sealedKey(ks.ID), data); err != nil {
		return nil, err
	}
	a.evaluators.remove(ks.ID)
	a.models.add(sealedModelKey(m.ID, ks.ID), a.newPrepared(info, sm), 1)
	a.audit(ctx, who, "keyset.seal", keySetObj(ks.ID), modelObj(m.ID))
	ks.Seal, ks.SealedBytes = fheserve.SealDone, int64(len(data))
	return ks, nil
}

// sealTarget returns the key set keySetID and its sealed model, for an
// upload of sealed weights by who: who must be an owner, the model theirs
// and the key set active.
func (a *App) sealTarget(ctx context.Context, who *fheserve.Account, keySetID string) (*fheserve.KeySet, *fheserve.Model, error) {
	if err := require(who, fheserve.RoleOwner); err != nil {
		return nil, nil, err
	}
	ks, err := a.store.KeySet(ctx, keySetID)
	if err != nil {
		return nil, nil, err
	}
	m, err := a.sealedModel(ctx, who, ks.ModelID)
	if err != nil {
		if fheserve.ErrorCode(err) == fheserve.EFORBIDDEN {
			return nil, nil, fheserve.Errorf(fheserve.EFORBIDDEN, "key set %s is for a model of another owner", keySetID)
		}
		return nil, nil, err
	}
	if ks.Status != fheserve.KeySetActive {
		return nil, nil, fheserve.Errorf(fheserve.ECONFLICT, "key set %s is revoked: it takes no sealed weights", ks.ID)
	}
	return ks, m, nil
}

// checkSealQuota refuses sealing one more key set of m beyond its bound.
func (a *App) checkSealQuota(ctx context.Context, m *fheserve.Model) error {
	sealed, _, err := a.sealState(ctx, m)
	if err != nil {
		return err
	}
	if sealed >= m.MaxSealedKeySets {
		return fheserve.Errorf(fheserve.ECONFLICT, "model %s is sealed for %d key sets, its bound (max_sealed_keysets %d)", m.ID, sealed, m.MaxSealedKeySets)
	}
	return nil
}

// sealState counts the active key sets of m that hold sealed weights and
// lists those that wait for them.
func (a *App) sealState(ctx context.Context, m *fheserve.Model) (sealed int, waiting []*fheserve.KeySet, err error) {
	keySets, err := a.store.KeySets(ctx, fheserve.KeySetFilter{ModelID: m.ID, Status: fheserve.KeySetActive})
	if err != nil {
		return 0, nil, err
	}
	for _, ks := range keySets {
		n, err := a.sealedBytes(ctx, ks.ID)
		if err != nil {
			return 0, nil, err
		}
		if n > 0 {
			sealed++
		} else {
			waiting = append(waiting, ks)
		}
	}
	return sealed, waiting, nil
}

// codeOr is err's code, or code when err has none of the caller's.
func codeOr(err error, code string) string {
	if c := fheserve.ErrorCode(err); c != fheserve.EINTERNAL {
		return c
	}
	return code
}

// preparedFor returns the model ready for evaluation with a key set: for
// a sealed model, from the stripped program and that key set's sealed
// weights; for another, the model's prepared weights.
func (a *App) preparedFor(ctx context.Context, m *fheserve.Model, ks *fheserve.KeySet) (*preparedModel, error) {
	if !m.Sealed {
		return a.prepared(ctx, m)
	}
	key := sealedModelKey(m.ID, ks.ID)
	if pm, ok := a.models.get(key); ok {
		return pm, nil
	}
	info, prog, levels, _, err := a.sealedSize(ctx, m)
	if err != nil {
		return nil, err
	}
	r, _, err := a.blobs.Open(ctx, sealedKey(ks.ID))
	if fheserve.ErrorCode(err) == fheserve.ENOTFOUND {
		return nil, waitingForSeal(ks.ID)
	} else if err != nil {
		return nil, err
	}
	defer r.Close()
	cts, err := he.UnmarshalSealed(r, info.params, levels)
	if err != nil {
		return nil, fmt.Errorf("stored sealed weights of %s: %w", ks.ID, err)
	}
	sm, err := refusePanic(func() (*server.Model, error) { return server.PrepareSealed(info.plan, prog, cts) })
	if err != nil {
		return nil, err
	}
	pm := a.newPrepared(info, sm)
	a.models.add(key, pm, 1)
	return pm, nil
}

func waitingForSeal(keySetID string) error {
	return fheserve.Errorf(fheserve.ECONFLICT, "%s (key set %s): the owner seals it with 'fheserve model seal'; try again once it has", fheserve.WaitingForSealMessage, keySetID)
}

// checkSealed refuses a job on a sealed model whose key set waits for its
// sealed weights. The run reads and prepares them (preparedFor); here a
// key set whose prepared model is cached (sealed or run here before)
// costs no blob access, and another only the blob's size, not its bytes.
func (a *App) checkSealed(ctx context.Context, m *fheserve.Model, ks *fheserve.KeySet) error {
	if !m.Sealed {
		return nil
	}
	if _, ok := a.models.get(sealedModelKey(m.ID, ks.ID)); ok {
		return nil
	}
	n, err := a.sealedBytes(ctx, ks.ID)
	if err != nil {
		return err
	}
	if n == 0 {
		return waitingForSeal(ks.ID)
	}
	return nil
}

// withSeal fills the seal state of key sets of sealed models.
func (a *App) withSeal(ctx context.Context, keySets ...*fheserve.KeySet) error {
	sealed := map[string]bool{}
	for _, ks := range keySets {
		s, ok := sealed[ks.ModelID]
		if !ok {
			m, err := a.store.Model(ctx, ks.ModelID)
			if err != nil {
				return err
			}
			s, sealed[ks.ModelID] = m.Sealed, m.Sealed
		}
		if !s || ks.Status != fheserve.KeySetActive {
			continue
		}
		n, err := a.sealedBytes(ctx, ks.ID)
		if err != nil {
			return err
		}
		ks.Seal, ks.SealedBytes = fheserve.SealWaiting, n
		if n > 0 {
			ks.Seal = fheserve.SealDone
		}
	}
	return nil
}

// dropSealed deletes a revoked key set's sealed weights and their
// prepared model.
func (a *App) dropSealed(ctx context.Context, ks *fheserve.KeySet) {
	a.models.remove(sealedModelKey(ks.ModelID, ks.ID))
	a.blobs.Delete(ctx, publicKeyKey(ks.ID))
	if err := a.blobs.Delete(ctx, sealedKey(ks.ID)); err != nil {
		a.log.Warn("cannot delete revoked sealed weights", "keyset", ks.ID, "err", err)
	}
}
