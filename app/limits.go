package app

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/fheserve/fheserve"
)

// Throttles of logins and registrations. A password guesser gets 10
// tries per account, then one every 2 seconds; one address gets 30
// failed tries over all accounts, then one a second, so that spraying one
// password over many accounts is slow too. Successful logins do not count
// against the address: many users behind one NAT (or a load balancer)
// log in as often as they need.
var (
	loginPerAccount = throttle{rate.Every(2 * time.Second), 10}
	loginPerAddr    = throttle{rate.Every(time.Second), 30}
	registrations   = throttle{rate.Every(100 * time.Millisecond), 100}
)

type throttle struct {
	every rate.Limit
	burst int
}

// maxBuckets bounds each map of token buckets; a full map is forgotten
// rather than allowed to grow without bound.
const maxBuckets = 10000

// limiter holds the token buckets of login and registration throttling
// and of the owners' per-model rate limits, in separate maps so that
// flooding one (with made-up usernames, say) cannot reset the other, and
// the count of uploads in progress.
type limiter struct {
	mu   sync.Mutex
	auth map[string]*rate.Limiter
	use  map[string]*rate.Limiter
	now  func() time.Time

	uploads slots
	warming atomic.Int32 // key sets being prepared after their upload
}

func newLimiter(now func() time.Time) *limiter {
	return &limiter{auth: map[string]*rate.Limiter{}, use: map[string]*rate.Limiter{}, now: now}
}

// take takes one token from the bucket key of m (made with th if new) and
// returns 0, or, when the bucket is empty, how long until it has one.
func (l *limiter) take(m *map[string]*rate.Limiter, key string, th throttle) time.Duration {
	_, d := l.reserve(m, key, th, 1, l.now())
	return d
}

// reserve takes n tokens (at most th.burst) at now from the bucket key of
// m (made with th if new) and returns their reservation, to cancel at now
// if the job they were taken for is refused after all; or, when the
// bucket has fewer, how long until it has n.
func (l *limiter) reserve(m *map[string]*rate.Limiter, key string, th throttle, n int, now time.Time) (*rate.Reservation, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(*m) >= maxBuckets {
		*m = map[string]*rate.Limiter{}
	}
	lim, ok := (*m)[key]
	if !ok {
		lim = rate.NewLimiter(th.every, th.burst)
		(*m)[key] = lim
	}
	r := lim.ReserveN(now, n)
	if !r.OK() {
		return nil, rate.InfDuration
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return nil, d
	}
	return r, 0
}

// wait returns how long until the bucket key of m has a token, without
// taking it (0 when it has one now).
func (l *limiter) wait(m *map[string]*rate.Limiter, key string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := (*m)[key]
	if !ok {
		return 0
	}
	now := l.now()
	if tok := lim.TokensAt(now); tok < 1 {
		return time.Duration((1 - tok) / float64(lim.Limit()) * float64(time.Second))
	}
	return 0
}

// login throttles a login attempt by account, and refuses it while the
// client's address has used up its failed attempts (loginFailed).
func (l *limiter) login(username, addr string) error {
	if d := l.take(&l.auth, "login\x00"+username, loginPerAccount); d > 0 {
		return retryLater(d, "too many login attempts for %q", username)
	}
	if addr == "" {
		return nil
	}
	if d := l.wait(&l.auth, "addr\x00"+addr); d > 0 {
		return retryLater(d, "too many failed login attempts from your address")
	}
	return nil
}

// loginFailed counts a failed login against the client's address.
func (l *limiter) loginFailed(addr string) {
	if addr != "" {
		l.take(&l.auth, "addr\x00"+addr, loginPerAddr)
	}
}

// register throttles registrations, globally.
func (l *limiter) register() error {
	if d := l.take(&l.auth, "register", registrations); d > 0 {
		return retryLater(d, "too many registrations")
	}
	return nil
}

// retryLater returns an ERATELIMIT error that says when to try again.
func retryLater(d time.Duration, format string, args ...any) error {
	d = d.Round(time.Second)
	if d < time.Second {
		d = time.Second
	}
	msg := fmt.Sprintf(format, args...)
	return &fheserve.Error{Code: fheserve.ERATELIMIT, RetryAfter: d,
		Message: fmt.Sprintf("%s; try again in %s", msg, d)}
}

