package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/claudemesh/claudemesh/store"
)

var (
	_ store.Dumper = (*Store)(nil)
	_ store.Loader = (*Store)(nil)
)

// Token returns the cluster's broker credential, creating it (32 random
// bytes, hex) the first time any node asks.
func (s *Store) Token(ctx context.Context) (string, error) {
	b := make([]byte, 32)
	rand.Read(b)
	var tok string
	err := s.pool.QueryRow(ctx, `WITH new AS (
			INSERT INTO cluster_settings (name, value) VALUES ('token', $1) ON CONFLICT (name) DO NOTHING RETURNING value)
		SELECT value FROM new UNION ALL SELECT value FROM cluster_settings WHERE name = 'token' LIMIT 1`, hex.EncodeToString(b)).Scan(&tok)
	if err != nil {
		return "", s.wrap("cluster credential", err)
	}
	return tok, nil
}

// Load implements store.Loader: in one transaction, into a database that
// holds no mesh, session or DM yet.
func (s *Store) Load(ctx context.Context, d *store.Dump) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var used bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM meshes) OR EXISTS (SELECT 1 FROM sessions)
				OR EXISTS (SELECT 1 FROM messages)`).Scan(&used); err != nil {
			return err
		}
		if used {
			return fmt.Errorf("%w: the database already holds meshes, sessions or DMs", store.ErrConflict)
		}
		b := &pgx.Batch{}
		for _, m := range d.Meshes {
			b.Queue(`INSERT INTO meshes (name, created_at) VALUES ($1, $2)`, m.Name, m.CreatedAt)
		}
		for _, m := range d.Members {
			b.Queue(`INSERT INTO members (mesh, key, name, role, joined_at) VALUES ($1, $2, $3, $4, $5)`,
				m.Mesh, m.Key, m.Name, m.Role, m.JoinedAt)
		}
		for _, inv := range d.Invites {
			b.Queue(`INSERT INTO invites (hash, mesh, created_by, uses_left, expires_at, revoked, created_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7)`, inv.Hash, inv.Mesh, inv.CreatedBy, inv.Uses, inv.ExpiresAt, inv.Revoked, inv.CreatedAt)
		}
		for _, ss := range d.Sessions {
			b.Queue(`INSERT INTO sessions (mesh, key, session_id, name, project_dir, first_seen, last_seen, member_key, kind)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, ss.Mesh, ss.PublicKey, ss.SessionID, ss.Name, ss.ProjectDir,
				ss.FirstSeen, ss.LastSeen, nullBytes(ss.Member), ss.Kind)
		}
		type queue struct {
			mesh string
			to   string
		}
		seqs := make(map[queue]int64)
		for _, m := range d.Messages {
			q := queue{m.Mesh, string(m.To)}
			seqs[q]++
			b.Queue(`INSERT INTO messages (mesh, to_key, seq, id, from_key, from_name, from_session, sender, nonce, box, box_len,
					created_at, expires_at, received_at, pushed_at, read_at, acked, cleared)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)`,
				m.Mesh, m.To, seqs[q], m.ID, m.From, m.FromName, m.FromSession, m.SenderKey(), m.Nonce, m.Box, m.BoxLen,
				m.CreatedAt, m.ExpiresAt, event(m.ReceivedAt), event(m.PushedAt), event(m.ReadAt), m.Acked, m.Cleared)
		}
		for _, g := range d.Groups {
			b.Queue(`INSERT INTO group_members (mesh, grp, key, joined_at) VALUES ($1, $2, $3, $4)`, g.Mesh, g.Group, g.Key, g.JoinedAt)
		}
		for _, g := range d.GroupDMs {
			b.Queue(`INSERT INTO group_dms (id, send_id, grp, expires_at) VALUES ($1, $2, $3, $4)`, g.ID, g.SendID, g.Group, g.ExpiresAt)
		}
		for _, p := range d.Presences {
			b.Queue(`INSERT INTO session_status (`+presenceColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
				p.Mesh, p.Key, p.Summary, p.Availability, p.Activity, event(p.ActivitySince), p.UpdatedAt)
		}
		for q, seq := range seqs {
			b.Queue(`INSERT INTO queues (mesh, to_key, last_seq) VALUES ($1, $2, $3)`, q.mesh, []byte(q.to), seq)
		}
		if d.Token != "" {
			b.Queue(`INSERT INTO cluster_settings (name, value) VALUES ('token', $1)
				ON CONFLICT (name) DO UPDATE SET value = excluded.value`, d.Token)
		}
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return s.wrap("load", err)
	}
	return nil
}

