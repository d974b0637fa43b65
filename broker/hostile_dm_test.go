package broker_test

import (
	"testing"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/claudemesh/claudemesh/wire"
)

// hostileAfterHello are frames after a valid hello: bad frames, and
// requests about the victims' DMs that must be refused or change nothing.
func hostileAfterHello() []hostileCase {
	return []hostileCase{
		{
			name:   "malformed JSON",
			attack: afterHello(websocket.TextMessage, frameText(`{"type":"send","id":`)),
			code:   wire.CodeBadFrame,
		},
		{
			name:   "not an object",
			attack: afterHello(websocket.TextMessage, frameText(`[{"type":"peers","req":1}]`)),
			code:   wire.CodeBadFrame,
		},
		{
			name:   "binary message",
			attack: afterHello(websocket.BinaryMessage, frameText(`{"type":"peers","req":1}`)),
			code:   wire.CodeBadFrame,
		},
		{
			name:   "unknown type",
			attack: afterHello(websocket.TextMessage, frameText(`{"type":"drain","to":"everyone"}`)),
			code:   wire.CodeBadFrame,
		},
		{
			name:   "missing type",
			attack: afterHello(websocket.TextMessage, frameText(`{"req":1}`)),
			code:   wire.CodeBadFrame,
		},
		{
			name: "wrong field types in a send",
			attack: afterHello(websocket.TextMessage, func(t *testing.T, s *scene) []byte {
				return []byte(`{"type":"send","id":7,"to":true,"nonce":[1,2],"box":{"a":1}}`)
			}),
			code: wire.CodeBadFrame,
		},
		{
			name: "ack ids as a string naming the victim's DM",
			attack: afterHello(websocket.TextMessage, func(t *testing.T, s *scene) []byte {
				return []byte(`{"type":"ack","ids":"` + s.vt.dm.ID + `"}`)
			}),
			code: wire.CodeBadFrame,
		},
		{
			name: "second hello, for the victim's key",
			attack: func(t *testing.T, s *scene) target {
				rc, ch := s.dial(t)
				rc.write(t, s.hello(ch, newKey(t, s.team), nil, nil))
				if f := rc.frame(t); f.Type() != wire.TypeWelcome {
					t.Fatalf("hello answered with %+v", f)
				}
				rc.write(t, s.hello(ch, s.vt.key, nil, nil))
				return session(rc)
			},
			code: wire.CodeBadFrame,
		},
		{
			name: "frame over the size limit",
			attack: func(t *testing.T, s *scene) target {
				rc, _ := s.session(t, s.team, nil)
				writeOversized(t, rc, `{"type":"send","id":"`+uuid.NewString()+`"`)
				return session(rc)
			},
			code: wire.CodeTooLarge, closed: tooLong,
		},
		{
			name: "box over the limit, to the victim",
			attack: func(t *testing.T, s *scene) target {
				rc, _ := s.session(t, s.team, nil)
				id := uuid.NewString()
				rc.write(t, sendFrame(id, s.vt.key.Public, wire.MaxBoxSize+1))
				return target{rc: rc, ref: id}
			},
			code: wire.CodeTooLarge,
		},
		{
			name: "send to an unknown recipient",
			attack: func(t *testing.T, s *scene) target {
				rc, _ := s.session(t, s.team, nil)
				id, nobody := uuid.NewString(), newKey(t, s.team)
				rc.write(t, sendFrame(id, nobody.Public, 64))
				return target{rc: rc, ref: id, after: func(t *testing.T) {
					if ids := s.pending(t, s.team, nobody.Public); len(ids) != 0 {
						t.Errorf("DMs %v stored for an unknown recipient", ids)
					}
				}}
			},
			code: wire.CodeUnknownPeer,
		},
		{
			name: "send to the victim of another mesh",
			attack: func(t *testing.T, s *scene) target {
				rc, _ := s.session(t, s.team, nil)
				id := uuid.NewString()
				rc.write(t, sendFrame(id, s.vc.key.Public, 64))
				return target{rc: rc, ref: id, after: func(t *testing.T) {
					if ids := s.pending(t, s.team, s.vc.key.Public); len(ids) != 0 {
						t.Errorf("DMs %v stored under the crew victim's key in team", ids)
					}
				}}
			},
			code: wire.CodeUnknownPeer,
		},
		{
			name: "member's session sending to the victim of a mesh without members",
			attack: func(t *testing.T, s *scene) target {
				rc, _ := s.session(t, s.crew, s.ownerKey)
				id := uuid.NewString()
				rc.write(t, sendFrame(id, s.vt.key.Public, 64))
				return target{rc: rc, ref: id}
			},
			code: wire.CodeUnknownPeer,
		},
		{
			name: "the victim's DM id with other content",
			attack: func(t *testing.T, s *scene) target {
				rc, _ := s.session(t, s.team, nil)
				rc.write(t, sendFrame(s.vt.dm.ID, s.vt.key.Public, len(s.vt.dm.Box)))
				return target{rc: rc, ref: s.vt.dm.ID}
			},
			code: wire.CodeDuplicateID,
		},
		{
			name: "the victim's DM id to another recipient",
			attack: func(t *testing.T, s *scene) target {
				rc, self := s.session(t, s.team, nil)
				rc.write(t, sendFrame(s.vt.dm.ID, self.Public, len(s.vt.dm.Box)))
				return target{rc: rc, ref: s.vt.dm.ID}
			},
			code: wire.CodeDuplicateID,
		},
		{
			name: "acks and clears of the victim's DM by another session and by its sender",
			attack: func(t *testing.T, s *scene) target {
				rc, _ := s.session(t, s.team, nil)
				rc.write(t, wire.Ack{IDs: []string{s.vt.dm.ID}})
				rc.write(t, wire.Ack{IDs: []string{s.vt.dm.ID}, Cleared: true})
				for _, sender := range []*peer{s.vt.sender, s.vc.sender} {
					dm := s.vt.dm.ID
					if sender == s.vc.sender {
						dm = s.vc.dm.ID
					}
					if err := sender.Ack([]string{dm}); err != nil {
						t.Fatal(err)
					}
					if err := sender.Clear([]string{dm}); err != nil {
						t.Fatal(err)
					}
					sender.peers(t) // answered after the broker handled the acks
				}
				return session(rc)
			},
		},
		{
			name: "receipts for the victim's DM by another member's session",
			attack: func(t *testing.T, s *scene) target {
				rc, _ := s.session(t, s.crew, s.ownerKey)
				for _, state := range []string{wire.ReceiptReceived, wire.ReceiptPushed} {
					rc.write(t, wire.Receipt{IDs: []string{s.vc.dm.ID}, State: state, At: s.hb.clk.Now()})
				}
				return session(rc)
			},
		},
		{
			name: "status of the victim's DM asked by another session",
			attack: func(t *testing.T, s *scene) target {
				rc, _ := s.session(t, s.team, nil)
				rc.write(t, wire.StatusRequest{Req: 8, IDs: []string{s.vt.dm.ID}})
				l, ok := rc.frame(t).(wire.StatusList)
				if !ok || l.Req != 8 || len(l.Statuses) != 1 {
					t.Fatalf("status request answered with %+v", l)
				}
				if st := l.Statuses[0]; st.State != wire.StateUnknown || st.To != nil || !st.CreatedAt.IsZero() {
					t.Errorf("another session learned %+v about the victim's DM, want unknown", st)
				}
				return session(rc)
			},
		},
	}
}
