package main

import (
	"context"
	"fmt"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/sdk"
	"github.com/spf13/cobra"
)

type registerOptions struct {
	IO  *IOStreams
	Ctx context.Context

	Username string
	Role     string
	Stdin    bool
	remote
}

func newRegisterCmd(f *Factory, runF func(*registerOptions) error) *cobra.Command {
	opts := &registerOptions{IO: f.IO, remote: newRemote(f)}
	cmd := leaf(&cobra.Command{
		Use:   "register --username U --role owner|user --password-stdin",
		Short: "Ask for an account on a server; an administrator approves it",
		Long: `Register an account as a model owner (deploys models) or a model user (runs
encrypted predictions). The account is pending until an administrator
approves it. The password is read from the first line of standard input.`,
	}, opts, &opts.Ctx, runF, withPassword(&opts.remote, opts.IO, registerRun), required("username"), func(*cobra.Command, []string) error {
		if opts.Role != fheserve.RoleOwner && opts.Role != fheserve.RoleUser {
			return fheserve.Errorf(fheserve.EINVALID, "--role must be owner or user")
		}
		return nil
	}, passwordStdin(&opts.Stdin))
	fs := cmd.Flags()
	credentialFlags(fs, &opts.Username, "account", &opts.Stdin)
	fs.StringVar(&opts.Role, "role", "", "owner or user (required)")
	opts.register(fs)
	return cmd
}

func registerRun(opts *registerOptions, c *sdk.Client, pw string) error {
	acct, err := c.Register(opts.Ctx, opts.Username, pw, opts.Role)
	if err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.Out, "registered %q as a model %s on %s; the account is %s until an administrator approves it\n",
		acct.Username, acct.Role, c.API.URL, acct.Status)
	return nil
}

type loginOptions struct {
	IO  *IOStreams
	Ctx context.Context

	Username string
	Stdin    bool
	remote
}

func newLoginCmd(f *Factory, runF func(*loginOptions) error) *cobra.Command {
	opts := &loginOptions{IO: f.IO, remote: newRemote(f)}
	cmd := leaf(&cobra.Command{
		Use:   "login --username U --password-stdin",
		Short: "Log in and keep the session token under $FHESERVE_HOME",
	}, opts, &opts.Ctx, runF, withPassword(&opts.remote, opts.IO, loginRun), required("username"), passwordStdin(&opts.Stdin))
	credentialFlags(cmd.Flags(), &opts.Username, "account", &opts.Stdin)
	opts.register(cmd.Flags())
	return cmd
}

func loginRun(opts *loginOptions, c *sdk.Client, pw string) error {
	s, err := c.Login(opts.Ctx, opts.Username, pw)
	if err != nil {
		return err
	}
	cfg := &clientConfig{Server: c.API.URL, Username: s.Account.Username, Role: s.Account.Role, Token: s.Token, ExpiresAt: s.ExpiresAt}
	if err := opts.saveConfig(cfg); err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.Out, "logged in to %s as %q (%s) until %s\n", c.API.URL, s.Account.Username, s.Account.Role, s.ExpiresAt.Local().Format(time.DateTime))
	return nil
}

type logoutOptions struct {
	IO  *IOStreams
	Ctx context.Context
	remote
}

func newLogoutCmd(f *Factory, runF func(*logoutOptions) error) *cobra.Command {
	opts := &logoutOptions{IO: f.IO, remote: newRemote(f)}
	cmd := leaf(&cobra.Command{
		Use:   "logout",
		Short: "Revoke the session token and forget it",
	}, opts, &opts.Ctx, runF, logoutRun)
	opts.register(cmd.Flags())
	return cmd
}

func logoutRun(opts *logoutOptions) error {
	c, cfg, err := opts.session()
	if err != nil {
		return err
	}
	err = c.Logout(opts.Ctx)
	if code := fheserve.ErrorCode(err); err != nil && code != fheserve.EUNAUTHORIZED && code != fheserve.EFORBIDDEN {
		return err
	}
	user := cfg.Username
	cfg.Token, cfg.ExpiresAt, cfg.Username, cfg.Role = "", time.Time{}, "", ""
	if err := opts.saveConfig(cfg); err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.Out, "logged %q out of %s\n", user, cfg.Server)
	return nil
}
