package natsq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/fheserve/fheserve"
	"github.com/nats-io/nats.go/jetstream"
)

var _ fheserve.BlobStore = (*Blobs)(nil)

// Blobs is a fheserve.BlobStore on a JetStream object store bucket. An
// object is written in chunks and becomes visible with its metadata,
// published last: a reader sees nothing or the whole blob, and an
// overwrite replaces it at once.
type Blobs struct {
	obs jetstream.ObjectStore
}

// OpenBlobs creates (or finds) the bucket.
func OpenBlobs(ctx context.Context, js jetstream.JetStream, bucket string) (*Blobs, error) {
	obs, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: bucket, Storage: jetstream.FileStorage})
	if err != nil {
		return nil, fmt.Errorf("cannot create the blob bucket %q: %w", bucket, err)
	}
	return &Blobs{obs: obs}, nil
}

// Create implements fheserve.BlobStore: the object store reads what is
// written through a pipe, in a goroutine, until Commit or Abort.
func (b *Blobs) Create(ctx context.Context, key string) (fheserve.BlobWriter, error) {
	if err := fheserve.CheckBlobKey(key); err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	w := &writer{pw: pw, done: make(chan error, 1)}
	go func() {
		_, err := b.obs.Put(context.WithoutCancel(ctx), jetstream.ObjectMeta{Name: key}, pr)
		pr.CloseWithError(err) // unblocks a writer if Put failed early
		w.done <- err
	}()
	return w, nil
}

type writer struct {
	pw   *io.PipeWriter
	done chan error
	once sync.Once
	err  error // Put's result, once finished
}

func (w *writer) Write(p []byte) (int, error) { return w.pw.Write(p) }

// finish ends the pipe with cause (nil: the blob is whole) and waits for
// Put.
func (w *writer) finish(cause error) error {
	w.once.Do(func() {
		w.pw.CloseWithError(cause)
		w.err = <-w.done
	})
	return w.err
}

// Commit implements fheserve.BlobWriter.
func (w *writer) Commit() error {
	if err := w.finish(nil); err != nil {
		return fmt.Errorf("cannot store the blob: %w", err)
	}
	return nil
}

// errAborted is what an aborted blob's Put reads: it stores nothing and
// purges the chunks it sent.
var errAborted = errors.New("blob aborted")

// Abort implements fheserve.BlobWriter.
func (w *writer) Abort() { w.finish(errAborted) }

// Open implements fheserve.BlobStore.
func (b *Blobs) Open(ctx context.Context, key string) (io.ReadCloser, int64, error) {
	if err := fheserve.CheckBlobKey(key); err != nil {
		return nil, 0, err
	}
	r, err := b.obs.Get(ctx, key)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, 0, fheserve.Errorf(fheserve.ENOTFOUND, "no blob %q", key)
	} else if err != nil {
		return nil, 0, err
	}
	info, err := r.Info()
	if err != nil {
		r.Close()
		return nil, 0, err
	}
	return r, int64(info.Size), nil
}

// Delete implements fheserve.BlobStore.
func (b *Blobs) Delete(ctx context.Context, key string) error {
	if err := fheserve.CheckBlobKey(key); err != nil {
		return err
	}
	if err := b.obs.Delete(ctx, key); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		return err
	}
	return nil
}
