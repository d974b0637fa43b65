package postgres

import (
	"context"
	"time"
)

// Ping implements store.Pinger: the database answers a query now.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.pool.QueryRow(ctx, `SELECT 1`).Scan(&one); err != nil {
		return s.wrap("ping", err)
	}
	return nil
}

// QueueTotals implements store.Totals: what waits in the whole cluster.
func (s *Store) QueueTotals(ctx context.Context, now time.Time) (int, int64, error) {
	var n int
	var size int64
	err := s.pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(box_len), 0) FROM messages
		WHERE NOT acked AND expires_at > $1`, now).Scan(&n, &size)
	if err != nil {
		return 0, 0, s.wrap("queue totals", err)
	}
	return n, size, nil
}
