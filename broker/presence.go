package broker

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"time"

	"github.com/claudemesh/claudemesh/identity"
	"github.com/claudemesh/claudemesh/store"
	"github.com/claudemesh/claudemesh/wire"
)

// Presence. Each session key has one lease, kept by the cluster
// (store.Cluster: store/memory for a broker alone, store/postgres for
// several brokers on one database): the node and connection holding it
// and the epoch of that claim. A hello claims the lease; the connection
// that held it is replaced, here or on another node (EventClaimed), and a
// late release by an older claim changes nothing. This node keeps, in
// Server.holders, which of its own connections holds each lease, to push DMs
// to it.

type presenceKey struct {
	mesh string
	key  [wire.KeySize]byte
}

func keyOf(mesh string, k []byte) presenceKey {
	pk := presenceKey{mesh: mesh}
	copy(pk.key[:], k)
	return pk
}

// leaseTimes is how this broker judges leases now.
func (s *Server) leaseTimes() store.LeaseTimes {
	return store.LeaseTimes{Now: s.cfg.Now(), Grace: s.cfg.Grace, Lapse: s.lapse}
}

// attach makes sc the live connection of its session key, reattaching a
// lease online or in grace. It returns the connection of this node it
// displaced, if any, and whether the lease was online under another client
// instance (a replacement). A standby hello is refused while the session
// is online or in grace under another instance.
func (s *Server) attach(ctx context.Context, sc *sessionConn) (old *sessionConn, other bool, refused *wire.Error) {
	h := sc.hello
	prev, epoch, err := s.cluster.Claim(ctx, store.Lease{
		Mesh: h.Mesh, Key: h.Key, Node: s.cfg.Node, Conn: sc.id, Instance: h.Instance,
		SessionID: h.SessionID, Name: h.Name, ProjectDir: h.ProjectDir, Kind: h.Kind, Member: sc.member, Since: sc.since,
	}, h.Standby, s.leaseTimes())
	if errors.Is(err, store.ErrLeaseHeld) {
		if prev.State == store.LeaseOnline {
			return nil, false, wire.Errorf(wire.CodeSessionActive, "this session is active in another process (connected since %s)", prev.Since.UTC().Format(time.RFC3339))
		}
		return nil, false, wire.Errorf(wire.CodeSessionActive, "this session's other process is reconnecting; it is reserved for it until %s", prev.DroppedAt.Add(s.cfg.Grace).UTC().Format(time.RFC3339))
	}
	if e := storeRefusal(sc.log, opClaim, err, about{}); e != nil {
		return nil, false, e
	}
	other = prev.State == store.LeaseOnline && !(prev.Instance != "" && prev.Instance == h.Instance)
	s.mu.Lock()
	old = s.holders[sc.pkey]
	if old != nil && old.epoch > epoch {
		// A later hello of this node claimed the key meanwhile.
		s.mu.Unlock()
		return nil, false, wire.Errorf(wire.CodeSessionReplaced, "this session connected again meanwhile; this connection is stale")
	}
	sc.epoch, sc.attached = epoch, true
	s.holders[sc.pkey] = sc
	if other {
		s.replacements++
	}
	s.mu.Unlock()
	if prev.State == store.LeaseOnline && prev.Node != s.cfg.Node {
		s.publish(ctx, store.Event{Kind: store.EventClaimed, Mesh: h.Mesh, Key: h.Key, Epoch: epoch})
	}
	return old, other, nil
}

// release ends sc's hold on its lease: the lease goes to grace, or away at
// once when the client said bye or its member was removed. It reports
// false when sc no longer held the lease (a newer connection claimed it).
func (s *Server) release(ctx context.Context, sc *sessionConn, bye bool) bool {
	s.mu.Lock()
	if s.holders[sc.pkey] == sc {
		delete(s.holders, sc.pkey)
	}
	removed := sc.removed
	s.mu.Unlock()
	ok, err := s.cluster.Release(ctx, sc.hello.Mesh, sc.hello.Key, sc.epoch, s.cfg.Now(), bye || removed)
	if err != nil {
		// The node's reconciliation (sweep) releases it later.
		sc.log.Warn("release lease", "err", err)
		return true
	}
	return ok
}

