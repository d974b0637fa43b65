package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"time"

	"github.com/claudemesh/claudemesh/store"
)

// CreateMesh implements store.Members.
func (s *Store) CreateMesh(ctx context.Context, mesh string, owner store.Member, now time.Time) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO meshes (name, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING`, mesh, now)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrConflict
		}
		_, err = tx.Exec(ctx, `INSERT INTO members (mesh, key, name, role, joined_at) VALUES ($1, $2, $3, 'owner', $4)`,
			mesh, owner.Key, owner.Name, now)
		return err
	})
	if err != nil {
		return s.wrap("create mesh "+mesh, err)
	}
	return nil
}

// MeshExists implements store.Members.
func (s *Store) MeshExists(ctx context.Context, mesh string) (bool, error) {
	var ok bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM meshes WHERE name = $1)`, mesh).Scan(&ok); err != nil {
		return false, s.wrap("mesh exists", err)
	}
	return ok, nil
}

const memberColumns = `mesh, key, name, role, joined_at`

func scanMember(row pgx.Row) (store.Member, error) {
	var m store.Member
	err := row.Scan(&m.Mesh, &m.Key, &m.Name, &m.Role, &m.JoinedAt)
	m.JoinedAt = m.JoinedAt.UTC()
	return m, err
}

// Member implements store.Members.
func (s *Store) Member(ctx context.Context, mesh string, key []byte) (store.Member, error) {
	m, err := scanMember(s.pool.QueryRow(ctx, `SELECT `+memberColumns+` FROM members WHERE mesh = $1 AND key = $2`, mesh, key))
	if errors.Is(err, pgx.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.Member{}, s.wrap("member", err)
	}
	return m, nil
}

// MemberList implements store.Members.
func (s *Store) MemberList(ctx context.Context, mesh string) ([]store.Member, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+memberColumns+` FROM members WHERE mesh = $1 ORDER BY name`, mesh)
	if err != nil {
		return nil, s.wrap("members", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Member, error) { return scanMember(row) })
	if err != nil {
		return nil, s.wrap("members", err)
	}
	return out, nil
}

// RemoveMember implements store.Members.
func (s *Store) RemoveMember(ctx context.Context, mesh string, key []byte) (bool, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM members WHERE mesh = $1 AND key = $2`, mesh, key)
	if err != nil {
		return false, s.wrap("remove member", err)
	}
	return tag.RowsAffected() > 0, nil
}

// CreateInvite implements store.Members.
func (s *Store) CreateInvite(ctx context.Context, inv store.Invite) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO invites (hash, mesh, created_by, uses_left, expires_at, created_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, inv.Hash, inv.Mesh, inv.CreatedBy, inv.Uses, inv.ExpiresAt, inv.CreatedAt)
	if err != nil {
		return s.wrap("create invite", err)
	}
	return nil
}

// RedeemInvite implements store.Members. The invite's row is locked while
// it is used, so that concurrent joins never spend more uses than it has.
func (s *Store) RedeemInvite(ctx context.Context, hash []byte, m store.Member, now time.Time) (store.Member, error) {
	var added store.Member
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var mesh string
		err := tx.QueryRow(ctx, `SELECT mesh FROM invites
			WHERE hash = $1 AND NOT revoked AND uses_left > 0 AND expires_at > $2 FOR UPDATE`, hash, now).Scan(&mesh)
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrInvite
		}
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO members (mesh, key, name, role, joined_at) VALUES ($1, $2, $3, 'member', $4)`,
			mesh, m.Key, m.Name, now)
		if isUnique(err, "") {
			return store.ErrConflict
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE invites SET uses_left = uses_left - 1 WHERE hash = $1`, hash); err != nil {
			return err
		}
		added = store.Member{Mesh: mesh, Key: m.Key, Name: m.Name, Role: "member", JoinedAt: now.UTC().Truncate(time.Microsecond)}
		return nil
	})
	if err != nil {
		return store.Member{}, s.wrap("redeem invite", err)
	}
	return added, nil
}

// RevokeInvite implements store.Members.
func (s *Store) RevokeInvite(ctx context.Context, mesh string, hash []byte) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE invites SET revoked = true WHERE hash = $1 AND mesh = $2`, hash, mesh)
	if err != nil {
		return false, s.wrap("revoke invite", err)
	}
	return tag.RowsAffected() > 0, nil
}
