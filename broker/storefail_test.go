package broker_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/claudemesh/claudemesh/broker"
	"github.com/claudemesh/claudemesh/client"
	"github.com/claudemesh/claudemesh/store"
	"github.com/claudemesh/claudemesh/wire"
)

// errBroken is how a broken store fails.
var errBroken = errors.New("the disk is gone")

// failingStore is the SQLite store whose calls fail once broken, as a
// store that lost its disk would.
type failingStore struct {
	store.Store
	mu     sync.Mutex
	broken map[string]bool
}

func (s *failingStore) breaks(call string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.broken[call] = true
}

func (s *failingStore) fails(call string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.broken[call]
}

func (s *failingStore) UpsertSession(ctx context.Context, ss store.Session) error {
	if s.fails("UpsertSession") {
		return errBroken
	}
	return s.Store.UpsertSession(ctx, ss)
}

func (s *failingStore) Enqueue(ctx context.Context, m store.Message) (store.EnqueueResult, error) {
	if s.fails("Enqueue") {
		return 0, errBroken
	}
	return s.Store.Enqueue(ctx, m)
}

func (s *failingStore) Pending(ctx context.Context, mesh string, to []byte, now time.Time, after string, limit int) ([]store.Message, error) {
	if s.fails("Pending") {
		return nil, errBroken
	}
	return s.Store.Pending(ctx, mesh, to, now, after, limit)
}

// Record fails as "Ack" when it records an ack.
func (s *failingStore) Record(ctx context.Context, mesh string, to []byte, rs []store.Record) ([]int, error) {
	if s.fails("Ack") && slices.ContainsFunc(rs, func(r store.Record) bool { return r.Ack }) {
		return nil, errBroken
	}
	return s.Store.Record(ctx, mesh, to, rs)
}

func (s *failingStore) Status(ctx context.Context, mesh string, from []byte, ids []string, now time.Time) ([]store.MessageStatus, error) {
	if s.fails("Status") {
		return nil, errBroken
	}
	return s.Store.Status(ctx, mesh, from, ids, now)
}

func (s *failingStore) Sessions(ctx context.Context, mesh string, seenAfter time.Time) ([]store.Session, error) {
	if s.fails("Sessions") {
		return nil, errBroken
	}
	return s.Store.Sessions(ctx, mesh, seenAfter)
}

func (s *failingStore) MemberList(ctx context.Context, mesh string) ([]store.Member, error) {
	if s.fails("MemberList") {
		return nil, errBroken
	}
	return s.Store.MemberList(ctx, mesh)
}

func (s *failingStore) RedeemInvite(ctx context.Context, hash []byte, m store.Member, now time.Time) (store.Member, error) {
	if s.fails("RedeemInvite") {
		return store.Member{}, errBroken
	}
	return s.Store.RedeemInvite(ctx, hash, m, now)
}

