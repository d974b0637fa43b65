package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/claudemesh/claudemesh/store"
)

// EnqueueGroup implements store.Store: every DM under its own check, in one
// transaction, so that a conflict rolls all of them back. The recipients'
// queues are numbered in key order, so that two group sends never wait for
// each other in a cycle.
func (s *Store) EnqueueGroup(ctx context.Context, sendID, group string, msgs []store.Message) ([]store.EnqueueResult, error) {
	for _, m := range msgs {
		if err := m.Check(); err != nil {
			return nil, fmt.Errorf("enqueue group: %w", err)
		}
	}
	order := make([]int, len(msgs))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return queueOrder(msgs[a], msgs[b]) })
	res := make([]store.EnqueueResult, len(msgs))
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, i := range order {
			m := msgs[i]
			r, err := enqueueIn(ctx, tx, m)
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
			if _, err := tx.Exec(ctx, `INSERT INTO group_dms (id, send_id, grp, expires_at) VALUES ($1, $2, $3, $4)`,
				m.ID, sendID, group, m.ExpiresAt); err != nil {
				return fmt.Errorf("insert group dm: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, s.wrap("enqueue group "+sendID, err)
	}
	return res, nil
}

// GroupStatus implements store.Store.
func (s *Store) GroupStatus(ctx context.Context, mesh string, from []byte, sendID string, now time.Time) (string, []store.MessageStatus, error) {
	rows, err := s.pool.Query(ctx, `SELECT g.grp, m.id, m.to_key, coalesce(s.name, ''), m.created_at, m.expires_at,
			m.received_at, m.pushed_at, m.read_at, m.acked, m.cleared
		FROM group_dms g JOIN messages m ON m.id = g.id
		LEFT JOIN sessions s ON s.mesh = m.mesh AND s.key = m.to_key
		WHERE g.send_id = $1 AND m.mesh = $2 AND m.from_key = $3
		ORDER BY coalesce(s.name, ''), m.to_key`, sendID, mesh, from)
	if err != nil {
		return "", nil, s.wrap("group status", err)
	}
	var (
		group                    string
		out                      []store.MessageStatus
		st                       store.MessageStatus
		received, pushed, readAt *time.Time
		acked, cleared           bool
	)
	_, err = pgx.ForEachRow(rows, []any{&group, &st.ID, &st.To, &st.ToName, &st.CreatedAt, &st.ExpiresAt, &received, &pushed, &readAt, &acked, &cleared}, func() error {
		st.CreatedAt, st.ExpiresAt = st.CreatedAt.UTC(), st.ExpiresAt.UTC()
		st.ReceivedAt, st.PushedAt, st.ReadAt = at(received), at(pushed), at(readAt)
		st.State = store.StateOf(acked, cleared, st.ExpiresAt, now, received != nil, pushed != nil)
		out = append(out, st)
		st = store.MessageStatus{}
		return nil
	})
	if err != nil {
		return "", nil, s.wrap("group status", err)
	}
	if len(out) == 0 {
		return "", nil, fmt.Errorf("group status %s: %w", sendID, store.ErrNotFound)
	}
	return group, out, nil
}

// JoinGroup implements store.Store.
func (s *Store) JoinGroup(ctx context.Context, mesh, group string, key []byte, now time.Time) (bool, error) {
	tag, err := s.pool.Exec(ctx, `INSERT INTO group_members (mesh, grp, key, joined_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT DO NOTHING`, mesh, group, key, now)
	if err != nil {
		return false, s.wrap("join group "+group, err)
	}
	return tag.RowsAffected() == 1, nil
}

// LeaveGroup implements store.Store.
func (s *Store) LeaveGroup(ctx context.Context, mesh, group string, key []byte) (bool, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM group_members WHERE mesh = $1 AND grp = $2 AND key = $3`, mesh, group, key)
	if err != nil {
		return false, s.wrap("leave group "+group, err)
	}
	return tag.RowsAffected() == 1, nil
}

// GroupMembers implements store.Store.
func (s *Store) GroupMembers(ctx context.Context, mesh, group string) ([][]byte, error) {
	rows, err := s.pool.Query(ctx, `SELECT g.key FROM group_members g
		JOIN sessions s ON s.mesh = g.mesh AND s.key = g.key
		WHERE g.mesh = $1 AND g.grp = $2 ORDER BY g.key`, mesh, group)
	if err != nil {
		return nil, s.wrap("group members", err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return nil, s.wrap("group members", err)
	}
	return keys, nil
}

// Memberships implements store.Store.
func (s *Store) Memberships(ctx context.Context, mesh string) ([]store.Membership, error) {
	rows, err := s.pool.Query(ctx, `SELECT g.grp, g.key, g.joined_at FROM group_members g
		JOIN sessions s ON s.mesh = g.mesh AND s.key = g.key
		WHERE g.mesh = $1 ORDER BY g.grp, g.key`, mesh)
	if err != nil {
		return nil, s.wrap("memberships", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Membership, error) {
		var m store.Membership
		err := r.Scan(&m.Group, &m.Key, &m.JoinedAt)
		m.JoinedAt = m.JoinedAt.UTC()
		return m, err
	})
	if err != nil {
		return nil, s.wrap("memberships", err)
	}
	return out, nil
}

// SetPresence implements store.Store.
func (s *Store) SetPresence(ctx context.Context, p store.Presence) error {
	if len(p.Key) == 0 {
		return errors.New("set presence: empty key")
	}
	var since *time.Time
	if !p.ActivitySince.IsZero() {
		since = &p.ActivitySince
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO session_status
		(mesh, key, summary, availability, activity, activity_since, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (mesh, key) DO UPDATE SET summary = excluded.summary, availability = excluded.availability,
			activity = excluded.activity, activity_since = excluded.activity_since, updated_at = excluded.updated_at`,
		p.Mesh, p.Key, p.Summary, p.Availability, p.Activity, since, p.UpdatedAt)
	if err != nil {
		return s.wrap("set presence", err)
	}
	return nil
}

