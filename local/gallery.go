package local

import (
	"time"

	"github.com/fheserve/fheserve/compiler"
)

// NewGallery compiles a gallery's decision (or scores) plan, generates
// keys for it and prepares the server side, like New. The runner has no
// graph: the gallery's plaintext oracle is its scores against the
// threshold (plan.Decision).
func NewGallery(g *compiler.Gallery, opts compiler.GalleryOptions, workers int) (*Runner, error) {
	t0 := time.Now()
	res, err := compiler.CompileGallery(g, opts)
	if err != nil {
		return nil, err
	}
	return newRunner(res, nil, time.Since(t0), workers)
}
