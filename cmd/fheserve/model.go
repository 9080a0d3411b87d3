package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/sdk"
	"github.com/spf13/cobra"
)

func newModelCmd(f *Factory) *cobra.Command {
	return group(&cobra.Command{
		Use:   "model",
		Short: "Deploy, list, show and retire models on a server",
	}, newModelDeployCmd(f, nil), newModelListCmd(f, nil), newModelShowCmd(f, nil),
		newModelRetireCmd(f, nil), newModelAccessCmd(f, nil), newModelLimitsCmd(f, nil), newModelSealCmd(f, nil))
}

type modelDeployOptions struct {
	IO  *IOStreams
	Ctx context.Context

	Name        string
	File        string
	Calibration string
	Allow       []string
	Labels      string
	Packing     string
	fheserve.CompileSettings
	// Sealed: compile here and deploy without weights (seal.go).
	Sealed    bool
	Weights   string
	MaxSealed int
	remote
}

func newModelDeployCmd(f *Factory, runF func(*modelDeployOptions) error) *cobra.Command {
	opts := &modelDeployOptions{IO: f.IO, remote: newRemote(f)}
	cmd := leaf(&cobra.Command{
		Use:   "deploy --name N --file M.onnx [--calibration C.npy] [--labels L.txt] [--allow U1,U2] [compile flags]",
		Short: "Upload an ONNX model; the server compiles it and prints its id last",
		Long: `Upload an ONNX model with optional calibration data. The server compiles it
(refusing it with the compiler's message if it cannot be evaluated under
encryption) and stores its weights encrypted. Deploying a name again makes a
new version. Without --allow every approved user may use the model. The
model's id is printed alone on the last line.

--labels names the outputs, one label per line, in order (class names: the
predictions show them); without it, the labels of the ONNX file's metadata
(key "labels", a JSON array of strings), if it has any. Labels are public.

The compilation flags are those of 'fheserve compile' (--packing, --degree,
--degrees, --fit, --margin, --log-n, --privacy-bits, --query-budget,
--precision-bits): try them there first, offline, and deploy with the same.
Without --calibration, activations are approximated on a default interval
that fits few real models: deploy warns.`,
	}, opts, &opts.Ctx, runF, withSession(&opts.remote, modelDeployRun), required("name", "file"), validated(opts.validate))
	fs := cmd.Flags()
	fs.StringVar(&opts.Name, "name", "", "model `name` (required)")
	fs.StringVar(&opts.File, "file", "", "ONNX model `file` (required)")
	fs.StringSliceVar(&opts.Allow, "allow", nil, "`users` allowed to use the model (default: every approved user)")
	fs.StringVar(&opts.Labels, "labels", "", "text `file` of the outputs' labels, one per line (default: the ONNX metadata's)")
	fs.StringVar(&opts.Packing, "packing", "latency", "latency (one sample per call, or one per tile) or batch (many samples per call)")
	registerCompileSettings(fs, &opts.Calibration, &opts.CompileSettings)
	registerKeyChoice(fs, &opts.CompileSettings)
	fs.BoolVar(&opts.Sealed, "sealed", false, "compile here and deploy without weights: the server never sees one; seal them for users' keys with 'model seal'")
	fs.StringVar(&opts.Weights, "weights", "", "with --sealed, the `file` to keep the weights in, for 'model seal' (default NAME.sealed.json)")
	fs.IntVar(&opts.MaxSealed, "max-sealed-keysets", 0, "with --sealed, seal the model for at most `n` key sets (0: no bound)")
	opts.register(fs)
	return cmd
}

func (o *modelDeployOptions) validate() error {
	return validSettings(o.Packing, &o.CompileSettings)
}

