package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/npy"
	"github.com/fheserve/fheserve/sdk"
	"github.com/spf13/cobra"
)

// queryOptions are what verify and identify share: the gallery, the
// probe (an embedding file or a photo), the keys.
type queryOptions struct {
	IO  *IOStreams
	Ctx context.Context

	Model     string
	Claim     string
	Embedding string
	Image     string
	Keys      string
	remote
}

func (o *queryOptions) flags(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&o.Model, "model", "", "gallery `ID` (required)")
	fs.StringVar(&o.Embedding, "embedding", "", "`e.npy` holding the probe's embedding, shape [dim] or [1, dim]")
	fs.StringVar(&o.Image, "image", "", "`photo` (JPEG or PNG) of one face, embedded here ('fheserve face embed')")
	fs.StringVar(&o.Keys, "keys", "", "key set `ID` to use (default: yours for the gallery)")
	o.register(fs)
}

func (o *queryOptions) validate() error {
	switch {
	case o.Model == "":
		return requiredFlag("--model")
	case (o.Embedding == "") == (o.Image == ""):
		return fheserve.Errorf(fheserve.EINVALID, "give the probe as --embedding e.npy or --image face.jpg, one of them")
	}
	return nil
}

// probe reads the probe embedding, computed here from --image.
func (o *queryOptions) probe() ([]float64, error) {
	var a *npy.Array
	var err error
	if o.Image != "" {
		a, err = imageEmbedding(o.Image)
	} else {
		a, err = readEmbeddings(o.Embedding)
	}
	if err != nil {
		return nil, err
	}
	if a.Shape[0] != 1 {
		return nil, fheserve.Errorf(fheserve.EINVALID, "%q holds %d embeddings: give one probe", o.Embedding+o.Image, a.Shape[0])
	}
	return a.Data, nil
}

// setUp returns the session's client, the user's keys for the gallery
// and the probe.
func (o *queryOptions) setUp() (*sdk.Client, *sdk.Keys, []float64, error) {
	c, cfg, _, err := o.sessionModel(o.Ctx, o.Model)
	if err != nil {
		return nil, nil, nil, err
	}
	probe, err := o.probe()
	if err != nil {
		return nil, nil, nil, err
	}
	keys, err := o.loadKeys(o.Ctx, c, cfg, o.Model, o.Keys)
	if err != nil {
		return nil, nil, nil, err
	}
	return c, keys, probe, nil
}

func newVerifyCmd(f *Factory, runF func(*queryOptions) error) *cobra.Command {
	opts := &queryOptions{IO: f.IO, remote: newRemote(f)}
	cmd := leaf(&cobra.Command{
		Use:   "verify --model ID --claim LABEL (--embedding e.npy | --image face.jpg)",
		Short: "1:1: does the probe match the template of a claimed label? Prints match or no match",
		Long: `Encrypt the probe embedding here, have the gallery compare it with the
claimed label's template under encryption, and decrypt the one decision here:
prints "match" or "no match". The result holds that decision and nothing
else (no score); the server sees neither the probe nor the decision. Scores
within the gallery's decision margin of its threshold may decide either way.
Uses your keys for the gallery ('fheserve keys create --model ID').`,
	}, opts, &opts.Ctx, runF, verifyRun, validated(func() error {
		if opts.Claim == "" {
			return requiredFlag("--claim")
		}
		return opts.validate()
	}))
	cmd.Flags().StringVar(&opts.Claim, "claim", "", "the enrolled `label` the probe claims to be (required)")
	opts.flags(cmd)
	return cmd
}

func verifyRun(opts *queryOptions) error {
	c, keys, probe, err := opts.setUp()
	if err != nil {
		return err
	}
	ok, err := c.Verify(opts.Ctx, keys, opts.Claim, probe)
	if err != nil {
		return err
	}
	d := keys.Plan.Decision
	fmt.Fprintf(opts.IO.ErrOut, "verified %q on gallery %s under encryption (cosine threshold %g, decision margin %.3g)\n", opts.Claim, opts.Model, d.Threshold, d.Margin)
	if ok {
		fmt.Fprintln(opts.IO.Out, "match")
	} else {
		fmt.Fprintln(opts.IO.Out, "no match")
	}
	return nil
}

func newIdentifyCmd(f *Factory, runF func(*queryOptions) error) *cobra.Command {
	opts := &queryOptions{IO: f.IO, remote: newRemote(f)}
	cmd := leaf(&cobra.Command{
		Use:   "identify --model ID (--embedding e.npy | --image face.jpg)",
		Short: "1:N: which enrolled labels does the probe match? Prints them one per line",
		Long: `Encrypt the probe embedding here, have the gallery compare it with every
enrolled template under encryption, and decrypt the decisions here: prints
the labels whose templates match, one per line (none: nothing, and a note on
standard error). The result holds one match decision per template and
nothing else (no score). Scores within the gallery's decision margin of its
threshold may decide either way.`,
	}, opts, &opts.Ctx, runF, identifyRun, validated(opts.validate))
	opts.flags(cmd)
	return cmd
}

func identifyRun(opts *queryOptions) error {
	c, keys, probe, err := opts.setUp()
	if err != nil {
		return err
	}
	labels, err := c.Identify(opts.Ctx, keys, probe)
	if err != nil {
		return err
	}
	d := keys.Plan.Decision
	fmt.Fprintf(opts.IO.ErrOut, "identified on gallery %s under encryption (cosine threshold %g, decision margin %.3g): %d match%s\n",
		opts.Model, d.Threshold, d.Margin, len(labels), map[bool]string{true: "", false: "es"}[len(labels) == 1])
	if len(labels) > 0 {
		fmt.Fprintln(opts.IO.Out, strings.Join(labels, "\n"))
	}
	return nil
}
