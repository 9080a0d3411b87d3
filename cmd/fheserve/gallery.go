package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/npy"
	"github.com/fheserve/fheserve/sdk"
	"github.com/spf13/cobra"
)

func newGalleryCmd(f *Factory) *cobra.Command {
	return group(&cobra.Command{
		Use:   "gallery",
		Short: "Create galleries of face templates, enrol and remove templates, list labels",
		Long: `A gallery is a model whose weights are enrolled face templates (embeddings
with labels). Users run 'fheserve verify' and 'fheserve identify' on it: the
probe is encrypted on their device and the result holds match decisions
only, never a score. Its plan is compiled once for its capacity, so users'
keys stay valid when templates are enrolled or removed. Access lists
('model access'), limits ('model limits'), usage and retirement are the
model's.`,
	}, newGalleryCreateCmd(f, nil), newGalleryEnrollCmd(f, nil), newGalleryRemoveCmd(f, nil), newGalleryListCmd(f, nil))
}

type galleryCreateOptions struct {
	IO  *IOStreams
	Ctx context.Context

	Req fheserve.GalleryRequest
	remote
}

func newGalleryCreateCmd(f *Factory, runF func(*galleryCreateOptions) error) *cobra.Command {
	opts := &galleryCreateOptions{IO: f.IO, remote: newRemote(f)}
	cmd := leaf(&cobra.Command{
		Use:   "create --name NAME --dim D --threshold T [--capacity N] [--decision randomized|polynomial] [--margin M] [--allow U1,U2]",
		Short: "Create an empty gallery (owners); prints its id last",
		Long: `Create an empty cosine gallery of embeddings of dimension D: a probe matches
a template when their cosine similarity is at least T. The server compiles
the plan of every query on up to --capacity templates (default 1024),
exact beyond the plan's decision margin (printed) and either way inside it.

--decision randomized (the default): a result holds r (score - T) per
template, r > 0 drawn by the server for every template and query within
a factor (the spread, printed): the user reads the sign and learns
|score - T| only within that factor. Two levels: about 50 times faster
than polynomial. A wider --margin gives a larger spread.
--decision polynomial: a composite polynomial approximation of the
sign of score - T; the result holds the decisions alone. Depth 11; a
narrower --margin costs depth and time. docs/security.md compares them.
Prints the gallery's id alone on the last line.`,
	}, opts, &opts.Ctx, runF, withSession(&opts.remote, galleryCreateRun), required("name"), validated(func() error {
		if opts.Req.Dim == 0 {
			return requiredFlag("--dim")
		}
		return opts.Req.Validate()
	}))
	fs := cmd.Flags()
	fs.StringVar(&opts.Req.Name, "name", "", "gallery `name` (required)")
	fs.IntVar(&opts.Req.Dim, "dim", 0, "embedding `dimension` (required; 128 for 'fheserve face embed')")
	fs.Float64Var(&opts.Req.Threshold, "threshold", 0, "cosine similarity `T` at which a probe matches (required)")
	fs.IntVar(&opts.Req.Capacity, "capacity", 0, "most `templates` the gallery will hold (default 1024)")
	fs.StringVar(&opts.Req.Decision, "decision", fheserve.DefaultGalleryDecision, "how decisions are made: `randomized` or polynomial")
	fs.Float64Var(&opts.Req.Margin, "margin", 0, "widest decision margin accepted, in score units (default: the compiler's, 0.02 randomized, 0.08 polynomial)")
	fs.IntVar(&opts.Req.LogN, "log-n", 0, "force the ring degree 2^`N`")
	fs.StringSliceVar(&opts.Req.Allow, "allow", nil, "`users` allowed to query the gallery (default: every approved user)")
	cmd.MarkFlagRequired("threshold")
	opts.register(fs)
	return cmd
}

func galleryCreateRun(opts *galleryCreateOptions, c *sdk.Client) error {
	g, err := c.CreateGallery(opts.Ctx, &opts.Req)
	if err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.Out, "gallery %s %q: dimension %d, %s threshold %g, capacity %d, %s\n",
		g.ModelID, g.Name, g.Dim, g.Metric, g.Threshold, g.Capacity, decisionSummary(g))
	fmt.Fprintln(opts.IO.Out, g.ModelID)
	return nil
}

type galleryEnrollOptions struct {
	IO  *IOStreams
	Ctx context.Context

	ID         string
	Embeddings string
	Labels     string
	remote
}

func newGalleryEnrollCmd(f *Factory, runF func(*galleryEnrollOptions) error) *cobra.Command {
	opts := &galleryEnrollOptions{IO: f.IO, remote: newRemote(f)}
	cmd := leaf(&cobra.Command{
		Use:   "enroll ID --embeddings E.npy --labels L.txt",
		Short: "Enrol labelled embeddings in a gallery (its owner)",
		Long: `Enrol the rows of E.npy (shape [n, dim], float32 or float64, unit length for
a cosine gallery; 'fheserve face embed' writes them) under the labels of
L.txt, one per line in the same order. The server checks the whole
enrolment (dimension, finite values, unit norm, unique labels, capacity);
one that fails changes nothing.`,
		Args: exactlyOne("gallery ID"),
	}, opts, &opts.Ctx, runF, withSession(&opts.remote, galleryEnrollRun), arg(&opts.ID), required("embeddings", "labels"))
	cmd.Flags().StringVar(&opts.Embeddings, "embeddings", "", "`E.npy` of one embedding per row (required)")
	cmd.Flags().StringVar(&opts.Labels, "labels", "", "`L.txt` of one label per line (required)")
	opts.register(cmd.Flags())
	return cmd
}

