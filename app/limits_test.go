package app

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fheserve/fheserve"
)

// TestLoginThrottle checks the throttles per account and per address:
// which attempt is refused first, the Retry-After it gives, that others
// are unaffected, and that waiting lets the next attempt through.
func TestLoginThrottle(t *testing.T) {
	type attempt struct{ user, addr string }
	tests := []struct {
		name      string
		attempts  func(i int) attempt // the i-th attempt
		fail      bool                // the attempts fail (wrong password)
		allowed   int                 // how many pass before the first refusal
		retry     time.Duration       // the refusal's Retry-After
		message   string
		bystander attempt // unaffected by the refusals
	}{
		{
			name:      "one account from many addresses",
			attempts:  func(i int) attempt { return attempt{"alice", "10.0.0." + strconv.Itoa(i)} },
			allowed:   10,
			retry:     2 * time.Second,
			message:   `too many login attempts for "alice"; try again in 2s`,
			bystander: attempt{"bob", "10.0.0.1"},
		},
		{
			name:      "many accounts from one address",
			attempts:  func(i int) attempt { return attempt{"user" + strconv.Itoa(i), "192.0.2.7"} },
			fail:      true,
			allowed:   30,
			retry:     time.Second,
			message:   "too many failed login attempts from your address; try again in 1s",
			bystander: attempt{"user1", "192.0.2.8"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &clock{now: time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC)}
			l := newLimiter(clk.Now)
			for i := range tt.allowed {
				a := tt.attempts(i)
				if err := l.login(a.user, a.addr); err != nil {
					t.Fatalf("attempt %d refused: %v", i+1, err)
				}
				if tt.fail {
					l.loginFailed(a.addr)
				}
			}
			a := tt.attempts(tt.allowed)
			err := l.login(a.user, a.addr)
			if fheserve.ErrorCode(err) != fheserve.ERATELIMIT || fheserve.RetryAfter(err) != tt.retry || !strings.Contains(err.Error(), tt.message) {
				t.Fatalf("attempt %d: %v (retry after %v), want %q after %v", tt.allowed+1, err, fheserve.RetryAfter(err), tt.message, tt.retry)
			}
			if err := l.login(tt.bystander.user, tt.bystander.addr); err != nil {
				t.Fatalf("bystander %+v refused: %v", tt.bystander, err)
			}
			clk.now = clk.now.Add(tt.retry)
			if err := l.login(a.user, a.addr); err != nil {
				t.Fatalf("after waiting %v: %v", tt.retry, err)
			}
		})
	}
}

// TestLoginSuccessesFromOneAddress checks that successful logins of many
// accounts from one address (users behind a NAT) are not throttled, and
// that failures from it still are.
func TestLoginSuccessesFromOneAddress(t *testing.T) {
	clk := &clock{now: time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC)}
	l := newLimiter(clk.Now)
	const addr = "192.0.2.7"
	for i := range 200 {
		if err := l.login("user"+strconv.Itoa(i), addr); err != nil {
			t.Fatalf("successful login %d refused: %v", i+1, err)
		}
	}
	for i := range 30 {
		if err := l.login("guess"+strconv.Itoa(i), addr); err != nil {
			t.Fatalf("failed attempt %d refused: %v", i+1, err)
		}
		l.loginFailed(addr)
	}
	if err := l.login("user0", addr); fheserve.ErrorCode(err) != fheserve.ERATELIMIT {
		t.Fatalf("after 30 failures from %s: %v, want rate_limited", addr, err)
	}
}

// TestRateLimitsCountSamples checks the token buckets against jobs of
// several samples: a job takes as many tokens as it holds samples, one
// larger than the burst is refused as invalid, and tokens a user's bucket
// gave to a job the model-wide bucket refused go back.
func TestRateLimitsCountSamples(t *testing.T) {
	ctx := context.Background()
	a, clk := mustApp(t)
	u, m, _ := mustKeySet(t, a)
	// The user's bucket barely refills; the model's refills a sample a
	// second.
	m.Limits = fheserve.ModelLimits{RatePerMinute: 0.001, Burst: 8, ModelRatePerMinute: 60, ModelBurst: 4}
	steps := []struct {
		wait    time.Duration
		samples int
		code    string
		message string
	}{
		{0, 5, fheserve.EINVALID, "this job holds 5 samples, more than the bursts of 4 samples the rate limit of all users allows"},
		{0, 4, "", ""}, // user 4 left, model 0
		{0, 1, fheserve.ERATELIMIT, "the rate limit of all users is 60 samples a minute (bursts of 4)"},
		{4 * time.Second, 4, "", ""}, // the user's 4 tokens came back
		{4 * time.Second, 1, fheserve.ERATELIMIT, "your rate limit is 0.001 samples a minute (bursts of 8)"},
	}
	for i, s := range steps {
		clk.add(s.wait)
		err := a.checkLimits(ctx, u, m, s.samples)
		if fheserve.ErrorCode(err) != s.code || !strings.Contains(fheserve.ErrorMessage(err), s.message) {
			t.Fatalf("step %d, %d samples: %v, want code %q saying %q", i+1, s.samples, err, s.code, s.message)
		}
	}
}
