package broker

import (
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

// memberConn is a member connection: a member key (or the operator, to
// create a mesh) managing one mesh, one request at a time, in its read
// loop.
type memberConn struct {
	*conn

	// Set before the connection is admitted (admitMember), read-only
	// afterwards: other connections read them under Server.mu.
	mesh     string
	key      []byte // the member key that said the hello
	name     string
	operator bool // the hello carried the broker's credential
}

// openMember admits the member connection a member hello opened on c and
// returns it, ready to serve requests; nil when it was refused (c is then
// shut down). The member key signs the challenge; a current member may
// then list members and, as the owner, create and revoke invites and
// remove members. The operator (the broker's credential) may create the
// mesh, with the hello's key as its owner.
func (s *Server) openMember(ctx context.Context, c *conn, challenge []byte, h wire.MemberHello) *memberConn {
	if err := identity.ValidateMesh(h.Mesh); err != nil {
		c.shutdown(wire.Errorf(wire.CodeBadMesh, "%v", err))
		return nil
	}
	if !ed25519.Verify(ed25519.PublicKey(h.Key), wire.MemberHelloTranscript(challenge, h), h.Sig) {
		c.shutdown(wire.Errorf(wire.CodeBadSignature, "member hello signature does not verify for this key and challenge"))
		return nil
	}
	operator := s.cfg.Token != "" && subtle.ConstantTimeCompare([]byte(h.Token), []byte(s.cfg.Token)) == 1
	lookCtx, cancel := context.WithTimeout(ctx, storeTimeout)
	_, err := s.cfg.Store.Member(lookCtx, h.Mesh, h.Key)
	cancel()
	if operator && errors.Is(err, store.ErrNotFound) {
		err = nil // the operator may come to create the mesh
	}
	if e := storeRefusal(c.log, opMemberHello, err, about{mesh: h.Mesh, key: h.Key}); e != nil {
		c.shutdown(e)
		return nil
	}
	mc := &memberConn{conn: c, mesh: h.Mesh, key: h.Key, name: h.Name, operator: operator}
	if !s.admitMember(mc) {
		c.shutdown(wire.Errorf(wire.CodeTooManyConnections, "this member has %d connections open, the limit", s.cfg.MaxMemberConns))
		return nil
	}
	mc.log = mc.log.With("mesh", h.Mesh, "member", identity.KeyID(ed25519.PublicKey(h.Key)))
	if !mc.send(wire.Welcome{Version: wire.Version, KeyID: identity.KeyID(ed25519.PublicKey(h.Key)), ServerTime: s.cfg.Now()}) {
		mc.end(ctx)
		return nil
	}
	mc.log.Info("member connected", "name", h.Name, "operator", operator)
	return mc
}

// end is the member connection's part once its read loop is over.
func (mc *memberConn) end(context.Context) {
	mc.stop()
	mc.s.dismissMember(mc)
}

// handle answers one request of the member connection's read loop; false
// ends the connection.
func (mc *memberConn) handle(ctx context.Context, f wire.Frame) bool {
	var req uint64
	var e *wire.Error
	var answer wire.Frame
	switch f := f.(type) {
	case wire.MeshCreate:
		req = f.Req
		answer, e = mc.createMesh(ctx, f)
	case wire.InviteCreate:
		req = f.Req
		answer, e = mc.createInvite(ctx, f)
	case wire.InviteRevoke:
		req = f.Req
		answer, e = mc.revokeInvite(ctx, f)
	case wire.MemberList:
		req = f.Req
		answer, e = mc.listMembers(ctx, f)
	case wire.MemberRemove:
		req = f.Req
		answer, e = mc.removeMember(ctx, f)
	case wire.Bye:
		return false
	default:
		e = wire.Errorf(wire.CodeBadFrame, "a member connection does not take %s frames", f.Type())
	}
	if e != nil {
		if req != 0 {
			e.Ref = wire.RefOf(req)
		}
		mc.reply(e)
		return true
	}
	mc.send(answer)
	return true
}

// requireMember returns the connection's member, fresh from the store, and
// checks its role when owner is set.
func (mc *memberConn) requireMember(ctx context.Context, owner bool) (store.Member, *wire.Error) {
	m, err := mc.s.cfg.Store.Member(ctx, mc.mesh, mc.key)
	if e := storeRefusal(mc.log, opRequester, err, about{mesh: mc.mesh}); e != nil {
		return m, e
	}
	if owner && m.Role != wire.RoleOwner {
		return m, wire.Errorf(wire.CodeNotOwner, "only the owner of mesh %s may do that", mc.mesh)
	}
	return m, nil
}

func (mc *memberConn) createMesh(ctx context.Context, f wire.MeshCreate) (wire.Frame, *wire.Error) {
	if !mc.operator {
		return nil, wire.Errorf(wire.CodeUnauthorized, "creating a mesh needs the broker's operator credential")
	}
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	err := mc.s.cfg.Store.CreateMesh(ctx, mc.mesh, store.Member{Key: mc.key, Name: mc.name}, mc.s.cfg.Now())
	if e := storeRefusal(mc.log, opCreateMesh, err, about{mesh: mc.mesh}); e != nil {
		return nil, e
	}
	mc.log.Info("mesh created", "owner", mc.name)
	return wire.OK{Req: f.Req}, nil
}

func (mc *memberConn) createInvite(ctx context.Context, f wire.InviteCreate) (wire.Frame, *wire.Error) {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	if _, e := mc.requireMember(ctx, true); e != nil {
		return nil, e
	}
	now := mc.s.cfg.Now()
	if !f.ExpiresAt.After(now) || f.ExpiresAt.Sub(now) > MaxInviteLifetime {
		return nil, wire.Errorf(wire.CodeBadFrame, "an invite must expire within %v from now", MaxInviteLifetime)
	}
	raw := make([]byte, wire.InviteCodeSize)
	rand.Read(raw)
	hash := sha256.Sum256(raw)
	err := mc.s.cfg.Store.CreateInvite(ctx, store.Invite{Hash: hash[:], Mesh: mc.mesh, CreatedBy: mc.key, Uses: f.Uses, ExpiresAt: f.ExpiresAt, CreatedAt: now})
	if e := storeRefusal(mc.log, opCreateInvite, err, about{}); e != nil {
		return nil, e
	}
	mc.log.Info("invite created", "uses", f.Uses, "expires", f.ExpiresAt)
	return wire.Invite{Req: f.Req, Code: wire.FormatInviteCode(raw), Mesh: mc.mesh, Uses: f.Uses, ExpiresAt: f.ExpiresAt}, nil
}

func (mc *memberConn) revokeInvite(ctx context.Context, f wire.InviteRevoke) (wire.Frame, *wire.Error) {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	if _, e := mc.requireMember(ctx, true); e != nil {
		return nil, e
	}
	raw, _ := wire.ParseInviteCode(f.Code) // validated by Decode
	hash := sha256.Sum256(raw)
	ok, err := mc.s.cfg.Store.RevokeInvite(ctx, mc.mesh, hash[:])
	if err == nil && !ok {
		err = store.ErrNotFound // no such invite in the mesh
	}
	if e := storeRefusal(mc.log, opRevokeInvite, err, about{mesh: mc.mesh}); e != nil {
		return nil, e
	}
	mc.log.Info("invite revoked")
	return wire.OK{Req: f.Req}, nil
}

func (mc *memberConn) listMembers(ctx context.Context, f wire.MemberList) (wire.Frame, *wire.Error) {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	if _, e := mc.requireMember(ctx, false); e != nil {
		return nil, e
	}
	list, err := mc.s.cfg.Store.MemberList(ctx, mc.mesh)
	if e := storeRefusal(mc.log, opListMembers, err, about{}); e != nil {
		return nil, e
	}
	online, err := mc.s.memberSessions(ctx, mc.mesh)
	if e := storeRefusal(mc.log, opLeases, err, about{}); e != nil {
		return nil, e
	}
	out := wire.Members{Req: f.Req, Members: make([]wire.MemberInfo, 0, len(list))}
	for _, m := range list {
		out.Members = append(out.Members, wire.MemberInfo{
			Key: m.Key, KeyID: identity.KeyID(ed25519.PublicKey(m.Key)), Name: m.Name, Role: m.Role, JoinedAt: m.JoinedAt,
			Sessions: online[string(m.Key)],
		})
	}
	return out, nil
}

func (mc *memberConn) removeMember(ctx context.Context, f wire.MemberRemove) (wire.Frame, *wire.Error) {
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	if _, e := mc.requireMember(ctx, true); e != nil {
		return nil, e
	}
	list, err := mc.s.cfg.Store.MemberList(ctx, mc.mesh)
	if e := storeRefusal(mc.log, opListMembers, err, about{}); e != nil {
		return nil, e
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
		return nil, wire.Errorf(wire.CodeNotMember, "no member %q in mesh %s", f.Name, mc.mesh)
	case target.Role == wire.RoleOwner:
		return nil, wire.Errorf(wire.CodeNotOwner, "the owner of a mesh cannot be removed")
	}
	_, err = mc.s.cfg.Store.RemoveMember(ctx, mc.mesh, target.Key)
	if e := storeRefusal(mc.log, opRemoveMember, err, about{}); e != nil {
		return nil, e
	}
	n := mc.s.cutMember(ctx, mc.mesh, target.Key)
	mc.log.Info("member removed", "removed", target.Name, "connections_closed", n)
	return wire.OK{Req: f.Req}, nil
}

// serveJoin enrolls a member key with the invite code of the join that
// opened c, answers joined or the error, and ends the connection.
func (s *Server) serveJoin(ctx context.Context, c *conn, challenge []byte, j wire.Join) {
	if !ed25519.Verify(ed25519.PublicKey(j.Key), wire.JoinTranscript(challenge, j), j.Sig) {
		c.shutdown(wire.Errorf(wire.CodeBadSignature, "join signature does not verify for this key and challenge"))
		return
	}
	raw, _ := wire.ParseInviteCode(j.Code) // validated by Decode
	hash := sha256.Sum256(raw)
	ctx, cancel := context.WithTimeout(ctx, storeTimeout)
	defer cancel()
	m, err := s.cfg.Store.RedeemInvite(ctx, hash[:], store.Member{Key: j.Key, Name: j.Name}, s.cfg.Now())
	if e := storeRefusal(c.log, opRedeemInvite, err, about{name: j.Name}); e != nil {
		if e.Code != wire.CodeInternal {
			c.log.Info("join refused", "code", e.Code)
		}
		c.shutdown(e)
		return
	}
	c.log.Info("member joined", "mesh", m.Mesh, "name", m.Name, "member", identity.KeyID(ed25519.PublicKey(j.Key)))
	c.send(wire.Joined{Mesh: m.Mesh, KeyID: identity.KeyID(ed25519.PublicKey(j.Key))})
}

// memberSessions counts the online sessions of each member of mesh, by
// member key, on every node.
func (s *Server) memberSessions(ctx context.Context, mesh string) (map[string]int, error) {
	leases, err := s.cluster.Leases(ctx, mesh, s.leaseTimes())
	if err != nil {
		return nil, err
	}
	n := make(map[string]int)
	for _, l := range leases {
		if l.State == store.LeaseOnline && len(l.Member) > 0 {
			n[string(l.Member)]++
		}
	}
	return n, nil
}

// cutMember closes at once every connection of a removed member in mesh —
// its sessions and its member connections — on every node, and drops its
// sessions' leases, so none lingers in grace. It returns how many
// connections it closed on this node.
func (s *Server) cutMember(ctx context.Context, mesh string, member []byte) int {
	n := s.cutLocal(mesh, member)
	if err := s.cluster.DropLeases(ctx, mesh, member); err != nil {
		s.log.Warn("drop a removed member's leases", "err", err)
	}
	s.publish(ctx, store.Event{Kind: store.EventMemberRemoved, Mesh: mesh, Key: member})
	return n
}
