package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/claudemesh/claudemesh/store"
)

// UpsertSession implements store.Store. A new row takes FirstSeen, or
// LastSeen when FirstSeen is zero.
func (s *Store) UpsertSession(ctx context.Context, sess store.Session) error {
	if len(sess.PublicKey) == 0 {
		return errors.New("upsert session: empty public key")
	}
	first := cmp.Or(sess.FirstSeen, sess.LastSeen)
	taken := false
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if sess.SessionID != "" {
			// The writer runs one operation at a time: no other key can
			// register the id between this check and the insert.
			err := s.txStmt(ctx, tx, qSessionIDTaken).QueryRowContext(ctx, sess.Mesh, sess.SessionID, sess.PublicKey).
				Scan(new(int))
			if err == nil {
				taken = true
				return nil
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
		}
		_, err := s.txStmt(ctx, tx, qUpsertSession).ExecContext(ctx, sess.Mesh, sess.PublicKey, sess.SessionID, sess.Name,
			sess.ProjectDir, nanos(first), nanos(sess.LastSeen), nullBytes(sess.Member), sess.Kind)
		return err
	})
	if err == nil && taken {
		err = store.ErrSessionTaken
	}
	if err != nil {
		return fmt.Errorf("upsert session %s: %w", sess.SessionID, err)
	}
	return nil
}

// ForgetSession implements store.Store.
func (s *Store) ForgetSession(ctx context.Context, mesh string, key []byte, now time.Time) (bool, error) {
	gone := false
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE mesh = ? AND key = ? AND NOT EXISTS
			(SELECT 1 FROM messages WHERE mesh = ? AND to_key = ? AND acked = 0 AND expires_at > ?)`,
			mesh, key, mesh, key, nanos(now))
		if err != nil {
			return err
		}
		var n int
		err = tx.QueryRowContext(ctx, `SELECT count(*) FROM sessions WHERE mesh = ? AND key = ?`, mesh, key).Scan(&n)
		gone = n == 0
		if err != nil || !gone {
			return err
		}
		return forgetTeamsOf(ctx, tx, mesh, key)
	})
	if err != nil {
		return false, fmt.Errorf("forget session: %w", err)
	}
	return gone, nil
}

const sessionColumns = `mesh, key, session_id, name, project_dir, first_seen, last_seen, member_key, kind`

// nullBytes maps an empty slice to SQL NULL.
func nullBytes(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

func scanSession(row interface{ Scan(...any) error }) (store.Session, error) {
	var (
		sess        store.Session
		first, last int64
	)
	err := row.Scan(&sess.Mesh, &sess.PublicKey, &sess.SessionID, &sess.Name, &sess.ProjectDir, &first, &last, &sess.Member, &sess.Kind)
	sess.FirstSeen, sess.LastSeen = fromNanos(first), fromNanos(last)
	return sess, err
}

// Session implements store.Store.
func (s *Store) Session(ctx context.Context, mesh string, key []byte) (store.Session, error) {
	sess, err := scanSession(s.rs[qSession].QueryRowContext(ctx, mesh, key))
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.Session{}, s.readErr("session", err)
	}
	return sess, nil
}

// Sessions implements store.Store. Sessions seen at the same instant come in
// key order.
func (s *Store) Sessions(ctx context.Context, mesh string, since time.Time) ([]store.Session, error) {
	return readAll(ctx, s, "sessions", func(r *sql.Rows) (store.Session, error) { return scanSession(r) },
		`SELECT `+sessionColumns+` FROM sessions WHERE mesh = ? AND last_seen >= ? ORDER BY last_seen DESC, key`,
		mesh, nanos(since))
}
