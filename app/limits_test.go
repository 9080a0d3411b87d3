package app

import (
	"context"
	"fmt"
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
			// The account's owner, elsewhere, is not locked out.
			name:      "one account from one address",
			attempts:  func(i int) attempt { return attempt{"alice", "10.0.0.1"} },
			allowed:   10,
			retry:     2 * time.Second,
			message:   `too many login attempts for "alice"; try again in 2s`,
			bystander: attempt{"alice", "10.0.0.2"},
		},
		{
			// One client holds a whole IPv6 /64.
			name:      "one account from one IPv6 /64",
			attempts:  func(i int) attempt { return attempt{"alice", "2001:db8:0:1::" + strconv.FormatInt(int64(i+1), 16)} },
			allowed:   10,
			retry:     2 * time.Second,
			message:   `too many login attempts for "alice"`,
			bystander: attempt{"alice", "2001:db8:0:2::1"},
		},
		{
			name: "many accounts from one IPv6 /64",
			attempts: func(i int) attempt {
				return attempt{"user" + strconv.Itoa(i), "2001:db8::" + strconv.FormatInt(int64(i+1), 16)}
			},
			fail:      true,
			allowed:   30,
			retry:     time.Second,
			message:   "too many failed login attempts from your address",
			bystander: attempt{"user1", "2001:db8:1::1"},
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

// TestLoginLockout checks that a guesser spending every token an account
// has, from one address, does not keep its owner from logging in from
// another.
func TestLoginLockout(t *testing.T) {
	clk := &clock{now: time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC)}
	l := newLimiter(clk.Now)
	for i := range 300 { // 10 minutes of one guess every 2 s
		if l.login("alice", "198.51.100.9") == nil {
			l.loginFailed("198.51.100.9")
		}
		clk.add(2 * time.Second)
		if i%30 == 0 {
			if err := l.login("alice", "203.0.113.5"); err != nil {
				t.Fatalf("after %d guesses from elsewhere, alice's own login is refused: %v", i+1, err)
			}
		}
	}
}

// TestLoginThrottleFull checks that filling the throttle's buckets does
// not reset it: an address under a guessing attack stays throttled while
// (a) 10,100 refused logins come from one other address and (b) 10,100
// failed logins come from as many addresses, more than the buckets held
// (maxBuckets, 10,000); new clients are refused meanwhile, and the
// refilled buckets are forgotten later to make room.
func TestLoginThrottleFull(t *testing.T) {
	clk := &clock{now: time.Date(2026, 11, 22, 5, 0, 0, 0, time.UTC)}
	l := newLimiter(clk.Now)
	const victim = "192.0.2.66"
	throttled := func(when string) {
		t.Helper()
		if err := l.login("mallory", victim); fheserve.ErrorCode(err) != fheserve.ERATELIMIT {
			t.Fatalf("%s: the attacked address is not throttled: %v", when, err)
		}
	}
	for i := range 30 {
		l.login("guess"+strconv.Itoa(i), victim)
		l.loginFailed(victim)
	}
	throttled("after 30 failures")
	for i := range maxBuckets + 100 {
		if err := l.login("spray"+strconv.Itoa(i), "192.0.2.7"); err == nil {
			l.loginFailed("192.0.2.7")
		}
	}
	throttled("after 10,100 logins from one other address")
	refused := 0
	for i := range maxBuckets + 100 {
		addr := fmt.Sprintf("10.%d.%d.1", i/250, i%250)
		if err := l.login("spray"+strconv.Itoa(i), addr); err != nil {
			refused++
			continue
		}
		l.loginFailed(addr)
	}
	throttled("after failed logins from 10,100 addresses")
	if refused == 0 {
		t.Fatalf("10,100 new clients all got a bucket: the map holds %d, its bound is %d", len(l.auth.m), maxBuckets)
	}
	if n := len(l.auth.m); n > maxBuckets {
		t.Fatalf("the throttle holds %d buckets, more than %d", n, maxBuckets)
	}
	clk.add(time.Minute) // every bucket refills
	if err := l.login("newcomer", "198.51.100.1"); err != nil {
		t.Fatalf("a new client once the buckets refilled: %v", err)
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
		release, err := a.checkLimits(ctx, u, m, s.samples)
		if err == nil {
			release()
		}
		if fheserve.ErrorCode(err) != s.code || !strings.Contains(fheserve.ErrorMessage(err), s.message) {
			t.Fatalf("step %d, %d samples: %v, want code %q saying %q", i+1, s.samples, err, s.code, s.message)
		}
	}
}

// TestLoginHugeUsernames sends 120 logins with 1 MB usernames: each is
// refused as a wrong username or password before it is throttled, so the
// throttle keeps no key for it. Before, every one of them stayed in the
// throttle's map as a key (62 -> 234 MiB of resident set in the report);
// the bound here is 64 bytes of keys per login.
func TestLoginHugeUsernames(t *testing.T) {
	a, _ := mustApp(t)
	huge := strings.Repeat("a", 1<<20)
	for i := range 120 {
		_, err := a.Login(context.Background(), &fheserve.LoginRequest{Username: huge + strconv.Itoa(i), Password: "a-password", Addr: "192.0.2.1"})
		wantCode(t, err, fheserve.EUNAUTHORIZED)
	}
	var keyBytes int
	for k := range a.limits.auth.m {
		keyBytes += len(k)
	}
	if keyBytes > 120*64 {
		t.Fatalf("the throttle keeps %d bytes of keys after 120 logins with 1 MB usernames, more than %d", keyBytes, 120*64)
	}
}
