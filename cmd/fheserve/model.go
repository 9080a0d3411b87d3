package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/compiler"
	"github.com/spf13/cobra"
)

type modelOptions struct {
	Out    io.Writer
	ErrOut io.Writer
	Ctx    context.Context

	Action      string // deploy, list, show, retire, limits, access
	ID          string
	Name        string
	File        string
	Calibration string
	Allow       []string
	Packing     string
	fheserve.CompileSettings
	JSON     bool
	Everyone bool // access: open the model to every approved user
	Limits   fheserve.ModelLimits
	clientFlags
}

func newModelCmd(runF func(*modelOptions) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "model",
		Short: "Deploy, list, show and retire models on a server",
		Args:  noArgs,
		RunE:  func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	runE := func(opts *modelOptions) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			opts.Out, opts.ErrOut, opts.Ctx = cmd.OutOrStdout(), cmd.ErrOrStderr(), cmd.Context()
			if len(args) == 1 {
				opts.ID = args[0]
			}
			if err := opts.validate(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return modelRun(opts)
		}
	}

	deploy := &modelOptions{Action: "deploy"}
	deployCmd := &cobra.Command{
		Use:   "deploy --name N --file M.onnx [--calibration C.npy] [--allow U1,U2] [compile flags]",
		Short: "Upload an ONNX model; the server compiles it and prints its id last",
		Long: `Upload an ONNX model with optional calibration data. The server compiles it
(refusing it with the compiler's message if it cannot be evaluated under
encryption) and stores its weights encrypted. Deploying a name again makes a
new version. Without --allow every approved user may use the model. The
model's id is printed alone on the last line.

The compilation flags are those of 'fheserve compile' (--packing, --degree,
--degrees, --fit, --margin, --log-n, --privacy-bits, --query-budget,
--precision-bits): try them there first, offline, and deploy with the same.
Without --calibration, activations are approximated on a default interval
that fits few real models: deploy warns.`,
		Args: noArgs,
		RunE: runE(deploy),
	}
	f := deployCmd.Flags()
	f.StringVar(&deploy.Name, "name", "", "model `name` (required)")
	f.StringVar(&deploy.File, "file", "", "ONNX model `file` (required)")
	f.StringVar(&deploy.Calibration, "calibration", "", "representative inputs as an .npy `file`, batch dimension first")
	f.StringSliceVar(&deploy.Allow, "allow", nil, "`users` allowed to use the model (default: every approved user)")
	f.StringVar(&deploy.Packing, "packing", "latency", "latency (one sample per call) or batch (many samples per call)")
	registerCompileSettings(f, &deploy.CompileSettings)
	deploy.register(f)

	list := &modelOptions{Action: "list"}
	listCmd := &cobra.Command{Use: "list [--json]", Short: "List the models you may see", Args: noArgs, RunE: runE(list)}
	listCmd.Flags().BoolVar(&list.JSON, "json", false, "print JSON")
	list.register(listCmd.Flags())

	show := &modelOptions{Action: "show"}
	showCmd := &cobra.Command{Use: "show (ID | NAME) [--json]", Short: "Show a model (by id, or by name: its latest version) and its public plan",
		Args: exactlyOne("model ID or name"), RunE: runE(show)}
	showCmd.Flags().BoolVar(&show.JSON, "json", false, "print the model and its plan as JSON")
	show.register(showCmd.Flags())

	retire := &modelOptions{Action: "retire"}
	retireCmd := &cobra.Command{Use: "retire ID", Short: "Retire a model: no new keys or jobs", Args: exactlyOne("model ID"), RunE: runE(retire)}
	retire.register(retireCmd.Flags())

	acc := &modelOptions{Action: "access"}
	accessCmd := &cobra.Command{
		Use:   "access ID (--allow U1,U2 | --everyone)",
		Short: "Set who may use a model",
		Long: `Replace a model's allow-list (its owner or an administrator): --allow names
the users who may fetch its plan, upload keys and submit jobs; --everyone
opens it to every approved user. Users taken off the list lose access at
once; their jobs already queued still run.`,
		Args: exactlyOne("model ID"),
		RunE: runE(acc),
	}
	accessCmd.Flags().StringSliceVar(&acc.Allow, "allow", nil, "`users` allowed to use the model")
	accessCmd.Flags().BoolVar(&acc.Everyone, "everyone", false, "allow every approved user")
	acc.register(accessCmd.Flags())

	cmd.AddCommand(deployCmd, listCmd, showCmd, retireCmd, accessCmd, newModelLimitsCmd(runE))
	return cmd
}

