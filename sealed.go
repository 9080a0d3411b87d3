package fheserve

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"strings"
	"time"
)

// Seal states of a key set of a sealed model (KeySet.Seal).
const (
	// SealWaiting: the owner has not sealed the model's weights for the
	// key set yet; its jobs wait for that, they do not fail.
	SealWaiting = "waiting"
	// SealDone: the owner's sealed weights for the key set are stored.
	SealDone = "sealed"
)

// WaitingForSealMessage is what a user sees while a key set waits.
const WaitingForSealMessage = "waiting for the owner to seal this model for your keys"

// MaxSealedKeySetsLimit bounds SealedDeployRequest.MaxSealedKeySets.
const MaxSealedKeySetsLimit = 1_000_000

// SealedDeployRequest deploys a sealed model: the owner compiled it (with
// compiler.Options.Sealed) and sends the public plan and the program
// stripped of every weight and bias (he.StripWeights), both as JSON. The
// server never receives a plaintext weight: the owner seals the weights
// under each user's public key afterwards (SealService).
type SealedDeployRequest struct {
	Name  string   `json:"name"`
	Allow []string `json:"allow,omitempty"`
	// MaxSealedKeySets bounds how many key sets the model's weights are
	// sealed for at once (0: no bound).
	MaxSealedKeySets int `json:"max_sealed_keysets,omitempty"`
	// Labels names the outputs, one per output value (ValidLabels).
	Labels  []string        `json:"labels,omitempty"`
	Plan    json.RawMessage `json:"plan"`
	Program json.RawMessage `json:"program"`
}

// Validate checks the request's fields; the server checks the plan and
// the program.
func (r *SealedDeployRequest) Validate() error {
	if !modelNameRE.MatchString(r.Name) {
		return Errorf(EINVALID, "model name %q is not valid: use 1 to 64 letters, digits, '_', '.' or '-'", clip(r.Name, 70))
	}
	if r.MaxSealedKeySets < 0 || r.MaxSealedKeySets > MaxSealedKeySetsLimit {
		return Errorf(EINVALID, "max_sealed_keysets must be between 0 (no bound) and %d, not %d", MaxSealedKeySetsLimit, r.MaxSealedKeySets)
	}
	if len(r.Plan) == 0 || len(r.Program) == 0 {
		return Errorf(EINVALID, "a sealed deployment needs the plan and the program stripped of its weights")
	}
	return validAllow(r.Allow)
}

// SealTask is a key set that waits for its owner's sealed weights: the
// user's public key (he.MarshalEvalKeys with the public key only) and
// the exact size of the sealed weights to upload.
type SealTask struct {
	KeySetID    string    `json:"keyset_id"`
	User        string    `json:"user"`
	Fingerprint string    `json:"fingerprint"` // of the whole key set, as the user saw it
	CreatedAt   time.Time `json:"created_at"`
	SealedBytes int64     `json:"sealed_bytes"`
	PublicKey   []byte    `json:"public_key"`
}

// SealTasks are a sealed model's key sets waiting for sealed weights,
// and how many the model still seals for (-1: no bound).
type SealTasks struct {
	ModelID     string      `json:"model_id"`
	SealedBytes int64       `json:"sealed_bytes"` // per key set
	Sealed      int         `json:"sealed"`       // key sets sealed for
	Remaining   int         `json:"remaining"`    // -1: no bound
	Tasks       []*SealTask `json:"tasks"`
}

// SealService deploys sealed models and takes their owners' sealed
// weights per key set.
type SealService interface {
	// DeploySealed stores a sealed model: its plan and its program
	// without weights (length bytes of JSON body at most MaxModelBytes).
	DeploySealed(ctx context.Context, who *Account, req *SealedDeployRequest) (*Model, error)
	// SealTasks lists the key sets of a sealed model of who's that wait
	// for sealed weights.
	SealTasks(ctx context.Context, who *Account, modelID string) (*SealTasks, error)
	// UploadSealed stores the sealed weights (he.MarshalSealed, length
	// bytes, -1 if unknown) of a key set's model for that key set.
	UploadSealed(ctx context.Context, who *Account, keySetID string, body io.Reader, length int64) (*KeySet, error)
}

// IsWaitingForSeal reports whether err says a key set waits for its
// owner's sealed weights.
func IsWaitingForSeal(err error) bool {
	return ErrorCode(err) == ECONFLICT && strings.HasPrefix(ErrorMessage(err), WaitingForSealMessage)
}

// PublicKeyKind is the kind of the audit-log object that names a sealed
// model's key set's public key by its fingerprint (PublicKeyFingerprint):
// the key-set upload's record names it, so that the owner seals only for
// public keys the signed log records under the user's name, and the user
// can see every key the log records under theirs.
const PublicKeyKind = "pubkey"

// PublicKeyFingerprint is the hex SHA-256 of a public key in the
// he.MarshalEvalKeys format with no evaluation key (SealTask.PublicKey).
func PublicKeyFingerprint(publicKey []byte) string {
	h := sha256.Sum256(publicKey)
	return hex.EncodeToString(h[:])
}
