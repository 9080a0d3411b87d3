package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/plan"
	"github.com/spf13/cobra"
)

type compileOptions struct {
	IO *IOStreams

	Model   string
	Packing string
	JSON    bool
	engineFlags
}

func newCompileCmd(f *Factory, runF func(*compileOptions) error) *cobra.Command {
	opts := &compileOptions{IO: f.IO}
	cmd := leaf(&cobra.Command{
		Use:   "compile --model M.onnx [flags]",
		Short: "Compile a model to an encryption plan and print the plan",
		Long: `Import an ONNX model, compile it to a CKKS plan and print the plan: the ring
and moduli chosen for 128-bit security, the packing and layouts, the rotation
keys a user must generate, estimated sizes, operation counts, the steps, how
each activation is approximated, and the precision of the results.

Without --calibration, activations are approximated on the default interval
[-8, 8] and the plan carries a warning; pass representative inputs (an .npy
file with a leading batch dimension) to fit the intervals to real data (and,
by default, the polynomials by least squares to the data).

Results are flooded with noise for circuit privacy against an
honest-but-curious user: --privacy-bits sets the statistical security
parameter and --query-budget the number of samples it holds over;
--precision-bits sets the output precision asked for relative to the output
bound, or --precision E as an absolute error (against the exact model on
inputs like the calibration data, the activation approximations included).
The compiler picks a ring, scale and, for --precision, activation degrees that
meet both or says what each would need. 'fheserve model deploy' takes the
same flags.`,
		Example: `  fheserve compile --model model.onnx
  fheserve compile --model model.onnx --calibration train_rows.npy --packing batch
  fheserve compile --model model.onnx --privacy-bits 40 --query-budget 100000
  fheserve compile --model model.onnx --json > plan.json`,
	}, opts, nil, runF, compileRun, required("model"), validated(opts.validate))
	fs := cmd.Flags()
	fs.StringVar(&opts.Model, "model", "", "ONNX model `file` (required)")
	fs.StringVar(&opts.Packing, "packing", plan.Latency, "packing: latency (one sample per call, or one per tile) or batch (many samples per call)")
	registerCompileSettings(fs, &opts.Calibration, &opts.CompileSettings)
	registerKeyChoice(fs, &opts.CompileSettings)
	fs.BoolVar(&opts.JSON, "json", false, "print the plan as JSON")
	return cmd
}

func (o *compileOptions) validate() error {
	return validSettings(o.Packing, &o.CompileSettings)
}

func compileRun(opts *compileOptions) error {
	g, err := loadModel(opts.Model)
	if err != nil {
		return err
	}
	copts, err := opts.compilerOptions(g, opts.Packing)
	if err != nil {
		return err
	}
	res, err := compiler.Compile(g, copts)
	if err != nil {
		return err
	}
	if !opts.JSON {
		return writePlanReport(opts.IO.Out, res.Plan)
	}
	writeWarnings(opts.IO.ErrOut, res.Plan)
	enc := json.NewEncoder(opts.IO.Out)
	enc.SetIndent("", "  ")
	return enc.Encode(res.Plan)
}

// writeWarnings prints a plan's warnings to w, one per line.
func writeWarnings(w io.Writer, p *plan.Plan) {
	for _, s := range p.Warnings {
		fmt.Fprintf(w, "fheserve: warning: %s\n", s)
	}
}
