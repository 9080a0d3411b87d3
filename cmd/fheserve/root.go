package main

import (
	"github.com/fheserve/fheserve"
	"github.com/spf13/cobra"
)

// newRootCmd builds the command tree. Each command lives in its own file
// as newXCmd(runF): an options struct filled from flags, and xRun(opts)
// doing the work; runF replaces xRun in flag-parsing tests and is nil
// otherwise. Adding a command is one line in the list below.
func newRootCmd() *cobra.Command {
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
		newCompileCmd(nil),
		newPredictCmd(nil),
		newDemoCmd(nil),
		newVersionCmd(nil),
		newBenchCmd(nil),
		newEvalCmd(nil),
		newServeCmd(nil),
		newAdminCmd(nil),
		newRegisterCmd(nil),
		newLoginCmd(nil),
		newLogoutCmd(nil),
		newModelCmd(nil),
		newKeysCmd(nil),
		newUsageCmd(nil),
		newAuditCmd(nil),
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
