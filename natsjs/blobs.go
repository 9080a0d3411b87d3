package natsjs

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/fheserve/fheserve"
)

var _ fheserve.BlobStore = (*Blobs)(nil)

// BlobsConfig names the object store bucket. Zero fields take the
// defaults.
type BlobsConfig struct {
	Bucket   string // default "fheserve_blobs"
	Replicas int    // default 1
	MaxBytes int64  // the bucket's bound; 0: none
	// ReadTimeout is how long a reader waits for a chunk that does not
	// come, while the blob is still there (default 1m).
	ReadTimeout time.Duration
	// Memory keeps the bucket in memory instead of on disk (tests).
	Memory bool
}

// Blobs is the fheserve.BlobStore on a JetStream object store: a blob is
// sent in chunks of 128 KiB as it is written and read back as it
// arrives, so neither side holds it whole; its metadata message, sent
// after the last chunk, makes it visible, and replaces the previous
// version's at once.
type Blobs struct {
	cfg BlobsConfig
	js  jetstream.JetStream
	obs jetstream.ObjectStore
}

// OpenBlobs creates the bucket if needed and returns the store on it.
func OpenBlobs(ctx context.Context, js jetstream.JetStream, cfg BlobsConfig) (*Blobs, error) {
	if cfg.Bucket == "" {
		cfg.Bucket = "fheserve_blobs"
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = time.Minute
	}
	storage := jetstream.FileStorage
	if cfg.Memory {
		storage = jetstream.MemoryStorage
	}
	obs, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:   cfg.Bucket,
		Replicas: cfg.Replicas,
		MaxBytes: cfg.MaxBytes,
		Storage:  storage,
	})
	if err != nil {
		return nil, fmt.Errorf("natsjs: cannot open object store %s: %w", cfg.Bucket, err)
	}
	return &Blobs{cfg: cfg, js: js, obs: obs}, nil
}

var errAborted = errors.New("natsjs: blob aborted")

// Create implements fheserve.BlobStore. The blob streams to the server
// as it is written; Commit waits for the last chunk and the metadata.
func (b *Blobs) Create(ctx context.Context, key string) (fheserve.BlobWriter, error) {
	if err := fheserve.CheckBlobKey(key); err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	w := &blobWriter{pw: pw, done: make(chan error, 1)}
	go func() {
		_, err := b.obs.Put(ctx, jetstream.ObjectMeta{Name: key}, pr)
		pr.CloseWithError(err) // a writer blocked on a failed put returns
		w.done <- err
	}()
	return w, nil
}

type blobWriter struct {
	pw       *io.PipeWriter
	done     chan error
	finished bool
	err      error
}

func (w *blobWriter) Write(p []byte) (int, error) { return w.pw.Write(p) }

func (w *blobWriter) wait() error {
	if !w.finished {
		w.err = <-w.done
		w.finished = true
	}
	return w.err
}

// Commit implements fheserve.BlobWriter.
func (w *blobWriter) Commit() error {
	if w.finished {
		if w.err != nil {
			return w.err
		}
		return errors.New("natsjs: blob already committed")
	}
	w.pw.Close()
	if err := w.wait(); err != nil {
		return fmt.Errorf("natsjs: cannot store blob: %w", err)
	}
	return nil
}

// Abort implements fheserve.BlobWriter: the chunks sent are purged.
func (w *blobWriter) Abort() {
	if w.finished {
		return
	}
	w.pw.CloseWithError(errAborted)
	w.wait()
	w.err = errAborted
}

// Open implements fheserve.BlobStore. The reader pulls the chunks a
// few at a time (at most 2 MiB ahead) and fails at the end if their
// digest is not the stored one, or as soon as it finds the blob replaced
// or deleted under it (their chunks are purged then).
func (b *Blobs) Open(ctx context.Context, key string) (io.ReadCloser, int64, error) {
	if err := fheserve.CheckBlobKey(key); err != nil {
		return nil, 0, err
	}
	info, err := b.obs.GetInfo(ctx, key)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, 0, fheserve.Errorf(fheserve.ENOTFOUND, "no blob %q", key)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("natsjs: cannot open blob %q: %w", key, err)
	}
	if info.NUID == "" || info.Opts != nil && info.Opts.Link != nil {
		return nil, 0, fmt.Errorf("natsjs: blob %q is not a plain object", key)
	}
	r := &blobReader{b: b, key: key, nuid: info.NUID, left: int64(info.Size), digest: sha256.New(), want: info.Digest}
	if info.Size == 0 {
		return r, 0, nil
	}
	cons, err := b.js.OrderedConsumer(ctx, "OBJ_"+b.cfg.Bucket, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{"$O." + b.cfg.Bucket + ".C." + info.NUID},
		DeliverPolicy:  jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, 0, fmt.Errorf("natsjs: cannot read blob %q: %w", key, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(16))
	if err != nil {
		return nil, 0, fmt.Errorf("natsjs: cannot read blob %q: %w", key, err)
	}
	r.it = it
	return r, int64(info.Size), nil
}