// sweep forgets queue estimates no longer trusted, ends the leases whose
// grace ran out (recording when their sessions were last seen: a node that
// died did not) and, on a node of a cluster, releases the leases the
// cluster says this node holds but no connection of it does. It logs
// after it releases the server's lock.
func (s *Server) sweep(ctx context.Context) {
	at := s.leaseTimes()
	s.mu.Lock()
	for k, e := range s.queues {
		if at.Now.Sub(e.at) >= queueRecount {
			delete(s.queues, k)
		}
	}
	s.mu.Unlock()
	gone, err := s.cluster.SweepLeases(ctx, at)
	if err != nil && ctx.Err() == nil {
		s.log.Warn("sweep leases", "err", err)
	}
	for _, l := range gone {
		s.log.Info("session offline", "mesh", l.Mesh, "key_id", identity.KeyID(l.Key), "session", l.SessionID)
		if s.lapse > 0 {
			err := s.cfg.Store.UpsertSession(ctx, store.Session{Mesh: l.Mesh, PublicKey: l.Key, SessionID: l.SessionID,
				Name: l.Name, ProjectDir: l.ProjectDir, Kind: l.Kind, LastSeen: l.DroppedAt, Member: l.Member})
			if err != nil && ctx.Err() == nil {
				s.log.Warn("record last seen", "key_id", identity.KeyID(l.Key), "err", err)
			}
		}
	}
	if s.lapse > 0 {
		s.reconcile(ctx, at)
	}
}

// reconcileAge is how old a claim of this node must be before reconcile
// may judge it: a hello between its claim and its entry in Server.holders is
// not a stray lease.
const reconcileAge = storeTimeout

// reconcile releases the leases the cluster says this node holds online
// that no connection of it holds: a release that failed (the database was
// away) would otherwise leave a ghost that this node's heartbeats keep
// online.
func (s *Server) reconcile(ctx context.Context, at store.LeaseTimes) {
	held, err := s.cluster.NodeLeases(ctx, s.cfg.Node, at)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("reconcile leases", "err", err)
		}
		return
	}
	for _, l := range held {
		if l.State != store.LeaseOnline || at.Now.Sub(l.Since) < reconcileAge {
			continue
		}
		s.mu.Lock()
		sc := s.holders[keyOf(l.Mesh, l.Key)]
		mine := sc != nil && sc.epoch == l.Epoch
		s.mu.Unlock()
		if !mine {
			if _, err := s.cluster.Release(ctx, l.Mesh, l.Key, l.Epoch, at.Now, false); err != nil {
				s.log.Warn("release a stray lease", "key_id", identity.KeyID(l.Key), "err", err)
			}
		}
	}
}

// live returns this node's live connection for key in mesh, or nil.
func (s *Server) live(mesh string, key []byte) *sessionConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.holders[keyOf(mesh, key)]
}

// liveConns returns this node's live session connections.
func (s *Server) liveConns() []*sessionConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*sessionConn, 0, len(s.holders))
	for _, sc := range s.holders {
		out = append(out, sc)
	}
	return out
}

// listed is one session as peer_list shows it, with the key of the
// member that vouches for it (nil in a mesh without members).
type listed struct {
	peer   wire.Peer
	member []byte
}

