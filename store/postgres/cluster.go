package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/claudemesh/claudemesh/store"
)

var _ store.Cluster = (*Store)(nil)

// eventChannel is the NOTIFY channel of cluster events.
const eventChannel = "claudemesh_events"

// Heartbeat implements store.Cluster.
func (s *Store) Heartbeat(ctx context.Context, node string, now time.Time) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO nodes (name, heartbeat_at) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET heartbeat_at = greatest(nodes.heartbeat_at, excluded.heartbeat_at)`, node, now)
	if err != nil {
		return s.wrap("heartbeat", err)
	}
	return nil
}

const leaseColumns = `p.mesh, p.key, p.node, p.conn, p.epoch, p.instance, p.session_id, p.name, p.project_dir, p.member_key,
	p.since, p.dropped_at, n.heartbeat_at, p.kind`

// scanLease reads a lease and judges its state at `at`.
func scanLease(row pgx.Row, lt store.LeaseTimes) (store.Lease, error) {
	var l store.Lease
	var conn int64
	var dropped, heartbeat *time.Time
	err := row.Scan(&l.Mesh, &l.Key, &l.Node, &conn, &l.Epoch, &l.Instance, &l.SessionID, &l.Name, &l.ProjectDir, &l.Member,
		&l.Since, &dropped, &heartbeat, &l.Kind)
	l.Conn, l.Since, l.DroppedAt = uint64(conn), l.Since.UTC(), at(dropped)
	l = lt.Judge(l, at(heartbeat))
	return l, err
}

// Claim implements store.Cluster.
func (s *Store) Claim(ctx context.Context, l store.Lease, standby bool, at store.LeaseTimes) (store.Lease, int64, error) {
	var prev store.Lease
	var epoch int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for {
			p, err := scanLease(tx.QueryRow(ctx, `SELECT `+leaseColumns+` FROM presence p LEFT JOIN nodes n ON n.name = p.node
				WHERE p.mesh = $1 AND p.key = $2 FOR UPDATE OF p`, l.Mesh, l.Key), at)
			found := err == nil
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
			if found && p.State != store.LeaseOffline {
				prev = p
				if standby && p.Instance != l.Instance {
					return store.ErrLeaseHeld
				}
			}
			if err := tx.QueryRow(ctx, `SELECT nextval('presence_epoch')`).Scan(&epoch); err != nil {
				return err
			}
			args := []any{l.Mesh, l.Key, l.Node, int64(l.Conn), epoch, l.Instance, l.SessionID, l.Name, l.ProjectDir,
				nullBytes(l.Member), l.Since, l.Kind}
			if found {
				_, err = tx.Exec(ctx, `UPDATE presence SET node = $3, conn = $4, epoch = $5, instance = $6, session_id = $7,
						name = $8, project_dir = $9, member_key = $10, since = $11, kind = $12, dropped_at = NULL
					WHERE mesh = $1 AND key = $2`, args...)
				return err
			}
			tag, err := tx.Exec(ctx, `INSERT INTO presence (mesh, key, node, conn, epoch, instance, session_id, name,
					project_dir, member_key, since, kind) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
				ON CONFLICT (mesh, key) DO NOTHING`, args...)
			if err != nil || tag.RowsAffected() == 1 {
				return err
			}
			// Another node claimed the key first: judge its lease.
		}
	})
	if errors.Is(err, store.ErrLeaseHeld) {
		return prev, 0, err
	}
	if err != nil {
		return store.Lease{}, 0, s.wrap("claim lease", err)
	}
	return prev, epoch, nil
}

// Release implements store.Cluster.
func (s *Store) Release(ctx context.Context, mesh string, key []byte, epoch int64, now time.Time, bye bool) (bool, error) {
	q := `UPDATE presence SET dropped_at = $4 WHERE mesh = $1 AND key = $2 AND epoch = $3 AND dropped_at IS NULL`
	args := []any{mesh, key, epoch, now}
	if bye {
		q, args = `DELETE FROM presence WHERE mesh = $1 AND key = $2 AND epoch = $3`, args[:3]
	}
	tag, err := s.pool.Exec(ctx, q, args...)
	if err != nil {
		return false, s.wrap("release lease", err)
	}
	return tag.RowsAffected() == 1, nil
}

// Lease implements store.Cluster.
func (s *Store) Lease(ctx context.Context, mesh string, key []byte, at store.LeaseTimes) (store.Lease, error) {
	l, err := scanLease(s.pool.QueryRow(ctx, `SELECT `+leaseColumns+` FROM presence p LEFT JOIN nodes n ON n.name = p.node
		WHERE p.mesh = $1 AND p.key = $2`, mesh, key), at)
	if errors.Is(err, pgx.ErrNoRows) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.Lease{}, s.wrap("lease", err)
	}
	return l, nil
}

// Leases implements store.Cluster.
func (s *Store) Leases(ctx context.Context, mesh string, at store.LeaseTimes) ([]store.Lease, error) {
	return s.leases(ctx, `p.mesh = $1`, mesh, at)
}

// NodeLeases implements store.Cluster.
func (s *Store) NodeLeases(ctx context.Context, node string, at store.LeaseTimes) ([]store.Lease, error) {
	return s.leases(ctx, `p.node = $1`, node, at)
}

// leases returns the leases, online or in grace, that where holds for arg.
func (s *Store) leases(ctx context.Context, where, arg string, at store.LeaseTimes) ([]store.Lease, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+leaseColumns+` FROM presence p LEFT JOIN nodes n ON n.name = p.node
		WHERE `+where, arg)
	if err != nil {
		return nil, s.wrap("leases", err)
	}
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Lease, error) { return scanLease(r, at) })
	if err != nil {
		return nil, s.wrap("leases", err)
	}
	out := all[:0]
	for _, l := range all {
		if l.State != store.LeaseOffline {
			out = append(out, l)
		}
	}
	return out, nil
}

// ReleaseNode implements store.Cluster.
func (s *Store) ReleaseNode(ctx context.Context, node string, at time.Time) error {
	if _, err := s.pool.Exec(ctx, `UPDATE presence SET dropped_at = $2 WHERE node = $1 AND dropped_at IS NULL`, node, at); err != nil {
		return s.wrap("release node "+node, err)
	}
	return nil
}

// DropLeases implements store.Cluster.
func (s *Store) DropLeases(ctx context.Context, mesh string, member []byte) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM presence WHERE mesh = $1 AND member_key = $2`, mesh, member); err != nil {
		return s.wrap("drop leases", err)
	}
	return nil
}

