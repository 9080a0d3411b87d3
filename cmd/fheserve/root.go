package main

import (
	"context"

	"github.com/fheserve/fheserve"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// newRootCmd builds the command tree. Each leaf command is
// newXCmd(f, runF): an options struct filled from flags and from the
// Factory f (streams, environment, client state, SDK clients), and
// xRun(opts) doing the work; runF replaces xRun in flag-parsing tests and
// is nil otherwise. leaf and group below give every command the same
// wiring. Adding a command is one line in the list below.
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
		newWorkerCmd(f, nil),
		newAdminCmd(f),
		newRegisterCmd(f, nil),
		newLoginCmd(f, nil),
		newLogoutCmd(f, nil),
		newModelCmd(f),
		newKeysCmd(f),
		newUsageCmd(f, nil),
		newAuditCmd(f),
		newFaceCmd(f),
		newGalleryCmd(f),
		newVerifyCmd(f, nil),
		newIdentifyCmd(f, nil),
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

// check is what a leaf command does with its command line before it runs:
// keep a positional argument in its options, refuse an invalid flag.
type check func(cmd *cobra.Command, args []string) error

// leaf makes cmd a command that does the work of xRun (not a group). It
// takes flags only, unless cmd.Args says otherwise. Its RunE keeps the
// command's context in *ctx (unless ctx is nil), runs the checks in order
// and stops at the first error, then calls runF, which flag-parsing tests
// give, or run.
func leaf[O any](cmd *cobra.Command, opts *O, ctx *context.Context, runF, run func(*O) error, checks ...check) *cobra.Command {
	if cmd.Args == nil {
		cmd.Args = noArgs
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if ctx != nil {
			*ctx = cmd.Context()
		}
		for _, c := range checks {
			if err := c(cmd, args); err != nil {
				return err
			}
		}
		if runF != nil {
			return runF(opts)
		}
		return run(opts)
	}
	return cmd
}

// group makes cmd a command that holds the subcommands subs: alone, it
// prints its help.
func group(cmd *cobra.Command, subs ...*cobra.Command) *cobra.Command {
	cmd.Args = noArgs
	cmd.RunE = func(cmd *cobra.Command, args []string) error { return cmd.Help() }
	cmd.AddCommand(subs...)
	return cmd
}

// arg keeps the (one) positional argument in *p.
func arg(p *string) check {
	return func(_ *cobra.Command, args []string) error {
		*p = args[0]
		return nil
	}
}

// validated runs a validate method as a check.
func validated(validate func() error) check {
	return func(*cobra.Command, []string) error { return validate() }
}

// required refuses to run while one of the string flags names is empty,
// naming the first that is.
func required(names ...string) check {
	return func(cmd *cobra.Command, _ []string) error {
		for _, n := range names {
			if cmd.Flags().Lookup(n).Value.String() == "" {
				return requiredFlag("--" + n)
			}
		}
		return nil
	}
}

// credentialFlags adds --username, the `name` of who, and
// --password-stdin; the password itself is never a flag, which ps and
// shell histories would show.
func credentialFlags(fs *pflag.FlagSet, username *string, who string, stdin *bool) {
	fs.StringVar(username, "username", "", who+" `name` (required)")
	fs.BoolVar(stdin, "password-stdin", false, "read the password from standard input (required)")
}

// passwordStdin refuses to run without --password-stdin.
func passwordStdin(stdin *bool) check {
	return func(*cobra.Command, []string) error {
		if !*stdin {
			return fheserve.Errorf(fheserve.EINVALID, "--password-stdin is required: pass the password on standard input")
		}
		return nil
	}
}
