package main

import (
	"github.com/fheserve/fheserve"
	"github.com/spf13/cobra"
)

// newRootCmd builds the command tree. Each leaf command is
// newXCmd(f, runF): an options struct filled from flags and from the
// Factory f (streams, environment, client state, SDK clients), and
// xRun(opts) doing the work; runF replaces xRun in flag-parsing tests and
// is nil otherwise. Adding a command is one line in the list below.
func newRootCmd(f *Factory) *cobra.Command {
	root := &cobra.Command{
		Use:   "fheserve",
		Short: "Private machine-learning inference with CKKS homomorphic encryption",
		Long: `fheserve compiles ONNX models to CKKS homomorphic-encryption plans and runs
predictions on encrypted inputs: the server computes on ciphertexts and
never sees the inputs, the intermediate values or the predictions.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fheserve.Errorf(fheserve.EINVALID, "unknown command %q (see 'fheserve --help')", args[0])
			}
			return cmd.Help()
		},
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetFlagErrorFunc(flagError)
	root.AddCommand(
		newCompileCmd(f, nil),
		newPredictCmd(f, nil),
		newDemoCmd(f, nil),
		newVersionCmd(f, nil),
		newBenchCmd(f, nil),
		newEvalCmd(f, nil),
		newServeCmd(f, nil),
		newAdminCmd(f),
		newRegisterCmd(f, nil),
		newLoginCmd(f, nil),
		newLogoutCmd(f, nil),
		newModelCmd(f),
		newKeysCmd(f),
		newUsageCmd(f, nil),
		newAuditCmd(f),
	)
	return root
}

// flagError turns a flag-parsing error into an invalid-input error that
// points at the command's help.
func flagError(cmd *cobra.Command, err error) error {
	return fheserve.Errorf(fheserve.EINVALID, "%v (see '%s --help')", err, cmd.CommandPath())
}

// noArgs refuses positional arguments: every input is a named flag.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return fheserve.Errorf(fheserve.EINVALID, "unexpected argument %q: %s takes flags only (see '%s --help')", args[0], cmd.CommandPath(), cmd.CommandPath())
	}
	return nil
}
