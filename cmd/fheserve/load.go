package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/app"
	"github.com/fheserve/fheserve/compiler"
	"github.com/fheserve/fheserve/nn"
	"github.com/fheserve/fheserve/nn/onnx"
	"github.com/fheserve/fheserve/npy"
	"github.com/fheserve/fheserve/plan"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// loadModel imports the ONNX model at path. The model is named after its
// file, or its folder when the file is model.onnx (examples/NAME/model.onnx):
// exporters name graphs generically ("torch_jit", "main_graph").
func loadModel(path string) (*nn.Graph, error) {
	g, err := onnx.ImportFile(path, onnx.Options{})
	if err != nil {
		return nil, err
	}
	g.Name = modelName(path)
	return g, nil
}

func modelName(path string) string {
	name := strings.TrimSuffix(filepath.Base(path), ".onnx")
	if dir := filepath.Base(filepath.Dir(path)); name == "model" && dir != "." && dir != string(filepath.Separator) {
		return dir
	}
	return name
}

// readSamples reads the .npy file at path as samples for g: a leading batch
// dimension, then either g's input shape or its flat size. what names the
// file in messages ("input", "calibration").
func readSamples(path, what string, g *nn.Graph) (x []float64, n int, err error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, 0, fheserve.Errorf(fheserve.ENOTFOUND, "%s file %q not found", what, path)
	}
	a, err := npy.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	n, err = batchOf(a.Shape, g.Input)
	if err != nil {
		return nil, 0, fheserve.Errorf(fheserve.EINVALID, "%s file %q: %s", what, path, fheserve.ErrorMessage(err))
	}
	return a.Data, n, nil
}

// batchOf returns the number of samples in an array of the given shape:
// [batch, input...] or [batch, size].
func batchOf(shape []int, input nn.Shape) (int, error) {
	size := input.Size()
	switch {
	case len(shape) == 0:
		return 0, fheserve.Errorf(fheserve.EINVALID, "a scalar is not a batch of samples: want shape [batch %s]", dims(input))
	case shape[0] < 1:
		return 0, fheserve.Errorf(fheserve.EINVALID, "shape %v holds no samples", shape)
	case nn.Shape(shape[1:]).Equal(input), len(shape) == 2 && shape[1] == size:
		return shape[0], nil
	}
	want := fmt.Sprintf("[batch %s]", dims(input))
	if len(input) > 1 {
		want += fmt.Sprintf(" or [batch %d]", size)
	}
	if nn.Shape(shape).Equal(input) {
		return 0, fheserve.Errorf(fheserve.EINVALID, "shape %v has no batch dimension: want %s (numpy.expand_dims(x, 0) for one sample)", shape, want)
	}
	return 0, fheserve.Errorf(fheserve.EINVALID, "shape %v does not match the model: want %s, the batch dimension first", shape, want)
}

// dims formats a shape without brackets: "1 28 28".
func dims(s []int) string {
	return strings.Trim(fmt.Sprint(s), "[]")
}

// engineFlags are the compilation flags that compile, predict --local and
// eval share; model deploy sends the same settings to the server.
type engineFlags struct {
	Calibration string // .npy file of representative inputs
	fheserve.CompileSettings
}

// marginUsage is the help of the --margin flag.
const marginUsage = "widen each calibrated activation interval by this `fraction` of its width on each side (default 0.1)"

// fitUsage is the help of the --fit flag.
const fitUsage = "how activations are approximated: interpolation (uniform over the interval; the default without --calibration) or least-squares (fitted to the calibration inputs, most accurate where they lie; the default with --calibration)"

// degreesUsage is the help of the --degrees flag.
const degreesUsage = "per-activation degrees, `node=D,...` (node names as in the compile report), overriding --degree"

// registerCompileSettings adds --calibration and the flags of the
// compilation settings (fheserve.CompileSettings) to f: compile, predict
// --local, eval and model deploy take the same.
func registerCompileSettings(f *pflag.FlagSet, calibration *string, s *fheserve.CompileSettings) {
	f.StringVar(calibration, "calibration", "", "representative inputs as an .npy `file`, batch dimension first")
	f.IntVar(&s.Degree, "degree", 0, fmt.Sprintf("degree of activation approximations (default %d)", compiler.DefaultDegree))
	f.StringToIntVar(&s.Degrees, "degrees", nil, degreesUsage)
	f.StringVar(&s.Fit, "fit", "", fitUsage)
	f.Float64Var(&s.Margin, "margin", 0, marginUsage)
	f.IntVar(&s.LogN, "log-n", 0, "force the ring degree to 2^`n`, 12 to 16 (default: the smallest that fits)")
	f.Float64Var(&s.PrivacyBits, "privacy-bits", 0, fmt.Sprintf("circuit privacy against an honest-but-curious user: flood results for statistical security `lambda`, 1 to %d, or -1 for no flooding (default %d)",
		fheserve.MaxPrivacyBits, compiler.DefaultPrivacyBits))
	f.IntVar(&s.QueryBudget, "query-budget", 0, fmt.Sprintf("the number of `samples` the privacy guarantee holds over (default %d); set the model's quotas to match", compiler.DefaultQueryBudget))
	f.Float64Var(&s.PrecisionBits, "precision-bits", 0, fmt.Sprintf("ask for an output error of at most the output bound times 2^-`bits` (default %d); precision and privacy both cost scale bits", compiler.DefaultPrecisionBits))
	f.Float64Var(&s.Precision, "precision", 0, "ask for an output error of at most `E` in the outputs' units, against the exact model on inputs like the calibration data, activation approximations included (instead of --precision-bits)")
}

