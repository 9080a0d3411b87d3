package natsq

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/storetest"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// mustJetStream starts an embedded NATS server with JetStream in a
// temporary directory, on a free loopback port, and connects to it.
func mustJetStream(tb testing.TB) jetstream.JetStream {
	tb.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true,
		StoreDir: tb.TempDir(), NoSigs: true, NoLog: true})
	if err != nil {
		tb.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		tb.Fatal("the embedded NATS server did not start")
	}
	tb.Cleanup(s.Shutdown)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	return js
}

func TestQueue(t *testing.T) {
	storetest.Queue(t, func(t *testing.T) fheserve.Queue {
		q, err := OpenQueue(context.Background(), mustJetStream(t), Options{})
		if err != nil {
			t.Fatal(err)
		}
		return q
	})
}

func TestBlobs(t *testing.T) {
	storetest.Blobs(t, func(t *testing.T) fheserve.BlobStore {
		b, err := OpenBlobs(context.Background(), mustJetStream(t), "fheserve")
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

// TestQueueNodes pushes through one node's connection and pops through
// two nodes' at once: every id comes out once, whichever node pops it.
func TestQueueNodes(t *testing.T) {
	ctx := context.Background()
	js := mustJetStream(t)
	var qs []*Queue
	for range 2 {
		nc, err := nats.Connect(js.Conn().ConnectedUrl())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		njs, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		q, err := OpenQueue(ctx, njs, Options{})
		if err != nil {
			t.Fatal(err)
		}
		qs = append(qs, q)
	}
	const n = 200
	for i := range n {
		if err := qs[0].Push(ctx, fmt.Sprintf("job_%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if p, ok := qs[1].Position("job_7"); !ok || p != 7 {
		t.Fatalf("the other node's Position(job_7) = %d, %v; want 7", p, ok)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, q := range qs {
		for range 2 {
			wg.Go(func() {
				for {
					id, err := q.Pop(cctx)
					if err != nil {
						return
					}
					mu.Lock()
					seen[id]++
					if len(seen) == n {
						cancel()
					}
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	for i := range n {
		if c := seen[fmt.Sprintf("job_%d", i)]; c != 1 {
			t.Fatalf("job_%d popped %d times", i, c)
		}
	}
	// Popped ids are acknowledged: the work-queue stream is empty, and a
	// requeued id queues again.
	info, err := qs[0].stream.Info(ctx)
	if err != nil || info.State.Msgs != 0 {
		t.Fatalf("after every pop the stream holds %v messages (%v)", info.State.Msgs, err)
	}
	if err := qs[1].Push(ctx, "job_3"); err != nil {
		t.Fatal(err)
	}
	if p, ok := qs[0].Position("job_3"); !ok || p != 0 {
		t.Fatalf("a requeued id: Position = %d, %v; want 0", p, ok)
	}
}

// TestBlobsChunks writes a blob of many chunks through one connection and
// reads it through another; an aborted one leaves no chunk behind.
func TestBlobsChunks(t *testing.T) {
	ctx := context.Background()
	js := mustJetStream(t)
	a, err := OpenBlobs(ctx, js, "fheserve")
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(js.Conn().ConnectedUrl())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	njs, _ := jetstream.New(nc)
	b, err := OpenBlobs(ctx, njs, "fheserve")
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 3<<20+17)
	rand.NewChaCha8([32]byte{1}).Read(data)
	w, err := a.Create(ctx, "keysets/key_1")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(data); i += 100000 {
		if _, err := w.Write(data[i:min(i+100000, len(data))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	r, size, err := b.Open(ctx, "keysets/key_1")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || size != int64(len(data)) || !bytes.Equal(got, data) {
		t.Fatalf("read %d bytes of %d (size %d): %v", len(got), len(data), size, err)
	}
	before, err := a.obs.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w, _ = b.Create(ctx, "keysets/key_2")
	w.Write(data)
	w.Abort()
	after, err := a.obs.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after.Size() != before.Size() {
		t.Errorf("an aborted blob left %d bytes in the bucket", after.Size()-before.Size())
	}
	if _, _, err := a.Open(ctx, "keysets/key_2"); fheserve.ErrorCode(err) != fheserve.ENOTFOUND {
		t.Errorf("aborted blob: %v", err)
	}
}
