package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/spf13/cobra"
)

type accountOptions struct {
	Out io.Writer
	In  io.Reader
	Ctx context.Context

	Action   string // register, login, logout
	Username string
	Role     string
	Stdin    bool
	clientFlags
}

func newRegisterCmd(runF func(*accountOptions) error) *cobra.Command {
	opts := &accountOptions{Action: "register"}
	cmd := &cobra.Command{
		Use:   "register --username U --role owner|user --password-stdin",
		Short: "Ask for an account on a server; an administrator approves it",
		Long: `Register an account as a model owner (deploys models) or a model user (runs
encrypted predictions). The account is pending until an administrator
approves it. The password is read from the first line of standard input.`,
		Args: noArgs,
		RunE: accountRunE(opts, runF),
	}
	f := cmd.Flags()
	f.StringVar(&opts.Username, "username", "", "account `name` (required)")
	f.StringVar(&opts.Role, "role", "", "owner or user (required)")
	f.BoolVar(&opts.Stdin, "password-stdin", false, "read the password from standard input (required)")
	opts.register(f)
	return cmd
}

func newLoginCmd(runF func(*accountOptions) error) *cobra.Command {
	opts := &accountOptions{Action: "login"}
	cmd := &cobra.Command{
		Use:   "login --username U --password-stdin",
		Short: "Log in and keep the session token under $FHESERVE_HOME",
		Args:  noArgs,
		RunE:  accountRunE(opts, runF),
	}
	f := cmd.Flags()
	f.StringVar(&opts.Username, "username", "", "account `name` (required)")
	f.BoolVar(&opts.Stdin, "password-stdin", false, "read the password from standard input (required)")
	opts.register(f)
	return cmd
}

func newLogoutCmd(runF func(*accountOptions) error) *cobra.Command {
	opts := &accountOptions{Action: "logout"}
	cmd := &cobra.Command{
		Use:   "logout",
		Short: "Revoke the session token and forget it",
		Args:  noArgs,
		RunE:  accountRunE(opts, runF),
	}
	opts.register(cmd.Flags())
	return cmd
}

func accountRunE(opts *accountOptions, runF func(*accountOptions) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		opts.Out, opts.In, opts.Ctx = cmd.OutOrStdout(), cmd.InOrStdin(), cmd.Context()
		if err := opts.validate(); err != nil {
			return err
		}
		if runF != nil {
			return runF(opts)
		}
		return accountRun(opts)
	}
}

func (o *accountOptions) validate() error {
	if o.Action == "logout" {
		return nil
	}
	switch {
	case o.Username == "":
		return requiredFlag("--username")
	case o.Action == "register" && o.Role != fheserve.RoleOwner && o.Role != fheserve.RoleUser:
		return fheserve.Errorf(fheserve.EINVALID, "--role must be owner or user")
	case !o.Stdin:
		return fheserve.Errorf(fheserve.EINVALID, "--password-stdin is required: pass the password on standard input")
	}
	return nil
}

func accountRun(opts *accountOptions) error {
	ctx := opts.Ctx
	switch opts.Action {
	case "register":
		pw, err := readPassword(opts.In)
		if err != nil {
			return err
		}
		c, _, err := opts.anonymous()
		if err != nil {
			return err
		}
		acct, err := c.Register(ctx, opts.Username, pw, opts.Role)
		if err != nil {
			return err
		}
		fmt.Fprintf(opts.Out, "registered %q as a model %s on %s; the account is %s until an administrator approves it\n",
			acct.Username, acct.Role, c.API.URL, acct.Status)
	case "login":
		pw, err := readPassword(opts.In)
		if err != nil {
			return err
		}
		c, _, err := opts.anonymous()
		if err != nil {
			return err
		}
		s, err := c.Login(ctx, opts.Username, pw)
		if err != nil {
			return err
		}
		cfg := &clientConfig{Server: c.API.URL, Username: s.Account.Username, Role: s.Account.Role, Token: s.Token, ExpiresAt: s.ExpiresAt}
		if err := saveConfig(cfg); err != nil {
			return err
		}
		fmt.Fprintf(opts.Out, "logged in to %s as %q (%s) until %s\n", c.API.URL, s.Account.Username, s.Account.Role, s.ExpiresAt.Local().Format(time.DateTime))
	case "logout":
		c, cfg, err := opts.session()
		if err != nil {
			return err
		}
		err = c.Logout(ctx)
		if code := fheserve.ErrorCode(err); err != nil && code != fheserve.EUNAUTHORIZED && code != fheserve.EFORBIDDEN {
			return err
		}
		user := cfg.Username
		cfg.Token, cfg.ExpiresAt, cfg.Username, cfg.Role = "", time.Time{}, "", ""
		if err := saveConfig(cfg); err != nil {
			return err
		}
		fmt.Fprintf(opts.Out, "logged %q out of %s\n", user, cfg.Server)
	}
	return nil
}
