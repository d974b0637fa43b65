package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/claudemesh/claudemesh/store"
)

// UpsertSession implements store.Store. A new row takes FirstSeen, or
// LastSeen when FirstSeen is zero.
func (s *Store) UpsertSession(ctx context.Context, sess store.Session) error {
	if len(sess.PublicKey) == 0 {
		return errors.New("upsert session: empty public key")
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO sessions
		(mesh, key, session_id, name, project_dir, first_seen, last_seen, member_key, kind) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (mesh, key) DO UPDATE SET session_id = excluded.session_id, name = excluded.name,
			project_dir = excluded.project_dir, last_seen = excluded.last_seen,
			member_key = coalesce(sessions.member_key, excluded.member_key), kind = excluded.kind`,
		sess.Mesh, sess.PublicKey, sess.SessionID, sess.Name, sess.ProjectDir, cmp.Or(sess.FirstSeen, sess.LastSeen),
		sess.LastSeen, nullBytes(sess.Member), sess.Kind)
	if isUnique(err, "sessions_session_id") {
		err = store.ErrSessionTaken
	}
	if err != nil {
		return s.wrap("upsert session "+sess.SessionID, err)
	}
	return nil
}

// ForgetSession implements store.Store.
func (s *Store) ForgetSession(ctx context.Context, mesh string, key []byte, now time.Time) (bool, error) {
	var kept bool
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM sessions WHERE mesh = $1 AND key = $2 AND NOT EXISTS
			(SELECT 1 FROM messages WHERE mesh = $1 AND to_key = $2 AND NOT acked AND expires_at > $3)`,
			mesh, key, now)
		if err != nil {
			return err
		}
		err = tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM sessions WHERE mesh = $1 AND key = $2)`, mesh, key).Scan(&kept)
		if err != nil || kept {
			return err
		}
		return forgetTeamsOf(ctx, tx, mesh, key)
	})
	if err != nil {
		return false, s.wrap("forget session", err)
	}
	return !kept, nil
}

// nullBytes maps an empty slice to SQL NULL.
func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

const sessionColumns = `mesh, key, session_id, name, project_dir, first_seen, last_seen, member_key, kind`

func scanSession(row pgx.Row) (store.Session, error) {
	var sess store.Session
	err := row.Scan(&sess.Mesh, &sess.PublicKey, &sess.SessionID, &sess.Name, &sess.ProjectDir, &sess.FirstSeen, &sess.LastSeen, &sess.Member, &sess.Kind)
	sess.FirstSeen, sess.LastSeen = sess.FirstSeen.UTC(), sess.LastSeen.UTC()
	return sess, err
}

// Session implements store.Store.
func (s *Store) Session(ctx context.Context, mesh string, key []byte) (store.Session, error) {
	sess, err := scanSession(s.pool.QueryRow(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE mesh = $1 AND key = $2`, mesh, key))
	if errors.Is(err, pgx.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.Session{}, s.wrap("session", err)
	}
	return sess, nil
}

// Sessions implements store.Store. Sessions seen at the same instant come in
// key order.
func (s *Store) Sessions(ctx context.Context, mesh string, since time.Time) ([]store.Session, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+sessionColumns+` FROM sessions
		WHERE mesh = $1 AND last_seen >= $2 ORDER BY last_seen DESC, key`, mesh, since)
	if err != nil {
		return nil, s.wrap("sessions", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Session, error) { return scanSession(row) })
	if err != nil {
		return nil, s.wrap("sessions", fmt.Errorf("%w", err))
	}
	return out, nil
}
