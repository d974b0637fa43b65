package broker

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/claudemesh/claudemesh/identity"
	"github.com/claudemesh/claudemesh/store"
	"github.com/claudemesh/claudemesh/wire"
)

type presenceKey struct {
	mesh string
	key  [wire.KeySize]byte
}

func keyOf(mesh string, k []byte) presenceKey {
	pk := presenceKey{mesh: mesh}
	copy(pk.key[:], k)
	return pk
}

// lease is the presence of one session key: online while a connection
// holds it, then in grace for cfg.Grace after that connection dropped,
// then offline (the lease is gone; the store still remembers the session).
type lease struct {
	conn      *sessionConn // the live connection; nil while in grace
	hello     wire.Hello   // as last presented
	keyID     string
	since     time.Time // when the current or last connection said hello
	droppedAt time.Time // when the connection went away; zero while online
	member    []byte    // member key that vouched for the session, if any
}

// state is the lease's state at now.
func (l *lease) state(now time.Time, grace time.Duration) string {
	switch {
	case l.conn != nil:
		return wire.PeerOnline
	case now.Before(l.droppedAt.Add(grace)):
		return wire.PeerGrace
	}
	return wire.PeerOffline
}

// attach makes sc the live connection of its session key, reattaching a
// lease online or in grace. It returns the connection it displaced, if any,
// and whether that belonged to another client instance. A standby hello is
// refused while the session is online or in grace under another instance.
func (s *Server) attach(sc *sessionConn) (old *sessionConn, other bool, refused *wire.Error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	l := s.leases[sc.pkey]
	if l != nil && sc.hello.Standby && !sameInstance(l.hello, sc.hello) {
		switch l.state(now, s.cfg.Grace) {
		case wire.PeerOnline:
			return nil, false, wire.Errorf(wire.CodeSessionActive, "this session is active in another process (connected since %s)", l.since.UTC().Format(time.RFC3339))
		case wire.PeerGrace:
			return nil, false, wire.Errorf(wire.CodeSessionActive, "this session's other process is reconnecting; it is reserved for it until %s", l.droppedAt.Add(s.cfg.Grace).UTC().Format(time.RFC3339))
		}
	}
	if l == nil {
		l = &lease{}
		s.leases[sc.pkey] = l
	}
	old = l.conn
	other = old != nil && !sameInstance(old.hello, sc.hello)
	if other {
		s.replacements++
	}
	*l = lease{conn: sc, hello: sc.hello, keyID: sc.keyID, since: sc.since, member: sc.member}
	sc.attached = true
	return old, other, nil
}

// sameInstance reports whether two hellos come from one client instance.
func sameInstance(a, b wire.Hello) bool {
	return a.Instance != "" && a.Instance == b.Instance
}

// release ends sc's hold on its lease: the lease goes to grace, or away at
// once when the client said bye. It reports false when sc no longer held
// the lease (a newer connection replaced it).
func (s *Server) release(sc *sessionConn, bye bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.leases[sc.pkey]
	if l == nil || l.conn != sc {
		return false
	}
	if bye || sc.removed {
		delete(s.leases, sc.pkey)
	} else {
		l.conn, l.droppedAt = nil, s.cfg.Now()
	}
	return true
}

// sweep forgets leases whose grace has run out, and queue estimates no
// longer trusted. Lease states are computed from the clock when read, so
// sweeping only frees memory and logs the transitions to offline, once the
// lock is released.
func (s *Server) sweep() {
	s.mu.Lock()
	now := s.cfg.Now()
	for k, e := range s.queues {
		if now.Sub(e.at) >= queueRecount {
			delete(s.queues, k)
		}
	}
	var offline []*lease
	for k, l := range s.leases {
		if l.state(now, s.cfg.Grace) == wire.PeerOffline {
			delete(s.leases, k)
			offline = append(offline, l)
		}
	}
	s.mu.Unlock()
	for _, l := range offline {
		s.log.Info("session offline", "mesh", l.hello.Mesh, "key_id", l.keyID, "session", l.hello.SessionID)
	}
}

// live returns the live connection for key in mesh, or nil.
func (s *Server) live(mesh string, key []byte) *sessionConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if l := s.leases[keyOf(mesh, key)]; l != nil {
		return l.conn
	}
	return nil
}

// listed is one session as peer_list shows it, with the key of the
// member that vouches for it (nil in a mesh without members).
type listed struct {
	peer   wire.Peer
	member []byte
}

// present returns the sessions of mesh that are online or in grace.
func (s *Server) present(mesh string) []listed {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	var ps []listed
	for k, l := range s.leases {
		if k.mesh != mesh {
			continue
		}
		h := l.hello
		p := wire.Peer{
			Key: h.Key, KeyID: l.keyID, Name: h.Name, SessionID: h.SessionID, ProjectDir: h.ProjectDir,
			State: l.state(now, s.cfg.Grace), ConnectedSince: l.since,
		}
		switch p.State {
		case wire.PeerOnline:
			p.LastSeen = now
		case wire.PeerGrace:
			p.LastSeen, p.GraceUntil = l.droppedAt, l.droppedAt.Add(s.cfg.Grace)
		default:
			continue
		}
		ps = append(ps, listed{p, l.member})
	}
	return ps
}

// onlineSessions returns the sessions connected now.
func (s *Server) onlineSessions() []store.Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ss []store.Session
	for _, l := range s.leases {
		if l.conn != nil {
			ss = append(ss, l.conn.session(l.since))
		}
	}
	return ss
}

// handlePeers answers who is in the session's mesh: the sessions online or
// in grace (from their leases) and those the store saw within the TTL, one
// row per session key, the most present first.
func (sc *sessionConn) handlePeers(ctx context.Context, f wire.PeersRequest) {
	s := sc.s
	mesh := sc.hello.Mesh
	byKey := make(map[presenceKey]listed)
	for _, l := range s.present(mesh) {
		byKey[keyOf(mesh, l.peer.Key)] = l
	}
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	refuse := func(e *wire.Error) {
		e.Ref = wire.RefOf(f.Req)
		sc.reply(e)
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
			ProjectDir: ss.ProjectDir, State: wire.PeerOffline, LastSeen: ss.LastSeen,
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
	sc.send(wire.PeerList{Req: f.Req, Peers: peers})
}
