package broker

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"strings"
	"time"

	"github.com/claudemesh/claudemesh/identity"
	"github.com/claudemesh/claudemesh/store"
	"github.com/claudemesh/claudemesh/wire"
)

// MaxInviteLifetime bounds how long an invite code may stay valid.
const MaxInviteLifetime = 30 * 24 * time.Hour

// serveMember runs a member connection: the member key signs the
// challenge; a current member may then list members and, as the owner,
// create and revoke invites and remove members. The operator (the broker's
// credential) may create the mesh, with the hello's key as its owner.
func (c *conn) serveMember(challenge []byte, h wire.MemberHello) {
	s := c.s
	if err := identity.ValidateMesh(h.Mesh); err != nil {
		c.shutdown(wire.Errorf(wire.CodeBadMesh, "%v", err))
		return
	}
	if !ed25519.Verify(ed25519.PublicKey(h.Key), wire.MemberHelloTranscript(challenge, h), h.Sig) {
		c.shutdown(wire.Errorf(wire.CodeBadSignature, "member hello signature does not verify for this key and challenge"))
		return
	}
	operator := s.cfg.Token != "" && subtle.ConstantTimeCompare([]byte(h.Token), []byte(s.cfg.Token)) == 1
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	_, err := s.cfg.Store.Member(ctx, h.Mesh, h.Key)
	cancel()
	switch {
	case errors.Is(err, store.ErrNotFound) && !operator:
		c.shutdown(wire.Errorf(wire.CodeNotMember, "key %s is not a member of mesh %s", identity.KeyID(ed25519.PublicKey(h.Key)), h.Mesh))
		return
	case err != nil && !errors.Is(err, store.ErrNotFound):
		c.log.Error("look up member", "err", err)
		c.shutdown(wire.Errorf(wire.CodeInternal, "broker could not look up the member; retry"))
		return
	}
	if !s.admit(c, h.Mesh, h.Key, presenceKey{}, wire.Hello{}, true) {
		c.shutdown(wire.Errorf(wire.CodeTooManyConnections, "this member has %d connections open, the limit", s.cfg.MaxMemberConns))
		return
	}
	c.log = c.log.With("mesh", h.Mesh, "member", identity.KeyID(ed25519.PublicKey(h.Key)))
	if !c.send(wire.Welcome{Version: wire.Version, KeyID: identity.KeyID(ed25519.PublicKey(h.Key)), ServerTime: s.cfg.Now()}) {
		return
	}
	c.log.Info("member connected", "name", h.Name, "operator", operator)
	c.watchLiveness()

	for {
		f, ok := c.next()
		if !ok {
			return
		}
		var req uint64
		var e *wire.Error
		var answer wire.Frame
		switch f := f.(type) {
		case wire.MeshCreate:
			req = f.Req
			answer, e = c.createMesh(h, operator, f)
		case wire.InviteCreate:
			req = f.Req
			answer, e = c.createInvite(f)
		case wire.InviteRevoke:
			req = f.Req
			answer, e = c.revokeInvite(f)
		case wire.MemberList:
			req = f.Req
			answer, e = c.listMembers(f)
		case wire.MemberRemove:
			req = f.Req
			answer, e = c.removeMember(f)
		case wire.Bye:
			return
		default:
			e = wire.Errorf(wire.CodeBadFrame, "a member connection does not take %s frames", f.Type())
		}
		if e != nil {
			if req != 0 {
				e.Ref = wire.RefOf(req)
			}
			c.reply(e)
			continue
		}
		c.send(answer)
	}
}

// requireMember returns the connection's member, fresh from the store, and
// checks its role when owner is set.
func (c *conn) requireMember(ctx context.Context, owner bool) (store.Member, *wire.Error) {
	m, err := c.s.cfg.Store.Member(ctx, c.memberMesh, c.member)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return m, wire.Errorf(wire.CodeNotMember, "this key is not a member of mesh %s", c.memberMesh)
	case err != nil:
		c.log.Error("look up member", "err", err)
		return m, wire.Errorf(wire.CodeInternal, "broker could not look up the member; retry")
	case owner && m.Role != wire.RoleOwner:
		return m, wire.Errorf(wire.CodeNotOwner, "only the owner of mesh %s may do that", c.memberMesh)
	}
	return m, nil
}

