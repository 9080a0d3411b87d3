package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/he"
	"github.com/fheserve/fheserve/he/server"
)

// evaluator is a prepared model bound to one key set.
type evaluator struct {
	ev    *server.Evaluator
	model *preparedModel
	keys  *he.EvalKeys
}

// KeySetSize is the exact size of a key set for the model's plan: the
// limit on an upload's body.
func (a *App) KeySetSize(info *planInfo) int64 {
	return int64(he.EvalKeysSize(info.params, he.PlanKeys(info.plan)))
}

// UploadKeys stores the calling user's public and evaluation keys for a
// model, read from body (the he.MarshalEvalKeys format) as it arrives.
// The keys are checked against the plan before they are stored: the
// parameters' fingerprint, the size, and exactly the rotations and
// relinearization key the plan needs. length is the body's declared size
// (-1 if unknown). If replaces names an active key set of the caller for
// the same model, that one is revoked once the new one is stored.
func (a *App) UploadKeys(ctx context.Context, who *fheserve.Account, modelID string, body io.Reader, length int64, replaces string) (*fheserve.KeySet, error) {
	m, err := a.usableModel(ctx, who, modelID)
	if err != nil {
		return nil, err
	}
	old, err := a.replacedKeySet(ctx, who, m, replaces)
	if err != nil {
		return nil, err
	}
	info, err := a.planOf(m)
	if err != nil {
		return nil, err
	}
	// A key set has exactly this size: a body declared larger is refused
	// before it takes a place (one declared smaller is read, as its
	// header says more precisely what is wrong).
	want := a.KeySetSize(info)
	if length > want {
		return nil, fheserve.Errorf(fheserve.ETOOLARGE, "key set of %d bytes is larger than the %d bytes the model's plan allows; generate keys from the model's plan ('fheserve keys create')", length, want)
	}
	if err := a.checkKeySets(ctx, who, m.ID, old); err != nil {
		return nil, err
	}
	release, err := a.uploadSlot(ctx, who)
	if err != nil {
		return nil, err
	}
	defer release()
	ks := &fheserve.KeySet{
		ID:                newID("key"),
		AccountID:         who.ID,
		Username:          who.Username,
		ModelID:           m.ID,
		ParamsFingerprint: m.ParamsFingerprint,
		Status:            fheserve.KeySetActive,
		CreatedAt:         a.cfg.Now().UTC(),
	}
	ks.BlobKey = "keysets/" + ks.ID
	keys, err := a.storeKeys(ctx, ks, info, body, length, want)
	if err != nil {
		return nil, err
	}
	pk := a.storePublicKey(ctx, m, info, ks.ID, keys)
	if err := a.createKeySet(ctx, who, ks, old); err != nil {
		a.blobs.Delete(ctx, ks.BlobKey)
		a.blobs.Delete(ctx, derivedBlobKey(ks))
		if pk != "" {
			a.blobs.Delete(ctx, publicKeyKey(ks.ID))
		}
		return nil, err
	}
	a.audit(ctx, who, "keyset.upload", keyUploadObjects(m, ks.ID, pk)...)
	if old != nil {
		if err := a.revokeKeySet(ctx, who, old, ks.ID); err != nil {
			return nil, err
		}
	}
	a.warmLater(context.WithoutCancel(ctx), m, ks.ID, keys)
	return ks, nil
}

// replacedKeySet is who's key set named replaces (nil when empty), which
// must be for model m.
func (a *App) replacedKeySet(ctx context.Context, who *fheserve.Account, m *fheserve.Model, replaces string) (*fheserve.KeySet, error) {
	if replaces == "" {
		return nil, nil
	}
	old, err := a.ownKeySet(ctx, who, replaces)
	if err != nil {
		return nil, err
	}
	if old.ModelID != m.ID {
		return nil, fheserve.Errorf(fheserve.EINVALID, "key set %s is for model %s, not %s: it cannot be replaced by keys for another model", old.ID, old.ModelID, m.ID)
	}
	return old, nil
}

