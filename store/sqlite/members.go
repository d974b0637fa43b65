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

// CreateMesh implements store.Members.
func (s *Store) CreateMesh(ctx context.Context, mesh string, owner store.Member, now time.Time) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO meshes (name, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING`, mesh, nanos(now))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return store.ErrConflict
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO members (mesh, key, name, role, joined_at) VALUES (?, ?, ?, 'owner', ?)`,
			mesh, owner.Key, owner.Name, nanos(now))
		return err
	})
	if err != nil {
		return fmt.Errorf("create mesh %s: %w", mesh, err)
	}
	return nil
}

// MeshExists implements store.Members.
func (s *Store) MeshExists(ctx context.Context, mesh string) (bool, error) {
	var n int
	if err := s.rs[qMeshExists].QueryRowContext(ctx, mesh).Scan(&n); err != nil {
		return false, s.readErr("mesh exists", err)
	}
	return n > 0, nil
}

const memberColumns = `mesh, key, name, role, joined_at`

func scanMember(row interface{ Scan(...any) error }) (store.Member, error) {
	var m store.Member
	var joined int64
	err := row.Scan(&m.Mesh, &m.Key, &m.Name, &m.Role, &joined)
	m.JoinedAt = fromNanos(joined)
	return m, err
}

// Member implements store.Members.
func (s *Store) Member(ctx context.Context, mesh string, key []byte) (store.Member, error) {
	m, err := scanMember(s.rs[qMember].QueryRowContext(ctx, mesh, key))
	if errors.Is(err, sql.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.Member{}, s.readErr("member", err)
	}
	return m, nil
}

// MemberList implements store.Members.
func (s *Store) MemberList(ctx context.Context, mesh string) ([]store.Member, error) {
	return readAll(ctx, s, "members", func(r *sql.Rows) (store.Member, error) { return scanMember(r) },
		`SELECT `+memberColumns+` FROM members WHERE mesh = ? ORDER BY name`, mesh)
}

// RemoveMember implements store.Members.
func (s *Store) RemoveMember(ctx context.Context, mesh string, key []byte) (bool, error) {
	var removed bool
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM members WHERE mesh = ? AND key = ?`, mesh, key)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		removed = n > 0
		return err
	})
	if err != nil {
		return false, fmt.Errorf("remove member: %w", err)
	}
	return removed, nil
}

// CreateInvite implements store.Members.
func (s *Store) CreateInvite(ctx context.Context, inv store.Invite) error {
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO invites (hash, mesh, created_by, uses_left, expires_at, created_at)
			VALUES (?, ?, ?, ?, ?, ?)`, inv.Hash, inv.Mesh, inv.CreatedBy, inv.Uses, nanos(inv.ExpiresAt), nanos(inv.CreatedAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("create invite: %w", err)
	}
	return nil
}

// RedeemInvite implements store.Members.
func (s *Store) RedeemInvite(ctx context.Context, hash []byte, m store.Member, now time.Time) (store.Member, error) {
	var added store.Member
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		var mesh string
		err := tx.QueryRowContext(ctx, `SELECT mesh FROM invites
			WHERE hash = ? AND revoked = 0 AND uses_left > 0 AND expires_at > ?`, hash, nanos(now)).Scan(&mesh)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrInvite
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO members (mesh, key, name, role, joined_at) VALUES (?, ?, ?, 'member', ?)`,
			mesh, m.Key, m.Name, nanos(now))
		if err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed") {
			return store.ErrConflict
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE invites SET uses_left = uses_left - 1 WHERE hash = ?`, hash); err != nil {
			return err
		}
		added = store.Member{Mesh: mesh, Key: m.Key, Name: m.Name, Role: "member", JoinedAt: fromNanos(nanos(now))}
		return nil
	})
	if err != nil {
		return store.Member{}, fmt.Errorf("redeem invite: %w", err)
	}
	return added, nil
}

// RevokeInvite implements store.Members.
func (s *Store) RevokeInvite(ctx context.Context, mesh string, hash []byte) (bool, error) {
	var revoked bool
	err := s.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE invites SET revoked = 1 WHERE hash = ? AND mesh = ?`, hash, mesh)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		revoked = n > 0
		return err
	})
	if err != nil {
		return false, fmt.Errorf("revoke invite: %w", err)
	}
	return revoked, nil
}
