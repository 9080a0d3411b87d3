package main

import (
	"context"
	"fmt"
	"time"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/sdk"
	"github.com/spf13/cobra"
)

func newKeysCmd(f *Factory) *cobra.Command {
	return group(&cobra.Command{
		Use:   "keys",
		Short: "Create, list and revoke your keys for models",
	}, newKeysCreateCmd(f, nil), newKeysListCmd(f, nil), newKeysRevokeCmd(f, nil))
}

type keysCreateOptions struct {
	IO  *IOStreams
	Ctx context.Context

	Model   string
	Replace string
	remote
}

func newKeysCreateCmd(f *Factory, runF func(*keysCreateOptions) error) *cobra.Command {
	opts := &keysCreateOptions{IO: f.IO, remote: newRemote(f)}
	cmd := leaf(&cobra.Command{
		Use:   "create --model ID",
		Short: "Generate keys for a model here and upload the public part; prints the key id last",
		Long: `Generate a secret key and the evaluation keys a model's plan needs on this
machine. The secret key is written to $FHESERVE_HOME/keys/ (mode 0600) and
never leaves it; only the public and evaluation keys are uploaded. Prints the
key set's id and fingerprint, the id alone on the last line.`,
	}, opts, &opts.Ctx, runF, keysCreateRun, required("model"))
	cmd.Flags().StringVar(&opts.Model, "model", "", "model `ID` (required)")
	cmd.Flags().StringVar(&opts.Replace, "replace", "", "key set `ID` the new keys replace (revoked once they are stored)")
	opts.register(cmd.Flags())
	return cmd
}

func keysCreateRun(opts *keysCreateOptions) error {
	ctx := opts.Ctx
	c, cfg, m, err := opts.sessionModel(ctx, opts.Model)
	if err != nil {
		return err
	}
	// Refuse before the work of generating keys; the server checks again.
	if m.Status != fheserve.ModelActive {
		return fheserve.Errorf(fheserve.ECONFLICT, "model %s was retired by its owner; list the models you can use with 'fheserve model list'", m.ID)
	}
	p, err := c.Plan(ctx, opts.Model)
	if err != nil {
		return err
	}
	t0 := time.Now()
	var pb *bar
	keys, err := sdk.NewKeysProgress(opts.Model, p, func(done, total int) {
		if pb == nil {
			pb = newBar(opts.IO, total, "generating evaluation keys")
		}
		pb.set(done)
	})
	if pb != nil {
		pb.finish()
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.ErrOut, "generated keys for %s in %.1f s; uploading %s of public and evaluation keys\n",
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
	rec.PublicKey, _ = keys.PublicKeyFingerprint()
	if err := opts.saveKeys(rec, secret); err != nil {
		return err
	}
	if opts.Replace != "" {
		opts.forgetKeys(opts.Replace)
	}
	fmt.Fprintf(opts.IO.Out, "key set %s for model %s, fingerprint %s\n", ks.ID, ks.ModelID, ks.Fingerprint)
	fmt.Fprintln(opts.IO.Out, ks.ID)
	return nil
}

type keysListOptions struct {
	IO  *IOStreams
	Ctx context.Context

	Model string
	JSON  bool
	remote
}

func newKeysListCmd(f *Factory, runF func(*keysListOptions) error) *cobra.Command {
	opts := &keysListOptions{IO: f.IO, remote: newRemote(f)}
	cmd := leaf(&cobra.Command{Use: "list [--json]", Short: "List your key sets"}, opts, &opts.Ctx, runF, withSession(&opts.remote, keysListRun))
	cmd.Flags().StringVar(&opts.Model, "model", "", "only key sets for model `ID`")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print JSON")
	opts.register(cmd.Flags())
	return cmd
}

func keysListRun(opts *keysListOptions, c *sdk.Client) error {
	kss, err := c.API.KeySets(opts.Ctx, opts.Model)
	if err != nil {
		return err
	}
	have := map[string]bool{} // the key sets whose secret key is here, for the table
	if !opts.JSON {
		if recs, err := opts.localKeys(); err == nil {
			for _, r := range recs {
				have[r.ID] = true
			}
		}
	}
	if err := checkLoggedKeys(opts, c); err != nil {
		return err
	}
	return printList(opts.IO.Out, opts.JSON, kss, "ID\tMODEL\tSTATUS\tSIZE\tSECRET HERE\tCREATED\tFINGERPRINT", func(k *fheserve.KeySet) string {
		return fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s", k.ID, k.ModelID, keyStatus(k), fmtBytes(int(k.Size)), yesNo(have[k.ID]),
			k.CreatedAt.Local().Format(time.DateTime), k.Fingerprint[:16])
	})
}

type keysRevokeOptions struct {
	IO  *IOStreams
	Ctx context.Context

	ID string
	remote
}

func newKeysRevokeCmd(f *Factory, runF func(*keysRevokeOptions) error) *cobra.Command {
	opts := &keysRevokeOptions{IO: f.IO, remote: newRemote(f)}
	cmd := leaf(&cobra.Command{Use: "revoke KEYID", Short: "Revoke a key set and delete its local secret key", Args: exactlyOne("KEYID")},
		opts, &opts.Ctx, runF, withSession(&opts.remote, keysRevokeRun), arg(&opts.ID))
	opts.register(cmd.Flags())
	return cmd
}

func keysRevokeRun(opts *keysRevokeOptions, c *sdk.Client) error {
	ks, err := c.API.RevokeKeySet(opts.Ctx, opts.ID)
	if err != nil {
		return err
	}
	if err := opts.forgetKeys(ks.ID); err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.Out, "revoked key set %s and deleted its secret key here\n", ks.ID)
	return nil
}

// loadKeys finds the local keys for a model (the newest, or keyID) and
// loads them with the model's plan.
func (r *remote) loadKeys(ctx context.Context, c *sdk.Client, cfg *clientConfig, modelID, keyID string) (*sdk.Keys, error) {
	recs, err := r.localKeys()
	if err != nil {
		return nil, err
	}
	var rec *keyRecord
	for _, k := range recs {
		if (keyID != "" && k.ID == keyID) || (keyID == "" && k.ModelID == modelID && k.Server == cfg.Server && k.Username == cfg.Username) {
			rec = k
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
	secret, err := r.readSecret(rec.ID)
	if err != nil {
		return nil, err
	}
	return sdk.LoadKeys(modelID, rec.ID, p, secret)
}
