package app

import (
	"context"
	"strings"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/audit"
)

type requestIDKey struct{}

// WithRequestID returns ctx carrying the id of the request being served,
// which the audit records of its actions name.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the request id in ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// AuditLog returns the transparency log, or nil if the App has none.
func (a *App) AuditLog() *audit.Log { return a.cfg.Audit }

// targetKinds says which object kind the target of an event is, by the
// prefix of its action; account events name usernames, not ids, so their
// callers pass the account object themselves.
var targetKinds = map[string]string{
	"model":  audit.KindModel,
	"job":    audit.KindJob,
	"keyset": audit.KindKeySet,
	"token":  audit.KindToken,
}

// recordActions renames the actions of the event trail whose audit record
// has the name docs/audit.md suggests.
var recordActions = map[string]string{
	"session.login":             "auth.login",
	"session.login_failed":      "auth.login",
	"session.logout":            "auth.logout",
	"job." + fheserve.JobDone:   "job.complete",
	"job." + fheserve.JobFailed: "job.fail",
}

// audit records a successful action: in the store's event trail (with a
// free-text detail, for administrators) and in the transparency log (ids
// only: target, if its kind follows from the action, and objs). A failure
// to record is logged, not returned: the action already happened.
func (a *App) audit(ctx context.Context, actor *fheserve.Account, action, target, detail string, objs ...audit.Object) {
	a.auditOutcome(ctx, actor, action, audit.OutcomeOK, target, detail, objs...)
}

// auditOutcome is audit for an action that ended with outcome, a
// fheserve error code when it failed.
func (a *App) auditOutcome(ctx context.Context, actor *fheserve.Account, action, outcome, target, detail string, objs ...audit.Object) {
	ctx = context.WithoutCancel(ctx)
	now := a.cfg.Now().UTC()
	e := &fheserve.Event{Time: now, Action: action, Target: target, Detail: detail}
	if actor != nil {
		e.Actor = actor.Username
	}
	if err := a.store.AddEvent(ctx, e); err != nil {
		a.log.Error("cannot record audit event", "action", action, "err", err)
	}
	if a.cfg.Audit == nil {
		return
	}
	r := &audit.Record{Time: now, Action: action, Outcome: outcome, RequestID: RequestID(ctx)}
	if n, ok := recordActions[action]; ok {
		r.Action = n
	}
	if actor != nil {
		r.ActorID, r.Actor = actor.ID, actor.Username
	}
	prefix, _, _ := strings.Cut(action, ".")
	if kind, ok := targetKinds[prefix]; ok && target != "" {
		r.Objects = append(r.Objects, audit.Object{Kind: kind, ID: target})
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
