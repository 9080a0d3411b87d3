package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

type usageOptions struct {
	Out io.Writer
	Ctx context.Context

	Model string
	JSON  bool
	clientFlags
}

func newUsageCmd(runF func(*usageOptions) error) *cobra.Command {
	opts := &usageOptions{}
	cmd := &cobra.Command{
		Use:   "usage --model ID [--json]",
		Short: "Show a model's usage: requests per user and per day, latency, failures",
		Long: `Show how one of your models is used: requests per user and per day, latency
percentiles from submission to result, and failures. Owners see their own
models only; the values computed never appear.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Out, opts.Ctx = cmd.OutOrStdout(), cmd.Context()
			if opts.Model == "" {
				return requiredFlag("--model")
			}
			if runF != nil {
				return runF(opts)
			}
			return usageRun(opts)
		},
	}
	cmd.Flags().StringVar(&opts.Model, "model", "", "model `ID` (required)")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print JSON")
	opts.register(cmd.Flags())
	return cmd
}

func usageRun(opts *usageOptions) error {
	c, _, err := opts.session()
	if err != nil {
		return err
	}
	u, err := c.Usage(opts.Ctx, opts.Model)
	if err != nil {
		return err
	}
	if opts.JSON {
		return printJSON(opts.Out, u)
	}
	out := opts.Out
	fmt.Fprintf(out, "model %s: %d requests, %d failed\n", u.ModelID, u.Requests, u.Failures)
	l := u.Latency
	fmt.Fprintf(out, "latency (submission to result): p50 %.0f ms, p90 %.0f ms, p99 %.0f ms, max %.0f ms\n", l.P50, l.P90, l.P99, l.Max)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nUSER\tREQUESTS\tFAILURES")
	for _, line := range u.ByUser {
		fmt.Fprintf(tw, "%s\t%d\t%d\n", line.Key, line.Requests, line.Failures)
	}
	fmt.Fprintln(tw, "\nDAY (UTC)\tREQUESTS\tFAILURES")
	for _, line := range u.ByDay {
		fmt.Fprintf(tw, "%s\t%d\t%d\n", line.Key, line.Requests, line.Failures)
	}
	return tw.Flush()
}
