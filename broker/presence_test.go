package broker_test

import (
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/claudemesh/claudemesh/broker"
	"github.com/claudemesh/claudemesh/wire"
)

// drain empties the accepted-connection signals received so far.
func (tb *testBroker) drain() {
	for {
		select {
		case <-tb.accepted:
		default:
			return
		}
	}
}

// replacedBy reports whether p lost its session key to another connection.
func replacedBy(p *peer) bool {
	s := p.State()
	var we *wire.Error
	return s.Replaced && !s.Connected && errors.As(s.LastError, &we) && we.Code == wire.CodeSessionReplaced
}

func TestSessionReplaced(t *testing.T) {
	t.Parallel()
	tb := newBroker(t, broker.Config{})
	alice := tb.dial(t, newKey(t, testMesh), "alice")
	key := newKey(t, testMesh)
	first := tb.dial(t, key, "bob")
	if n := tb.srv.Stats().Replacements; n != 0 {
		t.Fatalf("first connection: %d replacements, want none", n)
	}

	second := tb.dial(t, key, "bob")
	if n := tb.srv.Stats().Replacements; n != 1 {
		t.Errorf("second connection: %d replacements, want 1", n)
	}
	eventually(t, "the first client learns it was replaced", func() bool { return replacedBy(first) })
	if s := second.State(); !s.Connected || s.Replaced {
		t.Errorf("second client: %+v, want connected and not replaced", s)
	}
	if p := alice.peers(t); len(p) != 2 || !p[key.ID()].Online() {
		t.Errorf("peers after replacement: %+v, want alice and bob once, online", p)
	}
	// DMs go to the live connection only.
	second.sync(t, alice)
	if got := first.in.all(); len(got) != 0 {
		t.Errorf("replaced client received %d DMs", len(got))
	}

	// The replaced client stays away on its own: over a window of many
	// backoff periods no new connection reaches the broker.
	tb.drain()
	select {
	case <-tb.accepted:
		t.Fatalf("a client connected again after being replaced (state %+v)", first.State())
	case <-time.After(300 * time.Millisecond):
	}
	if n := tb.srv.Stats().Replacements; n != 1 {
		t.Errorf("broker replaced the session %d times, want 1", n)
	}
	if s := first.State(); !s.Replaced || s.Connected {
		t.Errorf("replaced client after the window: %+v", s)
	}

	// Asked to, it takes the session back.
	first.Reconnect()
	if err := first.WaitConnected(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the second client learns it was replaced", func() bool { return replacedBy(second) })
	if s := first.State(); s.Replaced || !s.Connected {
		t.Errorf("reconnected client: %+v, want connected and not replaced", s)
	}
	if n := tb.srv.Stats().Replacements; n != 2 {
		t.Errorf("broker replaced the session %d times, want 2", n)
	}
	if p := alice.peers(t); len(p) != 2 || !p[key.ID()].Online() {
		t.Errorf("peers after the second replacement: %+v, want alice and bob once, online", p)
	}
	first.sync(t, alice)
}

func TestPeers(t *testing.T) {
	t.Parallel()
	clk := newClock()
	const ttl = time.Hour
	tb := newBroker(t, broker.Config{Now: clk.Now, QueueTTL: ttl})

	aliceSince := clk.Now()
	alice := tb.dial(t, newKey(t, testMesh), "alice")
	bobSince := clk.Advance(time.Minute)
	bob := tb.dial(t, newKey(t, testMesh), "bob")
	carol := tb.dial(t, newKey(t, "other"), "carol")

	now := clk.Advance(time.Minute)
	peers := alice.peers(t)
	if len(peers) != 2 {
		t.Fatalf("peers %+v, want alice and bob", peers)
	}
	for _, want := range []struct {
		p     *peer
		since time.Time
	}{{alice, aliceSince}, {bob, bobSince}} {
		got := peers[want.p.key.ID()]
		switch {
		case !got.Online():
			t.Errorf("%s is not online: %+v", got.Name, got)
		case !got.ConnectedSince.Equal(want.since):
			t.Errorf("%s connected since %v, want %v", got.Name, got.ConnectedSince, want.since)
		case !got.LastSeen.Equal(now):
			t.Errorf("%s last seen %v, want now (%v)", got.Name, got.LastSeen, now)
		case got.ProjectDir != "/src/"+got.Name || string(got.Key) != string(want.p.key.Public):
			t.Errorf("%s listed as %+v", got.Name, got)
		}
	}

	// Meshes do not see each other.
	if p := carol.peers(t); len(p) != 1 || p[carol.key.ID()].Name != "carol" {
		t.Errorf("carol's mesh lists %+v, want only carol", p)
	}

	// A session that left is listed as seen when it left.
	left := clk.Advance(time.Minute)
	closeWithin(t, "bob", bob)
	// The lease ends before the broker records when bob was last seen.
	eventually(t, "bob is listed offline, seen when he left", func() bool {
		p, ok := alice.peers(t)[bob.key.ID()]
		return ok && !p.Online() && p.LastSeen.Equal(left)
	})
	got := alice.peers(t)[bob.key.ID()]
	if !got.LastSeen.Equal(left) || !got.ConnectedSince.IsZero() {
		t.Errorf("offline bob: last seen %v, connected since %v; want %v and zero", got.LastSeen, got.ConnectedSince, left)
	}

	// Still listed up to the TTL, not after.
	clk.Advance(ttl)
	if _, ok := alice.peers(t)[bob.key.ID()]; !ok {
		t.Errorf("bob not listed exactly one TTL after leaving")
	}
	clk.Advance(time.Nanosecond)
	peers = alice.peers(t)
	if _, ok := peers[bob.key.ID()]; ok {
		t.Errorf("bob still listed more than a TTL after leaving: %+v", peers)
	}
	// An online session is listed however long ago it connected.
	if p := peers[alice.key.ID()]; !p.Online() || !p.ConnectedSince.Equal(aliceSince) {
		t.Errorf("alice after a TTL online: %+v", p)
	}
}

// The welcome says whether the hello took the session from another
// process: not for a new session, nor for the same client instance
// reconnecting over its stale connection; yes for another instance.
func TestWelcomeSaysReplaced(t *testing.T) {
	t.Parallel()
	tb := newBroker(t, broker.Config{})
	key := newKey(t, testMesh)
	one, other := uuid.NewString(), uuid.NewString()
	for i, step := range []struct {
		instance     string
		replaced     bool
		replacements uint64
	}{
		{one, false, 0},  // a new session
		{one, false, 0},  // the same instance again
		{other, true, 1}, // another instance
		{one, true, 2},   // and back
		{"", true, 3},    // a client that does not say its instance
	} {
		rc := tb.dialRaw(t)
		h := wire.Hello{Version: wire.Version, Mesh: key.Mesh, Key: wire.Key(key.Public), Name: "bob", Token: tb.token, Instance: step.instance}
		h.Sig = ed25519.Sign(key.Private, wire.HelloTranscript(rc.challenge(t), h))
		rc.write(t, h)
		w, ok := rc.frame(t).(wire.Welcome)
		if !ok || w.Replaced != step.replaced {
			t.Errorf("hello %d answered with %+v, want a welcome with replaced %t", i, w, step.replaced)
		}
		if n := tb.srv.Stats().Replacements; n != step.replacements {
			t.Errorf("after hello %d: %d replacements, want %d", i, n, step.replacements)
		}
	}
}