// storeKeys decodes and checks the key set in body (at most want bytes,
// length as declared) against the plan while it streams into the blob at
// ks.BlobKey, and records its size and SHA-256 fingerprint in ks.
func (a *App) storeKeys(ctx context.Context, ks *fheserve.KeySet, info *planInfo, body io.Reader, length, want int64) (*he.EvalKeys, error) {
	w, err := a.blobs.Create(ctx, ks.BlobKey)
	if err != nil {
		return nil, err
	}
	defer w.Abort()
	h := sha256.New()
	counted := &countingWriter{}
	lim := &limitedReader{r: body, n: want, limit: want, length: length, what: "key set"}
	in := io.TeeReader(lim, io.MultiWriter(w, h, counted))
	keys, err := he.UnmarshalEvalKeys(in, info.params, he.KeyLimits{Keys: new(he.PlanKeys(info.plan)), NoDerivation: true})
	if err != nil {
		return nil, keyError(err, lim)
	}
	if err := a.derive(ctx, ks, info, keys); err != nil {
		return nil, err
	}
	if err := checkKeys(info, keys); err != nil {
		a.blobs.Delete(context.WithoutCancel(ctx), derivedBlobKey(ks))
		return nil, err
	}
	if err := w.Commit(); err != nil {
		a.blobs.Delete(context.WithoutCancel(ctx), derivedBlobKey(ks))
		return nil, err
	}
	ks.Size, ks.Fingerprint = counted.n, hex.EncodeToString(h.Sum(nil))
	return keys, nil
}

// derive gives a derived key set's keys (decoded with NoDerivation)
// their Galois keys: those stored at derivedBlobKey(ks) when they are
// there and intact, otherwise derived from the master keys and stored
// there, so that a key set is derived once, not on every load of its
// keys. Storing is best effort: a key set whose derived keys cannot be
// stored is derived again on its next load.
func (a *App) derive(ctx context.Context, ks *fheserve.KeySet, info *planInfo, keys *he.EvalKeys) error {
	if keys.Masters == nil || keys.Galois != nil {
		return nil
	}
	spec := he.PlanKeys(info.plan)
	if r, _, err := a.blobs.Open(ctx, derivedBlobKey(ks)); err == nil {
		gks, err := he.UnmarshalDerivedKeys(r, info.params, spec)
		r.Close()
		if err == nil {
			keys.Galois = gks
			return nil
		}
		a.log.Warn("stored derived keys unusable, deriving again", "keyset", ks.ID, "err", err)
	}
	gks, err := he.DeriveGaloisKeys(info.params, keys.Masters, spec)
	if err != nil {
		return err
	}
	a.ops.derivations.Add(1)
	keys.Galois = gks
	w, err := a.blobs.Create(ctx, derivedBlobKey(ks))
	if err == nil {
		err = he.MarshalDerivedKeys(w, info.params, gks)
		if err == nil {
			err = w.Commit()
		}
		w.Abort()
	}
	if err != nil {
		a.log.Warn("cannot store derived keys", "keyset", ks.ID, "err", err)
	}
	return nil
}

// derivedBlobKey is where a derived key set's Galois keys are stored
// once derived (derive).
func derivedBlobKey(ks *fheserve.KeySet) string { return "derivedkeys/" + ks.ID }

// checkKeySets refuses a key set of who for model when who holds
// KeySetsPerModel active ones for it (not counting old, which the new
// one replaces) or KeySetsPerUser in all.
func (a *App) checkKeySets(ctx context.Context, who *fheserve.Account, model string, old *fheserve.KeySet) error {
	active, err := a.store.KeySets(ctx, fheserve.KeySetFilter{AccountID: who.ID, Status: fheserve.KeySetActive})
	if err != nil {
		return err
	}
	b := a.cfg.Bounds
	var forModel int
	for _, ks := range active {
		if ks.ModelID == model && (old == nil || ks.ID != old.ID) {
			forModel++
		}
	}
	switch {
	case forModel >= b.KeySetsPerModel:
		return fheserve.Errorf(fheserve.ECONFLICT, "you have %d active key sets for model %s, the limit; replace one ('fheserve keys create --replace ID') or revoke one ('fheserve keys revoke ID')", forModel, model)
	case len(active) >= b.KeySetsPerUser && old == nil:
		return fheserve.Errorf(fheserve.ECONFLICT, "you have %d active key sets, the limit per user; revoke those you no longer use ('fheserve keys revoke ID')", len(active))
	}
	return nil
}

// createKeySet stores ks once checkKeySets passes again: concurrent
// uploads of one user passed it at the start together.
func (a *App) createKeySet(ctx context.Context, who *fheserve.Account, ks, old *fheserve.KeySet) error {
	a.keySetMu.Lock()
	defer a.keySetMu.Unlock()
	if err := a.checkKeySets(ctx, who, ks.ModelID, old); err != nil {
		return err
	}
	return a.store.CreateKeySet(ctx, ks)
}

