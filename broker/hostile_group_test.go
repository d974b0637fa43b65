package broker_test

import (
	"crypto/rand"
	"testing"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/claudemesh/claudemesh/broker"
	"github.com/claudemesh/claudemesh/wire"
)

// hostileGroups are group sends whose boxes are not the group, and group
// names that are not names. Each must be refused with nothing stored: the
// victim, a member of the group, gets nothing new.
func hostileGroups() []hostileCase {
	return []hostileCase{
		{
			name:   "group send leaving out a member",
			attack: groupSend("backend", func(t *testing.T, s *scene) [][]byte { return [][]byte{s.vt.key.Public} }),
			code:   wire.CodeGroupChanged,
		},
		{
			name: "group send with a second box for the victim",
			attack: groupSend("backend", func(t *testing.T, s *scene) [][]byte {
				return [][]byte{s.vt.key.Public, s.vt.sender.key.Public, s.vt.key.Public}
			}),
			code: wire.CodeBadFrame,
		},
		{
			name: "group send with a box for a key outside the mesh",
			attack: groupSend("backend", func(t *testing.T, s *scene) [][]byte {
				return [][]byte{s.vt.key.Public, s.vt.sender.key.Public, newKey(t, "elsewhere").Public}
			}),
			code: wire.CodeGroupChanged,
		},
		{
			name: "send to all with a box for a session of another mesh",
			attack: groupSend(wire.GroupAll, func(t *testing.T, s *scene) [][]byte {
				return [][]byte{s.vt.key.Public, s.vt.sender.key.Public, s.vc.key.Public}
			}),
			code: wire.CodeGroupChanged,
		},
		{
			name:   "group send to a group the sender made up",
			attack: groupSend("nobody-here", func(t *testing.T, s *scene) [][]byte { return [][]byte{s.vt.key.Public} }),
			code:   wire.CodeGroupChanged,
		},
		{
			name:   "send to all beyond the group cap",
			cfg:    func(c *broker.Config) { c.MaxGroup = 1 },
			attack: groupSend(wire.GroupAll, func(t *testing.T, s *scene) [][]byte { return [][]byte{s.vt.key.Public, s.vt.sender.key.Public} }),
			code:   wire.CodeGroupTooLarge,
		},
		{
			name: "group send named with a path",
			attack: afterHello(websocket.TextMessage, func(t *testing.T, s *scene) []byte {
				return mustEncode(t, groupFrame("../../etc/passwd", s.vt.key.Public))
			}),
			code: wire.CodeBadGroup,
		},
		{
			name:   "join a group named with a path",
			attack: afterHello(websocket.TextMessage, frameText(`{"type":"join_group","req":3,"group":"a/../b"}`)),
			code:   wire.CodeBadGroup,
		},
		{
			name:   "join a group named with control characters",
			attack: afterHello(websocket.TextMessage, frameText(`{"type":"join_group","req":3,"group":"ops\u0000\u001b[2J"}`)),
			code:   wire.CodeBadGroup,
		},
		{
			name:   "join the group of everyone",
			attack: afterHello(websocket.TextMessage, frameText(`{"type":"join_group","req":3,"group":"all"}`)),
			code:   wire.CodeBadGroup,
		},
		{
			name:   "leave a group named with a slash",
			attack: afterHello(websocket.TextMessage, frameText(`{"type":"leave_group","req":3,"group":"/backend"}`)),
			code:   wire.CodeBadGroup,
		},
		{
			name:   "status summary with control characters",
			attack: afterHello(websocket.TextMessage, frameText(`{"type":"set_status","req":3,"summary":"fine\u001b]0;owned\u0007"}`)),
			code:   wire.CodeBadFrame,
		},
	}
}

// groupFrame is a group send to group with a box of random bytes for each
// key: the broker never opens a box, so the attacker need not seal.
func groupFrame(group string, keys ...[]byte) wire.Send {
	f := wire.Send{ID: uuid.NewString(), Group: group}
	for _, k := range keys {
		b := wire.Box{To: k, Nonce: make([]byte, wire.NonceSize), Box: make([]byte, 64)}
		rand.Read(b.Box)
		f.Boxes = append(f.Boxes, b)
	}
	return f
}

func mustEncode(t *testing.T, f wire.Frame) []byte {
	t.Helper()
	b, err := wire.Encode(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// groupSend makes the victim and its sender the members of group in team,
// then sends, from a fresh session, a group send with boxes for keys.
func groupSend(group string, keys func(t *testing.T, s *scene) [][]byte) func(t *testing.T, s *scene) target {
	return func(t *testing.T, s *scene) target {
		for _, k := range [][]byte{s.vt.key.Public, s.vt.sender.key.Public} {
			if _, err := s.hb.st.JoinGroup(t.Context(), s.team, "backend", k, s.hb.clk.Now()); err != nil {
				t.Fatal(err)
			}
		}
		rc, _ := s.session(t, s.team, nil)
		f := groupFrame(group, keys(t, s)...)
		// Encode would refuse nothing here; write it raw so that a
		// duplicate box reaches the broker as sent.
		if err := rc.WriteMessage(websocket.TextMessage, mustEncode(t, f)); err != nil {
			t.Fatal(err)
		}
		return target{rc: rc, ref: f.ID, after: func(t *testing.T) {
			if n := len(s.pending(t, s.team, s.vt.sender.key.Public)); n != 0 {
				t.Errorf("the victim's sender has %d DMs pending after a refused group send, want none", n)
			}
		}}
	}
}
