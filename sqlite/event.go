package sqlite

import (
	"context"

	"github.com/fheserve/fheserve"
)

// AddEvent implements fheserve.Store.
func (s *Store) AddEvent(ctx context.Context, e *fheserve.Event) error {
	res, err := s.db.ExecContext(ctx, `INSERT INTO events (time, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)`,
		ts(e.Time), e.Actor, e.Action, e.Target, e.Detail)
	if err != nil {
		return err
	}
	e.ID, err = res.LastInsertId()
	return err
}

// Events implements fheserve.Store.
func (s *Store) Events(ctx context.Context, f fheserve.EventFilter) ([]*fheserve.Event, error) {
	var w where
	w.eq("actor", f.Actor)
	w.eq("target", f.Target)
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, time, actor, action, target, detail FROM events`+w.String()+
		` ORDER BY id DESC LIMIT ?`, append(w.args, limit)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*fheserve.Event
	for rows.Next() {
		var e fheserve.Event
		var t int64
		if err := rows.Scan(&e.ID, &t, &e.Actor, &e.Action, &e.Target, &e.Detail); err != nil {
			return nil, err
		}
		e.Time = fromTS(t)
		out = append(out, &e)
	}
	return out, rows.Err()
}
