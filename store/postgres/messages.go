package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/claudemesh/claudemesh/store"
)

// existing says what a resend of m finds once inserting it found its id
// taken: store.ErrConflict when the id is stored for another DM (or no
// longer at all), else the result Enqueue reports for the resend.
func existing(ctx context.Context, tx querier, m store.Message) (store.EnqueueResult, error) {
	var (
		was   store.Message
		acked bool
	)
	err := tx.QueryRow(ctx, `SELECT mesh, from_key, to_key, nonce, box, acked, expires_at FROM messages WHERE id = $1`, m.ID).
		Scan(&was.Mesh, &was.From, &was.To, &was.Nonce, &was.Box, &acked, &was.ExpiresAt)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, store.ErrConflict
	case err != nil:
		return 0, fmt.Errorf("read existing: %w", err)
	}
	return store.Resent(m, was, acked)
}

// Pending implements store.Store. An `after` ID unknown for this recipient in
// this mesh is an error wrapping store.ErrNotFound; a limit below 1 is an
// error.
func (s *Store) Pending(ctx context.Context, mesh string, to []byte, now time.Time, after string, limit int) ([]store.Message, error) {
	if limit < 1 {
		return nil, fmt.Errorf("pending: limit %d below 1", limit)
	}
	var seq int64
	if after != "" {
		err := s.pool.QueryRow(ctx, `SELECT seq FROM messages WHERE id = $1 AND mesh = $2 AND to_key = $3`, after, mesh, to).Scan(&seq)
		if errors.Is(err, pgx.ErrNoRows) {
			err = store.ErrNotFound
		}
		if err != nil {
			return nil, s.wrap("pending after "+after, err)
		}
	}
	rows, err := s.pool.Query(ctx, `SELECT id, mesh, from_key, from_name, from_session, to_key, nonce, box,
			created_at, expires_at, received_at, pushed_at
		FROM messages WHERE mesh = $1 AND to_key = $2 AND NOT acked AND seq > $3 AND expires_at > $4 AND box IS NOT NULL
		ORDER BY seq LIMIT $5`, mesh, to, seq, now, limit)
	if err != nil {
		return nil, s.wrap("pending", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Message, error) {
		var m store.Message
		var received, pushed *time.Time
		err := row.Scan(&m.ID, &m.Mesh, &m.From, &m.FromName, &m.FromSession, &m.To, &m.Nonce, &m.Box,
			&m.CreatedAt, &m.ExpiresAt, &received, &pushed)
		m.CreatedAt, m.ExpiresAt = m.CreatedAt.UTC(), m.ExpiresAt.UTC()
		m.ReceivedAt, m.PushedAt = at(received), at(pushed)
		return m, err
	})
	if err != nil {
		return nil, s.wrap("pending", err)
	}
	return out, nil
}

// receiptColumn names the column that records each receipt state.
var receiptColumn = map[string]string{
	store.ReceiptReceived: "received_at",
	store.ReceiptPushed:   "pushed_at",
}

// Receipt implements store.Store.
func (s *Store) Receipt(ctx context.Context, mesh string, to []byte, ids []string, state string, at time.Time) (int, error) {
	n, err := s.Record(ctx, mesh, to, []store.Record{{State: state, IDs: ids, At: at}})
	if err != nil {
		return 0, err
	}
	return n[0], nil
}

// Ack implements store.Store.
func (s *Store) Ack(ctx context.Context, mesh string, to []byte, ids []string, at time.Time, cleared bool) (int, error) {
	n, err := s.Record(ctx, mesh, to, []store.Record{{Ack: true, Cleared: cleared, IDs: ids, At: at}})
	if err != nil {
		return 0, err
	}
	return n[0], nil
}

const qAck = `UPDATE messages SET acked = true, nonce = NULL, box = NULL,
		read_at = greatest($1, created_at), cleared = $2
	WHERE id = ANY($3) AND mesh = $4 AND to_key = $5 AND NOT acked`

// Record implements store.Store: its updates go in one round trip, one
// implicit transaction (a pipelined batch when there are several).
func (s *Store) Record(ctx context.Context, mesh string, to []byte, rs []store.Record) ([]int, error) {
	var b pgx.Batch
	for _, r := range rs {
		if err := r.Check(); err != nil {
			return nil, err
		}
		if r.Ack {
			b.Queue(qAck, event(r.At), r.Cleared, r.IDs, mesh, to)
			continue
		}
		col := receiptColumn[r.State]
		b.Queue(`UPDATE messages SET `+col+` = greatest($1, created_at)
			WHERE id = ANY($2) AND mesh = $3 AND to_key = $4 AND NOT acked AND `+col+` IS NULL`, r.At, r.IDs, mesh, to)
	}
	what := store.RecordsName(rs)
	changed := make([]int, len(rs))
	if len(rs) == 1 {
		q := b.QueuedQueries[0]
		tag, err := s.pool.Exec(ctx, q.SQL, q.Arguments...)
		if err != nil {
			return nil, s.wrap(what, err)
		}
		changed[0] = int(tag.RowsAffected())
		return changed, nil
	}
	res := s.pool.SendBatch(ctx, &b)
	for i := range rs {
		tag, err := res.Exec()
		if err != nil {
			res.Close()
			return nil, s.wrap(what, err)
		}
		changed[i] = int(tag.RowsAffected())
	}
	if err := res.Close(); err != nil {
		return nil, s.wrap(what, err)
	}
	return changed, nil
}

