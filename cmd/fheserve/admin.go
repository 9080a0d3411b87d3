package main

import (
	"context"
	"fmt"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/app"
	"github.com/fheserve/fheserve/node"
	"github.com/fheserve/fheserve/sdk"
	"github.com/spf13/cobra"
)

func newAdminCmd(f *Factory) *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "admin",
		Short: "Administer accounts: create the first administrator, approve, reject, disable",
	}, newAdminInitCmd(f, nil), newAdminPendingCmd(f, nil))
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
	Store    string // --store: "" (SQLite in DataDir) or a postgres:// URL
	Username string
	Stdin    bool // --password-stdin
}

func newAdminInitCmd(f *Factory, runF func(*adminInitOptions) error) *cobra.Command {
	opts := &adminInitOptions{IO: f.IO}
	cmd := leaf(&cobra.Command{
		Use:   "init --data-dir D --username U --password-stdin",
		Short: "Create an administrator in a server's data directory (offline)",
		Long: `Create an active administrator account directly in the server's data
directory, without a running server. The password is read from the first
line of standard input.`,
	}, opts, &opts.Ctx, runF, adminInitRun, required("data-dir", "username"), passwordStdin(&opts.Stdin))
	dataDirFlag(cmd.Flags(), f.Getenv, &opts.DataDir)
	storeFlag(cmd.Flags(), f.Getenv, &opts.Store)
	credentialFlags(cmd.Flags(), &opts.Username, "administrator's", &opts.Stdin)
	return cmd
}

func adminInitRun(opts *adminInitOptions) error {
	ctx := opts.Ctx
	pw, err := readPassword(opts.IO.In)
	if err != nil {
		return err
	}
	a, err := node.OpenAppOn(ctx, opts.DataDir, node.Engines{Store: opts.Store}, app.Config{})
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
	cmd := leaf(&cobra.Command{
		Use:   "pending [--json]",
		Short: "List the accounts waiting for approval",
	}, opts, &opts.Ctx, runF, withSession(&opts.remote, adminPendingRun))
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print JSON")
	opts.register(cmd.Flags())
	return cmd
}

func adminPendingRun(opts *adminPendingOptions, c *sdk.Client) error {
	accts, err := c.Pending(opts.Ctx)
	if err != nil {
		return err
	}
	if len(accts) == 0 && !opts.JSON {
		fmt.Fprintln(opts.IO.Out, "no accounts are waiting for approval")
		return nil
	}
	return printList(opts.IO.Out, opts.JSON, accts, "USERNAME\tROLE\tREGISTERED", func(a *fheserve.Account) string {
		return fmt.Sprintf("%s\t%s\t%s", a.Username, a.Role, a.CreatedAt.Local().Format(time.DateTime))
	})
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
	cmd := leaf(&cobra.Command{
		Use:   decision + " USERNAME",
		Short: short,
		Args:  exactlyOne("USERNAME"),
	}, opts, &opts.Ctx, runF, withSession(&opts.remote, adminReviewRun), arg(&opts.Username))
	opts.register(cmd.Flags())
	return cmd
}

func adminReviewRun(opts *adminReviewOptions, c *sdk.Client) error {
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