// readIdle is how long a read waits for a chunk before it checks that
// the blob is still there.
const readIdle = 2 * time.Second

type blobReader struct {
	b      *Blobs
	key    string
	nuid   string
	it     jetstream.MessagesContext
	buf    []byte
	left   int64 // bytes not yet received
	digest hash.Hash
	want   string
	err    error
	idle   time.Duration
}

func (r *blobReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.left == 0 {
			if got := jetstream.GetObjectDigestValue(r.digest); got != r.want {
				r.err = fmt.Errorf("natsjs: blob %q does not match its digest", r.key)
				continue
			}
			r.err = io.EOF
			continue
		}
		msg, err := r.it.Next(jetstream.NextMaxWait(readIdle))
		if err != nil {
			r.err = r.stalled(err)
			continue
		}
		d := msg.Data()
		if int64(len(d)) > r.left {
			r.err = fmt.Errorf("natsjs: blob %q is longer than its size", r.key)
			continue
		}
		r.left -= int64(len(d))
		r.digest.Write(d)
		r.buf = d
		r.idle = 0
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// stalled decides what a failed pull means: nil to wait on if the blob
// is still the one being read and the reader has waited less than the
// read timeout, else the error.
func (r *blobReader) stalled(err error) error {
	if !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("natsjs: cannot read blob %q: %w", r.key, err)
	}
	r.idle += readIdle
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, ierr := r.b.obs.GetInfo(ctx, r.key)
	switch {
	case errors.Is(ierr, jetstream.ErrObjectNotFound) || ierr == nil && info.NUID != r.nuid:
		return fheserve.Errorf(fheserve.ENOTFOUND, "blob %q was replaced or deleted while being read", r.key)
	case r.idle >= r.b.cfg.ReadTimeout:
		return fmt.Errorf("natsjs: reading blob %q: no data for %v", r.key, r.idle)
	}
	return nil
}

func (r *blobReader) Close() error {
	if r.it != nil {
		r.it.Stop()
	}
	if r.err == nil {
		r.err = errors.New("natsjs: read after close")
	}
	return nil
}

// Delete implements fheserve.BlobStore.
func (b *Blobs) Delete(ctx context.Context, key string) error {
	if err := fheserve.CheckBlobKey(key); err != nil {
		return err
	}
	err := b.obs.Delete(ctx, key)
	if err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return fmt.Errorf("natsjs: cannot delete blob %q: %w", key, err)
	}
	return nil
}

// Check reports whether the object store answers: its status is read
// from the server (readiness probes).
func (b *Blobs) Check(ctx context.Context) error {
	if _, err := b.obs.Status(ctx); err != nil {
		return fmt.Errorf("natsjs: bucket %s: %w", b.cfg.Bucket, err)
	}
	return nil
}

// PurgeOrphans purges the chunks that no blob's metadata names and that
// were last written more than olderThan ago: those of a write cut short
// by the crash of its process before its metadata (a write that fails or
// is aborted purges its own), and a replaced version's, if the writer
// died between the new metadata and the purge of the old chunks. A write
// in progress is left alone as long as it sends a chunk more often than
// olderThan. It returns the number of blobs' chunks purged and their
// bytes.
func (b *Blobs) PurgeOrphans(ctx context.Context, olderThan time.Duration) (purged int, bytes uint64, err error) {
	objs, err := b.obs.List(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoObjectsFound) {
		return 0, 0, fmt.Errorf("natsjs: cannot list bucket %s: %w", b.cfg.Bucket, err)
	}
	named := map[string]bool{}
	for _, o := range objs {
		named[o.NUID] = true
	}
	st, err := b.js.Stream(ctx, "OBJ_"+b.cfg.Bucket)
	if err != nil {
		return 0, 0, fmt.Errorf("natsjs: bucket %s: %w", b.cfg.Bucket, err)
	}
	prefix := "$O." + b.cfg.Bucket + ".C."
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(prefix+">"))
	if err != nil {
		return 0, 0, fmt.Errorf("natsjs: bucket %s: %w", b.cfg.Bucket, err)
	}
	for subj := range info.State.Subjects {
		if named[strings.TrimPrefix(subj, prefix)] {
			continue
		}
		last, err := st.GetLastMsgForSubject(ctx, subj)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return purged, bytes, fmt.Errorf("natsjs: bucket %s: %w", b.cfg.Bucket, err)
		}
		if time.Since(last.Time) < olderThan {
			continue
		}
		before, err := st.Info(ctx)
		if err != nil {
			return purged, bytes, fmt.Errorf("natsjs: bucket %s: %w", b.cfg.Bucket, err)
		}
		if err := st.Purge(ctx, jetstream.WithPurgeSubject(subj)); err != nil {
			return purged, bytes, fmt.Errorf("natsjs: cannot purge %s: %w", subj, err)
		}
		after, err := st.Info(ctx)
		if err == nil && after.State.Bytes < before.State.Bytes {
			bytes += before.State.Bytes - after.State.Bytes
		}
		purged++
	}
	return purged, bytes, nil
}
