package fheserve

import (
	"context"
	"io"
	"time"
)

// The services below are the server's operations as its HTTP layer
// (package http) calls them; package app implements them all. who is the
// authenticated caller's account: each service checks roles and
// ownership itself, so that every transport gets the same checks.

// Caller is an authenticated account and the token it used.
type Caller struct {
	Account *Account
	Token   *Token
}

// AccountService registers accounts, logs them in and out, manages their
// tokens, and lets administrators review them.
type AccountService interface {
	// Register creates a pending account.
	Register(ctx context.Context, req *RegisterRequest) (*Account, error)
	// Login returns a session token.
	Login(ctx context.Context, req *LoginRequest) (*Session, error)
	// Authenticate returns the caller a bearer token stands for.
	Authenticate(ctx context.Context, token string) (*Caller, error)
	// Logout revokes the token c used.
	Logout(ctx context.Context, c *Caller) error
	CreateAPIToken(ctx context.Context, who *Account, req *APITokenRequest) (*Session, error)
	Tokens(ctx context.Context, who *Account) ([]*Token, error)
	RevokeToken(ctx context.Context, who *Account, id string) error
	// Accounts lists accounts and Review approves, rejects or disables
	// one (administrators only).
	Accounts(ctx context.Context, who *Account, f AccountFilter) ([]*Account, error)
	Review(ctx context.Context, who *Account, username, action string) (*Account, error)
}

// ModelService deploys models, shows them and their public plans to the
// accounts that may see them, and lets their owners change who may use
// them, their limits, and retire them.
type ModelService interface {
	// CheckDeploy refuses, before any body is read, an account that may
	// not deploy; MaxModelBytes bounds the model file; DeploySlot waits
	// for one of the places to read and compile a model in, and returns
	// the function that frees it.
	CheckDeploy(who *Account) error
	MaxModelBytes() int64
	DeploySlot(ctx context.Context, who *Account) (release func(), err error)
	Deploy(ctx context.Context, who *Account, req *DeployRequest) (*Model, error)

	Models(ctx context.Context, who *Account) ([]*Model, error)
	Model(ctx context.Context, who *Account, id string) (*Model, error)
	// Plan returns a model's public plan as JSON.
	Plan(ctx context.Context, who *Account, id string) ([]byte, error)
	SetAccess(ctx context.Context, who *Account, id string, req *AccessRequest) (*Model, error)
	SetLimits(ctx context.Context, who *Account, id string, req *ModelLimits) (*Model, error)
	Retire(ctx context.Context, who *Account, id string) (*Model, error)
	Usage(ctx context.Context, who *Account, id string) (*Usage, error)
}

// KeySetService stores the public and evaluation keys users upload for a
// model, checked against its plan.
type KeySetService interface {
	// UploadKeys reads a key set (length bytes, -1 if unknown) for a
	// model; replaces, if not empty, names a key set it replaces.
	UploadKeys(ctx context.Context, who *Account, modelID string, body io.Reader, length int64, replaces string) (*KeySet, error)
	KeySets(ctx context.Context, who *Account, modelID string) ([]*KeySet, error)
	KeySet(ctx context.Context, who *Account, id string) (*KeySet, error)
	RevokeKeySet(ctx context.Context, who *Account, id string) (*KeySet, error)
}

// JobService queues encrypted inputs for evaluation, reports the jobs'
// progress and hands out their encrypted results.
type JobService interface {
	// Submit reads one call's input ciphertexts (length bytes, -1 if
	// unknown) and queues a job.
	Submit(ctx context.Context, who *Account, req *SubmitRequest, body io.Reader, length int64) (*Job, error)
	Jobs(ctx context.Context, who *Account) ([]*Job, error)
	Job(ctx context.Context, who *Account, id string) (*Job, error)
	// Watch starts following a job; the caller stops the watcher.
	Watch(ctx context.Context, who *Account, id string) (JobWatcher, error)
	// Result opens a finished job's encrypted result, of the size it
	// returns. The caller closes it.
	Result(ctx context.Context, who *Account, id string) (io.ReadCloser, int64, error)
}

// JobWatcher follows one job for a progress stream.
type JobWatcher interface {
	// Wake receives a value whenever the job changes or its queue
	// position may have moved.
	Wake() <-chan struct{}
	// Changed reports, and clears, whether the job itself changed since
	// the last call: when it did not, only its queue position may have
	// moved, which Refresh updates without reading the store.
	Changed() bool
	// Refresh updates the queue position of j, a copy of the watched job.
	Refresh(j *Job)
	Stop()
}

// OpsService is what the operator's probes and metrics read, and the
// pace a request body must keep.
type OpsService interface {
	// Ready says whether the service can serve: its store answers, and
	// every dependency on a server (Pinger) too; the error names those
	// that do not.
	Ready(ctx context.Context) error
	// Dependencies checks each dependency of the service: its store, and
	// its blob store and queue where they live on a server.
	Dependencies(ctx context.Context) []Dependency
	QueueDepth(ctx context.Context) (int, error)
	ActiveKeySets(ctx context.Context) (int, error)
	UploadsInProgress() int
	// OnJobFinished registers f to be called with every job that ends.
	OnJobFinished(f func(*Job))
	// MinBodyRate is the average rate, in bytes a second, that a request
	// body must keep once grace has passed since its reading started.
	MinBodyRate() (bytesPerSecond int64, grace time.Duration)
}

// Dependency is one of the service's dependencies as last checked: Name
// is "store", "blobs" or "queue", Err nil when it answered.
type Dependency struct {
	Name string
	Err  error
}

type requestIDKey struct{}

// WithRequestID returns ctx carrying the id of the request being served,
// which the audit records of its actions name.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the request id in ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}
