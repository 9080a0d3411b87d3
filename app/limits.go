package app

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/fheserve/fheserve"
)

// Throttles of logins and registrations. A password guesser gets 10
// tries per account from one address, then one every 2 seconds; one
// address gets 30 failed tries over all accounts, then one a second, so
// that spraying one password over many accounts is slow too. Guesses from
// one address never throttle an account's logins from another, so that a
// guesser cannot lock its owner out. Successful logins do not count
// against the address: many users behind one NAT (or a load balancer)
// log in as often as they need. An IPv6 address counts by its /64 prefix,
// which one client usually holds whole.
var (
	loginPerAccount = throttle{rate.Every(2 * time.Second), 10}
	loginPerAddr    = throttle{rate.Every(time.Second), 30}
	registrations   = throttle{rate.Every(100 * time.Millisecond), 100}
)

type throttle struct {
	every rate.Limit
	burst int
}

// maxBuckets bounds the token buckets of logins: a full map forgets its
// refilled buckets (they hold nothing a new one would not) and, if every
// bucket is still in use, refuses new clients rather than forget one
// under attack.
const maxBuckets = 10000

// buckets are token buckets by key.
type buckets struct {
	m     map[string]*rate.Limiter
	max   int       // 0: no bound (the per-model rates: their keys are accounts and models)
	swept time.Time // the last sweep, at most one a second
}

// limiter holds the token buckets of login and registration throttling
// and of the owners' per-model rate limits, apart so that flooding one
// (with made-up usernames, say) cannot touch the other, and the places
// of uploads and deployments in progress.
type limiter struct {
	mu   sync.Mutex
	auth buckets
	use  buckets
	now  func() time.Time

	uploads slots
	deploys slots
	warming atomic.Int32 // key sets being prepared after their upload

	// pending counts the samples of jobs that passed a daily quota and
	// are not stored yet, by model and account ("" for all users), so
	// that concurrent submissions cannot pass the same last samples.
	quotaMu sync.Mutex
	pending map[string]int
}

func newLimiter(now func() time.Time) *limiter {
	return &limiter{
		auth: buckets{m: map[string]*rate.Limiter{}, max: maxBuckets},
		use:  buckets{m: map[string]*rate.Limiter{}},
		now:  now, pending: map[string]int{},
	}
}

// errBusy refuses a new client while the login buckets are all in use.
var errBusy = &fheserve.Error{Code: fheserve.ERATELIMIT, RetryAfter: 10 * time.Second,
	Message: "the server is throttling too many clients at once; try again in 10s"}

// bucket returns the bucket key of b, made with th if new, or nil when
// b is full of buckets in use (l.mu held).
func (b *buckets) bucket(key string, th throttle, now time.Time) *rate.Limiter {
	if lim, ok := b.m[key]; ok {
		return lim
	}
	if len(b.m) >= maxBuckets && now.Sub(b.swept) >= time.Second {
		b.swept = now
		for k, lim := range b.m {
			if lim.TokensAt(now) >= float64(lim.Burst()) {
				delete(b.m, k)
			}
		}
	}
	if b.max > 0 && len(b.m) >= b.max {
		return nil
	}
	lim := rate.NewLimiter(th.every, th.burst)
	b.m[key] = lim
	return lim
}

// take takes one token from the bucket key of b (made with th if new) and
// returns 0, or, when the bucket is empty, how long until it has one.
func (l *limiter) take(b *buckets, key string, th throttle) (time.Duration, error) {
	_, d, err := l.reserve(b, key, th, 1, l.now())
	return d, err
}

// reserve takes n tokens (at most th.burst) at now from the bucket key of
// b (made with th if new) and returns their reservation, to cancel at now
// if the job they were taken for is refused after all; or, when the
// bucket has fewer, how long until it has n.
func (l *limiter) reserve(b *buckets, key string, th throttle, n int, now time.Time) (*rate.Reservation, time.Duration, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := b.bucket(key, th, now)
	if lim == nil {
		return nil, 0, errBusy
	}
	r := lim.ReserveN(now, n)
	if !r.OK() {
		return nil, rate.InfDuration, nil
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return nil, d, nil
	}
	return r, 0, nil
}

// wait returns how long until the bucket key of b has a token, without
// taking it (0 when it has one now).
func (l *limiter) wait(b *buckets, key string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := b.m[key]
	if !ok {
		return 0
	}
	now := l.now()
	if tok := lim.TokensAt(now); tok < 1 {
		return time.Duration((1 - tok) / float64(lim.Limit()) * float64(time.Second))
	}
	return 0
}

// addrKey is the part of a client's address that is throttled: an IPv4
// address whole, an IPv6 address's /64 prefix.
func addrKey(addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	ip = ip.Unmap()
	if ip.Is4() {
		return ip.String()
	}
	p, _ := ip.Prefix(64)
	return p.String()
}

