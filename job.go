package fheserve

import "time"

// Statuses of a job.
const (
	JobQueued  = "queued"
	JobRunning = "running"
	JobDone    = "done"    // the encrypted result can be downloaded
	JobFailed  = "failed"  // Error says why
	JobExpired = "expired" // done, and the result was deleted after its retention time
)

// Job is one encrypted call: the input ciphertexts of up to the plan's
// batch size samples, evaluated with one key set.
type Job struct {
	ID        string `json:"id"`
	AccountID string `json:"-"`
	Username  string `json:"username"`
	ModelID   string `json:"model_id"`
	KeySetID  string `json:"keyset_id"`
	Status    string `json:"status"`
	// Done and Total count evaluation steps (layers) for progress.
	Done  int `json:"done"`
	Total int `json:"total"`
	// QueuePosition is the number of jobs ahead of a queued job (0: next).
	QueuePosition *int   `json:"queue_position,omitempty"`
	ErrorCode     string `json:"error_code,omitempty"`
	Error         string `json:"error,omitempty"`
	Attempts      int    `json:"attempts"` // runs started, more than 1 after a restart
	InputBytes    int64  `json:"input_bytes"`
	ResultBytes   int64  `json:"result_bytes,omitempty"`
	InputKey      string `json:"-"`
	ResultKey     string `json:"-"`

	CreatedAt  time.Time  `json:"created_at"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"` // when the result is deleted
}

// Terminal reports whether j will not change any more (except expiring).
func (j *Job) Terminal() bool {
	return j.Status == JobDone || j.Status == JobFailed || j.Status == JobExpired
}

// Event is one entry of the audit trail: who did what to which object.
// It never holds secrets, values or ciphertext bytes.
type Event struct {
	ID     int64     `json:"id"`
	Time   time.Time `json:"time"`
	Actor  string    `json:"actor"`  // username, or "" for the system
	Action string    `json:"action"` // e.g. "account.approve", "job.submit"
	Target string    `json:"target"` // an object id or username
	Detail string    `json:"detail,omitempty"`
}