func (c *conn) createMesh(h wire.MemberHello, operator bool, f wire.MeshCreate) (wire.Frame, *wire.Error) {
	if !operator {
		return nil, wire.Errorf(wire.CodeUnauthorized, "creating a mesh needs the broker's operator credential")
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	err := c.s.cfg.Store.CreateMesh(ctx, c.memberMesh, store.Member{Key: h.Key, Name: h.Name}, c.s.cfg.Now())
	switch {
	case errors.Is(err, store.ErrConflict):
		return nil, wire.Errorf(wire.CodeMeshExists, "mesh %s exists on this broker", c.memberMesh)
	case err != nil:
		c.log.Error("create mesh", "err", err)
		return nil, wire.Errorf(wire.CodeInternal, "broker could not create the mesh; retry")
	}
	c.log.Info("mesh created", "owner", h.Name)
	return wire.OK{Req: f.Req}, nil
}

func (c *conn) createInvite(f wire.InviteCreate) (wire.Frame, *wire.Error) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if _, e := c.requireMember(ctx, true); e != nil {
		return nil, e
	}
	now := c.s.cfg.Now()
	if !f.ExpiresAt.After(now) || f.ExpiresAt.Sub(now) > MaxInviteLifetime {
		return nil, wire.Errorf(wire.CodeBadFrame, "an invite must expire within %v from now", MaxInviteLifetime)
	}
	raw := make([]byte, wire.InviteCodeSize)
	rand.Read(raw)
	hash := sha256.Sum256(raw)
	err := c.s.cfg.Store.CreateInvite(ctx, store.Invite{Hash: hash[:], Mesh: c.memberMesh, CreatedBy: c.member, Uses: f.Uses, ExpiresAt: f.ExpiresAt, CreatedAt: now})
	if err != nil {
		c.log.Error("create invite", "err", err)
		return nil, wire.Errorf(wire.CodeInternal, "broker could not store the invite; retry")
	}
	c.log.Info("invite created", "uses", f.Uses, "expires", f.ExpiresAt)
	return wire.Invite{Req: f.Req, Code: wire.FormatInviteCode(raw), Mesh: c.memberMesh, Uses: f.Uses, ExpiresAt: f.ExpiresAt}, nil
}

func (c *conn) revokeInvite(f wire.InviteRevoke) (wire.Frame, *wire.Error) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if _, e := c.requireMember(ctx, true); e != nil {
		return nil, e
	}
	raw, _ := wire.ParseInviteCode(f.Code) // validated by Decode
	hash := sha256.Sum256(raw)
	ok, err := c.s.cfg.Store.RevokeInvite(ctx, c.memberMesh, hash[:])
	if err != nil {
		c.log.Error("revoke invite", "err", err)
		return nil, wire.Errorf(wire.CodeInternal, "broker could not revoke the invite; retry")
	}
	if !ok {
		return nil, wire.Errorf(wire.CodeBadInvite, "no such invite in mesh %s", c.memberMesh)
	}
	c.log.Info("invite revoked")
	return wire.OK{Req: f.Req}, nil
}

func (c *conn) listMembers(f wire.MemberList) (wire.Frame, *wire.Error) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if _, e := c.requireMember(ctx, false); e != nil {
		return nil, e
	}
	list, err := c.s.cfg.Store.MemberList(ctx, c.memberMesh)
	if err != nil {
		c.log.Error("list members", "err", err)
		return nil, wire.Errorf(wire.CodeInternal, "broker could not list the members; retry")
	}
	online := c.s.memberSessions(c.memberMesh)
	out := wire.Members{Req: f.Req, Members: make([]wire.MemberInfo, 0, len(list))}
	for _, m := range list {
		out.Members = append(out.Members, wire.MemberInfo{
			Key: m.Key, KeyID: identity.KeyID(ed25519.PublicKey(m.Key)), Name: m.Name, Role: m.Role, JoinedAt: m.JoinedAt,
			Sessions: online[string(m.Key)],
		})
	}
	return out, nil
}