// Dump implements store.Dumper, in one repeatable-read transaction.
func (s *Store) Dump(ctx context.Context) (*store.Dump, error) {
	d := &store.Dump{}
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		rows, _ := tx.Query(ctx, `SELECT name, created_at FROM meshes ORDER BY name`)
		var err error
		d.Meshes, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.MeshRow, error) {
			var m store.MeshRow
			err := r.Scan(&m.Name, &m.CreatedAt)
			m.CreatedAt = m.CreatedAt.UTC()
			return m, err
		})
		if err != nil {
			return fmt.Errorf("meshes: %w", err)
		}
		rows, _ = tx.Query(ctx, `SELECT `+memberColumns+` FROM members ORDER BY mesh, name`)
		if d.Members, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Member, error) { return scanMember(r) }); err != nil {
			return fmt.Errorf("members: %w", err)
		}
		rows, _ = tx.Query(ctx, `SELECT hash, mesh, created_by, uses_left, expires_at, revoked, created_at FROM invites ORDER BY hash`)
		d.Invites, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.InviteRow, error) {
			var inv store.InviteRow
			err := r.Scan(&inv.Hash, &inv.Mesh, &inv.CreatedBy, &inv.Uses, &inv.ExpiresAt, &inv.Revoked, &inv.CreatedAt)
			inv.ExpiresAt, inv.CreatedAt = inv.ExpiresAt.UTC(), inv.CreatedAt.UTC()
			return inv, err
		})
		if err != nil {
			return fmt.Errorf("invites: %w", err)
		}
		rows, _ = tx.Query(ctx, `SELECT `+sessionColumns+` FROM sessions ORDER BY mesh, key`)
		if d.Sessions, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Session, error) { return scanSession(r) }); err != nil {
			return fmt.Errorf("sessions: %w", err)
		}
		rows, _ = tx.Query(ctx, `SELECT id, mesh, from_key, from_name, from_session, to_key, sender, nonce, box, box_len,
				created_at, expires_at, received_at, pushed_at, read_at, acked, cleared
			FROM messages ORDER BY mesh, to_key, seq`)
		d.Messages, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.MessageRow, error) {
			var m store.MessageRow
			var received, pushed, read *time.Time
			err := r.Scan(&m.ID, &m.Mesh, &m.From, &m.FromName, &m.FromSession, &m.To, &m.Sender, &m.Nonce, &m.Box, &m.BoxLen,
				&m.CreatedAt, &m.ExpiresAt, &received, &pushed, &read, &m.Acked, &m.Cleared)
			m.CreatedAt, m.ExpiresAt = m.CreatedAt.UTC(), m.ExpiresAt.UTC()
			m.ReceivedAt, m.PushedAt, m.ReadAt = at(received), at(pushed), at(read)
			return m, err
		})
		if err != nil {
			return fmt.Errorf("messages: %w", err)
		}
		rows, _ = tx.Query(ctx, `SELECT mesh, grp, key, joined_at FROM group_members ORDER BY mesh, grp, key`)
		if d.Groups, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.GroupRow, error) {
			var g store.GroupRow
			err := r.Scan(&g.Mesh, &g.Group, &g.Key, &g.JoinedAt)
			g.JoinedAt = g.JoinedAt.UTC()
			return g, err
		}); err != nil {
			return fmt.Errorf("groups: %w", err)
		}
		rows, _ = tx.Query(ctx, `SELECT id, send_id, grp, expires_at FROM group_dms ORDER BY id`)
		if d.GroupDMs, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.GroupDMRow, error) {
			var g store.GroupDMRow
			err := r.Scan(&g.ID, &g.SendID, &g.Group, &g.ExpiresAt)
			g.ExpiresAt = g.ExpiresAt.UTC()
			return g, err
		}); err != nil {
			return fmt.Errorf("group dms: %w", err)
		}
		rows, _ = tx.Query(ctx, `SELECT `+presenceColumns+` FROM session_status ORDER BY mesh, key`)
		if d.Presences, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Presence, error) { return scanPresence(r) }); err != nil {
			return fmt.Errorf("presences: %w", err)
		}
		err = tx.QueryRow(ctx, `SELECT value FROM cluster_settings WHERE name = 'token'`).Scan(&d.Token)
		if errors.Is(err, pgx.ErrNoRows) {
			err = nil
		}
		return err
	})
	if err != nil {
		return nil, s.wrap("dump", err)
	}
	return d, nil
}
