package broker

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/subtle"
	"log/slog"

	"github.com/claudemesh/claudemesh/identity"
	"github.com/claudemesh/claudemesh/wire"
)

// acceptHello checks the hello that opened c and admits the session it
// presents: it returns the session's connection, counted among the
// server's sessions, or the wire error that refuses the hello.
func (s *Server) acceptHello(ctx context.Context, c *conn, challenge []byte, h wire.Hello) (*sessionConn, *wire.Error) {
	member, e := s.verifyHello(ctx, c.log.With("mesh", h.Mesh), challenge, h)
	if e != nil {
		c.log.Info("hello refused", "code", e.Code, "mesh", h.Mesh, "key_id", identity.KeyID(ed25519.PublicKey(h.Key)))
		return nil, e
	}
	sc := newSessionConn(c, h, member)
	if !s.admitSession(sc) {
		return nil, wire.Errorf(wire.CodeTooManyConnections, "this member has %d connections open, the limit", s.cfg.MaxMemberConns)
	}
	sc.log = sc.log.With("mesh", h.Mesh, "session", h.SessionID, "key_id", sc.keyID)
	return sc, nil
}

// checkHello answers a checking hello: the welcome the hello would get,
// or the error that would refuse it, and then the connection ends. It
// records nothing — no session, presence or lease — and counts no
// connection, so a check is invisible to the mesh.
func (s *Server) checkHello(ctx context.Context, c *conn, challenge []byte, h wire.Hello) {
	keyID := identity.KeyID(ed25519.PublicKey(h.Key))
	if _, e := s.verifyHello(ctx, c.log.With("mesh", h.Mesh), challenge, h); e != nil {
		c.log.Info("checking hello refused", "code", e.Code, "mesh", h.Mesh, "key_id", keyID)
		c.shutdown(e)
		return
	}
	c.log.Debug("checking hello accepted", "mesh", h.Mesh, "key_id", keyID)
	c.send(wire.Welcome{Version: wire.Version, KeyID: keyID, ServerTime: s.cfg.Now(), GraceMS: s.cfg.Grace.Milliseconds()})
	c.shutdown(nil)
}

// handshake completes a session's hello: it records the session, makes
// this connection the live one of its session key, shutting down the one
// it replaces, and welcomes the client. On failure it has already shut the
// connection down with the reason.
func (sc *sessionConn) handshake(ctx context.Context) bool {
	s, h := sc.s, sc.hello
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	err := s.cfg.Store.UpsertSession(ctx, sc.session(sc.since))
	if e := storeRefusal(sc.log, opRecordSession, err, about{mesh: h.Mesh, session: h.SessionID, ttl: s.cfg.QueueTTL}); e != nil {
		if e.Code == wire.CodeSessionIDTaken {
			// Someone presents the session UUID of another key: an
			// impostor, or a session whose key file was lost. Nothing of
			// the owner's changes.
			sc.log.Warn("hello refused: session id registered to another key", "code", e.Code)
		}
		sc.shutdown(e)
		return false
	}
	old, other, refused := s.attach(ctx, sc)
	if refused != nil {
		sc.log.Info("standby hello refused", "code", refused.Code)
		sc.shutdown(refused)
		return false
	}
	switch {
	case other && old == nil:
		// The process it replaces is connected to another node, which
		// the claim's event tells.
		sc.log.Info("session replaced by another process, connected elsewhere")
	case other:
		sc.log.Info("session replaced by another process", "old_conn", old.id)
		old.shutdown(wire.Errorf(wire.CodeSessionReplaced, "this session connected from another process, which now holds it"))
	case old != nil:
		sc.log.Info("session reconnected over a stale connection", "old_conn", old.id)
		old.shutdown(wire.Errorf(wire.CodeSessionReplaced, "this client connected again; this connection is stale"))
	}
	sc.log.Info("session online", "name", h.Name, "standby", h.Standby)
	return sc.send(wire.Welcome{Version: wire.Version, KeyID: sc.keyID, ServerTime: sc.since, Replaced: other, GraceMS: s.cfg.Grace.Milliseconds()})
}