// checkLimits enforces m's limits on a job of who holding n samples: the
// daily quotas, counted in the store, then the rates, each of which the
// job costs n. Two jobs submitted at the same instant may both pass the
// last samples of a daily quota; the rate limits bound how many can.
func (a *App) checkLimits(ctx context.Context, who *fheserve.Account, m *fheserve.Model, n int) error {
	l := m.Limits
	if l == (fheserve.ModelLimits{}) {
		return nil
	}
	now := a.cfg.Now().UTC()
	day := now.Truncate(24 * time.Hour)
	tomorrow := day.Add(24 * time.Hour).Sub(now)
	for _, q := range []struct {
		limit   int
		account string
		what    string
	}{
		{l.Daily, who.ID, "your daily quota"},
		{l.ModelDaily, "", "the daily quota of all users"},
	} {
		if q.limit == 0 {
			continue
		}
		if n > q.limit {
			return fheserve.Errorf(fheserve.EINVALID, "model %s: this job holds %d samples, more than %s of %d samples; submit at most %d samples per job", m.ID, n, q.what, q.limit, q.limit)
		}
		used, err := a.store.CountSamples(ctx, fheserve.JobFilter{AccountID: q.account, ModelID: m.ID, CreatedAfter: day})
		if err != nil {
			return err
		}
		switch left := q.limit - used; {
		case left <= 0:
			return retryLater(tomorrow, "model %s: %s of %d samples is used up until 00:00 UTC", m.ID, q.what, q.limit)
		case n > left:
			return retryLater(tomorrow, "model %s: %s of %d samples has %d left until 00:00 UTC, and this job holds %d", m.ID, q.what, q.limit, left, n)
		}
	}
	// Tokens taken from the per-user bucket go back if the model-wide one
	// refuses the job.
	var taken []*rate.Reservation
	refuse := func(err error) error {
		for _, r := range taken {
			r.CancelAt(now)
		}
		return err
	}
	for _, r := range []struct {
		perMinute float64
		burst     int
		key       string
		what      string
	}{
		{l.RatePerMinute, l.Burst, who.ID, "your rate limit"},
		{l.ModelRatePerMinute, l.ModelBurst, "", "the rate limit of all users"},
	} {
		if r.perMinute == 0 {
			continue
		}
		burst := fheserve.BurstOr(r.burst, r.perMinute)
		if n > burst {
			return refuse(fheserve.Errorf(fheserve.EINVALID, "model %s: this job holds %d samples, more than the bursts of %d samples %s allows; submit at most %d samples per job",
				m.ID, n, burst, r.what, burst))
		}
		th := throttle{rate.Limit(r.perMinute / 60), burst}
		// The limits are part of the key, so new limits start a new bucket.
		key := fmt.Sprintf("%s\x00%s\x00%g\x00%d", m.ID, r.key, r.perMinute, burst)
		res, d := a.limits.reserve(&a.limits.use, key, th, n, now)
		if d > 0 {
			return refuse(retryLater(d, "model %s: %s is %s samples a minute (bursts of %d)", m.ID, r.what, trimFloat(r.perMinute), burst))
		}
		taken = append(taken, res)
	}
	return nil
}

func trimFloat(f float64) string {
	if f == math.Trunc(f) {
		return fmt.Sprintf("%d", int64(f))
	}
	return fmt.Sprintf("%g", f)
}

// SetLimits replaces a model's abuse limits (its owner or an administrator).
func (a *App) SetLimits(ctx context.Context, who *fheserve.Account, id string, req *fheserve.ModelLimits) (*fheserve.Model, error) {
	m, err := a.ownModel(ctx, who, id)
	if err != nil {
		return nil, err
	}
	if err := req.Validate(); err != nil {
		return nil, err
	}
	m.Limits = *req
	if err := a.store.UpdateModel(ctx, m); err != nil {
		return nil, err
	}
	a.audit(ctx, who, "model.limits", id, fmt.Sprintf("%+v", *req))
	return m, nil
}