const presenceColumns = `mesh, key, summary, availability, activity, activity_since, updated_at`

func scanPresence(r pgx.Row) (store.Presence, error) {
	var (
		p     store.Presence
		since *time.Time
	)
	err := r.Scan(&p.Mesh, &p.Key, &p.Summary, &p.Availability, &p.Activity, &since, &p.UpdatedAt)
	p.ActivitySince, p.UpdatedAt = at(since), p.UpdatedAt.UTC()
	return p, err
}

// Presence implements store.Store.
func (s *Store) Presence(ctx context.Context, mesh string, key []byte) (store.Presence, error) {
	p, err := scanPresence(s.pool.QueryRow(ctx, `SELECT `+presenceColumns+` FROM session_status WHERE mesh = $1 AND key = $2`, mesh, key))
	if errors.Is(err, pgx.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.Presence{}, s.wrap("presence", err)
	}
	return p, nil
}

// Presences implements store.Store.
func (s *Store) Presences(ctx context.Context, mesh string) ([]store.Presence, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+presenceColumns+` FROM session_status WHERE mesh = $1 ORDER BY key`, mesh)
	if err != nil {
		return nil, s.wrap("presences", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Presence, error) { return scanPresence(r) })
	if err != nil {
		return nil, s.wrap("presences", err)
	}
	return out, nil
}

// forgetTeams deletes the memberships and presence of sessions the store
// no longer keeps, and the group rows of DMs deleted before deletedBefore.
func forgetTeams(ctx context.Context, tx pgx.Tx, deletedBefore time.Time) error {
	for _, q := range []string{
		`DELETE FROM group_members g WHERE NOT EXISTS (SELECT 1 FROM sessions s WHERE s.mesh = g.mesh AND s.key = g.key)`,
		`DELETE FROM session_status p WHERE NOT EXISTS (SELECT 1 FROM sessions s WHERE s.mesh = p.mesh AND s.key = p.key)`,
	} {
		if _, err := tx.Exec(ctx, q); err != nil {
			return fmt.Errorf("forget groups and presence: %w", err)
		}
	}
	if _, err := tx.Exec(ctx, `DELETE FROM group_dms WHERE expires_at <= $1`, deletedBefore); err != nil {
		return fmt.Errorf("delete group dms: %w", err)
	}
	return nil
}

// forgetTeamsOf deletes the memberships and presence of one session.
func forgetTeamsOf(ctx context.Context, tx pgx.Tx, mesh string, key []byte) error {
	for _, q := range []string{
		`DELETE FROM group_members WHERE mesh = $1 AND key = $2`,
		`DELETE FROM session_status WHERE mesh = $1 AND key = $2`,
	} {
		if _, err := tx.Exec(ctx, q, mesh, key); err != nil {
			return fmt.Errorf("forget groups and presence: %w", err)
		}
	}
	return nil
}
