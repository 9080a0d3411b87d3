package fheserve

import "time"

// Statuses of a key set.
const (
	KeySetActive  = "active"
	KeySetRevoked = "revoked"
)

// KeySet is a user's public and evaluation keys for one model: the public
// key and exactly the relinearization and Galois keys the model's plan
// needs, validated against the plan before they are stored. The secret key
// never reaches the server.
type KeySet struct {
	ID        string `json:"id"`
	AccountID string `json:"-"`
	Username  string `json:"username"`
	ModelID   string `json:"model_id"`
	// Fingerprint is the hex SHA-256 of the uploaded bytes, so the user
	// can check that the server holds the keys they made.
	Fingerprint       string     `json:"fingerprint"`
	ParamsFingerprint string     `json:"params_fingerprint"`
	Size              int64      `json:"size"`
	Status            string     `json:"status"`
	BlobKey           string     `json:"-"`
	CreatedAt         time.Time  `json:"created_at"`
	RevokedAt         *time.Time `json:"revoked_at,omitempty"`
	// ReplacedBy is the key set that replaced this one, if any.
	ReplacedBy string `json:"replaced_by,omitempty"`
	// Seal, for a key set of a sealed model: SealWaiting or SealDone, and
	// SealedBytes the size of the sealed weights stored for it.
	Seal        string `json:"seal,omitempty"`
	SealedBytes int64  `json:"sealed_bytes,omitempty"`
}
