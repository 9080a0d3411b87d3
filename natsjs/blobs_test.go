package natsjs_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/natsjs"
	"github.com/fheserve/fheserve/natsjs/natstest"
	"github.com/fheserve/fheserve/storetest"
)

var long = flag.Bool("long", false, "also stream a 300 MB blob through the object store and bound the heap (TestBlobsLarge)")

func openBlobs(t *testing.T, s *natstest.Server, bucket string) *natsjs.Blobs {
	t.Helper()
	_, js := dial(t, s)
	b, err := natsjs.OpenBlobs(context.Background(), js, natsjs.BlobsConfig{Bucket: bucket})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBlobs(t *testing.T) {
	t.Parallel()
	s := natstest.Start(t)
	n := 0
	storetest.Blobs(t, func(t *testing.T) fheserve.BlobStore {
		n++
		return openBlobs(t, s, fmt.Sprint("b", n))
	})
}

func put(t *testing.T, b fheserve.BlobStore, key string, data []byte) {
	t.Helper()
	w, err := b.Create(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

// A blob of many chunks written through one connection is read whole
// through another; readers during an overwrite see one version or the
// other whole, or an error saying it was replaced, never a mix.
func TestBlobsChunksAndOverwrite(t *testing.T) {
	t.Parallel()
	s := natstest.Start(t)
	b1, b2 := openBlobs(t, s, "blobs"), openBlobs(t, s, "blobs")
	rng := rand.New(rand.NewPCG(1, 2))
	v1, v2 := make([]byte, 3<<20+17), make([]byte, 2<<20+5)
	for i := range v1 {
		v1[i] = byte(rng.Uint32())
	}
	for i := range v2 {
		v2[i] = byte(rng.Uint32())
	}
	put(t, b1, "keysets/ks_1/eval", v1)
	var wg sync.WaitGroup
	var reads, bad, cut atomic.Int32
	stop := make(chan struct{})
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				r, size, err := b2.Open(context.Background(), "keysets/ks_1/eval")
				if err != nil {
					t.Error(err)
					return
				}
				got, err := io.ReadAll(r)
				r.Close()
				reads.Add(1)
				switch {
				case fheserve.ErrorCode(err) == fheserve.ENOTFOUND:
					cut.Add(1) // replaced under the reader: it says so
				case err != nil || int64(len(got)) != size || !(bytes.Equal(got, v1) || bytes.Equal(got, v2)):
					bad.Add(1)
				}
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	put(t, b1, "keysets/ks_1/eval", v2)
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d of %d reads during an overwrite were not one whole version", bad.Load(), reads.Load())
	}
	t.Logf("%d reads, %d cut by the overwrite", reads.Load(), cut.Load())
	r, size, err := b2.Open(context.Background(), "keysets/ks_1/eval")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	r.Close()
	if size != int64(len(v2)) || !bytes.Equal(got, v2) {
		t.Fatalf("after overwrite read %d bytes (size %d), want %d", len(got), size, len(v2))
	}
}

// patternReader yields n pseudo-random bytes without holding them.
type patternReader struct {
	rng *rand.PCG
	n   int64
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.n == 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.n {
		b = b[:p.n]
	}
	for i := range b {
		b[i] = byte(p.rng.Uint64())
	}
	p.n -= int64(len(b))
	return len(b), nil
}

// TestBlobsLarge streams a 300 MB blob in and out and checks that the
// process (client and embedded server together) never held a third of
// it.
func TestBlobsLarge(t *testing.T) {
	if !*long {
		t.Skip("with -long")
	}
	const size = 300 << 20
	s := natstest.Start(t)
	b := openBlobs(t, s, "large")
	var peak atomic.Uint64
	done := make(chan struct{})
	go func() {
		var ms runtime.MemStats
		for {
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
		}
	}()
	ctx := context.Background()
	w, err := b.Create(ctx, "jobs/job_big/input")
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(w, h), &patternReader{rng: rand.NewPCG(3, 4), n: size}); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	want := h.Sum(nil)
	r, n, err := b.Open(ctx, "jobs/job_big/input")
	if err != nil {
		t.Fatal(err)
	}
	h.Reset()
	got, err := io.Copy(h, r)
	r.Close()
	close(done)
	if err != nil || got != size || n != size || !bytes.Equal(h.Sum(nil), want) {
		t.Fatalf("read %d bytes (size %d, err %v), digest match %v", got, n, err, bytes.Equal(h.Sum(nil), want))
	}
	t.Logf("peak heap in use %d MB for a %d MB blob", peak.Load()>>20, size>>20)
	if peak.Load() > size/3 {
		t.Fatalf("peak heap %d MB: the blob was held in memory", peak.Load()>>20)
	}
}

// The chunks of a write cut short before its metadata (the writer's
// process died) are purged once older than the bound; the blobs stored,
// replaced ones included, and a write in progress are left whole.
func TestPurgeOrphans(t *testing.T) {
	t.Parallel()
	s := natstest.Start(t)
	ctx := context.Background()
	_, js := dial(t, s)
	b, err := natsjs.OpenBlobs(ctx, js, natsjs.BlobsConfig{Bucket: "orphans"})
	must(t, err)
	data := make([]byte, 300<<10)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	put(t, b, "keys/kept", data)
	put(t, b, "keys/replaced", data[:1000])
	put(t, b, "keys/replaced", data[1000:3000])
	st, err := js.Stream(ctx, "OBJ_orphans")
	must(t, err)
	// What a writer that died after three chunks leaves: chunks on a
	// subject of their own and no metadata.
	for range 3 {
		_, err := js.Publish(ctx, "$O.orphans.C.deadwriter", data[:128<<10])
		must(t, err)
	}
	info, err := st.Info(ctx)
	must(t, err)
	withOrphan := info.State.Bytes
	// A write in progress: chunks sent, no metadata yet.
	w, err := b.Create(ctx, "keys/inprogress")
	must(t, err)
	_, err = w.Write(data[:200<<10])
	must(t, err)

	if n, _, err := b.PurgeOrphans(ctx, time.Hour); err != nil || n != 0 {
		t.Fatalf("PurgeOrphans(1h) purged %d (err %v); every chunk is younger", n, err)
	}
	_, err = w.Write(data[200<<10:])
	must(t, err)
	must(t, w.Commit())

	time.Sleep(300 * time.Millisecond)
	n, freed, err := b.PurgeOrphans(ctx, 250*time.Millisecond)
	must(t, err)
	if n != 1 || freed < 3*128<<10 {
		t.Fatalf("purged %d blobs' chunks, %d bytes; want the dead writer's 3 chunks", n, freed)
	}
	info, err = st.Info(ctx)
	must(t, err)
	if info.State.Bytes >= withOrphan+uint64(len(data)) {
		t.Fatalf("the bucket holds %d bytes, %d with the orphan and before the last blob", info.State.Bytes, withOrphan)
	}
	for key, want := range map[string][]byte{"keys/kept": data, "keys/replaced": data[1000:3000], "keys/inprogress": data} {
		r, _, err := b.Open(ctx, key)
		must(t, err)
		got, err := io.ReadAll(r)
		r.Close()
		must(t, err)
		if sha256.Sum256(got) != sha256.Sum256(want) {
			t.Fatalf("%s changed by the purge", key)
		}
	}
}
