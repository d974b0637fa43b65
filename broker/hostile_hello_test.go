package broker_test

import (
	"bytes"
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/claudemesh/claudemesh/broker"
	"github.com/claudemesh/claudemesh/wire"
)

// hostileBeforeHello are first frames that are not a hello, or not one
// the broker can read: each closes the connection.
func hostileBeforeHello() []hostileCase {
	return []hostileCase{
		{
			name:   "first frame malformed JSON",
			attack: answerChallenge(websocket.TextMessage, challengeText(`{"type":"hello","v":1,"mesh":`)),
			code:   wire.CodeBadFrame, closed: policy,
		},
		{
			name:   "first frame not an object",
			attack: answerChallenge(websocket.TextMessage, challengeText(`"hello"`)),
			code:   wire.CodeBadFrame, closed: policy,
		},
		{
			name: "first frame binary, the victim's valid hello",
			attack: answerChallenge(websocket.BinaryMessage, func(s *scene, ch []byte) []byte {
				b, _ := wire.Encode(s.hello(ch, s.vt.key, nil, nil))
				return b
			}),
			code: wire.CodeBadFrame, closed: policy,
		},
		{
			name:   "first frame of an unknown type",
			attack: answerChallenge(websocket.TextMessage, challengeText(`{"type":"takeover","mesh":"team-00"}`)),
			code:   wire.CodeBadFrame, closed: policy,
		},
		{
			name:   "first frame without a type",
			attack: answerChallenge(websocket.TextMessage, challengeText(`{"v":1,"mesh":"team-00","name":"x"}`)),
			code:   wire.CodeBadFrame, closed: policy,
		},
		{
			name: "first frame over the size limit",
			attack: func(t *testing.T, s *scene) target {
				rc, ch := s.dial(t)
				b, _ := wire.Encode(s.hello(ch, s.vt.key, nil, nil))
				writeOversized(t, rc, string(bytes.TrimSuffix(b, []byte("}"))))
				return session(rc)
			},
			code: wire.CodeTooLarge, closed: tooLong,
		},
		{
			name: "first frame a peers request",
			attack: answerChallenge(websocket.TextMessage, func(*scene, []byte) []byte {
				return []byte(`{"type":"peers","req":1}`)
			}),
			code: wire.CodeHelloRequired, closed: policy,
		},
		{
			name: "first frame a send to the victim",
			attack: func(t *testing.T, s *scene) target {
				rc, _ := s.dial(t)
				rc.write(t, sendFrame(uuid.NewString(), s.vt.key.Public, 64))
				return session(rc)
			},
			code: wire.CodeHelloRequired, closed: policy,
		},
		{
			name: "slow handshake",
			cfg:  func(c *broker.Config) { c.HandshakeTimeout = 300 * time.Millisecond },
			attack: func(t *testing.T, s *scene) target {
				rc, _ := s.dial(t)
				return session(rc) // and say nothing
			},
			code: wire.CodeHandshakeTimeout, closed: policy,
		},
	}
}