// When the store fails, the client is told internal with what it may do
// about it (PROTOCOL.md, Errors): the request is named in the ref, and the
// connection stays open, unless the failure is in the handshake or in
// reading the queue, which close it with 1011.
func TestStoreFailureIsInternal(t *testing.T) {
	t.Parallel()
	// member opens a member connection of the mesh's owner.
	member := func(t *testing.T, tb *testBroker) *client.MemberConn {
		owner, err := client.DialMember(waitCtx(t), client.MemberDial{URL: tb.url, Mesh: "crew", Key: newMemberKey(t), Name: "owner", Token: tb.token})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { owner.Close() })
		if err := owner.CreateMesh(waitCtx(t)); err != nil {
			t.Fatal(err)
		}
		return owner
	}
	tests := []struct {
		name  string
		call  string                                                // the store call that fails
		do    func(t *testing.T, tb *testBroker) (*rawConn, string) // returns the connection to read and the ref to expect
		msg   string
		close bool
	}{
		{"hello", "UpsertSession", func(t *testing.T, tb *testBroker) (*rawConn, string) {
			key := newKey(t, testMesh)
			rc := tb.dialRaw(t)
			rc.write(t, hello(rc.challenge(t), key.Mesh, key.Public, key.Private, tb.token))
			return rc, ""
		}, "broker could not record the session; retry", true},
		{"reading the queue", "Pending", func(t *testing.T, tb *testBroker) (*rawConn, string) {
			return tb.join(t, newKey(t, testMesh), websocket.DefaultDialer), ""
		}, "broker could not read the queue; reconnect", true},
		{"send", "Enqueue", func(t *testing.T, tb *testBroker) (*rawConn, string) {
			key := newKey(t, testMesh)
			rc := tb.join(t, key, websocket.DefaultDialer)
			id := uuid.NewString()
			rc.write(t, wire.Send{ID: id, To: wire.Key(key.Public), Nonce: make([]byte, wire.NonceSize), Box: []byte("to myself")})
			return rc, id
		}, "broker could not store the DM; retry with the same id", false},
		{"ack", "Ack", func(t *testing.T, tb *testBroker) (*rawConn, string) {
			rc := tb.join(t, newKey(t, testMesh), websocket.DefaultDialer)
			rc.write(t, wire.Ack{IDs: []string{uuid.NewString()}})
			return rc, ""
		}, "broker could not record the ack; the DMs will be delivered again", false},
		{"status", "Status", func(t *testing.T, tb *testBroker) (*rawConn, string) {
			rc := tb.join(t, newKey(t, testMesh), websocket.DefaultDialer)
			rc.write(t, wire.StatusRequest{Req: 8, IDs: []string{uuid.NewString()}})
			return rc, "8"
		}, "broker could not read the DM status; retry", false},
		{"peers", "Sessions", func(t *testing.T, tb *testBroker) (*rawConn, string) {
			rc := tb.join(t, newKey(t, testMesh), websocket.DefaultDialer)
			rc.write(t, wire.PeersRequest{Req: 7})
			return rc, "7"
		}, "broker could not list sessions; retry", false},
		{"join", "RedeemInvite", func(t *testing.T, tb *testBroker) (*rawConn, string) {
			inv, err := member(t, tb).Invite(waitCtx(t), 1, time.Now().Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			rc := tb.dialRaw(t)
			rc.write(t, joinFrame(rc.challenge(t), inv.Code, newMemberKey(t), "newbie"))
			return rc, ""
		}, "broker could not add the member; retry", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := openStore(t, filepath.Join(t.TempDir(), "broker.db"), "NORMAL")
			fs := &failingStore{Store: st, broken: make(map[string]bool)}
			tb := serveStore(t, st, broker.Config{Store: fs})
			fs.breaks(tt.call)
			rc, ref := tt.do(t, tb)
			e, ok := rc.frame(t).(*wire.Error)
			if !ok || e.Code != wire.CodeInternal || e.Message != tt.msg || e.Ref != ref {
				t.Fatalf("broker answered %+v, want %s %q with ref %q", e, wire.CodeInternal, tt.msg, ref)
			}
			if tt.close {
				expectClosed(t, rc, websocket.CloseInternalServerErr, wire.CodeInternal)
				return
			}
			rc.write(t, wire.Bye{})
			expectClosed(t, rc, websocket.CloseNormalClosure, "")
		})
	}

	// A member request is answered likewise, and the member connection
	// carries on.
	t.Run("member list", func(t *testing.T) {
		t.Parallel()
		st := openStore(t, filepath.Join(t.TempDir(), "broker.db"), "NORMAL")
		fs := &failingStore{Store: st, broken: make(map[string]bool)}
		tb := serveStore(t, st, broker.Config{Store: fs})
		owner := member(t, tb)
		fs.breaks("MemberList")
		_, err := owner.Members(waitCtx(t))
		if we := wireError(t, err); we.Code != wire.CodeInternal || we.Message != "broker could not list the members; retry" {
			t.Fatalf("member list answered %+v", we)
		}
		if _, err := owner.Invite(waitCtx(t), 1, time.Now().Add(time.Hour)); err != nil {
			t.Errorf("the member connection after the failure: %v", err)
		}
	})
}