// keyError says what a decoding error means for the user. A key set
// with more keys than the plan's is refused by the decoder as too large;
// it is a mismatch with the plan, not an oversized body.
func keyError(err error, lim *limitedReader) error {
	if lim.err != nil && errors.Is(err, lim.err) {
		return err
	}
	switch fheserve.ErrorCode(err) {
	case fheserve.EINVALID, fheserve.ETOOLARGE:
		return fheserve.Errorf(fheserve.EINVALID, "key set does not match the model's plan or is damaged: %s; generate keys from the model's plan ('fheserve keys create')", fheserve.ErrorMessage(err))
	}
	return err
}

// checkKeys checks that keys hold exactly the keys the plan needs.
func checkKeys(info *planInfo, keys *he.EvalKeys) error {
	p := info.plan
	switch {
	case p.Relin && keys.Relin == nil:
		return fheserve.Errorf(fheserve.EINVALID, "key set does not match the model's plan: it lacks the relinearization key the plan needs")
	case !p.Relin && keys.Relin != nil:
		return fheserve.Errorf(fheserve.EINVALID, "key set does not match the model's plan: it has a relinearization key the plan does not need")
	}
	have := keys.GaloisElements()
	for _, g := range p.GaloisElements {
		if _, ok := slices.BinarySearch(have, g); !ok {
			return fheserve.Errorf(fheserve.EINVALID, "key set does not match the model's plan: it lacks the key for rotation %d (Galois element %d)", info.rotation[g], g)
		}
	}
	want := slices.Sorted(slices.Values(p.GaloisElements))
	for _, g := range have {
		if _, ok := slices.BinarySearch(want, g); !ok {
			return fheserve.Errorf(fheserve.EINVALID, "key set does not match the model's plan: it has a key for Galois element %d, which the plan does not use", g)
		}
	}
	return nil
}

// warm prepares the model and an evaluator for a fresh key set, so that
// the first job does not wait for them.
func (a *App) warm(ctx context.Context, m *fheserve.Model, keySetID string, keys *he.EvalKeys) {
	if m.Sealed {
		return // prepared once the owner has sealed the weights for the key set
	}
	pm, err := a.warmPrepared(ctx, m)
	if err != nil {
		a.log.Warn("cannot prepare model", "model", m.ID, "err", err)
		return
	}
	if pm == nil {
		return
	}
	if _, err := a.newEvaluator(pm, keySetID, keys); err != nil {
		a.log.Warn("cannot prepare evaluator", "keyset", keySetID, "err", err)
	}
}

func (a *App) newEvaluator(pm *preparedModel, keySetID string, keys *he.EvalKeys) (*evaluator, error) {
	ev, err := pm.model.NewEvaluator(keys, a.cfg.EvalThreads)
	if err != nil {
		return nil, err
	}
	e := &evaluator{ev: ev, model: pm, keys: keys}
	// Expanded keys take about twice their seeded size; a derived key
	// set's Galois keys are held besides its masters.
	held := 2 * int64(he.EvalKeysSize(pm.params, he.PlanKeys(pm.plan)))
	if d := pm.plan.Derivation; d != nil {
		held += int64(d.DerivedBytes)
	}
	a.evaluators.add(keySetID, e, held)
	return e, nil
}

// evaluatorFor returns an evaluator for a key set, loading the keys from
// the blob store if it is not cached.
func (a *App) evaluatorFor(ctx context.Context, pm *preparedModel, ks *fheserve.KeySet) (*evaluator, error) {
	e, ok := a.evaluators.get(ks.ID)
	if ok {
		a.ops.keyHits.Add(1)
	} else {
		a.ops.keyMisses.Add(1)
	}
	if ok && e.model == pm {
		return e, nil
	}
	if ok {
		// The same keys, read once, serve the key set's model prepared
		// again, or another query on its gallery (views of one plan).
		return a.newEvaluator(pm, ks.ID, e.keys)
	}
	keys, err := a.storedKeys(ctx, pm.planInfo, ks)
	if err != nil {
		return nil, err
	}
	return a.newEvaluator(pm, ks.ID, keys)
}

