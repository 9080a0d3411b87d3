package local

import (
	"bytes"
	"time"

	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/he"
	"github.com/fheserve/fheserve/he/client"
	"github.com/fheserve/fheserve/he/server"
	"github.com/fheserve/fheserve/nn"
)

// SealStats are the measurements of sealing a model for one key set.
type SealStats struct {
	Seal        time.Duration // the owner's encryption and encoding of the weights
	Prepare     time.Duration // the server's decoding and preparation
	SealedBytes int           // the sealed weights as uploaded
}

// NewSealed is New for a sealed model: it compiles g for sealed weights,
// generates a user's keys, seals the weights under the user's public key
// on the owner's side (client.Seal), and prepares the server side from the
// plan, the program stripped of its weights and the sealed weights as they
// arrive over the wire. The server half never sees a weight.
func NewSealed(g *nn.Graph, opts compiler.Options, workers int) (*Runner, *SealStats, error) {
	t0 := time.Now()
	opts.Sealed = true
	res, err := compiler.Compile(g, opts)
	if err != nil {
		return nil, nil, err
	}
	r := &Runner{Plan: res.Plan, Program: res.Program, Graph: g}
	r.Stats.Compile = time.Since(t0)
	if r.params, err = he.NewParameters(res.Plan.Params); err != nil {
		return nil, nil, err
	}

	serverKeys, err := r.userKeys()
	if err != nil {
		return nil, nil, err
	}

	// The owner seals for the public key as the server stores it.
	var st SealStats
	t0 = time.Now()
	var sealed bytes.Buffer
	if err := client.Seal(&sealed, r.params, res.Plan, res.Program, serverKeys.Public); err != nil {
		return nil, nil, err
	}
	st.Seal = time.Since(t0)
	st.SealedBytes = sealed.Len()

	t0 = time.Now()
	stripped := he.StripWeights(res.Program)
	items, err := he.SealedLayout(r.params, res.Plan, stripped)
	if err != nil {
		return nil, nil, err
	}
	cts, err := he.UnmarshalSealed(&sealed, r.params, he.SealedLevels(items))
	if err != nil {
		return nil, nil, err
	}
	if r.Model, err = server.PrepareSealed(res.Plan, stripped, cts); err != nil {
		return nil, nil, err
	}
	st.Prepare = time.Since(t0)
	if r.eval, err = r.Model.NewEvaluator(serverKeys, workers); err != nil {
		return nil, nil, err
	}
	return r, &st, nil
}
