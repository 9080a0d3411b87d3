package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/app"
	"github.com/fheserve/fheserve/node"
	"github.com/spf13/cobra"
)

func newAdminCmd(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Administer accounts: create the first administrator, approve, reject, disable",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return cmd.Help()
		},
	}
	cmd.AddCommand(newAdminInitCmd(f, nil), newAdminPendingCmd(f, nil))
	for _, a := range []struct{ decision, short string }{
		{app.Approve, "Approve a pending (or re-enable a disabled) account"},
		{app.Reject, "Reject a pending registration"},
		{app.Disable, "Disable an account and revoke its tokens"},
	} {
		cmd.AddCommand(newAdminReviewCmd(f, a.decision, a.short, nil))
	}
	return cmd
}

type adminInitOptions struct {
	IO  *IOStreams
	Ctx context.Context

	DataDir  string
	Username string
	Stdin    bool // --password-stdin
}

func newAdminInitCmd(f *Factory, runF func(*adminInitOptions) error) *cobra.Command {
	opts := &adminInitOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "init --data-dir D --username U --password-stdin",
		Short: "Create an administrator in a server's data directory (offline)",
		Long: `Create an active administrator account directly in the server's data
directory, without a running server. The password is read from the first
line of standard input.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ctx = cmd.Context()
			switch {
			case opts.DataDir == "":
				return requiredFlag("--data-dir")
			case opts.Username == "":
				return requiredFlag("--username")
			case !opts.Stdin:
				return passwordStdinRequired()
			}
			if runF != nil {
				return runF(opts)
			}
			return adminInitRun(opts)
		},
	}
	dataDirFlag(cmd.Flags(), f.Getenv, &opts.DataDir)
	cmd.Flags().StringVar(&opts.Username, "username", "", "administrator's `name` (required)")
	cmd.Flags().BoolVar(&opts.Stdin, "password-stdin", false, "read the password from standard input (required)")
	return cmd
}

func adminInitRun(opts *adminInitOptions) error {
	ctx := opts.Ctx
	pw, err := readPassword(opts.IO.In)
	if err != nil {
		return err
	}
	a, err := node.OpenApp(ctx, opts.DataDir, app.Config{})
	if err != nil {
		return err
	}
	defer a.Close()
	acct, err := a.InitAdmin(ctx, opts.Username, pw)
	if err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.Out, "created administrator %q in %s\n", acct.Username, opts.DataDir)
	return nil
}

type adminPendingOptions struct {
	IO  *IOStreams
	Ctx context.Context

	JSON bool
	remote
}

func newAdminPendingCmd(f *Factory, runF func(*adminPendingOptions) error) *cobra.Command {
	opts := &adminPendingOptions{IO: f.IO, remote: newRemote(f)}
	cmd := &cobra.Command{
		Use:   "pending [--json]",
		Short: "List the accounts waiting for approval",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ctx = cmd.Context()
			if runF != nil {
				return runF(opts)
			}
			return adminPendingRun(opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print JSON")
	opts.register(cmd.Flags())
	return cmd
}

func adminPendingRun(opts *adminPendingOptions) error {
	c, _, err := opts.session()
	if err != nil {
		return err
	}
	accts, err := c.Pending(opts.Ctx)
	if err != nil {
		return err
	}
	out := opts.IO.Out
	if opts.JSON {
		return printJSON(out, orEmpty(accts))
	}
	if len(accts) == 0 {
		fmt.Fprintln(out, "no accounts are waiting for approval")
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USERNAME\tROLE\tREGISTERED")
	for _, a := range accts {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", a.Username, a.Role, a.CreatedAt.Local().Format(time.DateTime))
	}
	return tw.Flush()
}

// adminReviewOptions are those of approve, reject and disable: the
// administrator's decision on an account.
type adminReviewOptions struct {
	IO  *IOStreams
	Ctx context.Context

	Decision string // app.Approve, app.Reject or app.Disable
	Username string
	remote
}

func newAdminReviewCmd(f *Factory, decision, short string, runF func(*adminReviewOptions) error) *cobra.Command {
	opts := &adminReviewOptions{IO: f.IO, Decision: decision, remote: newRemote(f)}
	cmd := &cobra.Command{
		Use:   decision + " USERNAME",
		Short: short,
		Args:  exactlyOne("USERNAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Ctx, opts.Username = cmd.Context(), args[0]
			if runF != nil {
				return runF(opts)
			}
			return adminReviewRun(opts)
		},
	}
	opts.register(cmd.Flags())
	return cmd
}

func adminReviewRun(opts *adminReviewOptions) error {
	c, _, err := opts.session()
	if err != nil {
		return err
	}
	acct, err := c.API.Review(opts.Ctx, opts.Username, opts.Decision)
	if err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.Out, "%s (%s) is now %s\n", acct.Username, acct.Role, acct.Status)
	return nil
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

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
