package main

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/internal/pgtest"
	"github.com/fheserve/fheserve/natsjs"
	"github.com/fheserve/fheserve/natsjs/natstest"
)

// TestUploadNodeKilled kills an API node (a 'fheserve serve' process on
// PostgreSQL and NATS) with SIGKILL halfway through a key set's upload
// through the SDK: the client gets an error saying the server cannot be
// reached, no blob and no key set of the upload is visible afterwards
// (the object store lists the same objects, each whole), and the same
// upload sent to the other node succeeds and its key set runs a job to
// the plaintext model's result.
func TestUploadNodeKilled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	db, ns := pgtest.NewDB(t), natstest.Start(t)
	data := t.TempDir()
	admin := newParty(t, "")
	admin.ok("root-password\n", "admin", "init", "--data-dir", data, "--store", db, "--username", "root", "--password-stdin")
	// Both nodes in one data directory: its master.key and audit.key.
	args := []string{"--store", db, "--blobs", ns.URL(), "--workers", "1"}
	a, b := startServer(t, data, args...), startServer(t, data, args...)
	w := newRestartWorld(ctx, t, a.url, "mlp_square")
	var keyBytes bytes.Buffer
	if err := w.keys.WriteEvalKeys(&keyBytes); err != nil {
		t.Fatal(err)
	}

	nc, js, err := natsjs.Dial(ns.URL(), "fault-test")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	blobs, err := natsjs.OpenBlobs(ctx, js, natsjs.BlobsConfig{})
	if err != nil {
		t.Fatal(err)
	}
	// visible lists the object store's objects, checking that each reads
	// back whole (its size and digest).
	visible := func() map[string]bool {
		t.Helper()
		obs, err := js.ObjectStore(ctx, "fheserve_blobs")
		if err != nil {
			t.Fatal(err)
		}
		infos, err := obs.List(ctx)
		if err != nil && err != jetstream.ErrNoObjectsFound {
			t.Fatal(err)
		}
		names := map[string]bool{}
		for _, info := range infos {
			r, size, err := blobs.Open(ctx, info.Name)
			if err != nil {
				t.Fatalf("blob %s: %v", info.Name, err)
			}
			n, err := io.Copy(io.Discard, r)
			r.Close()
			if err != nil || n != size {
				t.Fatalf("blob %s reads %d of %d bytes: %v", info.Name, n, size, err)
			}
			names[info.Name] = true
		}
		return names
	}
	bucketBytes := func() uint64 {
		t.Helper()
		obs, err := js.ObjectStore(ctx, "fheserve_blobs")
		if err != nil {
			t.Fatal(err)
		}
		st, err := obs.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}
	before, size0 := visible(), bucketBytes()
	keySets, err := w.user.API.KeySets(ctx, w.keys.ModelID)
	if err != nil {
		t.Fatal(err)
	}

	// The upload to node a; a dies when half the bytes are sent.
	body := &killingReader{r: bytes.NewReader(keyBytes.Bytes()), at: int64(keyBytes.Len() / 2), kill: a.kill}
	_, err = w.user.API.UploadKeys(ctx, w.keys.ModelID, body, int64(keyBytes.Len()), "")
	if !body.killed {
		t.Fatalf("the upload ended before the kill: %v", err)
	}
	if fheserve.ErrorCode(err) != fheserve.EUNAVAILABLE {
		t.Fatalf("the upload to a killed node: %v (code %q), want unavailable", err, fheserve.ErrorCode(err))
	}
	t.Logf("the client's error: %v", err)
	// Chunks sent before the kill would stay in the stream, unlisted.
	t.Logf("the bucket's stream: %d bytes before the upload, %d after", size0, bucketBytes())

	w.reconnect(b.url)
	after := visible()
	for name := range after {
		if !before[name] {
			t.Errorf("blob %s appeared with the killed upload", name)
		}
	}
	if got, err := w.user.API.KeySets(ctx, w.keys.ModelID); err != nil || len(got) != len(keySets) {
		t.Fatalf("key sets after the killed upload: %d (%v), want %d", len(got), err, len(keySets))
	}

	// The same upload, to node b.
	k, err := w.user.API.UploadKeys(ctx, w.keys.ModelID, bytes.NewReader(keyBytes.Bytes()), int64(keyBytes.Len()), "")
	if err != nil {
		t.Fatalf("the upload to the other node: %v", err)
	}
	w.keys.KeySetID = k.ID
	id := w.submit(ctx, t, 0)
	if _, err := w.user.Wait(ctx, id, nil); err != nil {
		t.Fatalf("job %s: %v\nnode b's log:\n%s", id, err, b.log)
	}
	w.check(ctx, t, id, 0)
}

// killingReader reads r and calls kill once, when at bytes have been
// read, before going on.
type killingReader struct {
	r      io.Reader
	at     int64
	n      int64
	kill   func()
	killed bool
}

func (k *killingReader) Read(p []byte) (int, error) {
	if !k.killed && k.n >= k.at {
		k.kill()
		k.killed = true
		// Let the client's writes meet the closed connection.
		time.Sleep(100 * time.Millisecond)
	}
	if left := k.at - k.n; !k.killed && int64(len(p)) > left {
		p = p[:left]
	}
	n, err := k.r.Read(p)
	k.n += int64(n)
	return n, err
}
