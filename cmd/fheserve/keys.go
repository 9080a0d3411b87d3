package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/sdk"
	"github.com/spf13/cobra"
)

type keysOptions struct {
	Out    io.Writer
	ErrOut io.Writer
	Ctx    context.Context

	Action  string // create, list, revoke
	Model   string
	ID      string
	Replace string
	JSON    bool
	clientFlags
}

func newKeysCmd(runF func(*keysOptions) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Create, list and revoke your keys for models",
		Args:  noArgs,
		RunE:  func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	runE := func(opts *keysOptions) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			opts.Out, opts.ErrOut, opts.Ctx = cmd.OutOrStdout(), cmd.ErrOrStderr(), cmd.Context()
			if len(args) == 1 {
				opts.ID = args[0]
			}
			if opts.Action == "create" && opts.Model == "" {
				return requiredFlag("--model")
			}
			if runF != nil {
				return runF(opts)
			}
			return keysRun(opts)
		}
	}
	create := &keysOptions{Action: "create"}
	createCmd := &cobra.Command{
		Use:   "create --model ID",
		Short: "Generate keys for a model here and upload the public part; prints the key id last",
		Long: `Generate a secret key and the evaluation keys a model's plan needs on this
machine. The secret key is written to $FHESERVE_HOME/keys/ (mode 0600) and
never leaves it; only the public and evaluation keys are uploaded. Prints the
key set's id and fingerprint, the id alone on the last line.`,
		Args: noArgs,
		RunE: runE(create),
	}
	createCmd.Flags().StringVar(&create.Model, "model", "", "model `ID` (required)")
	createCmd.Flags().StringVar(&create.Replace, "replace", "", "key set `ID` the new keys replace (revoked once they are stored)")
	create.register(createCmd.Flags())

	list := &keysOptions{Action: "list"}
	listCmd := &cobra.Command{Use: "list [--json]", Short: "List your key sets", Args: noArgs, RunE: runE(list)}
	listCmd.Flags().StringVar(&list.Model, "model", "", "only key sets for model `ID`")
	listCmd.Flags().BoolVar(&list.JSON, "json", false, "print JSON")
	list.register(listCmd.Flags())

	revoke := &keysOptions{Action: "revoke"}
	revokeCmd := &cobra.Command{Use: "revoke KEYID", Short: "Revoke a key set and delete its local secret key", Args: exactlyOne("KEYID"), RunE: runE(revoke)}
	revoke.register(revokeCmd.Flags())

	cmd.AddCommand(createCmd, listCmd, revokeCmd)
	return cmd
}

func keysRun(opts *keysOptions) error {
	ctx := opts.Ctx
	c, cfg, err := opts.session()
	if err != nil {
		return err
	}
	out := opts.Out
	switch opts.Action {
	case "create":
		// Refuse before the work of generating keys; the server checks again.
		m, err := c.Model(ctx, opts.Model)
		if err != nil {
			return err
		}
		if m.Status != fheserve.ModelActive {
			return fheserve.Errorf(fheserve.ECONFLICT, "model %s was retired by its owner; list the models you can use with 'fheserve model list'", m.ID)
		}
		t0 := time.Now()
		keys, err := c.GenerateKeys(ctx, opts.Model)
		if err != nil {
			return err
		}
		fmt.Fprintf(opts.ErrOut, "generated keys for %s in %.1f s; uploading %s of public and evaluation keys\n",
			opts.Model, time.Since(t0).Seconds(), fmtBytes(keys.EvalKeysSize()))
		secret, err := keys.MarshalSecret()
		if err != nil {
			return err
		}
		ks, err := c.UploadKeys(ctx, keys, opts.Replace)
		if err != nil {
			return err
		}
		rec := &keyRecord{ID: ks.ID, Server: cfg.Server, Username: cfg.Username, ModelID: ks.ModelID,
			Fingerprint: ks.Fingerprint, PlanFingerprint: keys.Plan.Fingerprint, CreatedAt: ks.CreatedAt}
		if err := saveKeys(rec, secret); err != nil {
			return err
		}
		if opts.Replace != "" {
			forgetKeys(opts.Replace)
		}
		fmt.Fprintf(out, "key set %s for model %s, fingerprint %s\n", ks.ID, ks.ModelID, ks.Fingerprint)
		fmt.Fprintln(out, ks.ID)
	case "list":
		kss, err := c.API.KeySets(ctx, opts.Model)
		if err != nil {
			return err
		}
		if opts.JSON {
			return printJSON(out, orEmpty(kss))
		}
		have := map[string]bool{}
		if recs, err := localKeys(); err == nil {
			for _, r := range recs {
				have[r.ID] = true
			}
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tMODEL\tSTATUS\tSIZE\tSECRET HERE\tCREATED\tFINGERPRINT")
		for _, k := range kss {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.ModelID, k.Status, fmtBytes(int(k.Size)), yesNo(have[k.ID]),
				k.CreatedAt.Local().Format(time.DateTime), k.Fingerprint[:16])
		}
		return tw.Flush()
	case "revoke":
		ks, err := c.API.RevokeKeySet(ctx, opts.ID)
		if err != nil {
			return err
		}
		if err := forgetKeys(ks.ID); err != nil {
			return err
		}
		fmt.Fprintf(out, "revoked key set %s and deleted its secret key here\n", ks.ID)
	}
	return nil
}

// loadKeys finds the local keys for a model (the newest, or keyID) and
// loads them with the model's plan.
func loadKeys(ctx context.Context, c *sdk.Client, cfg *clientConfig, modelID, keyID string) (*sdk.Keys, error) {
	recs, err := localKeys()
	if err != nil {
		return nil, err
	}
	var rec *keyRecord
	for _, r := range recs {
		if (keyID != "" && r.ID == keyID) || (keyID == "" && r.ModelID == modelID && r.Server == cfg.Server && r.Username == cfg.Username) {
			rec = r
			break
		}
	}
	if rec == nil {
		if keyID != "" {
			return nil, fheserve.Errorf(fheserve.ENOTFOUND, "no local key set %s: keys are usable only where they were created", keyID)
		}
		return nil, fheserve.Errorf(fheserve.ENOTFOUND, "no keys for model %s here: run 'fheserve keys create --model %s'", modelID, modelID)
	}
	if rec.ModelID != modelID {
		return nil, fheserve.Errorf(fheserve.EINVALID, "key set %s is for model %s, not %s", rec.ID, rec.ModelID, modelID)
	}
	p, err := c.Plan(ctx, modelID)
	if err != nil {
		return nil, err
	}
	if p.Fingerprint != rec.PlanFingerprint {
		return nil, fheserve.Errorf(fheserve.ECONFLICT, "the plan of model %s changed since key set %s was made: create new keys", modelID, rec.ID)
	}
	secret, err := readSecret(rec.ID)
	if err != nil {
		return nil, err
	}
	return sdk.LoadKeys(modelID, rec.ID, p, secret)
}
