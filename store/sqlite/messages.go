package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/claudemesh/claudemesh/store"
)

// Enqueue implements store.Store. An acknowledged or expired message keeps
// no payload, so a resent ID matching one by mesh, sender and recipient
// reports store.AlreadyAcked or store.AlreadyExpired whatever its nonce and
// box. A resend after the stored ExpiresAt (judged by m.CreatedAt) reports
// store.AlreadyExpired even before Expire dropped the payload.
func (s *Store) Enqueue(ctx context.Context, m store.Message) (store.EnqueueResult, error) {
	if err := m.Check(); err != nil {
		return 0, fmt.Errorf("enqueue: %w", err)
	}
	var res store.EnqueueResult
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var err error
		res, err = s.enqueueIn(ctx, tx, m)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("enqueue %s: %w", m.ID, err)
	}
	return res, nil
}

// enqueueIn stores m in tx as Enqueue does. A message whose id is stored
// for another DM is store.ErrConflict: its write is rolled back alone.
func (s *Store) enqueueIn(ctx context.Context, tx *sql.Tx, m store.Message) (store.EnqueueResult, error) {
	r, err := s.txStmt(ctx, tx, qInsertMessage).ExecContext(ctx,
		m.ID, m.Mesh, m.From, m.FromName, m.FromSession, m.To, m.SenderKey(), m.Nonce, m.Box, len(m.Box),
		nanos(m.CreatedAt), nanos(m.ExpiresAt))
	if err != nil {
		return 0, fmt.Errorf("insert: %w", err)
	}
	if n, err := r.RowsAffected(); err != nil || n == 1 {
		return store.Stored, err
	}
	var (
		was     store.Message
		acked   bool
		expires int64
	)
	err = s.txStmt(ctx, tx, qExistingMessage).QueryRowContext(ctx, m.ID).
		Scan(&was.Mesh, &was.From, &was.To, &was.Nonce, &was.Box, &acked, &expires)
	if err != nil {
		return 0, fmt.Errorf("read existing: %w", err)
	}
	was.ExpiresAt = fromNanos(expires)
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
		err := s.rs[qPendingSeq].QueryRowContext(ctx, after, mesh, to).Scan(&seq)
		if errors.Is(err, sql.ErrNoRows) {
			err = store.ErrNotFound
		}
		if err != nil {
			return nil, s.readErr("pending after "+after, err)
		}
	}
	rows, err := s.rs[qPending].QueryContext(ctx, mesh, to, seq, nanos(now), limit)
	if err != nil {
		return nil, s.readErr("pending", err)
	}
	defer rows.Close()
	var out []store.Message
	for rows.Next() {
		var (
			m                                  store.Message
			created, expires, received, pushed int64
		)
		if err := rows.Scan(&m.ID, &m.Mesh, &m.From, &m.FromName, &m.FromSession, &m.To, &m.Nonce, &m.Box,
			&created, &expires, &received, &pushed); err != nil {
			return nil, s.readErr("pending", err)
		}
		m.CreatedAt, m.ExpiresAt = fromNanos(created), fromNanos(expires)
		m.ReceivedAt, m.PushedAt = fromEventNanos(received), fromEventNanos(pushed)
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, s.readErr("pending", err)
	}
	return out, nil
}