func modelDeployRun(opts *modelDeployOptions, c *sdk.Client) error {
	if opts.Sealed {
		m, err := deploySealed(opts, c)
		if err != nil {
			return err
		}
		writeModel(opts.IO.Out, m)
		fmt.Fprintln(opts.IO.Out, m.ID)
		return nil
	}
	req := &fheserve.DeployRequest{Name: opts.Name, Packing: opts.Packing, CompileSettings: opts.CompileSettings, Allow: opts.Allow}
	var err error
	if req.ONNX, err = readInputFile(opts.File, "model"); err != nil {
		return err
	}
	if opts.Calibration != "" {
		if req.Calibration, err = readInputFile(opts.Calibration, "calibration"); err != nil {
			return err
		}
	}
	if opts.Labels != "" {
		if req.Labels, err = readLabelsFile(opts.Labels); err != nil {
			return err
		}
	}
	m, err := c.Deploy(opts.Ctx, req)
	if err != nil {
		return err
	}
	if opts.Calibration == "" {
		fmt.Fprintf(opts.IO.ErrOut, "fheserve: warning: deployed without --calibration: activations are approximated on the default interval [%g, %g] "+
			"and the output bound comes from synthetic inputs, not your data, so predictions may be unreliable; "+
			"deploy again with representative inputs: --calibration C.npy\n", -compiler.DefaultInterval, compiler.DefaultInterval)
	}
	writeModel(opts.IO.Out, m)
	fmt.Fprintln(opts.IO.Out, m.ID)
	return nil
}

type modelListOptions struct {
	IO  *IOStreams
	Ctx context.Context

	JSON bool
	remote
}

func newModelListCmd(f *Factory, runF func(*modelListOptions) error) *cobra.Command {
	opts := &modelListOptions{IO: f.IO, remote: newRemote(f)}
	cmd := leaf(&cobra.Command{Use: "list [--json]", Short: "List the models you may see"}, opts, &opts.Ctx, runF, withSession(&opts.remote, modelListRun))
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print JSON")
	opts.register(cmd.Flags())
	return cmd
}

func modelListRun(opts *modelListOptions, c *sdk.Client) error {
	ms, err := c.Models(opts.Ctx)
	if err != nil {
		return err
	}
	return printList(opts.IO.Out, opts.JSON, ms, "ID\tNAME\tVERSION\tOWNER\tSTATUS\tPACKING\tINPUT\tOUTPUT\tACCESS", func(m *fheserve.Model) string {
		return fmt.Sprintf("%s\t%s\t%d\t%s\t%s\t%s\t%v\t%v\t%s", m.ID, m.Name, m.Version, m.Owner, m.Status, m.Packing, m.InputShape, m.OutputShape, access(m))
	})
}

type modelShowOptions struct {
	IO  *IOStreams
	Ctx context.Context

	Ref  string // the model's id or name
	JSON bool
	remote
}

func newModelShowCmd(f *Factory, runF func(*modelShowOptions) error) *cobra.Command {
	opts := &modelShowOptions{IO: f.IO, remote: newRemote(f)}
	cmd := leaf(&cobra.Command{Use: "show (ID | NAME) [--json]", Short: "Show a model (by id, or by name: its latest version) and its public plan",
		Args: exactlyOne("model ID or name")}, opts, &opts.Ctx, runF, withSession(&opts.remote, modelShowRun), arg(&opts.Ref))
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the model and its plan as JSON")
	opts.register(cmd.Flags())
	return cmd
}

func modelShowRun(opts *modelShowOptions, c *sdk.Client) error {
	m, err := c.ModelByRef(opts.Ctx, opts.Ref)
	if err != nil {
		return err
	}
	p, err := c.Plan(opts.Ctx, m.ID)
	if err != nil {
		return err
	}
	out := opts.IO.Out
	if opts.JSON {
		return printJSON(out, map[string]any{"model": m, "plan": p})
	}
	writeModel(out, m)
	fmt.Fprintln(out)
	return writePlanReport(out, p)
}

type modelRetireOptions struct {
	IO  *IOStreams
	Ctx context.Context

	ID string
	remote
}

func newModelRetireCmd(f *Factory, runF func(*modelRetireOptions) error) *cobra.Command {
	opts := &modelRetireOptions{IO: f.IO, remote: newRemote(f)}
	cmd := leaf(&cobra.Command{Use: "retire ID", Short: "Retire a model: no new keys or jobs", Args: exactlyOne("model ID")},
		opts, &opts.Ctx, runF, withSession(&opts.remote, modelRetireRun), arg(&opts.ID))
	opts.register(cmd.Flags())
	return cmd
}

