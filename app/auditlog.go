package app

import (
	"context"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/audit"
)

// AuditLog returns the transparency log.
func (a *App) AuditLog() *audit.Log { return a.cfg.Audit }

// audit appends to the signed log a record of an action that succeeded,
// naming objs. The log is the one record of security-relevant actions:
// the administrators read it like everyone else, through its listing.
func (a *App) audit(ctx context.Context, actor *fheserve.Account, action string, objs ...audit.Object) {
	a.auditOutcome(ctx, actor, action, audit.OutcomeOK, objs...)
}

// auditOutcome is audit for an action that ended with outcome, a
// fheserve error code when it failed. A failure to append is logged, not
// returned: the action already happened.
func (a *App) auditOutcome(ctx context.Context, actor *fheserve.Account, action, outcome string, objs ...audit.Object) {
	ctx = context.WithoutCancel(ctx)
	r := &audit.Record{Time: a.cfg.Now().UTC(), Action: action, Outcome: outcome, RequestID: fheserve.RequestID(ctx)}
	if actor != nil {
		r.ActorID, r.Actor = actor.ID, actor.Username
	}
	for _, o := range objs {
		if o.ID != "" {
			r.Objects = append(r.Objects, o)
		}
	}
	if _, err := a.cfg.Audit.Append(ctx, r); err != nil {
		a.log.Error("cannot append audit record", "action", r.Action, "request_id", r.RequestID, "err", err)
	}
}

func accountObj(id string) audit.Object { return audit.Object{Kind: audit.KindAccount, ID: id} }
func modelObj(id string) audit.Object   { return audit.Object{Kind: audit.KindModel, ID: id} }
func jobObj(id string) audit.Object     { return audit.Object{Kind: audit.KindJob, ID: id} }
func keySetObj(id string) audit.Object  { return audit.Object{Kind: audit.KindKeySet, ID: id} }
func tokenObj(id string) audit.Object   { return audit.Object{Kind: audit.KindToken, ID: id} }

// AuditScope returns the audit records who may see: an administrator all;
// an account those it acted in or that name it; an owner also those that
// name its models.
func (a *App) AuditScope(ctx context.Context, who *fheserve.Account) (*audit.Scope, error) {
	if err := require(who); err != nil {
		return nil, err
	}
	if who.Role == fheserve.RoleAdmin {
		return &audit.Scope{All: true}, nil
	}
	s := &audit.Scope{AccountID: who.ID, Objects: []audit.Object{accountObj(who.ID)}}
	if who.Role == fheserve.RoleOwner {
		ms, err := a.store.Models(ctx, fheserve.ModelFilter{OwnerID: who.ID})
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			s.Objects = append(s.Objects, modelObj(m.ID))
		}
	}
	return s, nil
}
