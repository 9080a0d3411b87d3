package blob_test

import (
	"testing"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/blob"
	"github.com/fheserve/fheserve/storetest"
)

func TestStore(t *testing.T) {
	storetest.Blobs(t, func(t *testing.T) fheserve.BlobStore {
		s, err := blob.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
