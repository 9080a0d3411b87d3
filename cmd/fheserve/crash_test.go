package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fheserve/fheserve"
	_ "modernc.org/sqlite"
)

var long = flag.Bool("long", false, "run the long variants (TestCrash: 50 kills)")

// TestCrash kills the server with SIGKILL at random moments while a
// client submits jobs (uploads of ciphertexts), uploads key sets and the
// worker evaluates, restarts it on the same data directory each time, and
// checks after every restart that the database passes PRAGMA
// integrity_check, that every stored key set's blob is whole (its size
// and SHA-256 as recorded), that every finished job's result blob has its
// recorded size, and that the audit log verifies; at the end, that every
// job the server acknowledged finished with the plaintext model's result
// within the plan's precision. 3 kills; 50 with -long.
func TestCrash(t *testing.T) {
	kills := 3
	if *long {
		kills = 50
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("seed %d, %d kills", seed, kills)

	ctx := context.Background()
	data := t.TempDir()
	admin := newParty(t, "")
	admin.ok("root-password\n", "admin", "init", "--data-dir", data, "--username", "root", "--password-stdin")
	args := []string{"--workers", "1", "--eval-threads", "2"}
	s := startServer(t, data, args...)
	w := newRestartWorld(ctx, t, s.url, "mlp_square")
	var keyBytes bytes.Buffer
	if err := w.keys.WriteEvalKeys(&keyBytes); err != nil {
		t.Fatal(err)
	}
	in := w.keys.Plan.InputSize()
	cts := make([][]byte, 2)
	for i := range cts {
		ct, err := w.keys.Encrypt(w.x[i*in:(i+1)*in], 1)
		if err != nil {
			t.Fatal(err)
		}
		cts[i] = ct
	}

	acked := map[string]int{} // job id -> sample
	var mu sync.Mutex
	for k := range kills {
		// Load: jobs and key sets, until the kill.
		actx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; actx.Err() == nil; i++ {
				if i%3 == 2 {
					w.user.API.UploadKeys(actx, w.keys.ModelID, bytes.NewReader(keyBytes.Bytes()), int64(keyBytes.Len()), "")
					continue
				}
				req := &fheserve.SubmitRequest{ModelID: w.keys.ModelID, KeySetID: w.keys.KeySetID, Samples: 1}
				j, err := w.user.API.Submit(actx, req, bytes.NewReader(cts[i%2]), int64(len(cts[i%2])))
				if err == nil {
					mu.Lock()
					acked[j.ID] = i % 2
					mu.Unlock()
				} else if fheserve.ErrorCode(err) == fheserve.ERATELIMIT {
					time.Sleep(50 * time.Millisecond)
				}
			}
		}()
		time.Sleep(time.Duration(100+rng.IntN(1500)) * time.Millisecond)
		s.kill()
		stop()
		wg.Wait()

		if out := admin.run("", "audit", "verify", "--data-dir", data); out.code != 0 {
			t.Fatalf("kill %d: the audit log does not verify: %s%s", k+1, out.stdout, out.stderr)
		}
		s = startServer(t, data, args...)
		w.reconnect(s.url)
		checkDataDir(t, data, k+1)
	}

	// Every acknowledged job ends with the right result.
	t.Logf("%d kills survived; waiting for %d acknowledged jobs", kills, len(acked))
	attempts := 0
	for id, i := range acked {
		j, err := w.user.Wait(ctx, id, nil)
		if err != nil {
			t.Fatalf("job %s: %v\nserver log:\n%s", id, err, s.log)
		}
		attempts += j.Attempts
		w.check(ctx, t, id, i)
	}
	t.Logf("%d jobs done in %d attempts, each within the plan's precision of the plaintext model", len(acked), attempts)
	checkDataDir(t, data, kills)
}

// checkDataDir checks a data directory's database and blobs (see TestCrash).
func checkDataDir(t *testing.T, data string, kill int) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(data, "fheserve.db")+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var integrity string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&integrity); err != nil || integrity != "ok" {
		t.Fatalf("kill %d: integrity_check: %q, %v", kill, integrity, err)
	}
	blob := func(key string) []byte {
		b, err := os.ReadFile(filepath.Join(data, "blobs", filepath.FromSlash(key)))
		if err != nil {
			t.Fatalf("kill %d: %v", kill, err)
		}
		return b
	}
	rows, err := db.Query(`SELECT id, blob_key, size, fingerprint FROM keysets WHERE status = 'active'`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var n int
	for rows.Next() {
		var id, key, fp string
		var size int
		if err := rows.Scan(&id, &key, &size, &fp); err != nil {
			t.Fatal(err)
		}
		b := blob(key)
		sum := sha256.Sum256(b)
		if len(b) != size || hex.EncodeToString(sum[:]) != fp {
			t.Fatalf("kill %d: key set %s's blob has %d bytes and SHA-256 %x, the record says %d and %s", kill, id, len(b), sum[:8], size, fp[:16])
		}
		n++
	}
	jobs, err := db.Query(`SELECT id, result_key, result_bytes FROM jobs WHERE status = 'done'`)
	if err != nil {
		t.Fatal(err)
	}
	defer jobs.Close()
	for jobs.Next() {
		var id, key string
		var size int
		if err := jobs.Scan(&id, &key, &size); err != nil {
			t.Fatal(err)
		}
		if b := blob(key); len(b) != size {
			t.Fatalf("kill %d: job %s's result blob has %d bytes, the record says %d", kill, id, len(b), size)
		}
		n++
	}
	if n == 0 {
		t.Fatalf("kill %d: no key set or result to check", kill)
	}
}