// present returns the sessions of mesh that are online or in grace, on
// any node.
func (s *Server) present(ctx context.Context, mesh string) ([]listed, error) {
	at := s.leaseTimes()
	leases, err := s.cluster.Leases(ctx, mesh, at)
	if err != nil {
		return nil, err
	}
	ps := make([]listed, 0, len(leases))
	for _, l := range leases {
		p := wire.Peer{
			Key: l.Key, KeyID: identity.KeyID(l.Key), Name: l.Name, SessionID: l.SessionID, ProjectDir: l.ProjectDir,
			Kind: l.Kind, ConnectedSince: l.Since,
		}
		switch l.State {
		case store.LeaseOnline:
			p.State, p.LastSeen = wire.PeerOnline, at.Now
		case store.LeaseGrace:
			p.State, p.LastSeen, p.GraceUntil = wire.PeerGrace, l.DroppedAt, l.DroppedAt.Add(at.Grace)
		default:
			continue
		}
		ps = append(ps, listed{p, l.Member})
	}
	return ps, nil
}

// onlineSessions returns the sessions connected to this node now.
func (s *Server) onlineSessions() []store.Session {
	var ss []store.Session
	for _, sc := range s.liveConns() {
		ss = append(ss, sc.session(sc.since))
	}
	return ss
}

// handlePeers answers who is in the session's mesh: the sessions online or
// in grace (from their leases) and those the store saw within the TTL, one
// row per session key, the most present first.
func (sc *sessionConn) handlePeers(ctx context.Context, f wire.PeersRequest) {
	s := sc.s
	mesh := sc.hello.Mesh
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	refuse := func(e *wire.Error) {
		e.Ref = wire.RefOf(f.Req)
		sc.reply(e)
	}
	present, err := s.present(ctx, mesh)
	if e := storeRefusal(sc.log, opLeases, err, about{}); e != nil {
		refuse(e)
		return
	}
	byKey := make(map[presenceKey]listed, len(present))
	for _, l := range present {
		byKey[keyOf(mesh, l.peer.Key)] = l
	}
	seen, err := s.cfg.Store.Sessions(ctx, mesh, s.cfg.Now().Add(-s.cfg.QueueTTL))
	if e := storeRefusal(sc.log, opPeerSessions, err, about{}); e != nil {
		refuse(e)
		return
	}
	for _, ss := range seen {
		k := keyOf(mesh, ss.PublicKey)
		if _, ok := byKey[k]; ok {
			continue
		}
		byKey[k] = listed{wire.Peer{
			Key: ss.PublicKey, KeyID: identity.KeyID(ss.PublicKey), Name: ss.Name, SessionID: ss.SessionID,
			ProjectDir: ss.ProjectDir, Kind: ss.Kind, State: wire.PeerOffline, LastSeen: ss.LastSeen,
		}, ss.Member}
	}
	// In a mesh with members, say who vouches for each session.
	var names map[string]string
	if sc.member != nil {
		members, err := s.cfg.Store.MemberList(ctx, mesh)
		if e := storeRefusal(sc.log, opPeerMembers, err, about{}); e != nil {
			refuse(e)
			return
		}
		names = make(map[string]string, len(members))
		for _, m := range members {
			names[string(m.Key)] = m.Name
		}
	}
	peers := make([]wire.Peer, 0, len(byKey))
	for _, l := range byKey {
		if len(l.member) > 0 {
			l.peer.MemberKeyID = identity.KeyID(l.member)
			l.peer.Member = cmp.Or(names[string(l.member)], "(removed member)")
		}
		peers = append(peers, l.peer)
	}
	rank := map[string]int{wire.PeerOnline: 0, wire.PeerGrace: 1, wire.PeerOffline: 2}
	slices.SortFunc(peers, func(a, b wire.Peer) int {
		return cmp.Or(cmp.Compare(rank[a.State], rank[b.State]), cmp.Compare(a.Name, b.Name), cmp.Compare(a.KeyID, b.KeyID))
	})
	if len(peers) > wire.MaxPeers {
		peers = peers[:wire.MaxPeers] // the most present first
	}
	if e := storeRefusal(sc.log, opPeerTeams, s.addTeams(ctx, mesh, peers), about{}); e != nil {
		refuse(e)
		return
	}
	sc.send(wire.PeerList{Req: f.Req, Peers: peers})
}
