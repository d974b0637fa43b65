package broker_test

import (
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/claudemesh/claudemesh/broker"
	"github.com/claudemesh/claudemesh/identity"
	"github.com/claudemesh/claudemesh/store"
	"github.com/claudemesh/claudemesh/wire"
)

// hostileLimits are clients over a limit: refused, and nothing stored.
func hostileLimits() []hostileCase {
	return []hostileCase{
		{
			name: "flood of sends beyond the session's rate",
			cfg:  func(c *broker.Config) { c.SendRate = 5 }, // bursts of 10; the clock stands still
			attack: func(t *testing.T, s *scene) target {
				const burst, extra = 10, 5
				sink := newKey(t, s.team)
				s.hb.join(t, sink, websocket.DefaultDialer)
				rc, flooder := s.session(t, s.team, nil)
				ids := make([]string, burst+extra)
				for i := range ids {
					ids[i] = uuid.NewString()
					rc.write(t, sendFrame(ids[i], sink.Public, 64))
				}
				for i, id := range ids[:len(ids)-1] {
					switch f := rc.frame(t).(type) {
					case wire.Sent:
						if i >= burst || f.ID != id {
							t.Fatalf("send %d answered with %+v", i, f)
						}
					case *wire.Error:
						if i < burst || f.Code != wire.CodeRateLimited || f.Ref != id {
							t.Fatalf("send %d answered with %+v", i, f)
						}
					default:
						t.Fatalf("send %d answered with %+v", i, f)
					}
				}
				return target{rc: rc, ref: ids[len(ids)-1], after: func(t *testing.T) {
					if got := s.pending(t, s.team, sink.Public); fmt.Sprint(got) != fmt.Sprint(ids[:burst]) {
						t.Errorf("stored for the flood's recipient: %v, want the first %d: %v", got, burst, ids[:burst])
					}
					sts, err := s.hb.st.Status(t.Context(), s.team, flooder.Public, ids[burst:], s.hb.clk.Now())
					if err != nil {
						t.Fatal(err)
					}
					for _, st := range sts {
						if st.State != store.StateUnknown {
							t.Errorf("refused DM %s is known: %+v", st.ID, st)
						}
					}
				}}
			},
			code: wire.CodeRateLimited,
		},
		{
			name: "recipient's queue over MaxQueued",
			cfg:  func(c *broker.Config) { c.MaxQueued = 3 },
			attack: func(t *testing.T, s *scene) target {
				sink := newKey(t, s.team)
				s.hb.join(t, sink, websocket.DefaultDialer).Close()
				rc, _ := s.session(t, s.team, nil)
				var stored []string
				for range 3 {
					id := uuid.NewString()
					rc.write(t, sendFrame(id, sink.Public, 64))
					if f, ok := rc.frame(t).(wire.Sent); !ok || f.ID != id {
						t.Fatalf("send below the limit answered with %+v", f)
					}
					stored = append(stored, id)
				}
				id := uuid.NewString()
				rc.write(t, sendFrame(id, sink.Public, 64))
				return target{rc: rc, ref: id, after: func(t *testing.T) {
					if got := s.pending(t, s.team, sink.Public); fmt.Sprint(got) != fmt.Sprint(stored) {
						t.Errorf("queued for the full recipient: %v, want %v", got, stored)
					}
				}}
			},
			code: wire.CodeQueueFull,
		},
		{
			name: "one session's DMs waiting for a recipient over MaxQueuedPerSender",
			cfg:  func(c *broker.Config) { c.MaxQueuedPerSender = 2 },
			attack: func(t *testing.T, s *scene) target {
				sink := newKey(t, s.team)
				s.hb.join(t, sink, websocket.DefaultDialer).Close()
				one, _ := s.session(t, s.team, nil)
				return fillPerSender(t, s, sink, 2, func() *rawConn { return one }, func() *rawConn {
					rc, _ := s.session(t, s.team, nil)
					return rc
				})
			},
			code: wire.CodeQueueFull,
		},
		{
			name: "one member's sessions together over MaxQueuedPerSender",
			cfg:  func(c *broker.Config) { c.MaxQueuedPerSender = 2 },
			attack: func(t *testing.T, s *scene) target {
				// The owner's DMs come from two sessions; a DM of vic,
				// another member, still gets through.
				sink := newKey(t, s.crew)
				rc := s.hb.dialRaw(t)
				rc.write(t, s.hello(rc.challenge(t), sink, s.vicKey, nil))
				if f := rc.frame(t); f.Type() != wire.TypeWelcome {
					t.Fatalf("sink hello answered with %+v", f)
				}
				rc.Close()
				return fillPerSender(t, s, sink, 2, func() *rawConn {
					rc, _ := s.session(t, s.crew, s.ownerKey) // a new session for each DM
					return rc
				}, func() *rawConn {
					rc, _ := s.session(t, s.crew, s.vicKey)
					return rc
				})
			},
			code: wire.CodeQueueFull,
		},
		{
			name: "too many connections for one member",
			cfg:  func(c *broker.Config) { c.MaxMemberConns = 3 },
			attack: func(t *testing.T, s *scene) target {
				// vic runs the victim session; two member connections
				// make three.
				s.memberConn(t, s.vicKey, "vic")
				s.memberConn(t, s.vicKey, "vic")
				rc, ch := s.dial(t)
				rc.write(t, s.hello(ch, newKey(t, s.crew), s.vicKey, nil))
				return session(rc)
			},
			code: wire.CodeTooManyConnections, closed: policy,
		},
	}
}

// fillPerSender sends n DMs to sink, each from a connection that sender
// returns, then one more, whose refusal the case reads. After it, a DM from
// another sender (other) still reaches sink: the cap is per sender.
func fillPerSender(t *testing.T, s *scene, sink *identity.Key, n int, sender, other func() *rawConn) target {
	t.Helper()
	var stored []string
	var rc *rawConn
	for range n + 1 {
		rc = sender()
		id := uuid.NewString()
		rc.write(t, sendFrame(id, sink.Public, 64))
		if len(stored) == n {
			return target{rc: rc, ref: id, after: func(t *testing.T) {
				if got := s.pending(t, sink.Mesh, sink.Public); fmt.Sprint(got) != fmt.Sprint(stored) {
					t.Errorf("queued for the recipient: %v, want %v", got, stored)
				}
				o := other()
				oid := uuid.NewString()
				o.write(t, sendFrame(oid, sink.Public, 64))
				if f, ok := o.frame(t).(wire.Sent); !ok || f.ID != oid {
					t.Errorf("another sender's DM to the recipient answered with %+v, want sent", f)
				}
			}}
		}
		if f, ok := rc.frame(t).(wire.Sent); !ok || f.ID != id {
			t.Fatalf("send below the limit answered with %+v", f)
		}
		stored = append(stored, id)
	}
	panic("unreachable")
}