func modelRetireRun(opts *modelRetireOptions, c *sdk.Client) error {
	m, err := c.API.Retire(opts.Ctx, opts.ID)
	if err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.Out, "retired %s (%s v%d)\n", m.ID, m.Name, m.Version)
	return nil
}

type modelAccessOptions struct {
	IO  *IOStreams
	Ctx context.Context

	ID       string
	Allow    []string
	Everyone bool // open the model to every approved user
	remote
}

func newModelAccessCmd(f *Factory, runF func(*modelAccessOptions) error) *cobra.Command {
	opts := &modelAccessOptions{IO: f.IO, remote: newRemote(f)}
	cmd := leaf(&cobra.Command{
		Use:   "access ID (--allow U1,U2 | --everyone)",
		Short: "Set who may use a model",
		Long: `Replace a model's allow-list (its owner or an administrator): --allow names
the users who may fetch its plan, upload keys and submit jobs; --everyone
opens it to every approved user. Users taken off the list lose access at
once; their jobs already queued still run.`,
		Args: exactlyOne("model ID"),
	}, opts, &opts.Ctx, runF, withSession(&opts.remote, modelAccessRun), arg(&opts.ID), func(*cobra.Command, []string) error {
		if (len(opts.Allow) > 0) == opts.Everyone {
			return fheserve.Errorf(fheserve.EINVALID, "give either --allow U1,U2 or --everyone")
		}
		return nil
	})
	cmd.Flags().StringSliceVar(&opts.Allow, "allow", nil, "`users` allowed to use the model")
	cmd.Flags().BoolVar(&opts.Everyone, "everyone", false, "allow every approved user")
	opts.register(cmd.Flags())
	return cmd
}

func modelAccessRun(opts *modelAccessOptions, c *sdk.Client) error {
	m, err := c.API.SetAccess(opts.Ctx, opts.ID, &fheserve.AccessRequest{Allow: opts.Allow})
	if err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.Out, "access to %s (%s v%d): %s\n", m.ID, m.Name, m.Version, access(m))
	return nil
}

func writeModel(w io.Writer, m *fheserve.Model) {
	fmt.Fprintf(w, "model %s: %s v%d by %s, %s\n", m.ID, m.Name, m.Version, m.Owner, m.Status)
	fmt.Fprintf(w, "  %s packing, N = 2^%d, %d rotation keys, input %v, output %v, precision %.1e\n",
		m.Packing, m.LogN, m.Rotations, m.InputShape, m.OutputShape, m.OutputError)
	fmt.Fprintf(w, "  access: %s; deployed %s; plan %s\n", access(m), m.CreatedAt.Local().Format(time.DateTime), m.PlanFingerprint)
	fmt.Fprintf(w, "  limits: %s\n", limitsText(m.Limits))
	if len(m.Labels) > 0 {
		fmt.Fprintf(w, "  labels: %s\n", strings.Join(m.Labels, ", "))
	}
}

// readLabelsFile reads a labels file: one label per line, surrounding space
// and blank lines at the end dropped (the server checks the rest).
func readLabelsFile(path string) ([]string, error) {
	data, err := readInputFile(path, "labels")
	if err != nil {
		return nil, err
	}
	if len(data) > fheserve.MaxLabels*(fheserve.MaxLabelLen+2) {
		return nil, fheserve.Errorf(fheserve.ETOOLARGE, "labels file %q has %d bytes: more than %d labels of %d bytes", path, len(data), fheserve.MaxLabels, fheserve.MaxLabelLen)
	}
	lines := strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) == 0 {
		return nil, fheserve.Errorf(fheserve.EINVALID, "labels file %q names no label: write one per line", path)
	}
	return lines, nil
}

func access(m *fheserve.Model) string {
	if m.Open() {
		return "every approved user"
	}
	return strings.Join(m.Allow, ",")
}

// readInputFile reads a file named by a flag, with a message naming it.
func readInputFile(path, what string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, fheserve.Errorf(fheserve.ENOTFOUND, "%s file %q not found", what, path)
	}
	return data, err
}
