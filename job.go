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
	// Samples is the number of samples the job's input holds, as the user
	// declared it: 1 to the plan's batch size (in latency packing 1, or
	// one per tile of a tiled plan). Quotas and rate limits count samples, and the result
	// carries the outputs of these samples only.
	Samples int `json:"samples"`
	// Claim, on a gallery, is the label a verification claims (empty: an
	// identification).
	Claim string `json:"claim,omitempty"`
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

// SubmitRequest names what a job's input is for; the input ciphertexts
// travel beside it.
type SubmitRequest struct {
	ModelID  string `json:"model_id"`
	KeySetID string `json:"keyset_id"` // the key set the input is encrypted for
	Samples  int    `json:"samples"`   // samples in the input (the plan bounds it further)
	// Claim, on a gallery only, makes the job a verification of this
	// label; without it a job on a gallery is an identification.
	Claim string `json:"claim,omitempty"`
}

// Validate checks the request.
func (r *SubmitRequest) Validate() error {
	if r.KeySetID == "" {
		return Errorf(EINVALID, "a job must name the key set its input is encrypted for")
	}
	if r.Samples < 1 {
		return Errorf(EINVALID, "a job must hold at least one sample, not %d", r.Samples)
	}
	if r.Claim != "" {
		return validLabels([]string{r.Claim})
	}
	return nil
}

// Terminal reports whether j will not change any more (except expiring).
func (j *Job) Terminal() bool {
	return j.Status == JobDone || j.Status == JobFailed || j.Status == JobExpired
}
