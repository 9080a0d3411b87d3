package postgres

import (
	"context"

	"github.com/fheserve/fheserve"
)

var _ fheserve.Pinger = (*Store)(nil)

// Ping implements fheserve.Pinger: one round trip to the server on a
// pooled connection (a new one if the server restarted).
func (s *Store) Ping(ctx context.Context) error {
	return s.db.Ping(ctx)
}