// hostileHellos are hellos that must not open a session, most of them for
// the victim's own key: impostors of its session id, attestations that do
// not hold.
func hostileHellos() []hostileCase {
	return []hostileCase{
		{
			name: "hello with a bad signature for the victim's key",
			attack: func(t *testing.T, s *scene) target {
				rc, ch := s.dial(t)
				h := s.hello(ch, s.vt.key, nil, nil)
				h.Sig[7] ^= 0x40
				rc.write(t, h)
				return session(rc)
			},
			code: wire.CodeBadSignature, closed: policy,
		},
		{
			name: "hello signed by another key for the victim's key",
			attack: func(t *testing.T, s *scene) target {
				rc, ch := s.dial(t)
				h := s.hello(ch, s.vt.key, nil, nil)
				h.Sig = ed25519.Sign(newMemberKey(t), wire.HelloTranscript(ch, h))
				rc.write(t, h)
				return session(rc)
			},
			code: wire.CodeBadSignature, closed: policy,
		},
		{
			name: "victim's hello captured and replayed on a new connection",
			attack: func(t *testing.T, s *scene) target {
				// The hello is signed over the challenge of a connection
				// it was never said on; the victim's attestation in it
				// is valid.
				earlier, ch := s.dial(t)
				captured := s.hello(ch, s.vc.key, s.vc.member, nil)
				earlier.Close()
				rc, _ := s.dial(t)
				rc.write(t, captured)
				return session(rc)
			},
			code: wire.CodeBadSignature, closed: policy,
		},
		{
			name: "hello without a signature",
			attack: func(t *testing.T, s *scene) target {
				rc, ch := s.dial(t)
				h := s.hello(ch, s.vt.key, nil, nil)
				h.Sig = nil
				rc.write(t, h)
				return session(rc)
			},
			code: wire.CodeBadSignature, closed: policy,
		},
		{
			name:   "hello of another protocol version",
			attack: victimHello(inTeam, func(_ *scene, h *wire.Hello) { h.Version = wire.Version + 1 }),
			code:   wire.CodeUnsupportedVersion, closed: policy,
		},
		{
			name:   "mesh name ../x",
			attack: victimHello(inTeam, func(_ *scene, h *wire.Hello) { h.Mesh = "../x" }),
			code:   wire.CodeBadMesh, closed: policy,
		},
		{
			name:   "mesh name with a slash",
			attack: victimHello(inTeam, func(s *scene, h *wire.Hello) { h.Mesh = s.team + "/x" }),
			code:   wire.CodeBadMesh, closed: policy,
		},
		{
			// An empty mesh is refused like any invalid mesh name.
			name:   "mesh name empty",
			attack: victimHello(inTeam, func(_ *scene, h *wire.Hello) { h.Mesh = "" }),
			code:   wire.CodeBadMesh, closed: policy,
		},
		{
			name: "mesh field missing",
			attack: answerChallenge(websocket.TextMessage, func(s *scene, ch []byte) []byte {
				b, _ := wire.Encode(s.hello(ch, s.vt.key, nil, func(h *wire.Hello) { h.Mesh = "" }))
				return bytes.Replace(b, []byte(`"mesh":"",`), nil, 1)
			}),
			code: wire.CodeBadMesh, closed: policy,
		},
		{
			name: "member hello with an empty mesh",
			attack: answerChallenge(websocket.TextMessage, func(s *scene, ch []byte) []byte {
				b, _ := wire.Encode(memberHello(ch, "", s.vicKey, "vic", ""))
				return b
			}),
			code: wire.CodeBadMesh, closed: policy,
		},
		{
			name:   "mesh name in upper case",
			attack: victimHello(inTeam, func(s *scene, h *wire.Hello) { h.Mesh = strings.ToUpper(s.team) }),
			code:   wire.CodeBadMesh, closed: policy,
		},
		{
			name:   "mesh name of 65 characters",
			attack: victimHello(inTeam, func(_ *scene, h *wire.Hello) { h.Mesh = strings.Repeat("m", 65) }),
			code:   wire.CodeBadMesh, closed: policy,
		},
		{
			name:   "session id a path",
			attack: victimHello(inTeam, func(_ *scene, h *wire.Hello) { h.SessionID = "../../../../../../../../../../pw.key" }),
			code:   wire.CodeBadFrame, closed: policy,
		},
		{
			name:   "hello without the broker credential",
			attack: victimHello(inTeam, func(_ *scene, h *wire.Hello) { h.Token = "" }),
			code:   wire.CodeUnauthorized, closed: policy,
		},
		{
			name:   "hello with a wrong broker credential",
			attack: victimHello(inTeam, func(s *scene, h *wire.Hello) { h.Token = strings.ToUpper(s.hb.token) }),
			code:   wire.CodeUnauthorized, closed: policy,
		},
		{
			name:   "standby hello for the victim's session",
			attack: victimHello(inTeam, func(_ *scene, h *wire.Hello) { h.Standby = true }),
			code:   wire.CodeSessionActive, closed: policy,
		},
		// Impostors: a hello that presents the victim's session UUID
		// (public in peer_list) with a key of its own.
		{
			name:   "the victim's session id and name under another key",
			attack: impostorHello(inTeam, func(*scene) ed25519.PrivateKey { return nil }),
			code:   wire.CodeSessionIDTaken, closed: policy,
		},
		{
			name:   "another member's session with the victim's session id and name",
			attack: impostorHello(inCrew, func(s *scene) ed25519.PrivateKey { return s.ownerKey }),
			code:   wire.CodeSessionIDTaken, closed: policy,
		},
		{
			name:   "the victim's own member presenting the victim's session id under a new key",
			attack: impostorHello(inCrew, func(s *scene) ed25519.PrivateKey { return s.vicKey }),
			code:   wire.CodeSessionIDTaken, closed: policy,
		},
		{
			name: "hello without attestation to a mesh with members",
			attack: victimHello(inCrew, func(s *scene, h *wire.Hello) {
				h.Attestation, h.Token = nil, s.hb.token // the credential does not stand in for membership
			}),
			code: wire.CodeAttestationRequired, closed: policy,
		},
		{
			name:   "attestation with a bad signature",
			attack: victimHello(inCrew, func(_ *scene, h *wire.Hello) { h.Attestation.Sig[3] ^= 1 }),
			code:   wire.CodeBadAttestation, closed: policy,
		},
		{
			name: "attestation expired",
			attack: victimHello(inCrew, func(s *scene, h *wire.Hello) {
				h.Attestation = wire.Attest(s.vicKey, s.crew, h.Key, s.hb.clk.Now().Add(-time.Second))
			}),
			code: wire.CodeBadAttestation, closed: policy,
		},
		{
			name: "attestation valid for too long",
			attack: victimHello(inCrew, func(s *scene, h *wire.Hello) {
				h.Attestation = wire.Attest(s.vicKey, s.crew, h.Key, s.hb.clk.Now().Add(wire.MaxAttestation+time.Hour))
			}),
			code: wire.CodeBadAttestation, closed: policy,
		},
		{
			name: "attestation for another mesh",
			attack: victimHello(inCrew, func(s *scene, h *wire.Hello) {
				h.Attestation = wire.Attest(s.vicKey, s.team, h.Key, s.hb.clk.Now().Add(time.Hour))
			}),
			code: wire.CodeBadAttestation, closed: policy,
		},
		{
			name: "attestation by a non-member",
			attack: func(t *testing.T, s *scene) target {
				stranger := newMemberKey(t)
				return victimHello(inCrew, func(s *scene, h *wire.Hello) {
					h.Attestation = wire.Attest(stranger, s.crew, h.Key, s.hb.clk.Now().Add(time.Hour))
				})(t, s)
			},
			code: wire.CodeNotMember, closed: policy,
		},
		{
			name: "attestation by another member for the victim's session key",
			attack: victimHello(inCrew, func(s *scene, h *wire.Hello) {
				h.Attestation = wire.Attest(s.ownerKey, s.crew, h.Key, s.hb.clk.Now().Add(time.Hour))
			}),
			code: wire.CodeSessionOwned, closed: policy,
		},
		{
			name: "attestation by a removed member",
			attack: func(t *testing.T, s *scene) target {
				removed := newMemberKey(t)
				s.joinAs(t, removed, "leaver", s.invite(t, 1))
				live, _ := s.session(t, s.crew, removed)
				if err := s.owner.Remove(waitCtx(t), "leaver"); err != nil {
					t.Fatalf("remove member: %v", err)
				}
				// Its live session is closed at once.
				if e, ok := live.frame(t).(*wire.Error); !ok || e.Code != wire.CodeMemberRemoved {
					t.Fatalf("removed member's session got %+v, want %s", e, wire.CodeMemberRemoved)
				}
				expectClosed(t, live, policy, wire.CodeMemberRemoved)
				rc, ch := s.dial(t)
				rc.write(t, s.hello(ch, newKey(t, s.crew), removed, nil))
				return session(rc)
			},
			code: wire.CodeNotMember, closed: policy,
		},
	}
}
