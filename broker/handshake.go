package broker

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/subtle"
	"errors"

	"github.com/claudemesh/claudemesh/identity"
	"github.com/claudemesh/claudemesh/store"
	"github.com/claudemesh/claudemesh/wire"
)

// handshake sends the challenge, reads and verifies the hello, and makes
// this connection the live one of its session key. On failure it has
// already shut the connection down with the reason.
func (c *conn) handshake() bool {
	cfg := &c.s.cfg
	challenge := newChallenge()
	if !c.send(wire.Challenge{Version: wire.Version, Nonce: challenge}) {
		return false
	}
	c.ws.SetReadDeadline(c.helloBy)
	typ, data, err := readMessage(c.ws, c.s.cfg.MaxFrameSize)
	if err != nil {
		var ne interface{ Timeout() bool }
		if errors.As(err, &ne) && ne.Timeout() {
			c.shutdown(wire.Errorf(wire.CodeHandshakeTimeout, "no hello within %v", cfg.HandshakeTimeout))
		} else {
			c.readFailed(err)
		}
		return false
	}
	f, e := decodeMessage(typ, data)
	if e != nil {
		c.shutdown(e)
		return false
	}
	switch f := f.(type) {
	case wire.MemberHello:
		c.serveMember(challenge, f)
		return false
	case wire.Join:
		c.join(challenge, f)
		return false
	}
	h, ok := f.(wire.Hello)
	if !ok {
		c.shutdown(wire.Errorf(wire.CodeHelloRequired, "the first frame must be a hello, got %s", f.Type()))
		return false
	}
	member, e := c.s.verifyHello(challenge, h)
	if e != nil {
		c.log.Info("hello refused", "code", e.Code, "mesh", h.Mesh, "key_id", identity.KeyID(ed25519.PublicKey(h.Key)))
		c.shutdown(e)
		return false
	}

	if !c.s.admit(c, h.Mesh, member, keyOf(h.Mesh, h.Key), h, false) {
		c.shutdown(wire.Errorf(wire.CodeTooManyConnections, "this member has %d connections open, the limit", cfg.MaxMemberConns))
		return false
	}
	c.keyID = identity.KeyID(ed25519.PublicKey(h.Key))
	c.since = cfg.Now()
	c.log = c.log.With("mesh", h.Mesh, "session", h.SessionID, "key_id", c.keyID)

	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	switch err := c.s.cfg.Store.UpsertSession(ctx, c.session(c.since)); {
	case errors.Is(err, store.ErrSessionTaken):
		// Someone presents the session UUID of another key: an impostor,
		// or a session whose key file was lost. Nothing of the owner's
		// changes.
		c.log.Warn("hello refused: session id registered to another key", "code", wire.CodeSessionIDTaken)
		c.shutdown(wire.Errorf(wire.CodeSessionIDTaken, "session %s is registered in mesh %s to another key; a session UUID belongs to the key that first registered it. If this session's key file was lost or replaced, start a new session: the old registration is forgotten %s after it was last seen", h.SessionID, h.Mesh, c.s.cfg.QueueTTL))
		return false
	case err != nil:
		c.log.Error("record session", "err", err)
		c.shutdown(wire.Errorf(wire.CodeInternal, "broker could not record the session; retry"))
		return false
	}
	old, other, refused := c.s.attach(c)
	if refused != nil {
		c.log.Info("standby hello refused", "code", refused.Code)
		c.shutdown(refused)
		return false
	}
	switch {
	case other:
		c.log.Info("session replaced by another process", "old_conn", old.id)
		old.shutdown(wire.Errorf(wire.CodeSessionReplaced, "this session connected from another process, which now holds it"))
	case old != nil:
		c.log.Info("session reconnected over a stale connection", "old_conn", old.id)
		old.shutdown(wire.Errorf(wire.CodeSessionReplaced, "this client connected again; this connection is stale"))
	}
	c.log.Info("session online", "name", h.Name, "standby", h.Standby)
	return c.send(wire.Welcome{Version: wire.Version, KeyID: c.keyID, ServerTime: c.since, Replaced: other, GraceMS: cfg.Grace.Milliseconds()})
}

// verifyHello checks a hello against the challenge it answers. A mesh
// with members admits a session only with a valid, unexpired attestation
// by a current member, and only if no other member vouched for that
// session key before; any other mesh needs the broker's credential. It
// returns the vouching member's key, or the wire error to answer with.
func (s *Server) verifyHello(challenge []byte, h wire.Hello) ([]byte, *wire.Error) {
	if err := identity.ValidateMesh(h.Mesh); err != nil {
		return nil, wire.Errorf(wire.CodeBadMesh, "%v", err)
	}
	if _, err := identity.X25519PublicKey(ed25519.PublicKey(h.Key)); err != nil {
		return nil, wire.Errorf(wire.CodeBadSignature, "session key refused: %v", err)
	}
	if !ed25519.Verify(ed25519.PublicKey(h.Key), wire.HelloTranscript(challenge, h), h.Sig) {
		return nil, wire.Errorf(wire.CodeBadSignature, "hello signature does not verify for this key and challenge")
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	members, err := s.cfg.Store.MeshExists(ctx, h.Mesh)
	if err != nil {
		s.log.Error("look up mesh", "mesh", h.Mesh, "err", err)
		return nil, wire.Errorf(wire.CodeInternal, "broker could not look up the mesh; retry")
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
	if _, err := s.cfg.Store.Member(ctx, h.Mesh, a.Member); errors.Is(err, store.ErrNotFound) {
		return nil, wire.Errorf(wire.CodeNotMember, "member key %s is not a member of mesh %s", identity.KeyID(ed25519.PublicKey(a.Member)), h.Mesh)
	} else if err != nil {
		s.log.Error("look up member", "mesh", h.Mesh, "err", err)
		return nil, wire.Errorf(wire.CodeInternal, "broker could not look up the member; retry")
	}
	switch prev, err := s.cfg.Store.Session(ctx, h.Mesh, h.Key); {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		s.log.Error("look up session", "mesh", h.Mesh, "err", err)
		return nil, wire.Errorf(wire.CodeInternal, "broker could not look up the session; retry")
	case len(prev.Member) > 0 && !bytes.Equal(prev.Member, a.Member):
		return nil, wire.Errorf(wire.CodeSessionOwned, "session key %s belongs to another member", identity.KeyID(ed25519.PublicKey(h.Key)))
	}
	return a.Member, nil
}

// admit records who connection c speaks for — a session of mesh with
// key pkey vouched for by member, or (memberConn) the member itself — in
// one step with counting the member's connections, so that simultaneous
// hellos cannot pass the limit together. It reports false, recording
// nothing, when the member has MaxMemberConns connections already (a
// session reconnecting over its own key does not count twice).
func (s *Server) admit(c *conn, mesh string, member []byte, pkey presenceKey, hello wire.Hello, memberConn bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if member != nil {
		n := 0
		for o := range s.conns {
			switch {
			case o == c || !bytes.Equal(o.member, member):
			case o.memberMesh == mesh:
				n++
			case !memberConn && o.hello.Mesh == mesh && o.pkey == pkey:
				// the same session again: it replaces that connection
			case o.hello.Mesh == mesh:
				n++
			}
		}
		if n >= s.cfg.MaxMemberConns {
			return false
		}
	}
	c.member = member
	if memberConn {
		c.memberMesh = mesh
	} else {
		c.hello, c.pkey = hello, pkey
	}
	return true
}
