package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/fheserve/fheserve"

	"github.com/fheserve/fheserve/sdk"
	"github.com/spf13/cobra"
)

type usageOptions struct {
	IO  *IOStreams
	Ctx context.Context

	Model string
	JSON  bool
	remote
}

func newUsageCmd(f *Factory, runF func(*usageOptions) error) *cobra.Command {
	opts := &usageOptions{IO: f.IO, remote: newRemote(f)}
	cmd := leaf(&cobra.Command{
		Use:   "usage --model ID [--json]",
		Short: "Show a model's usage: requests and samples per user, hour and day, latency, failures, keys, quota",
		Long: `Show how a model is used: requests (jobs) and the samples they held per user,
per user and hour, and per user and day; latency percentiles (submission to
result, queue wait, evaluation); failures by cause; the key sets in use; and
the quota the owner set, which counts samples. Owners see their own models,
users their own jobs on the models they may use; inputs and results never
appear.`,
	}, opts, &opts.Ctx, runF, withSession(&opts.remote, usageRun), required("model"))
	cmd.Flags().StringVar(&opts.Model, "model", "", "model `ID` (required)")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print JSON")
	opts.register(cmd.Flags())
	return cmd
}

func usageRun(opts *usageOptions, c *sdk.Client) error {
	u, err := c.Usage(opts.Ctx, opts.Model)
	if err != nil {
		return err
	}
	out := opts.IO.Out
	if opts.JSON {
		return printJSON(out, u)
	}
	fmt.Fprintf(out, "model %s: %d requests, %d failed, %d samples\n", u.ModelID, u.Requests, u.Failures, u.Samples)
	for _, l := range []struct {
		what string
		l    fheserve.Latency
	}{{"submission to result", u.Latency}, {"queue wait", u.QueueWait}, {"evaluation", u.Evaluation}} {
		fmt.Fprintf(out, "latency (%s): p50 %.0f ms, p90 %.0f ms, p99 %.0f ms, max %.0f ms\n", l.what, l.l.P50, l.l.P90, l.l.P99, l.l.Max)
	}
	if len(u.FailuresByCause) > 0 {
		causes := slices.Sorted(maps.Keys(u.FailuresByCause))
		fmt.Fprint(out, "failures by cause:")
		for _, c := range causes {
			fmt.Fprintf(out, " %s %d", c, u.FailuresByCause[c])
		}
		fmt.Fprintln(out)
	}
	fmt.Fprintf(out, "quota: %s", u.Quota.Summary)
	if u.Quota.Set {
		fmt.Fprintf(out, "; %d samples in %d jobs today", u.Quota.TodaySamples, u.Quota.Today)
	}
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nUSER\tREQUESTS\tFAILURES\tSAMPLES")
	for _, line := range u.ByUser {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\n", line.Key, line.Requests, line.Failures, line.Samples)
	}
	fmt.Fprintln(tw, "\nDAY (UTC)\tREQUESTS\tFAILURES\tSAMPLES")
	for _, line := range u.ByDay {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\n", line.Key, line.Requests, line.Failures, line.Samples)
	}
	for _, per := range []struct {
		title string
		lines []fheserve.UsageLine
	}{{"HOUR (UTC)", u.ByUserHour}, {"DAY (UTC)", u.ByUserDay}} {
		fmt.Fprintf(tw, "\nUSER\t%s\tREQUESTS\tFAILURES\tSAMPLES\n", per.title)
		for _, line := range per.lines {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\n", line.User, line.Key, line.Requests, line.Failures, line.Samples)
		}
	}
	fmt.Fprintln(tw, "\nKEY SET IN USE\tUSER\tCREATED\tJOBS\tSAMPLES")
	for _, ks := range u.KeySets {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\n", ks.ID, ks.User, ks.CreatedAt.Format(time.DateTime), ks.Jobs, ks.Samples)
	}
	return tw.Flush()
}
