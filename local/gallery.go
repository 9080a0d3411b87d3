package local

import (
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/he/server"
	"github.com/fheserve/fheserve/plan"
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

// NewGalleryPlan compiles the plan of every query on a gallery of up to
// capacity templates (compiler.CompileGalleryPlan) and generates keys
// for it; Query runs the queries with those keys, as a service does.
func NewGalleryPlan(g *compiler.Gallery, capacity int, opts compiler.GalleryOptions, workers int) (*Runner, error) {
	t0 := time.Now()
	res, err := compiler.CompileGalleryPlan(g, capacity, opts)
	if err != nil {
		return nil, err
	}
	return newRunner(res, nil, time.Since(t0), workers)
}

// Query returns a runner of one query on r's gallery plan with g's
// enrolled templates: a verification of claim, or an identification when
// claim is empty. It uses r's keys, made for the gallery plan before g
// was enrolled.
func (r *Runner) Query(g *compiler.Gallery, claim string, workers int) (*Runner, error) {
	mode, labels := plan.Identify, g.Labels
	if claim != "" {
		mode, labels = plan.Verify, nil
	}
	v, err := r.Plan.DecisionView(mode, labels)
	if err != nil {
		return nil, err
	}
	prog, err := compiler.GalleryProgram(r.Program, v, g, claim)
	if err != nil {
		return nil, err
	}
	model, err := server.Prepare(v, prog)
	if err != nil {
		return nil, err
	}
	q := &Runner{Plan: v, Program: prog, Model: model, params: r.params, keys: r.keys, evk: r.evk}
	if q.eval, err = model.NewEvaluator(r.evk, workers); err != nil {
		return nil, fheserve.Errorf(fheserve.EINTERNAL, "gallery query: %v", err)
	}
	return q, nil
}
