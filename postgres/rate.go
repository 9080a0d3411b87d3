package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fheserve/fheserve"
	"github.com/fheserve/fheserve/internal/storerows"
)

var _ fheserve.RateStore = (*Store)(nil)

// TakeTokens implements fheserve.RateStore with the generic cell rate
// algorithm: a bucket is its theoretical arrival time (tat), the time at
// which it is full again; taking n tokens moves it n × every later, and
// is allowed while it stays within burst × every of now. The upsert
// holds the bucket's row lock, so nodes taking tokens at once are
// ordered.
func (s *Store) TakeTokens(ctx context.Context, key string, every time.Duration, burst, n int, now time.Time) (time.Duration, error) {
	cost, limit, at := int64(n)*int64(every), int64(burst)*int64(every), storerows.TS(now)
	err := s.db.QueryRow(ctx, `INSERT INTO rate_buckets AS b (key, tat) VALUES ($1, $2::BIGINT + $3::BIGINT)
		ON CONFLICT (key) DO UPDATE SET tat = GREATEST(b.tat, $2::BIGINT) + $3::BIGINT
		WHERE GREATEST(b.tat, $2::BIGINT) + $3::BIGINT - $2::BIGINT <= $4::BIGINT
		RETURNING tat`, []byte(key), at, cost, limit).Scan(new(int64))
	if err == nil {
		return 0, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return 0, err
	}
	// Refused: the bucket exists and holds fewer than n tokens.
	var tat int64
	if err := s.db.QueryRow(ctx, `SELECT tat FROM rate_buckets WHERE key = $1`, []byte(key)).Scan(&tat); err != nil {
		return 0, err
	}
	// At least a moment, should the bucket have filled since.
	return max(time.Duration(max(tat, at)+cost-at-limit), time.Millisecond), nil
}

// ReturnTokens implements fheserve.RateStore.
func (s *Store) ReturnTokens(ctx context.Context, key string, every time.Duration, n int) error {
	_, err := s.db.Exec(ctx, `UPDATE rate_buckets SET tat = tat - $2::BIGINT WHERE key = $1`, []byte(key), int64(n)*int64(every))
	return err
}