func (c *conn) removeMember(f wire.MemberRemove) (wire.Frame, *wire.Error) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if _, e := c.requireMember(ctx, true); e != nil {
		return nil, e
	}
	list, err := c.s.cfg.Store.MemberList(ctx, c.memberMesh)
	if err != nil {
		c.log.Error("list members", "err", err)
		return nil, wire.Errorf(wire.CodeInternal, "broker could not list the members; retry")
	}
	var target *store.Member
	for i, m := range list {
		if m.Name == f.Name || (len(f.Name) >= 4 && strings.HasPrefix(wire.Key(m.Key).String(), strings.ToLower(f.Name))) {
			if target != nil {
				return nil, wire.Errorf(wire.CodeBadFrame, "%q names more than one member; use the key id", f.Name)
			}
			target = &list[i]
		}
	}
	switch {
	case target == nil:
		return nil, wire.Errorf(wire.CodeNotMember, "no member %q in mesh %s", f.Name, c.memberMesh)
	case target.Role == wire.RoleOwner:
		return nil, wire.Errorf(wire.CodeNotOwner, "the owner of a mesh cannot be removed")
	}
	if _, err := c.s.cfg.Store.RemoveMember(ctx, c.memberMesh, target.Key); err != nil {
		c.log.Error("remove member", "err", err)
		return nil, wire.Errorf(wire.CodeInternal, "broker could not remove the member; retry")
	}
	n := c.s.cutMember(c.memberMesh, target.Key)
	c.log.Info("member removed", "removed", target.Name, "connections_closed", n)
	return wire.OK{Req: f.Req}, nil
}

// join enrolls a member key with an invite code, answers joined or the
// error, and ends the connection.
func (c *conn) join(challenge []byte, j wire.Join) {
	if !ed25519.Verify(ed25519.PublicKey(j.Key), wire.JoinTranscript(challenge, j), j.Sig) {
		c.shutdown(wire.Errorf(wire.CodeBadSignature, "join signature does not verify for this key and challenge"))
		return
	}
	raw, _ := wire.ParseInviteCode(j.Code) // validated by Decode
	hash := sha256.Sum256(raw)
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	m, err := c.s.cfg.Store.RedeemInvite(ctx, hash[:], store.Member{Key: j.Key, Name: j.Name}, c.s.cfg.Now())
	switch {
	case errors.Is(err, store.ErrInvite):
		c.log.Info("join refused: invalid invite")
		c.shutdown(wire.Errorf(wire.CodeBadInvite, "this invite code is unknown, used up, expired or revoked"))
		return
	case errors.Is(err, store.ErrConflict):
		c.shutdown(wire.Errorf(wire.CodeNameTaken, "the mesh already has a member named %q or with this key; choose another name", j.Name))
		return
	case err != nil:
		c.log.Error("redeem invite", "err", err)
		c.shutdown(wire.Errorf(wire.CodeInternal, "broker could not add the member; retry"))
		return
	}
	c.log.Info("member joined", "mesh", m.Mesh, "name", m.Name, "member", identity.KeyID(ed25519.PublicKey(j.Key)))
	c.send(wire.Joined{Mesh: m.Mesh, KeyID: identity.KeyID(ed25519.PublicKey(j.Key))})
}

// memberSessions counts the online sessions of each member of mesh, by
// member key.
func (s *Server) memberSessions(mesh string) map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := make(map[string]int)
	for k, l := range s.leases {
		if k.mesh == mesh && l.conn != nil && len(l.conn.member) > 0 {
			n[string(l.conn.member)]++
		}
	}
	return n
}

// cutMember closes at once every connection of a removed member in mesh —
// its sessions and its member connections — and drops its sessions'
// leases, so none lingers in grace. It returns how many it closed.
func (s *Server) cutMember(mesh string, member []byte) int {
	s.mu.Lock()
	var cut []*conn
	for c := range s.conns {
		sessionOf := c.attached && c.hello.Mesh == mesh && bytes.Equal(c.member, member)
		memberConn := c.memberMesh == mesh && bytes.Equal(c.member, member)
		if sessionOf || memberConn {
			c.removed = true
			cut = append(cut, c)
		}
	}
	for k, l := range s.leases {
		if k.mesh == mesh && l.conn == nil && bytes.Equal(l.member, member) {
			delete(s.leases, k)
		}
	}
	s.mu.Unlock()
	for _, c := range cut {
		c.shutdown(wire.Errorf(wire.CodeMemberRemoved, "this member was removed from mesh %s", mesh))
	}
	return len(cut)
}