// SweepLeases implements store.Cluster. Nodes may sweep at once: a lease
// another node is sweeping or claiming is skipped.
func (s *Store) SweepLeases(ctx context.Context, at store.LeaseTimes) ([]store.Lease, error) {
	var gone []store.Lease
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT `+leaseColumns+` FROM presence p LEFT JOIN nodes n ON n.name = p.node
			WHERE p.dropped_at <= $1 OR (p.dropped_at IS NULL AND $3 AND (n.heartbeat_at IS NULL OR n.heartbeat_at < $2))
			FOR UPDATE OF p SKIP LOCKED`, at.Now.Add(-at.Grace), at.Now.Add(-at.Lapse), at.Lapse > 0)
		if err != nil {
			return err
		}
		all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Lease, error) { return scanLease(r, at) })
		if err != nil {
			return err
		}
		for _, l := range all {
			if l.State != store.LeaseOffline {
				continue
			}
			if _, err := tx.Exec(ctx, `DELETE FROM presence WHERE mesh = $1 AND key = $2 AND epoch = $3`, l.Mesh, l.Key, l.Epoch); err != nil {
				return err
			}
			gone = append(gone, l)
		}
		return nil
	})
	if err != nil {
		return nil, s.wrap("sweep leases", err)
	}
	return gone, nil
}

// Publish implements store.Cluster.
func (s *Store) Publish(ctx context.Context, e store.Event) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, eventChannel, string(b)); err != nil {
		return s.wrap("publish "+e.Kind, err)
	}
	return nil
}

// Listen implements store.Cluster on a connection of its own, outside the
// pool, which it opens again (backing off up to 2 s) when it breaks.
func (s *Store) Listen(ctx context.Context, f func(store.Event)) error {
	backoff := 50 * time.Millisecond
	for {
		err := s.listenOnce(ctx, f)
		if ctx.Err() != nil {
			return nil
		}
		s.log.Warn("cluster event listener lost its connection; reconnecting", "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

func (s *Store) listenOnce(ctx context.Context, f func(store.Event)) error {
	conn, err := pgx.ConnectConfig(ctx, s.pool.Config().ConnConfig.Copy())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, `LISTEN `+eventChannel); err != nil {
		return err
	}
	f(store.Event{Kind: store.EventResync})
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		var e store.Event
		if err := json.Unmarshal([]byte(n.Payload), &e); err != nil {
			s.log.Warn("cluster event not understood", "err", fmt.Errorf("%w: %q", err, n.Payload))
			continue
		}
		f(e)
	}
}