// receiptUpdate is the statement that records each receipt state.
var receiptUpdate = map[string]string{
	store.ReceiptReceived: qReceiptReceived,
	store.ReceiptPushed:   qReceiptPushed,
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

// Record implements store.Store. Its write is lazy: a DM stored meanwhile
// commits with it.
func (s *Store) Record(ctx context.Context, mesh string, to []byte, rs []store.Record) ([]int, error) {
	for _, r := range rs {
		if err := r.Check(); err != nil {
			return nil, err
		}
	}
	changed := make([]int, len(rs))
	err := s.writeLazy(ctx, func(ctx context.Context, tx *sql.Tx) error {
		for i, r := range rs {
			at := eventNanos(r.At)
			exec := func(id string) (sql.Result, error) {
				if r.Ack {
					return s.txStmt(ctx, tx, qAck).ExecContext(ctx, at, r.Cleared, id, mesh, to)
				}
				return s.txStmt(ctx, tx, receiptUpdate[r.State]).ExecContext(ctx, at, id, mesh, to)
			}
			for _, id := range r.IDs {
				res, err := exec(id)
				if err != nil {
					return fmt.Errorf("update: %w", err)
				}
				n, err := res.RowsAffected()
				if err != nil {
					return err
				}
				changed[i] += int(n)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", store.RecordsName(rs), err)
	}
	return changed, nil
}

// statusChunk bounds the IDs Status looks up in one query.
const statusChunk = 256

// Status implements store.Store. The recipient's name is the one its session
// last presented, while the broker remembers the session.
func (s *Store) Status(ctx context.Context, mesh string, from []byte, ids []string, now time.Time) ([]store.MessageStatus, error) {
	found := make(map[string]store.MessageStatus, len(ids))
	for start := 0; start < len(ids); start += statusChunk {
		chunk := ids[start:min(start+statusChunk, len(ids))]
		args := make([]any, 0, len(chunk)+2)
		args = append(args, mesh, from)
		for _, id := range chunk {
			args = append(args, id)
		}
		rows, err := s.r.QueryContext(ctx, `SELECT m.id, m.to_key, coalesce(s.name, ''), m.created_at, m.expires_at,
				m.received_at, m.pushed_at, m.read_at, m.acked, m.cleared
			FROM messages m LEFT JOIN sessions s ON s.mesh = m.mesh AND s.key = m.to_key
			WHERE m.mesh = ? AND m.from_key = ? AND m.id IN (?`+strings.Repeat(", ?", len(chunk)-1)+`)`, args...)
		if err != nil {
			return nil, s.readErr("status", err)
		}
		for rows.Next() {
			var (
				st                                         store.MessageStatus
				created, expires, received, pushed, readAt int64
				acked, cleared                             bool
			)
			if err := rows.Scan(&st.ID, &st.To, &st.ToName, &created, &expires, &received, &pushed, &readAt, &acked, &cleared); err != nil {
				rows.Close()
				return nil, s.readErr("status", err)
			}
			st.CreatedAt, st.ExpiresAt = fromNanos(created), fromNanos(expires)
			st.ReceivedAt, st.PushedAt, st.ReadAt = fromEventNanos(received), fromEventNanos(pushed), fromEventNanos(readAt)
			st.State = store.StateOf(acked, cleared, st.ExpiresAt, now, received != 0, pushed != 0)
			found[st.ID] = st
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, s.readErr("status", err)
		}
	}
	return store.InRequestOrder(ids, found), nil
}

// Expire implements store.Store.
func (s *Store) Expire(ctx context.Context, now time.Time, retention time.Duration, sessionsBefore time.Time) (int, error) {
	if retention < 0 {
		return 0, fmt.Errorf("expire: negative retention %v", retention)
	}
	var expired int
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, `UPDATE messages SET nonce = NULL, box = NULL
			WHERE expires_at <= ? AND acked = 0 AND box IS NOT NULL`, nanos(now))
		if err != nil {
			return fmt.Errorf("expire messages: %w", err)
		}
		n, err := r.RowsAffected()
		if err != nil {
			return err
		}
		expired = int(n)
		if _, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE expires_at <= ?`, nanos(now.Add(-retention))); err != nil {
			return fmt.Errorf("delete messages: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE last_seen < ?`, nanos(sessionsBefore)); err != nil {
			return fmt.Errorf("delete sessions: %w", err)
		}
		return forgetTeams(ctx, tx, nanos(now.Add(-retention)))
	})
	if err != nil {
		return 0, fmt.Errorf("expire: %w", err)
	}
	return expired, nil
}

// QueueStats implements store.Store.
func (s *Store) QueueStats(ctx context.Context, mesh string, to, sender []byte, now time.Time) (int, int64, error) {
	var n int
	var size int64
	q, args := s.rs[qQueueStats], []any{mesh, to, nanos(now)}
	if len(sender) > 0 {
		q, args = s.rs[qQueueStatsSender], append(args, sender)
	}
	err := q.QueryRowContext(ctx, args...).Scan(&n, &size)
	if err != nil {
		return 0, 0, s.readErr("queue stats", err)
	}
	return n, size, nil
}
