package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/claudemesh/claudemesh/store"
)

var _ store.Dumper = (*Store)(nil)

// Dump implements store.Dumper: it reads the whole database in one read
// transaction, so the copy is consistent. d.Token is left empty: the
// credential lives beside the database, not in it.
func (s *Store) Dump(ctx context.Context) (*store.Dump, error) {
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, s.readErr("dump", err)
	}
	defer tx.Rollback()
	d := &store.Dump{}
	each := func(what, query string, scan func(*sql.Rows) error) error {
		rows, err := tx.QueryContext(ctx, query)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		defer rows.Close()
		for rows.Next() {
			if err := scan(rows); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
		}
		return rows.Err()
	}
	err = each("meshes", `SELECT name, created_at FROM meshes ORDER BY name`, func(r *sql.Rows) error {
		var m store.MeshRow
		var created int64
		err := r.Scan(&m.Name, &created)
		m.CreatedAt = fromNanos(created)
		d.Meshes = append(d.Meshes, m)
		return err
	})
	if err == nil {
		err = each("members", `SELECT `+memberColumns+` FROM members ORDER BY mesh, name`, func(r *sql.Rows) error {
			m, err := scanMember(r)
			d.Members = append(d.Members, m)
			return err
		})
	}
	if err == nil {
		err = each("invites", `SELECT hash, mesh, created_by, uses_left, expires_at, revoked, created_at FROM invites`, func(r *sql.Rows) error {
			var inv store.InviteRow
			var expires, created int64
			err := r.Scan(&inv.Hash, &inv.Mesh, &inv.CreatedBy, &inv.Uses, &expires, &inv.Revoked, &created)
			inv.ExpiresAt, inv.CreatedAt = fromNanos(expires), fromNanos(created)
			d.Invites = append(d.Invites, inv)
			return err
		})
	}
	if err == nil {
		err = each("sessions", `SELECT `+sessionColumns+` FROM sessions ORDER BY mesh, key`, func(r *sql.Rows) error {
			sess, err := scanSession(r)
			d.Sessions = append(d.Sessions, sess)
			return err
		})
	}
	if err == nil {
		err = each("messages", `SELECT id, mesh, from_key, from_name, from_session, to_key, sender, nonce, box, box_len,
				created_at, expires_at, received_at, pushed_at, read_at, acked, cleared
			FROM messages ORDER BY seq`, func(r *sql.Rows) error {
			var m store.MessageRow
			var created, expires, received, pushed, read int64
			err := r.Scan(&m.ID, &m.Mesh, &m.From, &m.FromName, &m.FromSession, &m.To, &m.Sender, &m.Nonce, &m.Box, &m.BoxLen,
				&created, &expires, &received, &pushed, &read, &m.Acked, &m.Cleared)
			m.CreatedAt, m.ExpiresAt = fromNanos(created), fromNanos(expires)
			m.ReceivedAt, m.PushedAt, m.ReadAt = fromEventNanos(received), fromEventNanos(pushed), fromEventNanos(read)
			d.Messages = append(d.Messages, m)
			return err
		})
	}
	if err == nil {
		err = each("groups", `SELECT mesh, grp, key, joined_at FROM group_members ORDER BY mesh, grp, key`, func(r *sql.Rows) error {
			var g store.GroupRow
			var joined int64
			err := r.Scan(&g.Mesh, &g.Group, &g.Key, &joined)
			g.JoinedAt = fromNanos(joined)
			d.Groups = append(d.Groups, g)
			return err
		})
	}
	if err == nil {
		err = each("group dms", `SELECT id, send_id, grp, expires_at FROM group_dms ORDER BY id`, func(r *sql.Rows) error {
			var g store.GroupDMRow
			var expires int64
			err := r.Scan(&g.ID, &g.SendID, &g.Group, &expires)
			g.ExpiresAt = fromNanos(expires)
			d.GroupDMs = append(d.GroupDMs, g)
			return err
		})
	}
	if err == nil {
		err = each("presences", `SELECT `+presenceColumns+` FROM session_status ORDER BY mesh, key`, func(r *sql.Rows) error {
			p, err := scanPresence(r.Scan)
			d.Presences = append(d.Presences, p)
			return err
		})
	}
	if err != nil {
		return nil, s.readErr("dump", err)
	}
	return d, nil
}
