package broker_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/claudemesh/claudemesh/store"
	"github.com/claudemesh/claudemesh/wire"
)

// hostileJoins are joins that must not make a member.
func hostileJoins() []hostileCase {
	return []hostileCase{
		{
			name: "join with an unknown invite code",
			attack: joinWith(func(*testing.T, *scene) string {
				raw := make([]byte, wire.InviteCodeSize)
				rand.Read(raw)
				return wire.FormatInviteCode(raw)
			}),
			code: wire.CodeBadInvite, closed: policy,
		},
		{
			name: "join with a used-up invite code",
			attack: joinWith(func(t *testing.T, s *scene) string {
				code := s.invite(t, 1)
				s.joinAs(t, newMemberKey(t), "first", code)
				return code
			}),
			code: wire.CodeBadInvite, closed: policy,
		},
		{
			name: "join with an expired invite code",
			attack: joinWith(func(t *testing.T, s *scene) string {
				raw := make([]byte, wire.InviteCodeSize)
				rand.Read(raw)
				hash := sha256.Sum256(raw)
				now := s.hb.clk.Now()
				if err := s.hb.st.CreateInvite(t.Context(), store.Invite{
					Hash: hash[:], Mesh: s.crew, CreatedBy: pubOf(s.ownerKey), Uses: 5,
					ExpiresAt: now.Add(-time.Minute), CreatedAt: now.Add(-time.Hour),
				}); err != nil {
					t.Fatal(err)
				}
				return wire.FormatInviteCode(raw)
			}),
			code: wire.CodeBadInvite, closed: policy,
		},
		{
			name: "join with a revoked invite code",
			attack: joinWith(func(t *testing.T, s *scene) string {
				code := s.invite(t, 5)
				if err := s.owner.RevokeInvite(waitCtx(t), code); err != nil {
					t.Fatal(err)
				}
				return code
			}),
			code: wire.CodeBadInvite, closed: policy,
		},
		{
			name: "join with a bad signature",
			attack: func(t *testing.T, s *scene) target {
				code := s.invite(t, 1)
				rc, ch := s.dial(t)
				newbie := newMemberKey(t)
				j := joinFrame(ch, code, newbie, "newbie")
				j.Sig = ed25519.Sign(newMemberKey(t), wire.JoinTranscript(ch, j))
				rc.write(t, j)
				return target{rc: rc, after: func(t *testing.T) {
					// The refused join spent no use of the invite.
					s.joinAs(t, newbie, "newbie", code)
				}}
			},
			code: wire.CodeBadSignature, closed: policy,
		},
	}
}

// hostileMemberConns are member hellos and requests that overstep what
// the key may do.
func hostileMemberConns() []hostileCase {
	return []hostileCase{
		{
			name: "member hello by a non-member",
			attack: func(t *testing.T, s *scene) target {
				rc, ch := s.dial(t)
				rc.write(t, memberHello(ch, s.crew, newMemberKey(t), "stranger", ""))
				return session(rc)
			},
			code: wire.CodeNotMember, closed: policy,
		},
		{
			name: "member hello for a new mesh with a wrong operator credential",
			attack: func(t *testing.T, s *scene) target {
				rc, ch := s.dial(t)
				rc.write(t, memberHello(ch, "mine-"+s.crew, newMemberKey(t), "stranger", strings.ToUpper(s.hb.token)))
				return target{rc: rc, after: func(t *testing.T) {
					if ok, err := s.hb.st.MeshExists(t.Context(), "mine-"+s.crew); ok || err != nil {
						t.Errorf("mesh created by a refused member hello (%v)", err)
					}
				}}
			},
			code: wire.CodeNotMember, closed: policy,
		},
		{
			name: "member creating an invite",
			attack: func(t *testing.T, s *scene) target {
				rc := s.memberConn(t, s.vicKey, "vic")
				rc.write(t, wire.InviteCreate{Req: 3, Uses: 1, ExpiresAt: s.hb.clk.Now().Add(time.Hour)})
				return target{rc: rc, member: true, ref: "3"}
			},
			code: wire.CodeNotOwner,
		},
		{
			name: "member revoking an invite",
			attack: func(t *testing.T, s *scene) target {
				code := s.invite(t, 1)
				rc := s.memberConn(t, s.vicKey, "vic")
				rc.write(t, wire.InviteRevoke{Req: 4, Code: code})
				return target{rc: rc, member: true, ref: "4", after: func(t *testing.T) {
					s.joinAs(t, newMemberKey(t), "newbie", code) // still good
				}}
			},
			code: wire.CodeNotOwner,
		},
		{
			name: "member removing the owner",
			attack: func(t *testing.T, s *scene) target {
				rc := s.memberConn(t, s.vicKey, "vic")
				rc.write(t, wire.MemberRemove{Req: 5, Name: "owner"})
				return target{rc: rc, member: true, ref: "5"}
			},
			code: wire.CodeNotOwner,
		},
		{
			name: "member removing another member",
			attack: func(t *testing.T, s *scene) target {
				other := newMemberKey(t)
				s.joinAs(t, other, "other", s.invite(t, 1))
				rc := s.memberConn(t, s.vicKey, "vic")
				rc.write(t, wire.MemberRemove{Req: 6, Name: "other"})
				return target{rc: rc, member: true, ref: "6", after: func(t *testing.T) {
					if !s.isMember(t, s.crew, other) {
						t.Error("a member's remove request removed another member")
					}
				}}
			},
			code: wire.CodeNotOwner,
		},
		{
			name: "mesh_create without the operator credential",
			attack: func(t *testing.T, s *scene) target {
				rc := s.memberConn(t, s.vicKey, "vic")
				rc.write(t, wire.MeshCreate{Req: 7})
				return target{rc: rc, member: true, ref: "7"}
			},
			code: wire.CodeUnauthorized,
		},
		{
			name: "member connection sending a DM",
			attack: func(t *testing.T, s *scene) target {
				rc := s.memberConn(t, s.vicKey, "vic")
				rc.write(t, sendFrame(uuid.NewString(), s.vc.key.Public, 64))
				return target{rc: rc, member: true}
			},
			code: wire.CodeBadFrame,
		},
	}
}