// Status implements store.Store. The recipient's name is the one its session
// last presented, while the broker remembers the session.
func (s *Store) Status(ctx context.Context, mesh string, from []byte, ids []string, now time.Time) ([]store.MessageStatus, error) {
	rows, err := s.pool.Query(ctx, `SELECT m.id, m.to_key, coalesce(s.name, ''), m.created_at, m.expires_at,
			m.received_at, m.pushed_at, m.read_at, m.acked, m.cleared
		FROM messages m LEFT JOIN sessions s ON s.mesh = m.mesh AND s.key = m.to_key
		WHERE m.mesh = $1 AND m.from_key = $2 AND m.id = ANY($3)`, mesh, from, ids)
	if err != nil {
		return nil, s.wrap("status", err)
	}
	found := make(map[string]store.MessageStatus, len(ids))
	var st store.MessageStatus
	var received, pushed, readAt *time.Time
	var acked, cleared bool
	_, err = pgx.ForEachRow(rows, []any{&st.ID, &st.To, &st.ToName, &st.CreatedAt, &st.ExpiresAt, &received, &pushed, &readAt, &acked, &cleared}, func() error {
		st.CreatedAt, st.ExpiresAt = st.CreatedAt.UTC(), st.ExpiresAt.UTC()
		st.ReceivedAt, st.PushedAt, st.ReadAt = at(received), at(pushed), at(readAt)
		st.State = store.StateOf(acked, cleared, st.ExpiresAt, now, received != nil, pushed != nil)
		found[st.ID] = st
		return nil
	})
	if err != nil {
		return nil, s.wrap("status", err)
	}
	return store.InRequestOrder(ids, found), nil
}

// Expire implements store.Store. It is safe to run on several nodes at once:
// each statement is idempotent.
func (s *Store) Expire(ctx context.Context, now time.Time, retention time.Duration, sessionsBefore time.Time) (int, error) {
	if retention < 0 {
		return 0, fmt.Errorf("expire: negative retention %v", retention)
	}
	var expired int
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE messages SET nonce = NULL, box = NULL
			WHERE expires_at <= $1 AND NOT acked AND box IS NOT NULL`, now)
		if err != nil {
			return fmt.Errorf("expire messages: %w", err)
		}
		expired = int(tag.RowsAffected())
		if _, err := tx.Exec(ctx, `DELETE FROM messages WHERE expires_at <= $1`, now.Add(-retention)); err != nil {
			return fmt.Errorf("delete messages: %w", err)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM sessions WHERE last_seen < $1`, sessionsBefore); err != nil {
			return fmt.Errorf("delete sessions: %w", err)
		}
		if err := forgetTeams(ctx, tx, now.Add(-retention)); err != nil {
			return err
		}
		// Numbering rows of recipients nothing is kept for. A row an
		// Enqueue holds is skipped: its DM is on its way.
		if _, err := tx.Exec(ctx, `DELETE FROM queues q USING (
				SELECT mesh, to_key FROM queues qq
				WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.mesh = qq.mesh AND m.to_key = qq.to_key)
				FOR UPDATE SKIP LOCKED) d
			WHERE q.mesh = d.mesh AND q.to_key = d.to_key`); err != nil {
			return fmt.Errorf("delete queues: %w", err)
		}
		return nil
	})
	if err != nil {
		return 0, s.wrap("expire", err)
	}
	return expired, nil
}

// QueueStats implements store.Store.
func (s *Store) QueueStats(ctx context.Context, mesh string, to, sender []byte, now time.Time) (int, int64, error) {
	var n int
	var size int64
	q, args := `SELECT count(*), coalesce(sum(box_len), 0) FROM messages
		WHERE mesh = $1 AND to_key = $2 AND NOT acked AND expires_at > $3`, []any{mesh, to, now}
	if len(sender) > 0 {
		q, args = q+` AND sender = $4`, append(args, sender)
	}
	if err := s.pool.QueryRow(ctx, q, args...).Scan(&n, &size); err != nil {
		return 0, 0, s.wrap("queue stats", err)
	}
	return n, size, nil
}
