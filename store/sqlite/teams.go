package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/claudemesh/claudemesh/store"
)

// EnqueueGroup implements store.Store: every DM under its own check, in one
// write operation, so that a conflict rolls all of them back.
func (s *Store) EnqueueGroup(ctx context.Context, sendID, group string, msgs []store.Message) ([]store.EnqueueResult, error) {
	for _, m := range msgs {
		if err := m.Check(); err != nil {
			return nil, fmt.Errorf("enqueue group: %w", err)
		}
	}
	res := make([]store.EnqueueResult, len(msgs))
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		for i, m := range msgs {
			r, err := s.enqueueIn(ctx, tx, m)
			if errors.Is(err, store.ErrConflict) {
				return fmt.Errorf("%s: %w", m.ID, err)
			}
			if err != nil {
				return err
			}
			res[i] = r
			if r != store.Stored {
				continue
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO group_dms (id, send_id, grp, expires_at) VALUES (?, ?, ?, ?)`,
				m.ID, sendID, group, nanos(m.ExpiresAt)); err != nil {
				return fmt.Errorf("insert group dm: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("enqueue group %s: %w", sendID, err)
	}
	return res, nil
}

// GroupStatus implements store.Store.
func (s *Store) GroupStatus(ctx context.Context, mesh string, from []byte, sendID string, now time.Time) (string, []store.MessageStatus, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT g.grp, m.id, m.to_key, coalesce(s.name, ''), m.created_at, m.expires_at,
			m.received_at, m.pushed_at, m.read_at, m.acked, m.cleared
		FROM group_dms g JOIN messages m ON m.id = g.id
		LEFT JOIN sessions s ON s.mesh = m.mesh AND s.key = m.to_key
		WHERE g.send_id = ? AND m.mesh = ? AND m.from_key = ?
		ORDER BY coalesce(s.name, ''), m.to_key`, sendID, mesh, from)
	if err != nil {
		return "", nil, s.readErr("group status", err)
	}
	defer rows.Close()
	var (
		group string
		out   []store.MessageStatus
	)
	for rows.Next() {
		var (
			st                                         store.MessageStatus
			created, expires, received, pushed, readAt int64
			acked, cleared                             bool
		)
		if err := rows.Scan(&group, &st.ID, &st.To, &st.ToName, &created, &expires, &received, &pushed, &readAt, &acked, &cleared); err != nil {
			return "", nil, s.readErr("group status", err)
		}
		st.CreatedAt, st.ExpiresAt = fromNanos(created), fromNanos(expires)
		st.ReceivedAt, st.PushedAt, st.ReadAt = fromEventNanos(received), fromEventNanos(pushed), fromEventNanos(readAt)
		st.State = store.StateOf(acked, cleared, st.ExpiresAt, now, received != 0, pushed != 0)
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return "", nil, s.readErr("group status", err)
	}
	if len(out) == 0 {
		return "", nil, fmt.Errorf("group status %s: %w", sendID, store.ErrNotFound)
	}
	return group, out, nil
}

// JoinGroup implements store.Store.
func (s *Store) JoinGroup(ctx context.Context, mesh, group string, key []byte, now time.Time) (bool, error) {
	var joined bool
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, `INSERT INTO group_members (mesh, grp, key, joined_at) VALUES (?, ?, ?, ?)
			ON CONFLICT DO NOTHING`, mesh, group, key, nanos(now))
		if err != nil {
			return err
		}
		n, err := r.RowsAffected()
		joined = n == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("join group %s: %w", group, err)
	}
	return joined, nil
}

// LeaveGroup implements store.Store.
func (s *Store) LeaveGroup(ctx context.Context, mesh, group string, key []byte) (bool, error) {
	var left bool
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		r, err := tx.ExecContext(ctx, `DELETE FROM group_members WHERE mesh = ? AND grp = ? AND key = ?`, mesh, group, key)
		if err != nil {
			return err
		}
		n, err := r.RowsAffected()
		left = n == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("leave group %s: %w", group, err)
	}
	return left, nil
}

// GroupMembers implements store.Store.
func (s *Store) GroupMembers(ctx context.Context, mesh, group string) ([][]byte, error) {
	return readAll(ctx, s, "group members", func(r *sql.Rows) ([]byte, error) {
		var k []byte
		err := r.Scan(&k)
		return k, err
	}, `SELECT g.key FROM group_members g
		JOIN sessions s ON s.mesh = g.mesh AND s.key = g.key
		WHERE g.mesh = ? AND g.grp = ? ORDER BY g.key`, mesh, group)
}