func (o *modelOptions) validate() error {
	if o.Action == "access" {
		if (len(o.Allow) > 0) == o.Everyone {
			return fheserve.Errorf(fheserve.EINVALID, "give either --allow U1,U2 or --everyone")
		}
		return nil
	}
	if o.Action != "deploy" {
		return nil
	}
	switch {
	case o.Name == "":
		return requiredFlag("--name")
	case o.File == "":
		return requiredFlag("--file")
	}
	if err := validPacking("--packing", o.Packing); err != nil {
		return err
	}
	return validSettings(&o.CompileSettings)
}

func modelRun(opts *modelOptions) error {
	ctx := opts.Ctx
	c, _, err := opts.session()
	if err != nil {
		return err
	}
	out := opts.Out
	switch opts.Action {
	case "deploy":
		req := &fheserve.DeployRequest{Name: opts.Name, Packing: opts.Packing, CompileSettings: opts.CompileSettings, Allow: opts.Allow}
		if req.ONNX, err = readInputFile(opts.File, "model"); err != nil {
			return err
		}
		if opts.Calibration != "" {
			if req.Calibration, err = readInputFile(opts.Calibration, "calibration"); err != nil {
				return err
			}
		}
		m, err := c.Deploy(ctx, req)
		if err != nil {
			return err
		}
		if opts.Calibration == "" {
			fmt.Fprintf(opts.ErrOut, "fheserve: warning: deployed without --calibration: activations are approximated on the default interval [%g, %g] "+
				"and the output bound comes from synthetic inputs, not your data, so predictions may be unreliable; "+
				"deploy again with representative inputs: --calibration C.npy\n", -compiler.DefaultInterval, compiler.DefaultInterval)
		}
		writeModel(out, m)
		fmt.Fprintln(out, m.ID)
	case "list":
		ms, err := c.Models(ctx)
		if err != nil {
			return err
		}
		if opts.JSON {
			return printJSON(out, orEmpty(ms))
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tVERSION\tOWNER\tSTATUS\tPACKING\tINPUT\tOUTPUT\tACCESS")
		for _, m := range ms {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%v\t%v\t%s\n", m.ID, m.Name, m.Version, m.Owner, m.Status, m.Packing, m.InputShape, m.OutputShape, access(m))
		}
		return tw.Flush()
	case "show":
		m, err := c.ModelByRef(ctx, opts.ID)
		if err != nil {
			return err
		}
		p, err := c.Plan(ctx, m.ID)
		if err != nil {
			return err
		}
		if opts.JSON {
			return printJSON(out, map[string]any{"model": m, "plan": p})
		}
		writeModel(out, m)
		fmt.Fprintln(out)
		return writePlanReport(out, p)
	case "limits":
		m, err := c.API.SetLimits(ctx, opts.ID, &opts.Limits)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "limits of %s (%s v%d): %s\n", m.ID, m.Name, m.Version, limitsText(m.Limits))
	case "access":
		m, err := c.API.SetAccess(ctx, opts.ID, &fheserve.AccessRequest{Allow: opts.Allow})
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "access to %s (%s v%d): %s\n", m.ID, m.Name, m.Version, access(m))
	case "retire":
		m, err := c.API.Retire(ctx, opts.ID)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "retired %s (%s v%d)\n", m.ID, m.Name, m.Version)
	}
	return nil
}

func writeModel(w io.Writer, m *fheserve.Model) {
	fmt.Fprintf(w, "model %s: %s v%d by %s, %s\n", m.ID, m.Name, m.Version, m.Owner, m.Status)
	fmt.Fprintf(w, "  %s packing, N = 2^%d, %d rotation keys, input %v, output %v, precision %.1e\n",
		m.Packing, m.LogN, m.Rotations, m.InputShape, m.OutputShape, m.OutputError)
	fmt.Fprintf(w, "  access: %s; deployed %s; plan %s\n", access(m), m.CreatedAt.Local().Format(time.DateTime), m.PlanFingerprint)
	fmt.Fprintf(w, "  limits: %s\n", limitsText(m.Limits))
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
