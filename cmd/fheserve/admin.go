package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/app"
	"github.com/spf13/cobra"
)

type adminOptions struct {
	Out io.Writer
	In  io.Reader
	Ctx context.Context

	Action   string // init, pending, approve, reject, disable
	DataDir  string // init
	Username string // init, approve, reject, disable
	Stdin    bool   // init: --password-stdin
	JSON     bool   // pending
	clientFlags
}

func newAdminCmd(runF func(*adminOptions) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Administer accounts: create the first administrator, approve, reject, disable",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmd.Help()
		},
	}
	run := func(opts *adminOptions) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			opts.Out, opts.In, opts.Ctx = cmd.OutOrStdout(), cmd.InOrStdin(), cmd.Context()
			if len(args) == 1 {
				opts.Username = args[0]
			}
			if err := opts.validate(); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return adminRun(opts)
		}
	}

	initOpts := &adminOptions{Action: "init"}
	initCmd := &cobra.Command{
		Use:   "init --data-dir D --username U --password-stdin",
		Short: "Create an administrator in a server's data directory (offline)",
		Long: `Create an active administrator account directly in the server's data
directory, without a running server. The password is read from the first
line of standard input.`,
		Args: noArgs,
		RunE: run(initOpts),
	}
	dataDirFlag(initCmd.Flags(), &initOpts.DataDir)
	initCmd.Flags().StringVar(&initOpts.Username, "username", "", "administrator's `name` (required)")
	initCmd.Flags().BoolVar(&initOpts.Stdin, "password-stdin", false, "read the password from standard input (required)")

	pendingOpts := &adminOptions{Action: "pending"}
	pendingCmd := &cobra.Command{
		Use:   "pending [--json]",
		Short: "List the accounts waiting for approval",
		Args:  noArgs,
		RunE:  run(pendingOpts),
	}
	pendingCmd.Flags().BoolVar(&pendingOpts.JSON, "json", false, "print JSON")
	pendingOpts.register(pendingCmd.Flags())
	cmd.AddCommand(initCmd, pendingCmd)

	for _, a := range []struct{ action, short string }{
		{app.Approve, "Approve a pending (or re-enable a disabled) account"},
		{app.Reject, "Reject a pending registration"},
		{app.Disable, "Disable an account and revoke its tokens"},
	} {
		opts := &adminOptions{Action: a.action}
		c := &cobra.Command{
			Use:   a.action + " USERNAME",
			Short: a.short,
			Args:  exactlyOne("USERNAME"),
			RunE:  run(opts),
		}
		opts.register(c.Flags())
		cmd.AddCommand(c)
	}
	return cmd
}

// exactlyOne requires one positional argument, named what in messages.
func exactlyOne(what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != 1 {
			return fheserve.Errorf(fheserve.EINVALID, "%s takes one %s (see '%s --help')", cmd.CommandPath(), what, cmd.CommandPath())
		}
		return nil
	}
}

func (o *adminOptions) validate() error {
	if o.Action == "init" {
		switch {
		case o.DataDir == "":
			return requiredFlag("--data-dir")
		case o.Username == "":
			return requiredFlag("--username")
		case !o.Stdin:
			return fheserve.Errorf(fheserve.EINVALID, "--password-stdin is required: pass the password on standard input")
		}
	}
	return nil
}

func adminRun(opts *adminOptions) error {
	ctx := opts.Ctx
	if opts.Action == "init" {
		pw, err := readPassword(opts.In)
		if err != nil {
			return err
		}
		a, err := app.Open(ctx, opts.DataDir, app.Config{})
		if err != nil {
			return err
		}
		defer a.Close()
		acct, err := a.InitAdmin(ctx, opts.Username, pw)
		if err != nil {
			return err
		}
		fmt.Fprintf(opts.Out, "created administrator %q in %s\n", acct.Username, opts.DataDir)
		return nil
	}
	c, _, err := opts.session()
	if err != nil {
		return err
	}
	if opts.Action == "pending" {
		accts, err := c.Pending(ctx)
		if err != nil {
			return err
		}
		if opts.JSON {
			return printJSON(opts.Out, orEmpty(accts))
		}
		if len(accts) == 0 {
			fmt.Fprintln(opts.Out, "no accounts are waiting for approval")
			return nil
		}
		tw := tabwriter.NewWriter(opts.Out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "USERNAME\tROLE\tREGISTERED")
		for _, a := range accts {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", a.Username, a.Role, a.CreatedAt.Local().Format(time.DateTime))
		}
		return tw.Flush()
	}
	acct, err := c.API.Review(ctx, opts.Username, opts.Action)
	if err != nil {
		return err
	}
	fmt.Fprintf(opts.Out, "%s (%s) is now %s\n", acct.Username, acct.Role, acct.Status)
	return nil
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