// Memberships implements store.Store.
func (s *Store) Memberships(ctx context.Context, mesh string) ([]store.Membership, error) {
	return readAll(ctx, s, "memberships", func(r *sql.Rows) (store.Membership, error) {
		var (
			m      store.Membership
			joined int64
		)
		err := r.Scan(&m.Group, &m.Key, &joined)
		m.JoinedAt = fromNanos(joined)
		return m, err
	}, `SELECT g.grp, g.key, g.joined_at FROM group_members g
		JOIN sessions s ON s.mesh = g.mesh AND s.key = g.key
		WHERE g.mesh = ? ORDER BY g.grp, g.key`, mesh)
}

// SetPresence implements store.Store.
func (s *Store) SetPresence(ctx context.Context, p store.Presence) error {
	if len(p.Key) == 0 {
		return errors.New("set presence: empty key")
	}
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO session_status
			(mesh, key, summary, availability, activity, activity_since, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (mesh, key) DO UPDATE SET summary = excluded.summary, availability = excluded.availability,
				activity = excluded.activity, activity_since = excluded.activity_since, updated_at = excluded.updated_at`,
			p.Mesh, p.Key, p.Summary, p.Availability, p.Activity, eventNanos(p.ActivitySince), nanos(p.UpdatedAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("set presence: %w", err)
	}
	return nil
}

const presenceColumns = `mesh, key, summary, availability, activity, activity_since, updated_at`

func scanPresence(scan func(...any) error) (store.Presence, error) {
	var (
		p              store.Presence
		since, updated int64
	)
	err := scan(&p.Mesh, &p.Key, &p.Summary, &p.Availability, &p.Activity, &since, &updated)
	p.ActivitySince, p.UpdatedAt = fromEventNanos(since), fromNanos(updated)
	return p, err
}

// Presence implements store.Store.
func (s *Store) Presence(ctx context.Context, mesh string, key []byte) (store.Presence, error) {
	p, err := scanPresence(s.r.QueryRowContext(ctx, `SELECT `+presenceColumns+` FROM session_status WHERE mesh = ? AND key = ?`, mesh, key).Scan)
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.Presence{}, s.readErr("presence", err)
	}
	return p, nil
}

// Presences implements store.Store.
func (s *Store) Presences(ctx context.Context, mesh string) ([]store.Presence, error) {
	return readAll(ctx, s, "presences", func(r *sql.Rows) (store.Presence, error) { return scanPresence(r.Scan) },
		`SELECT `+presenceColumns+` FROM session_status WHERE mesh = ? ORDER BY key`, mesh)
}

// forgetTeams deletes the memberships and presence of sessions the store
// no longer keeps, and the group rows of deleted DMs.
func forgetTeams(ctx context.Context, tx *sql.Tx, deletedBefore int64) error {
	for _, q := range []string{
		`DELETE FROM group_members WHERE NOT EXISTS
			(SELECT 1 FROM sessions s WHERE s.mesh = group_members.mesh AND s.key = group_members.key)`,
		`DELETE FROM session_status WHERE NOT EXISTS
			(SELECT 1 FROM sessions s WHERE s.mesh = session_status.mesh AND s.key = session_status.key)`,
	} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("forget groups and presence: %w", err)
		}
	}
	if deletedBefore != 0 {
		if _, err := tx.ExecContext(ctx, `DELETE FROM group_dms WHERE expires_at <= ?`, deletedBefore); err != nil {
			return fmt.Errorf("delete group dms: %w", err)
		}
	}
	return nil
}

// forgetTeamsOf deletes the memberships and presence of one session.
func forgetTeamsOf(ctx context.Context, tx *sql.Tx, mesh string, key []byte) error {
	for _, q := range []string{
		`DELETE FROM group_members WHERE mesh = ? AND key = ?`,
		`DELETE FROM session_status WHERE mesh = ? AND key = ?`,
	} {
		if _, err := tx.ExecContext(ctx, q, mesh, key); err != nil {
			return fmt.Errorf("forget groups and presence: %w", err)
		}
	}
	return nil
}
