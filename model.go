package fheserve

import (
	"math"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Statuses of a model.
const (
	ModelActive  = "active"  // users it allows may run predictions
	ModelRetired = "retired" // kept for its records; no new keys or jobs
)

// Packings a model can be compiled with (mirrors plan.Latency and plan.Batch).
const (
	PackingLatency = "latency"
	PackingBatch   = "batch"
)

// Model is one deployed version of an owner's model. Its public plan is
// stored as JSON (package plan holds the type); its weights are stored
// encrypted at rest in the blob store and never leave the server.
type Model struct {
	ID      string `json:"id"`
	OwnerID string `json:"-"`
	Owner   string `json:"owner"` // the owner's username
	Name    string `json:"name"`
	Version int    `json:"version"` // 1 for the first deployment of a name, then +1
	Status  string `json:"status"`
	// Allow lists the usernames that may use the model; empty means every
	// approved user.
	Allow []string `json:"allow,omitempty"`
	// Limits are the owner's abuse limits on the users' jobs.
	Limits ModelLimits `json:"limits"`

	// A summary of the plan, for listings.
	Packing         string  `json:"packing"`
	LogN            int     `json:"log_n"`
	InputShape      []int   `json:"input_shape"`
	OutputShape     []int   `json:"output_shape"`
	BatchSize       int     `json:"batch_size"`
	Rotations       int     `json:"rotations"`
	OutputError     float64 `json:"output_error"`
	PlanFingerprint string  `json:"plan_fingerprint"`
	// ParamsFingerprint identifies the CKKS parameters (he.Fingerprint).
	ParamsFingerprint string `json:"params_fingerprint"`
	ModelBytes        int64  `json:"model_bytes"` // size of the uploaded ONNX file
	// Sealed: the server holds no weights, only the owner's weights sealed
	// under each user's public key (SealService); MaxSealedKeySets bounds
	// how many key sets it seals for (0: no bound).
	Sealed           bool `json:"sealed,omitempty"`
	MaxSealedKeySets int  `json:"max_sealed_keysets,omitempty"`
	// Labels names the model's outputs, one per output value in order
	// (class names), when its owner gave them or its ONNX file carries
	// them; public, like the rest of this summary.
	Labels []string `json:"labels,omitempty"`

	PlanJSON   []byte `json:"-"` // the plan.Plan
	WeightsKey string `json:"-"` // blob key of the encrypted program
	WrappedKey []byte `json:"-"` // the weights' data key, wrapped by the master key

	CreatedAt time.Time  `json:"created_at"`
	RetiredAt *time.Time `json:"retired_at,omitempty"`
}

// Open reports whether every approved user may use m.
func (m *Model) Open() bool { return len(m.Allow) == 0 }

// Allows reports whether the user named username is on m's list (or m is open).
func (m *Model) Allows(username string) bool {
	if m.Open() {
		return true
	}
	for _, u := range m.Allow {
		if u == username {
			return true
		}
	}
	return false
}

var modelNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// MaxAllow bounds a model's allow-list.
const MaxAllow = 1000

// Approximation fits (compiler.FitInterpolation, compiler.FitLeastSquares).
const (
	FitInterpolation = "interpolation"
	FitLeastSquares  = "least-squares"
)

// Key choices (compiler.KeysSmall, compiler.KeysFast, compiler.KeysDerived).
const (
	KeysSmall   = "small"
	KeysFast    = "fast"
	KeysDerived = "derived"
)

// Ranges of CompileSettings (NoPrivacy is compiler.NoPrivacy).
const (
	NoPrivacy        = -1      // PrivacyBits that turns flooding off
	MaxPrivacyBits   = 128     // the largest statistical security parameter
	MaxQueryBudget   = 1 << 40 // the largest number of samples a guarantee may cover
	MaxPrecisionBits = 40      // the largest precision target, in bits
	MaxMargin        = 10      // the widest interval margin, in widths
	MaxDegrees       = 256     // per-node degrees in one request
	maxNodeName      = 256     // the longest node name of a per-node degree
)

// CompileSettings are the compilation settings an owner may choose, the
// ones 'fheserve compile' takes; a zero field means the default.
type CompileSettings struct {
	// Degree of activation approximations (0: the compiler's default);
	// Degrees overrides it per activation node name.
	Degree  int            `json:"degree,omitempty"`
	Degrees map[string]int `json:"degrees,omitempty"`
	// Fit is how activations are approximated: FitInterpolation or
	// FitLeastSquares. With calibration data and none of Degree, Degrees,
	// Fit and Margin, the compiler chooses all of them from the data;
	// with calibration data and a degree or margin, least squares;
	// without calibration data, interpolation.
	Fit string `json:"fit,omitempty"`
	// Margin widens each calibrated activation interval by this fraction
	// of its width on each side (0: the compiler's default).
	Margin float64 `json:"margin,omitempty"`
	// LogN forces the ring degree 2^LogN (0: the smallest that fits).
	LogN int `json:"log_n,omitempty"`
	// PrivacyBits is the circuit-privacy level lambda the results are
	// flooded for (0: the compiler's default; NoPrivacy: no flooding);
	// QueryBudget the number of samples it holds over (0: the default).
	PrivacyBits float64 `json:"privacy_bits,omitempty"`
	QueryBudget int     `json:"query_budget,omitempty"`
	// PrecisionBits is the output precision asked for, in bits below the
	// output bound (0: the default).
	PrecisionBits float64 `json:"precision_bits,omitempty"`
	// Precision is the output precision asked for as an absolute error:
	// the largest error of any output value against the exact model on
	// inputs like the calibration data, the activation approximations
	// included (compiler.Options.Precision; 0: PrecisionBits applies).
	Precision float64 `json:"precision,omitempty"`
	// Keys is KeysSmall (the default: the fewest key bytes), KeysFast
	// (the fewest rotations) or KeysDerived (KeysFast's rotations, derived
	// by the server from uploaded master keys) for the linear maps'
	// rotation keys.
	Keys string `json:"keys,omitempty"`
	// NoTiles keeps a latency plan to one sample per call
	// (compiler.Options.NoTiles): by default a latency plan with room for
	// several copies of its input puts a sample in each, at some extra
	// diagonals and rotations per call.
	NoTiles bool `json:"no_tiles,omitempty"`
}

// Validate checks the settings' ranges; the compiler checks the rest
// against the model (node names, what fits in a ring).
func (c *CompileSettings) Validate() error {
	if c.Degree != 0 && !validDegree(c.Degree) {
		return Errorf(EINVALID, "degree must be between 2 and 63, not %d", c.Degree)
	}
	if len(c.Degrees) > MaxDegrees {
		return Errorf(EINVALID, "degrees names %d nodes, the limit is %d", len(c.Degrees), MaxDegrees)
	}
	for name, d := range c.Degrees {
		if name == "" || len(name) > maxNodeName {
			return Errorf(EINVALID, "degrees: a node name must have 1 to %d characters, not %d", maxNodeName, len(name))
		}
		if !validDegree(d) {
			return Errorf(EINVALID, "degrees: the degree of node %q must be between 2 and 63, not %d", clip(name, 70), d)
		}
	}
	if c.Fit != "" && c.Fit != FitInterpolation && c.Fit != FitLeastSquares {
		return Errorf(EINVALID, "fit must be %q or %q, not %q", FitInterpolation, FitLeastSquares, clip(c.Fit, 20))
	}
	if math.IsNaN(c.Margin) || c.Margin < 0 || c.Margin > MaxMargin {
		return Errorf(EINVALID, "margin must be between 0 (the default) and %d, not %g", MaxMargin, c.Margin)
	}
	if c.LogN != 0 && (c.LogN < 12 || c.LogN > 16) {
		return Errorf(EINVALID, "log_n must be 0 (the smallest ring that fits) or between 12 and 16, not %d", c.LogN)
	}
	if p := c.PrivacyBits; p != NoPrivacy && p != 0 && !(p >= 1 && p <= MaxPrivacyBits) {
		return Errorf(EINVALID, "privacy_bits must be -1 (no flooding), 0 (the default) or between 1 and %d, not %g", MaxPrivacyBits, p)
	}
	if c.QueryBudget < 0 || c.QueryBudget > MaxQueryBudget {
		return Errorf(EINVALID, "query_budget must be 0 (the default) or between 1 and 2^40, not %d", c.QueryBudget)
	}
	if p := c.PrecisionBits; p != 0 && !(p >= 1 && p <= MaxPrecisionBits) {
		return Errorf(EINVALID, "precision_bits must be 0 (the default) or between 1 and %d, not %g", MaxPrecisionBits, p)
	}
	if p := c.Precision; math.IsNaN(p) || math.IsInf(p, 0) || p < 0 {
		return Errorf(EINVALID, "precision must be 0 (the default) or a positive error, not %g", p)
	}
	if c.Precision != 0 && c.PrecisionBits != 0 {
		return Errorf(EINVALID, "precision and precision_bits cannot both be given: one is absolute, the other relative to the output bound")
	}
	if c.Keys != "" && c.Keys != KeysSmall && c.Keys != KeysFast && c.Keys != KeysDerived {
		return Errorf(EINVALID, "keys must be %q, %q or %q, not %q", KeysSmall, KeysFast, KeysDerived, clip(c.Keys, 20))
	}
	return nil
}

// DeployRequest deploys a model: the server imports and compiles the ONNX
// file and refuses it with the compiler's message if it cannot be evaluated.
type DeployRequest struct {
	Name    string `json:"name"`
	Packing string `json:"packing,omitempty"` // latency (default) or batch
	CompileSettings
	// Allow lists the users who may use the model; empty: every approved
	// user.
	Allow []string `json:"allow,omitempty"`
	// Labels names the outputs, one per output value (ValidLabels); empty:
	// the labels of the ONNX file's metadata, if it has any.
	Labels []string `json:"labels,omitempty"`

	ONNX        []byte `json:"-"` // the model file
	Calibration []byte `json:"-"` // optional .npy of representative inputs
}

// Validate checks the request.
func (r *DeployRequest) Validate() error {
	if !modelNameRE.MatchString(r.Name) {
		return Errorf(EINVALID, "model name %q is not valid: use 1 to 64 letters, digits, '_', '.' or '-'", clip(r.Name, 70))
	}
	if r.Packing != "" && r.Packing != PackingLatency && r.Packing != PackingBatch {
		return Errorf(EINVALID, "packing must be %q or %q, not %q", PackingLatency, PackingBatch, clip(r.Packing, 20))
	}
	if err := r.CompileSettings.Validate(); err != nil {
		return err
	}
	if len(r.ONNX) == 0 {
		return Errorf(EINVALID, "the ONNX model file is empty")
	}
	if len(r.Labels) > 0 {
		if err := ValidLabels(r.Labels, len(r.Labels)); err != nil {
			return err
		}
	}
	return validAllow(r.Allow)
}

// Bounds of a model's output labels.
const (
	MaxLabels   = 4096 // labels of one model
	MaxLabelLen = 64   // bytes of one label
)

// ValidLabels checks labels for a model of outputs output values: one
// label per output, each 1 to MaxLabelLen bytes of printable UTF-8 with
// no leading or trailing space, no two alike.
func ValidLabels(labels []string, outputs int) error {
	if len(labels) != outputs {
		return Errorf(EINVALID, "%d labels for a model of %d outputs: give one label per output, in order", len(labels), outputs)
	}
	if len(labels) > MaxLabels {
		return Errorf(EINVALID, "%d labels, the limit is %d", len(labels), MaxLabels)
	}
	seen := make(map[string]bool, len(labels))
	for i, l := range labels {
		if l == "" || len(l) > MaxLabelLen {
			return Errorf(EINVALID, "label %d must have 1 to %d bytes, not %d", i+1, MaxLabelLen, len(l))
		}
		if !utf8.ValidString(l) || strings.TrimSpace(l) != l || strings.IndexFunc(l, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
			return Errorf(EINVALID, "label %d (%q) must be printable text with no leading or trailing space", i+1, clip(l, 70))
		}
		if seen[l] {
			return Errorf(EINVALID, "label %q is given twice", clip(l, 70))
		}
		seen[l] = true
	}
	return nil
}

func validDegree(d int) bool { return d >= 2 && d <= 63 }

// AccessRequest replaces a model's allow-list.
type AccessRequest struct {
	Allow []string `json:"allow"` // empty: every approved user
}

// Validate checks the request.
func (r *AccessRequest) Validate() error { return validAllow(r.Allow) }

func validAllow(allow []string) error {
	if len(allow) > MaxAllow {
		return Errorf(EINVALID, "allow-list has %d names, the limit is %d", len(allow), MaxAllow)
	}
	seen := map[string]bool{}
	for _, u := range allow {
		if err := ValidUsername(u); err != nil {
			return err
		}
		if seen[u] {
			return Errorf(EINVALID, "allow-list names %q twice", u)
		}
		seen[u] = true
	}
	return nil
}

// Usage summarizes the jobs run on a model, for its owner.
type Usage struct {
	ModelID  string `json:"model_id"`
	Requests int    `json:"requests"` // jobs
	Failures int    `json:"failures"`
	// Samples counts the samples of the jobs, what quotas count.
	Samples int     `json:"samples"`
	Latency Latency `json:"latency_ms"` // of finished jobs, submission to result
	// QueueWait (submission to the start of evaluation) and Evaluation
	// (its run) are over the jobs that ran, done or failed.
	QueueWait  Latency     `json:"queue_wait_ms"`
	Evaluation Latency     `json:"evaluation_ms"`
	ByUser     []UsageLine `json:"by_user"`
	ByDay      []UsageLine `json:"by_day"` // UTC days, oldest first
	// ByUserHour and ByUserDay count each user's requests per UTC hour
	// (Key "YYYY-MM-DDTHH") and per UTC day, by user then oldest first.
	ByUserHour []UsageLine `json:"by_user_hour"`
	ByUserDay  []UsageLine `json:"by_user_day"`
	// FailuresByCause counts failed jobs by error code.
	FailuresByCause map[string]int `json:"failures_by_cause"`
	// KeySets are the active key sets of the model, with their jobs.
	KeySets []KeySetUsage `json:"keysets"`
	Quota   QuotaState    `json:"quota"`
}

// UsageLine counts the requests (jobs) and their samples of one user, one
// period, or one user in one period.
type UsageLine struct {
	Key      string `json:"key"`            // username, YYYY-MM-DD or YYYY-MM-DDTHH
	User     string `json:"user,omitempty"` // in lines per user and period
	Requests int    `json:"requests"`
	Failures int    `json:"failures"`
	Samples  int    `json:"samples"`
}

// KeySetUsage is one key set in use on a model.
type KeySetUsage struct {
	ID        string    `json:"id"`
	User      string    `json:"user"`
	CreatedAt time.Time `json:"created_at"`
	Jobs      int       `json:"jobs"`
	Samples   int       `json:"samples"`
}

// QuotaState is a model's abuse limits and what they count today.
type QuotaState struct {
	Set    bool        `json:"set"`
	Limits ModelLimits `json:"limits"`
	// Today and TodaySamples count the jobs in view submitted since 00:00
	// UTC and their samples, which the daily quotas count.
	Today        int    `json:"today"`
	TodaySamples int    `json:"today_samples"`
	Summary      string `json:"summary"` // e.g. "no quota set"
}

// Latency percentiles in milliseconds.
type Latency struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// LatencyOf returns the nearest-rank percentiles of ms (zero if empty);
// it sorts ms.
func LatencyOf(ms []float64) Latency {
	if len(ms) == 0 {
		return Latency{}
	}
	sort.Float64s(ms)
	pct := func(p float64) float64 { return ms[int(math.Ceil(p*float64(len(ms))))-1] }
	return Latency{P50: pct(0.5), P90: pct(0.9), P99: pct(0.99), Max: ms[len(ms)-1]}
}
