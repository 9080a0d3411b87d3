package http_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/app"
	"github.com/fheserve/fheserve/sdk"
)

// TestUploadBurstMemory sends a burst of key set uploads, 4 users x 4
// at once, each retrying when refused (429 or 503), to a server that
// takes 2 uploads at once, prepares at most 2 evaluators in the
// background and caches one, and samples the heap in use during the
// burst, with the collector at GOGC=20 so that the samples follow the
// live heap. The bound is the heap before the burst plus 16 times the
// upload's size: an upload holds its decoded keys (about twice the
// seeded bytes) and an evaluator being prepared holds them again, so 2
// uploads and 2 preparations hold about 8 uploads' worth, doubled for
// garbage not yet collected. Measured on a 2-core machine with 5.2 MB key
// sets: +62..64 MB against a bound of +83 MB; without the caps (Uploads
// 16) the same burst took +206 MB.
func TestUploadBurstMemory(t *testing.T) {
	ctx := context.Background()
	url, _, a := MustServerIn(t, t.TempDir(), func(c *app.Config) {
		c.Bounds = app.Bounds{Uploads: 2, UploadsPerUser: 2, QueuedPerUser: 4, KeySetsPerModel: 4}
		c.EvaluatorCacheBytes = 1 // the newest evaluator only
	})
	login := signup(t, url, a)
	owner := login("olivia", fheserve.RoleOwner)
	onnx, err := os.ReadFile(filepath.Join("..", "testdata", "onnx", "mlp_square.onnx"))
	check(t, err)
	m, err := owner.Deploy(ctx, &fheserve.DeployRequest{Name: "mlp_square", ONNX: onnx})
	check(t, err)
	var users []*sdk.Client
	var keyBytes [][]byte
	for _, name := range []string{"ulrich", "ursula", "uwe", "uma"} {
		c := login(name, fheserve.RoleUser)
		p, err := c.Plan(ctx, m.ID)
		check(t, err)
		users, keyBytes = append(users, c), append(keyBytes, pairFor(t, m.ID, p).eval)
	}
	keySize := uint64(len(keyBytes[0]))

	defer debug.SetGCPercent(debug.SetGCPercent(20))
	heapDone := sampleHeap()

	var wg sync.WaitGroup
	var refused atomic.Int64
	errs := make(chan error, 16)
	for i, c := range users {
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					_, err := c.API.UploadKeys(ctx, m.ID, bytes.NewReader(keyBytes[i]), int64(len(keyBytes[i])), "")
					var e *fheserve.Error
					if errors.As(err, &e) && (e.Code == fheserve.ERATELIMIT || e.Code == fheserve.EUNAVAILABLE) {
						if e.RetryAfter <= 0 {
							errs <- err
							return
						}
						refused.Add(1)
						time.Sleep(20 * time.Millisecond) // sooner than Retry-After, to keep the pressure on
						continue
					}
					if err != nil {
						errs <- err
					}
					return
				}
			}()
		}
	}
	wg.Wait()
	base, peakHeap := heapDone()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	grew := peakHeap - min(base, peakHeap)
	bound := 16 * keySize
	t.Logf("16 uploads of %.1f MB (%d refused and retried): heap in use %.1f MB before, peak %.1f MB (+%.1f MB); bound +%.1f MB",
		mb(keySize), refused.Load(), mb(base), mb(peakHeap), mb(grew), mb(bound))
	if refused.Load() == 0 {
		t.Errorf("no upload was refused: the cap of 2 at once was not reached")
	}
	if grew > bound {
		t.Errorf("the heap grew by %.1f MB during the burst, above the bound of %.1f MB", mb(grew), mb(bound))
	}
}

func mb(n uint64) float64 { return float64(n) / (1 << 20) }

// sampleHeap collects garbage, notes the heap in use and samples it every
// 5 ms from then on; the function it returns stops the sampling and gives
// the heap at the start and its peak.
func sampleHeap() (done func() (base, peak uint64)) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	start := ms.HeapInuse
	var top atomic.Uint64
	stop, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > top.Load() {
				top.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return func() (uint64, uint64) {
		close(stop)
		<-sampled
		return start, top.Load()
	}
}