// verifyHello checks a hello against the challenge it answers. A mesh
// with members admits a session only with a valid, unexpired attestation
// by a current member, and only if no other member vouched for that
// session key before; any other mesh needs the broker's credential. It
// returns the vouching member's key, or the wire error to answer with. Its
// store failures go to log.
func (s *Server) verifyHello(ctx context.Context, log *slog.Logger, challenge []byte, h wire.Hello) ([]byte, *wire.Error) {
	if err := identity.ValidateMesh(h.Mesh); err != nil {
		return nil, wire.Errorf(wire.CodeBadMesh, "%v", err)
	}
	if err := s.validKeys.check(h.Key); err != nil {
		return nil, wire.Errorf(wire.CodeBadSignature, "session key refused: %v", err)
	}
	if !ed25519.Verify(ed25519.PublicKey(h.Key), wire.HelloTranscript(challenge, h), h.Sig) {
		return nil, wire.Errorf(wire.CodeBadSignature, "hello signature does not verify for this key and challenge")
	}
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	members, err := s.cfg.Store.MeshExists(ctx, h.Mesh)
	if e := storeRefusal(log, opMeshExists, err, about{mesh: h.Mesh}); e != nil {
		return nil, e
	}
	if !members {
		if s.cfg.Token != "" && subtle.ConstantTimeCompare([]byte(h.Token), []byte(s.cfg.Token)) != 1 {
			return nil, wire.Errorf(wire.CodeUnauthorized, "missing or wrong broker credential")
		}
		return nil, nil
	}
	a := h.Attestation
	if a == nil {
		return nil, wire.Errorf(wire.CodeAttestationRequired, "mesh %s admits only sessions its members attest: join it first (claudemesh join)", h.Mesh)
	}
	if err := a.Verify(h.Mesh, h.Key, s.cfg.Now()); err != nil {
		return nil, wire.Errorf(wire.CodeBadAttestation, "%v", err)
	}
	_, err = s.cfg.Store.Member(ctx, h.Mesh, a.Member)
	if e := storeRefusal(log, opAttester, err, about{mesh: h.Mesh, key: a.Member}); e != nil {
		return nil, e
	}
	prev, err := s.cfg.Store.Session(ctx, h.Mesh, h.Key)
	if e := storeRefusal(log, opSessionOwner, err, about{mesh: h.Mesh, key: h.Key}); e != nil {
		return nil, e
	}
	if err == nil && len(prev.Member) > 0 && !bytes.Equal(prev.Member, a.Member) { // a key not seen before has no owner
		return nil, wire.Errorf(wire.CodeSessionOwned, "session key %s belongs to another member", identity.KeyID(ed25519.PublicKey(h.Key)))
	}
	return a.Member, nil
}

// memberLocal is what this node serves of one member: its member
// connections and the sessions it vouched for.
type memberLocal struct {
	conns    map[*memberConn]struct{}
	sessions map[*sessionConn]struct{}
}

// memberLocked returns what this node serves of member in mesh, making it
// when add. s.mu must be held.
func (s *Server) memberLocked(mesh string, member []byte, add bool) *memberLocal {
	k := memberKey{mesh, string(member)}
	m := s.members[k]
	if m == nil && add {
		m = &memberLocal{conns: make(map[*memberConn]struct{}), sessions: make(map[*sessionConn]struct{})}
		s.members[k] = m
	}
	return m
}

// forgetMemberLocked drops m, the local state of member in mesh, once it
// holds nothing. s.mu must be held.
func (s *Server) forgetMemberLocked(mesh string, member []byte, m *memberLocal) {
	if len(m.conns) == 0 && len(m.sessions) == 0 {
		delete(s.members, memberKey{mesh, string(member)})
	}
}

// count is how many connections m holds, leaving out a session of the key
// replacing (which the new connection replaces).
func (m *memberLocal) count(replacing *presenceKey) int {
	n := len(m.conns) + len(m.sessions)
	if replacing != nil {
		for o := range m.sessions {
			if o.pkey == *replacing {
				n--
			}
		}
	}
	return n
}

// admitSession counts sc among the connections of the member that vouched
// for it, in one step with counting them, so that simultaneous hellos
// cannot pass the limit together. It reports false, counting nothing, when
// the member has MaxMemberConns connections already (a session
// reconnecting over its own key does not count twice). A session without
// a member is not counted.
func (s *Server) admitSession(sc *sessionConn) bool {
	if sc.member == nil {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.memberLocked(sc.hello.Mesh, sc.member, true)
	if m.count(&sc.pkey) >= s.cfg.MaxMemberConns {
		s.forgetMemberLocked(sc.hello.Mesh, sc.member, m)
		return false
	}
	m.sessions[sc] = struct{}{}
	return true
}

// admitMember counts mc among the server's member connections, or reports
// false when its member has MaxMemberConns connections already.
func (s *Server) admitMember(mc *memberConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.memberLocked(mc.mesh, mc.key, true)
	if m.count(nil) >= s.cfg.MaxMemberConns {
		s.forgetMemberLocked(mc.mesh, mc.key, m)
		return false
	}
	m.conns[mc] = struct{}{}
	return true
}

// dismissSession stops counting sc, whose connection is over.
func (s *Server) dismissSession(sc *sessionConn) {
	if sc.member == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.memberLocked(sc.hello.Mesh, sc.member, false); m != nil {
		delete(m.sessions, sc)
		s.forgetMemberLocked(sc.hello.Mesh, sc.member, m)
	}
}

// dismissMember stops counting mc, whose connection is over.
func (s *Server) dismissMember(mc *memberConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.memberLocked(mc.mesh, mc.key, false); m != nil {
		delete(m.conns, mc)
		s.forgetMemberLocked(mc.mesh, mc.key, m)
	}
}