// registerKeyChoice adds --keys (fheserve.CompileSettings.Keys) and
// --no-tiles to compile and model deploy; predict's --keys names a key set.
func registerKeyChoice(f *pflag.FlagSet, s *fheserve.CompileSettings) {
	f.StringVar(&s.Keys, "keys", "", "rotation keys: small (the fewest key bytes to upload, the default), fast (the fewest rotations) or derived (fast's rotations from master keys that upload like small ones; the server derives the rest)")
	f.BoolVar(&s.NoTiles, "no-tiles", false, "latency packing: one sample per call (default: a sample in each copy of the input, when the plan has room for several)")
}

// settingsGiven reports whether any compilation setting is set.
func settingsGiven(s *fheserve.CompileSettings) bool {
	return s.Degree != 0 || len(s.Degrees) > 0 || s.Fit != "" || s.Margin != 0 || s.LogN != 0 ||
		s.PrivacyBits != 0 || s.QueryBudget != 0 || s.PrecisionBits != 0 || s.Precision != 0 || s.Keys != "" || s.NoTiles
}

// compilerOptions reads the calibration file and returns the options for
// compiler.Compile (or local.New), with the defaults a deployment gets
// (app.CompilerOptions), so that a plan compiled here is the server's.
func (f *engineFlags) compilerOptions(g *nn.Graph, packing string) (compiler.Options, error) {
	var calib []float64
	if f.Calibration != "" {
		x, _, err := readSamples(f.Calibration, "calibration", g)
		if err != nil {
			return compiler.Options{}, err
		}
		calib = x
	}
	return app.CompilerOptions(packing, &f.CompileSettings, calib), nil
}

// validate checks the settings' ranges, naming the flags.
// validSettings checks --packing and the compilation settings given as
// flags.
func validSettings(packing string, s *fheserve.CompileSettings) error {
	if packing != plan.Latency && packing != plan.Batch {
		return fheserve.Errorf(fheserve.EINVALID, "--packing must be %q or %q, not %q", plan.Latency, plan.Batch, packing)
	}
	if err := s.Validate(); err != nil {
		return fheserve.Errorf(fheserve.EINVALID, "%s", flagNames.Replace(fheserve.ErrorMessage(err)))
	}
	return nil
}

// flagNames turns the settings' JSON names in messages into flag names.
var flagNames = strings.NewReplacer("degrees:", "--degrees:", "degree must", "--degree must", "fit must", "--fit must",
	"margin must", "--margin must", "log_n must", "--log-n must", "privacy_bits must", "--privacy-bits must",
	"query_budget must", "--query-budget must", "precision_bits must", "--precision-bits must",
	"precision must", "--precision must", "precision and precision_bits cannot", "--precision and --precision-bits cannot",
	"keys must", "--keys must")

// registerPacking registers --packing, which compile and model deploy
// name the same way, and --mode, its former name in predict and eval,
// kept as a hidden alias of the same value (packingFlags warns).
func registerPacking(f *pflag.FlagSet, v *string, def string) {
	usage := "packing: latency (one sample per call, or one per tile) or batch (many samples per call)"
	f.StringVar(v, "packing", def, usage)
	f.StringVar(v, "mode", def, usage)
	f.MarkHidden("mode")
}

// packingFlags refuses --packing and --mode together (one would silently
// win) and warns on standard error that --mode is deprecated. pflag's
// own deprecation notice goes to standard output, into --json.
func packingFlags(errOut io.Writer) check {
	return func(cmd *cobra.Command, _ []string) error {
		f := cmd.Flags()
		if !f.Changed("mode") {
			return nil
		}
		if f.Changed("packing") {
			return fheserve.Errorf(fheserve.EINVALID, "--mode is the former name of --packing: give --packing only")
		}
		fmt.Fprintln(errOut, "fheserve: warning: --mode is deprecated: use --packing, as compile and model deploy do")
		return nil
	}
}

// requiredFlag is the error for a missing required flag.
func requiredFlag(name string) error {
	return fheserve.Errorf(fheserve.EINVALID, "%s is required", name)
}