// storedKeys reads a key set's evaluation keys, stored when they were
// uploaded, from the blob store, within the limits of the plan.
func (a *App) storedKeys(ctx context.Context, info *planInfo, ks *fheserve.KeySet) (*he.EvalKeys, error) {
	r, _, err := a.blobs.Open(ctx, ks.BlobKey)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	keys, err := he.UnmarshalEvalKeys(r, info.params, he.KeyLimits{Keys: new(he.PlanKeys(info.plan)), NoDerivation: true})
	if err != nil {
		return nil, fmt.Errorf("stored key set %s: %w", ks.ID, err)
	}
	if err := a.derive(ctx, ks, info, keys); err != nil {
		return nil, fmt.Errorf("stored key set %s: %w", ks.ID, err)
	}
	return keys, nil
}

// ownKeySet returns a key set of the calling user.
func (a *App) ownKeySet(ctx context.Context, who *fheserve.Account, id string) (*fheserve.KeySet, error) {
	if err := require(who, fheserve.RoleUser); err != nil {
		return nil, err
	}
	ks, err := a.store.KeySet(ctx, id)
	if err != nil {
		return nil, err
	}
	if ks.AccountID != who.ID {
		return nil, fheserve.Errorf(fheserve.EFORBIDDEN, "key set %s belongs to another user", id)
	}
	return ks, nil
}

// KeySets lists the calling user's key sets (all of them, for an
// administrator), optionally for one model.
func (a *App) KeySets(ctx context.Context, who *fheserve.Account, modelID string) ([]*fheserve.KeySet, error) {
	if err := require(who, fheserve.RoleUser, fheserve.RoleAdmin); err != nil {
		return nil, err
	}
	f := fheserve.KeySetFilter{ModelID: modelID}
	if who.Role != fheserve.RoleAdmin {
		f.AccountID = who.ID
	}
	keySets, err := a.store.KeySets(ctx, f)
	if err != nil {
		return nil, err
	}
	return keySets, a.withSeal(ctx, keySets...)
}

// KeySet returns one of the calling user's key sets.
func (a *App) KeySet(ctx context.Context, who *fheserve.Account, id string) (*fheserve.KeySet, error) {
	ks, err := a.ownKeySet(ctx, who, id)
	if err != nil {
		return nil, err
	}
	return ks, a.withSeal(ctx, ks)
}

// RevokeKeySet revokes one of the calling user's key sets and deletes the
// keys. Jobs that name it and have not run fail.
func (a *App) RevokeKeySet(ctx context.Context, who *fheserve.Account, id string) (*fheserve.KeySet, error) {
	ks, err := a.ownKeySet(ctx, who, id)
	if err != nil {
		return nil, err
	}
	if ks.Status == fheserve.KeySetRevoked {
		return nil, fheserve.Errorf(fheserve.ECONFLICT, "key set %s is already revoked", id)
	}
	return ks, a.revokeKeySet(ctx, who, ks, "")
}

func (a *App) revokeKeySet(ctx context.Context, who *fheserve.Account, ks *fheserve.KeySet, replacedBy string) error {
	now := a.cfg.Now().UTC()
	ks.Status, ks.RevokedAt, ks.ReplacedBy = fheserve.KeySetRevoked, &now, replacedBy
	if err := a.store.UpdateKeySet(ctx, ks); err != nil {
		return err
	}
	a.evaluators.remove(ks.ID)
	a.dropSealed(ctx, ks)
	for _, key := range []string{ks.BlobKey, derivedBlobKey(ks)} {
		if err := a.blobs.Delete(ctx, key); err != nil {
			a.log.Warn("cannot delete revoked keys", "keyset", ks.ID, "err", err)
		}
	}
	a.audit(ctx, who, "keyset.revoke", keySetObj(ks.ID), modelObj(ks.ModelID))
	return nil
}

// limitedReader reads at most limit bytes and fails with ETOOLARGE if
// there are more.
type limitedReader struct {
	r      io.Reader
	n      int64 // bytes left
	limit  int64
	length int64 // the declared length, -1 if unknown
	what   string
	err    error // the error returned when the limit is passed
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		var b [1]byte
		if k, err := l.r.Read(b[:]); k > 0 {
			l.err = tooLarge(l.what, l.length, l.limit)
			return 0, l.err
		} else {
			return 0, err
		}
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	k, err := l.r.Read(p)
	l.n -= int64(k)
	return k, err
}

func tooLarge(what string, got, limit int64) error {
	if got < 0 {
		return fheserve.Errorf(fheserve.ETOOLARGE, "%s is larger than the %d bytes the model's plan allows", what, limit)
	}
	return fheserve.Errorf(fheserve.ETOOLARGE, "%s of %d bytes is larger than the %d bytes the model's plan allows", what, got, limit)
}

type countingWriter struct{ n int64 }

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}
