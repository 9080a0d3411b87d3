package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/sdk"
	"github.com/spf13/cobra"
)

type modelLimitsOptions struct {
	IO  *IOStreams
	Ctx context.Context

	ID     string
	Limits fheserve.ModelLimits
	remote
}

// newModelLimitsCmd is "model limits ID": the owner's rate limits and
// daily quotas on a model, against extraction by many queries.
func newModelLimitsCmd(f *Factory, runF func(*modelLimitsOptions) error) *cobra.Command {
	opts := &modelLimitsOptions{IO: f.IO, remote: newRemote(f)}
	cmd := leaf(&cobra.Command{
		Use:   "limits ID [--rate R] [--burst B] [--daily N] [--model-rate R] [--model-burst B] [--model-daily N]",
		Short: "Set a model's rate limits and daily quotas (replacing the previous ones)",
		Long: `Set the limits on users' queries of a model you own, as a defence against
extracting the model through many queries. Every limit counts samples: a
batch job of n samples costs n, as n jobs of one sample do. --rate, --burst
and --daily apply to each user; --model-rate, --model-burst and
--model-daily to all users together. Rates are samples per minute, refilled
continuously, with bursts of --burst (default: the rate rounded up), which
is also the most samples one job may hold; daily quotas count the samples
of the jobs submitted since 00:00 UTC. A flag left out (or 0) means no
limit; with no flags, every limit is lifted. A user over a limit gets a 429
saying when to try again. Set them to match the query budget the plan's
privacy level assumes ('fheserve model show').`,
		Args: exactlyOne("model ID"),
	}, opts, &opts.Ctx, runF, withSession(&opts.remote, modelLimitsRun), arg(&opts.ID))
	fs := cmd.Flags()
	l := &opts.Limits
	fs.Float64Var(&l.RatePerMinute, "rate", 0, "each user's samples per `minute`")
	fs.IntVar(&l.Burst, "burst", 0, "each user's burst (`samples`)")
	fs.IntVar(&l.Daily, "daily", 0, "each user's `samples` per UTC day")
	fs.Float64Var(&l.ModelRatePerMinute, "model-rate", 0, "all users' samples per `minute`")
	fs.IntVar(&l.ModelBurst, "model-burst", 0, "all users' burst (`samples`)")
	fs.IntVar(&l.ModelDaily, "model-daily", 0, "all users' `samples` per UTC day")
	opts.register(fs)
	return cmd
}

func modelLimitsRun(opts *modelLimitsOptions, c *sdk.Client) error {
	m, err := c.API.SetLimits(opts.Ctx, opts.ID, &opts.Limits)
	if err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.Out, "limits of %s (%s v%d): %s\n", m.ID, m.Name, m.Version, limitsText(m.Limits))
	return nil
}

// limitsText describes limits in a line.
func limitsText(l fheserve.ModelLimits) string {
	var parts []string
	rate := func(who string, perMinute float64, burst int) {
		if perMinute > 0 {
			parts = append(parts, fmt.Sprintf("%s %g samples/minute (bursts of %d)", who, perMinute, fheserve.BurstOr(burst, perMinute)))
		}
	}
	daily := func(who string, n int) {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d samples/day", who, n))
		}
	}
	rate("each user", l.RatePerMinute, l.Burst)
	daily("each user", l.Daily)
	rate("all users", l.ModelRatePerMinute, l.ModelBurst)
	daily("all users", l.ModelDaily)
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