func galleryEnrollRun(opts *galleryEnrollOptions, c *sdk.Client) error {
	a, err := readEmbeddings(opts.Embeddings)
	if err != nil {
		return err
	}
	labels, err := readLabelLines(opts.Labels)
	if err != nil {
		return err
	}
	rows := a.Shape[0]
	if len(labels) != rows {
		return fheserve.Errorf(fheserve.EINVALID, "%q holds %d embeddings and %q %d labels: give one label per line for each row", opts.Embeddings, rows, opts.Labels, len(labels))
	}
	dim := a.Size() / rows
	emb := make([][]float64, rows)
	for i := range emb {
		emb[i] = a.Data[i*dim : (i+1)*dim]
	}
	g, err := c.Enroll(opts.Ctx, opts.ID, labels, emb)
	if err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.Out, "enrolled %d templates in gallery %s: %d of %d\n", rows, g.ModelID, g.Templates, g.Capacity)
	return nil
}

// readEmbeddings reads an .npy of embeddings: one row of shape [dim], or
// rows of shape [n, dim].
func readEmbeddings(path string) (*npy.Array, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fheserve.Errorf(fheserve.ENOTFOUND, "embeddings file %q not found", path)
	}
	a, err := npy.ReadFile(path)
	if err != nil {
		return nil, fheserve.Errorf(fheserve.EINVALID, "embeddings file %q: %s", path, fheserve.ErrorMessage(err))
	}
	switch {
	case len(a.Shape) == 1 && a.Shape[0] > 0:
		a.Shape = []int{1, a.Shape[0]}
	case len(a.Shape) == 2 && a.Shape[0] > 0 && a.Shape[1] > 0:
	default:
		return nil, fheserve.Errorf(fheserve.EINVALID, "embeddings file %q has shape %v: want [n, dim], one embedding per row", path, a.Shape)
	}
	return a, nil
}

// readLabelLines reads one label per line; a last empty line is no label.
func readLabelLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fheserve.Errorf(fheserve.ENOTFOUND, "labels file %q not found", path)
	} else if err != nil {
		return nil, err
	}
	defer f.Close()
	var labels []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		labels = append(labels, strings.TrimRight(sc.Text(), "\r"))
	}
	if err := sc.Err(); err != nil {
		return nil, fheserve.Errorf(fheserve.EINVALID, "labels file %q: %v", path, err)
	}
	return labels, nil
}

type galleryRemoveOptions struct {
	IO  *IOStreams
	Ctx context.Context

	ID     string
	Labels []string
	remote
}

func newGalleryRemoveCmd(f *Factory, runF func(*galleryRemoveOptions) error) *cobra.Command {
	opts := &galleryRemoveOptions{IO: f.IO, remote: newRemote(f)}
	cmd := leaf(&cobra.Command{
		Use:   "remove ID LABEL...",
		Short: "Remove templates from a gallery by label (its owner)",
		Long:  `Remove the templates of the labels given; if one is not enrolled, nothing is removed.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				return fheserve.Errorf(fheserve.EINVALID, "%s takes a gallery ID and at least one LABEL (see '%s --help')", cmd.CommandPath(), cmd.CommandPath())
			}
			return nil
		},
	}, opts, &opts.Ctx, runF, withSession(&opts.remote, galleryRemoveRun), func(_ *cobra.Command, args []string) error {
		opts.ID, opts.Labels = args[0], args[1:]
		return nil
	})
	opts.register(cmd.Flags())
	return cmd
}

func galleryRemoveRun(opts *galleryRemoveOptions, c *sdk.Client) error {
	g, err := c.RemoveTemplates(opts.Ctx, opts.ID, opts.Labels...)
	if err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.Out, "removed %d templates from gallery %s: %d of %d remain\n", len(opts.Labels), g.ModelID, g.Templates, g.Capacity)
	return nil
}

type galleryListOptions struct {
	IO  *IOStreams
	Ctx context.Context

	ID   string
	JSON bool
	remote
}

func newGalleryListCmd(f *Factory, runF func(*galleryListOptions) error) *cobra.Command {
	opts := &galleryListOptions{IO: f.IO, remote: newRemote(f)}
	cmd := leaf(&cobra.Command{
		Use:   "list ID [--json]",
		Short: "List a gallery's labels and counts, never its templates",
		Long: `Print a gallery's settings and counts, then its labels one per line, in the
order of an identification's decisions (its owner and the users it allows).`,
		Args: exactlyOne("gallery ID"),
	}, opts, &opts.Ctx, runF, withSession(&opts.remote, galleryListRun), arg(&opts.ID))
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print JSON")
	opts.register(cmd.Flags())
	return cmd
}

func galleryListRun(opts *galleryListOptions, c *sdk.Client) error {
	g, err := c.Gallery(opts.Ctx, opts.ID)
	if err != nil {
		return err
	}
	if opts.JSON {
		return printJSON(opts.IO.Out, g)
	}
	fmt.Fprintf(opts.IO.Out, "gallery %s %q of %s: dimension %d, %s threshold %g, %s, %d of %d templates\n",
		g.ModelID, g.Name, g.Owner, g.Dim, g.Metric, g.Threshold, decisionSummary(g), g.Templates, g.Capacity)
	for _, l := range g.Labels {
		fmt.Fprintln(opts.IO.Out, l)
	}
	return nil
}

// decisionSummary says how a gallery decides and what a result reveals.
func decisionSummary(g *fheserve.Gallery) string {
	if g.Decision == fheserve.GalleryRandomized {
		return fmt.Sprintf("randomized decisions (a result gives |score - threshold| within a factor %g), margin %.3g", g.Spread, g.Margin)
	}
	return fmt.Sprintf("polynomial decisions (a result gives the decisions alone), margin %.3g", g.Margin)
}
