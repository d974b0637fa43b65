package broker

import (
	"context"
	"time"

	"github.com/claudemesh/claudemesh/identity"
	"github.com/claudemesh/claudemesh/store"
	"github.com/claudemesh/claudemesh/wire"
)

// A node of a cluster. Several brokers share one store (store/postgres) and
// serve any session as if they were one broker: a hello on one node claims
// the session key's lease from whichever node held it (store.Cluster), and
// the nodes tell each other, through events that carry no DM content, what
// concerns another node's connections: DMs stored for them, leases claimed
// from them, members removed. A node heartbeats; when its heartbeats lapse,
// the others judge its sessions in grace from its last heartbeat, and it
// stops serving its sessions itself, so that they reconnect elsewhere.

// heartbeat records, every cfg.Heartbeat, that this node is alive. When it
// has not managed to for cfg.NodeLapse, the other nodes count this node's
// sessions as gone; it closes them (shutting_down) so that their clients
// reconnect, here or elsewhere, instead of holding a lease the cluster no
// longer sees.
func (s *Server) heartbeat(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.Heartbeat)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		bctx, cancel := context.WithTimeout(ctx, s.cfg.Heartbeat)
		err := s.cluster.Heartbeat(bctx, s.cfg.Node, s.cfg.Now())
		cancel()
		switch {
		case err == nil:
			last = time.Now()
		case ctx.Err() != nil:
			return
		case time.Since(last) > s.cfg.NodeLapse:
			s.log.Error("heartbeat lapsed: closing this node's sessions so that they reconnect", "err", err, "since", last)
			for _, sc := range s.liveConns() {
				sc.shutdown(wire.Errorf(wire.CodeShuttingDown, "this broker lost its database; reconnect"))
			}
			last = time.Now() // once per lapse
		default:
			s.log.Warn("heartbeat", "err", err)
		}
	}
}

// listen follows the other nodes' events until ctx ends.
func (s *Server) listen(ctx context.Context) {
	defer s.wg.Done()
	if err := s.cluster.Listen(ctx, func(e store.Event) { s.onEvent(ctx, e) }); err != nil {
		s.log.Error("cluster events", "err", err)
	}
}

// publish tells the other nodes e; a failure is logged: the resync after
// their listener reconnects, or the client's retry, covers it.
func (s *Server) publish(ctx context.Context, e store.Event) {
	e.Node = s.cfg.Node
	if err := s.cluster.Publish(ctx, e); err != nil && ctx.Err() == nil {
		s.log.Warn("publish cluster event", "kind", e.Kind, "err", err)
	}
}

// onEvent acts on one event for this node's connections. Events this node
// published were acted on when they were.
func (s *Server) onEvent(ctx context.Context, e store.Event) {
	if e.Node == s.cfg.Node {
		return
	}
	switch e.Kind {
	case store.EventDM:
		if sc := s.live(e.Mesh, e.Key); sc != nil {
			sc.wake()
		}
	case store.EventClaimed:
		s.mu.Lock()
		sc := s.holders[keyOf(e.Mesh, e.Key)]
		stale := sc != nil && sc.epoch < e.Epoch
		if stale {
			delete(s.holders, sc.pkey)
		}
		s.mu.Unlock()
		if stale {
			sc.log.Info("session replaced by a connection on another node", "node", e.Node)
			sc.shutdown(wire.Errorf(wire.CodeSessionReplaced, "this session connected from another process, which now holds it"))
		}
	case store.EventMemberRemoved:
		s.cutLocal(e.Mesh, e.Key)
	case store.EventResync:
		s.resync(ctx)
	}
}

// resync checks, after events may have been missed, every connection of
// this node against the shared state: one whose lease another claim took
// is replaced, and every other pump reads its queue again.
func (s *Server) resync(ctx context.Context) {
	at := s.leaseTimes()
	for _, sc := range s.liveConns() {
		l, err := s.cluster.Lease(ctx, sc.hello.Mesh, sc.hello.Key, at)
		if err != nil && ctx.Err() != nil {
			return
		}
		if err == nil && (l.Epoch != sc.epoch || l.Node != s.cfg.Node) {
			s.onEvent(ctx, store.Event{Kind: store.EventClaimed, Mesh: l.Mesh, Key: l.Key, Node: l.Node, Epoch: l.Epoch})
			continue
		}
		sc.wake()
	}
}

// cutLocal closes this node's connections of member in mesh — its
// sessions, which leave no lease, and its member connections — and
// returns how many it closed.
func (s *Server) cutLocal(mesh string, member []byte) int {
	s.mu.Lock()
	var cut []*conn
	if m := s.memberLocked(mesh, member, false); m != nil {
		for sc := range m.sessions {
			if sc.attached {
				sc.removed = true
				cut = append(cut, sc.conn)
			}
		}
		for mc := range m.conns {
			cut = append(cut, mc.conn)
		}
	}
	s.mu.Unlock()
	for _, c := range cut {
		c.shutdown(wire.Errorf(wire.CodeMemberRemoved, "this member was removed from mesh %s", mesh))
	}
	if len(cut) > 0 {
		s.log.Info("removed member's connections closed", "mesh", mesh, "member", identity.KeyID(member), "count", len(cut))
	}
	return len(cut)
}
