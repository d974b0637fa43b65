package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/claudemesh/claudemesh/store"
)

// Enqueue implements store.Store. An acknowledged message keeps no payload,
// so a resent ID matching an acknowledged one by mesh, sender and recipient
// reports store.AlreadyAcked whatever its nonce and box.
func (s *Store) Enqueue(ctx context.Context, m store.Message) (store.EnqueueResult, error) {
	if m.ID == "" || len(m.From) == 0 || len(m.To) == 0 {
		return 0, errors.New("enqueue: message needs an id, a sender and a recipient")
	}
	var res store.EnqueueResult
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, `INSERT INTO messages
			(id, mesh, from_key, from_name, from_session, to_key, nonce, box, created_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
			m.ID, m.Mesh, m.From, m.FromName, m.FromSession, m.To, m.Nonce, m.Box,
			nanos(m.CreatedAt), nanos(m.ExpiresAt))
		if err != nil {
			return fmt.Errorf("insert: %w", err)
		}
		n, err := r.RowsAffected()
		if err != nil {
			return err
		}
		if n == 1 {
			res = store.Stored
			return nil
		}
		var (
			mesh                 string
			from, to, nonce, box []byte
			acked                bool
		)
		err = tx.QueryRowContext(ctx, `SELECT mesh, from_key, to_key, nonce, box, acked FROM messages WHERE id = ?`, m.ID).
			Scan(&mesh, &from, &to, &nonce, &box, &acked)
		if err != nil {
			return fmt.Errorf("read existing: %w", err)
		}
		switch {
		case mesh != m.Mesh || !bytes.Equal(from, m.From) || !bytes.Equal(to, m.To):
		case acked:
			res = store.AlreadyAcked
		case bytes.Equal(nonce, m.Nonce) && bytes.Equal(box, m.Box):
			res = store.AlreadyQueued
		}
		return nil
	})
	if err == nil && res == 0 {
		err = store.ErrConflict
	}
	if err != nil {
		return 0, fmt.Errorf("enqueue %s: %w", m.ID, err)
	}
	return res, nil
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
		err := s.r.QueryRowContext(ctx, `SELECT seq FROM messages WHERE id = ? AND mesh = ? AND to_key = ?`, after, mesh, to).Scan(&seq)
		if errors.Is(err, sql.ErrNoRows) {
			err = store.ErrNotFound
		}
		if err != nil {
			return nil, s.readErr("pending after "+after, err)
		}
	}
	rows, err := s.r.QueryContext(ctx, `SELECT id, mesh, from_key, from_name, from_session, to_key, nonce, box, created_at, expires_at
		FROM messages WHERE mesh = ? AND to_key = ? AND acked = 0 AND seq > ? AND expires_at > ?
		ORDER BY seq LIMIT ?`, mesh, to, seq, nanos(now), limit)
	if err != nil {
		return nil, s.readErr("pending", err)
	}
	defer rows.Close()
	var out []store.Message
	for rows.Next() {
		var (
			m                store.Message
			created, expires int64
		)
		if err := rows.Scan(&m.ID, &m.Mesh, &m.From, &m.FromName, &m.FromSession, &m.To, &m.Nonce, &m.Box, &created, &expires); err != nil {
			return nil, s.readErr("pending", err)
		}
		m.CreatedAt, m.ExpiresAt = fromNanos(created), fromNanos(expires)
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, s.readErr("pending", err)
	}
	return out, nil
}

// Ack implements store.Store.
func (s *Store) Ack(ctx context.Context, mesh string, to []byte, ids []string) (int, error) {
	var acked int
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		for _, id := range ids {
			r, err := tx.ExecContext(ctx, `UPDATE messages SET acked = 1, nonce = NULL, box = NULL
				WHERE id = ? AND mesh = ? AND to_key = ? AND acked = 0`, id, mesh, to)
			if err != nil {
				return fmt.Errorf("update: %w", err)
			}
			n, err := r.RowsAffected()
			if err != nil {
				return err
			}
			acked += int(n)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("ack: %w", err)
	}
	return acked, nil
}

// Expire implements store.Store.
func (s *Store) Expire(ctx context.Context, now, sessionsBefore time.Time) (int, error) {
	var removed int
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE expires_at <= ?`, nanos(now))
		if err != nil {
			return fmt.Errorf("delete messages: %w", err)
		}
		n, err := r.RowsAffected()
		if err != nil {
			return err
		}
		removed = int(n)
		if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE last_seen < ?`, nanos(sessionsBefore)); err != nil {
			return fmt.Errorf("delete sessions: %w", err)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("expire: %w", err)
	}
	return removed, nil
}
