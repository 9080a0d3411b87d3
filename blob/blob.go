// Package blob is the local-file fheserve.BlobStore: one file per blob
// under a root directory. A blob is written to a temporary file in the
// same directory, synced, and renamed into place, so a reader sees either
// nothing or the whole blob, even after a crash.
package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/fheserve/fheserve"
)

var _ fheserve.BlobStore = (*Store)(nil)

// Store keeps blobs as files under Root.
type Store struct {
	root string
}

// Open returns a store rooted at dir, creating it if needed.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create blob directory: %w", err)
	}
	return &Store{root: dir}, nil
}

func (s *Store) path(key string) (string, error) {
	if err := fheserve.CheckBlobKey(key); err != nil {
		return "", err
	}
	return filepath.Join(s.root, filepath.FromSlash(key)), nil
}

// Create implements fheserve.BlobStore.
func (s *Store) Create(ctx context.Context, key string) (fheserve.BlobWriter, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, err
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(p)+".tmp*")
	if err != nil {
		return nil, err
	}
	return &writer{f: f, path: p}, nil
}

type writer struct {
	f    *os.File
	path string
	done bool
}

func (w *writer) Write(b []byte) (int, error) { return w.f.Write(b) }

func (w *writer) Commit() error {
	if w.done {
		return errors.New("blob: commit after commit or abort")
	}
	w.done = true
	err := w.f.Sync()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(w.f.Name(), w.path)
	}
	if err != nil {
		os.Remove(w.f.Name())
		return fmt.Errorf("cannot store blob: %w", err)
	}
	return syncDir(filepath.Dir(w.path))
}

func (w *writer) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.f.Close()
	os.Remove(w.f.Name())
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return err
	}
	return nil
}

// Open implements fheserve.BlobStore.
func (s *Store) Open(ctx context.Context, key string) (io.ReadCloser, int64, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, 0, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fheserve.Errorf(fheserve.ENOTFOUND, "no blob %q", key)
	} else if err != nil {
		return nil, 0, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}

// Delete implements fheserve.BlobStore.
func (s *Store) Delete(ctx context.Context, key string) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// CleanTemp removes temporary files that writers left behind when the
// process stopped between Create and Commit.
func (s *Store) CleanTemp() error {
	return filepath.WalkDir(s.root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasPrefix(d.Name(), ".") && strings.Contains(d.Name(), ".tmp") {
			return os.Remove(path)
		}
		return nil
	})
}
