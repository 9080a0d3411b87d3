package app

import (
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
			allowed:   30,
			retry:     time.Second,
			message:   "too many login attempts from your address; try again in 1s",
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
