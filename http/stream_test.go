package http_test

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fheserve/fheserve"
)

// TestProgressStreamEndsOnLogout checks that an open progress stream
// stops delivering events once its token is logged out: it ends with an
// error event naming the cause within a few seconds, while the job is
// still queued. Before the fix the stream stayed open and kept sending.
func TestProgressStreamEndsOnLogout(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	acct, err := w.user.Me(ctx)
	check(t, err)
	// A job that stays queued: stored, never enqueued.
	j := &fheserve.Job{ID: "job_held", AccountID: acct.ID, Username: acct.Username, ModelID: w.model.ID,
		KeySetID: w.keys.KeySetID, Status: fheserve.JobQueued, Samples: 1, Total: 1, CreatedAt: time.Now().UTC()}
	check(t, w.store.CreateJob(ctx, j))

	token := w.user.Token()
	req, err := http.NewRequest("GET", w.url+"/v1/jobs/"+j.ID+"/events", nil)
	check(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	check(t, err)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("events: status %d", resp.StatusCode)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	// The first event is the job as it is.
	waitFor := func(prefix string, within time.Duration) string {
		t.Helper()
		deadline := time.After(within)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("stream closed before %q", prefix)
				}
				if strings.HasPrefix(l, prefix) {
					return l
				}
			case <-deadline:
				t.Fatalf("no %q within %v", prefix, within)
			}
		}
	}
	waitFor("event: job", 5*time.Second)

	check(t, w.user.Logout(ctx))
	loggedOut := time.Now()
	waitFor("event: error", 10*time.Second)
	if data := waitFor("data: ", time.Second); !strings.Contains(data, `"unauthorized"`) {
		t.Errorf("error event %s, want code unauthorized", data)
	}
	// Nothing follows the error: the server closed the stream.
	select {
	case l, ok := <-lines:
		for ok && l == "" {
			l, ok = <-lines
		}
		if ok {
			t.Errorf("after the error event the stream sent %q", l)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("the stream is still open %v after logout", time.Since(loggedOut))
	}
}