// login throttles a login attempt: it refuses it while the client's
// address has used up its failed attempts (loginFailed), then takes a
// token of the account's bucket for that address. The address comes
// first, so that refused attempts make no buckets.
func (l *limiter) login(username, addr string) error {
	addr = addrKey(addr)
	if addr != "" {
		if d := l.wait(&l.auth, "addr\x00"+addr); d > 0 {
			return retryLater(d, "too many failed login attempts from your address")
		}
	}
	d, err := l.take(&l.auth, "login\x00"+username+"\x00"+addr, loginPerAccount)
	if err != nil {
		return err
	}
	if d > 0 {
		return retryLater(d, "too many login attempts for %q", username)
	}
	return nil
}

// loginFailed counts a failed login against the client's address.
func (l *limiter) loginFailed(addr string) {
	if addr != "" {
		l.take(&l.auth, "addr\x00"+addrKey(addr), loginPerAddr)
	}
}

// register throttles registrations, globally.
func (l *limiter) register() error {
	d, err := l.take(&l.auth, "register", registrations)
	if err != nil {
		return err
	}
	if d > 0 {
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
// job costs n. The samples it lets through count as pending against the
// daily quotas until release is called, once the job is stored or
// refused, so that concurrent submissions cannot pass the same last
// samples of a quota.
func (a *App) checkLimits(ctx context.Context, who *fheserve.Account, m *fheserve.Model, n int) (release func(), err error) {
	l := m.Limits
	if l == (fheserve.ModelLimits{}) {
		return func() {}, nil
	}
	now := a.cfg.Now().UTC()
	release, err = a.checkDaily(ctx, who, m, n, now)
	if err != nil {
		return nil, err
	}
	// Tokens taken from the per-user bucket go back if the model-wide one
	// refuses the job.
	var taken []func()
	refuse := func(err error) (func(), error) {
		for _, giveBack := range taken {
			giveBack()
		}
		release()
		return nil, err
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
		giveBack, d, err := a.takeRate(ctx, key, th, n, now)
		if err != nil {
			return refuse(err)
		}
		if d > 0 {
			return refuse(retryLater(d, "model %s: %s is %s samples a minute (bursts of %d)", m.ID, r.what, trimFloat(r.perMinute), burst))
		}
		taken = append(taken, giveBack)
	}
	return release, nil
}

// takeRate takes n tokens at now from the bucket key of a model's rate
// limits (made with th if new): in the store when nodes share it
// (fheserve.RateStore), so that a user gets the rate once over all the
// nodes, else in this process. It returns how to give them back, or, when
// the bucket holds fewer, how long until it holds n.
func (a *App) takeRate(ctx context.Context, key string, th throttle, n int, now time.Time) (giveBack func(), d time.Duration, err error) {
	if rs, ok := a.store.(fheserve.RateStore); ok {
		every := time.Duration(float64(time.Second) / float64(th.every))
		if d, err := rs.TakeTokens(ctx, key, every, th.burst, n, now); err != nil || d > 0 {
			return nil, d, err
		}
		return func() {
			if err := rs.ReturnTokens(context.WithoutCancel(ctx), key, every, n); err != nil {
				a.log.Warn("cannot give back rate-limit tokens", "err", err)
			}
		}, 0, nil
	}
	res, d, err := a.limits.reserve(&a.limits.use, key, th, n, now)
	if err != nil || d > 0 {
		return nil, d, err
	}
	return func() { res.CancelAt(now) }, 0, nil
}

// checkDaily enforces m's daily quotas on a job of who holding n samples:
// the samples of the jobs stored today plus those pending (let through,
// not stored yet). It adds n to the pending samples; release takes them
// back.
func (a *App) checkDaily(ctx context.Context, who *fheserve.Account, m *fheserve.Model, n int, now time.Time) (release func(), err error) {
	l := m.Limits
	day := now.Truncate(24 * time.Hour)
	tomorrow := day.Add(24 * time.Hour).Sub(now)
	quotas := []dailyQuota{
		{l.Daily, who.ID, "your daily quota"},
		{l.ModelDaily, "", "the daily quota of all users"},
	}
	if qs, ok := a.store.(fheserve.QuotaStore); ok {
		return a.reserveDaily(ctx, qs, who, m, n, now, quotas)
	}
	lim := a.limits
	// One submission at a time between counting and adding its samples.
	lim.quotaMu.Lock()
	defer lim.quotaMu.Unlock()
	var keys []string
	for _, q := range quotas {
		if q.limit == 0 {
			continue
		}
		if err := q.tooLarge(m, n); err != nil {
			return nil, err
		}
		used, err := a.store.CountSamples(ctx, fheserve.JobFilter{AccountID: q.account, ModelID: m.ID, CreatedAfter: day})
		if err != nil {
			return nil, err
		}
		key := m.ID + "\x00" + q.account
		used += lim.pending[key]
		if err := q.refuse(m, used, n, tomorrow); err != nil {
			return nil, err
		}
		keys = append(keys, key)
	}
	for _, k := range keys {
		lim.pending[k] += n
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			lim.quotaMu.Lock()
			defer lim.quotaMu.Unlock()
			for _, k := range keys {
				if lim.pending[k] -= n; lim.pending[k] <= 0 {
					delete(lim.pending, k)
				}
			}
		})
	}, nil
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
	a.audit(ctx, who, "model.limits", modelObj(id))
	return m, nil
}
