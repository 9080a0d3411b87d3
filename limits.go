package fheserve

import (
	"errors"
	"math"
	"time"
)

// ModelLimits are the abuse limits a model's owner sets: a defence
// against extracting the model through many queries. Zero means no limit.
// Every limit counts samples, not jobs: a batch job of n samples costs n,
// as n queries do. Rates are refilled continuously (a token bucket); daily
// quotas count the samples of the jobs submitted since 00:00 UTC.
type ModelLimits struct {
	// Each user's samples on the model: RatePerMinute with bursts of Burst
	// (default: the rate rounded up, at least 1; a job may hold at most
	// Burst samples), and Daily per UTC day.
	RatePerMinute float64 `json:"rate_per_minute,omitempty"`
	Burst         int     `json:"burst,omitempty"`
	Daily         int     `json:"daily,omitempty"`
	// Every user's samples on the model together.
	ModelRatePerMinute float64 `json:"model_rate_per_minute,omitempty"`
	ModelBurst         int     `json:"model_burst,omitempty"`
	ModelDaily         int     `json:"model_daily,omitempty"`
}

// MaxLimit bounds every field of ModelLimits.
const MaxLimit = 1_000_000

// Validate checks the limits.
func (l *ModelLimits) Validate() error {
	for _, f := range []struct {
		name string
		v    float64
	}{
		{"rate_per_minute", l.RatePerMinute}, {"burst", float64(l.Burst)}, {"daily", float64(l.Daily)},
		{"model_rate_per_minute", l.ModelRatePerMinute}, {"model_burst", float64(l.ModelBurst)}, {"model_daily", float64(l.ModelDaily)},
	} {
		if math.IsNaN(f.v) || f.v < 0 || f.v > MaxLimit {
			return Errorf(EINVALID, "%s must be between 0 (no limit) and %d, not %v", f.name, MaxLimit, f.v)
		}
	}
	if l.Burst > 0 && l.RatePerMinute == 0 {
		return Errorf(EINVALID, "burst needs a rate_per_minute")
	}
	if l.ModelBurst > 0 && l.ModelRatePerMinute == 0 {
		return Errorf(EINVALID, "model_burst needs a model_rate_per_minute")
	}
	return nil
}

// BurstOr returns burst, or the default for rate per minute: the rate
// rounded up, at least 1.
func BurstOr(burst int, perMinute float64) int {
	if burst > 0 {
		return burst
	}
	return max(1, int(math.Ceil(perMinute)))
}

// RetryAfter returns how long the caller should wait before trying
// again, from the first *Error in err's chain (0 if it says nothing).
func RetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}
