package main

import (
	"fmt"
	"strings"

	"github.com/fheserve/fheserve"
	"github.com/spf13/cobra"
)

// newModelLimitsCmd is "model limits ID": the owner's rate limits and
// daily quotas on a model, against extraction by many queries.
func newModelLimitsCmd(runE func(*modelOptions) func(*cobra.Command, []string) error) *cobra.Command {
	opts := &modelOptions{Action: "limits"}
	cmd := &cobra.Command{
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
		RunE: runE(opts),
	}
	f := cmd.Flags()
	l := &opts.Limits
	f.Float64Var(&l.RatePerMinute, "rate", 0, "each user's samples per `minute`")
	f.IntVar(&l.Burst, "burst", 0, "each user's burst (`samples`)")
	f.IntVar(&l.Daily, "daily", 0, "each user's `samples` per UTC day")
	f.Float64Var(&l.ModelRatePerMinute, "model-rate", 0, "all users' samples per `minute`")
	f.IntVar(&l.ModelBurst, "model-burst", 0, "all users' burst (`samples`)")
	f.IntVar(&l.ModelDaily, "model-daily", 0, "all users' `samples` per UTC day")
	opts.register(f)
	return cmd
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
