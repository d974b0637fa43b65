package broker_test

import (
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/claudemesh/claudemesh/broker"
	"github.com/claudemesh/claudemesh/client"
	"github.com/claudemesh/claudemesh/wire"
)

// wantState checks how p lists the session of key: present exactly once
// (peers fails the test on a duplicate) and in state.
func wantState(t *testing.T, p *peer, keyID, state string) wire.Peer {
	t.Helper()
	got, ok := p.peers(t)[keyID]
	if !ok || got.State != state {
		t.Fatalf("session %s listed as %+v (listed: %v), want state %s", keyID, got, ok, state)
	}
	return got
}

// waitState waits until p lists the session of key in state.
func waitState(t *testing.T, p *peer, keyID, state string) wire.Peer {
	t.Helper()
	var got wire.Peer
	eventually(t, "session "+keyID+" "+state, func() bool {
		got = p.peers(t)[keyID]
		return got.State == state
	})
	return got
}

// exactlyOnce checks that p received each DM once.
func exactlyOnce(t *testing.T, p *peer, ids ...string) {
	t.Helper()
	for _, id := range ids {
		p.in.wait(t, id)
		if n := p.in.count(id); n != 1 {
			t.Errorf("DM %s received %d times, want once", id, n)
		}
	}
}

func TestLeaseOnlineGraceOffline(t *testing.T) {
	t.Parallel()
	clk := newClock()
	const grace = time.Minute
	tb := newBroker(t, broker.Config{Now: clk.Now, Grace: grace})
	alice := tb.dial(t, newKey(t, testMesh), "alice")
	bobKey := newKey(t, testMesh)
	bobConn := tb.join(t, bobKey, websocket.DefaultDialer)
	wantState(t, alice, bobKey.ID(), wire.PeerOnline)

	// The connection drops without a bye: grace, reserved until drop+grace.
	dropped := clk.Now()
	bobConn.NetConn().Close()
	got := waitState(t, alice, bobKey.ID(), wire.PeerGrace)
	if !got.GraceUntil.Equal(dropped.Add(grace)) || !got.LastSeen.Equal(dropped) {
		t.Errorf("bob in grace: %+v, want last seen %v and grace until %v", got, dropped, dropped.Add(grace))
	}
	inGrace, status := sendText(t, alice, bobKey, "while in grace")
	if status != wire.StatusQueued {
		t.Errorf("DM to a session in grace: %s, want queued", status)
	}

	clk.Advance(grace - time.Nanosecond)
	wantState(t, alice, bobKey.ID(), wire.PeerGrace)
	clk.Advance(time.Nanosecond)
	got = wantState(t, alice, bobKey.ID(), wire.PeerOffline)
	if !got.LastSeen.Equal(dropped) || !got.GraceUntil.IsZero() {
		t.Errorf("bob offline: %+v, want last seen %v", got, dropped)
	}
	offline, status := sendText(t, alice, bobKey, "while offline")
	if status != wire.StatusQueued {
		t.Errorf("DM to an offline session: %s, want queued", status)
	}

	// It comes back as the same session and gets both, once each.
	bob := tb.dial(t, bobKey, "bob")
	bob.sync(t, alice)
	exactlyOnce(t, bob, inGrace, offline)
	wantState(t, alice, bobKey.ID(), wire.PeerOnline)
	if st := tb.srv.Stats(); st.Replacements != 0 || st.Online != 2 || st.Grace != 0 {
		t.Errorf("stats %+v, want 2 online, none in grace, no replacement", st)
	}
}

func TestByeIsOfflineAtOnce(t *testing.T) {
	t.Parallel()
	clk := newClock()
	tb := newBroker(t, broker.Config{Now: clk.Now})
	alice := tb.dial(t, newKey(t, testMesh), "alice")
	bobKey := newKey(t, testMesh)
	bob := tb.dial(t, bobKey, "bob")
	closeWithin(t, "bob", bob)
	// No clock advance: a session that said bye skips the grace period.
	got := waitState(t, alice, bobKey.ID(), wire.PeerOffline)
	if !got.LastSeen.Equal(clk.Now()) {
		t.Errorf("bob after bye: %+v", got)
	}
	if st := tb.srv.Stats(); st.Grace != 0 {
		t.Errorf("stats %+v, want nothing in grace", st)
	}
}

func TestLeaveForgetsSessionWithoutQueue(t *testing.T) {
	t.Parallel()
	tb := newBroker(t, broker.Config{})
	alice := tb.dial(t, newKey(t, testMesh), "alice")
	throwaway := newKey(t, testMesh)
	tp := tb.dial(t, throwaway, "throwaway")
	wantState(t, alice, throwaway.ID(), wire.PeerOnline)
	if err := tp.Leave(waitCtx(t), true); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the throwaway session is forgotten", func() bool {
		_, listed := alice.peers(t)[throwaway.ID()]
		return !listed
	})

	// A session that DMs wait for is kept, so the DMs stay addressable.
	waited := newKey(t, testMesh)
	wp := tb.dial(t, waited, "waited")
	closeWithin(t, "waited", wp)
	waitState(t, alice, waited.ID(), wire.PeerOffline)
	id, _ := sendText(t, alice, waited, "for later")
	wp = tb.dial(t, waited, "waited")
	wp.in.wait(t, id) // delivered, but not acked: it still waits
	if err := wp.Leave(waitCtx(t), true); err != nil {
		t.Fatal(err)
	}
	waitState(t, alice, waited.ID(), wire.PeerOffline)
	wp = tb.dial(t, waited, "waited")
	exactlyOnce(t, wp, id)
}

func TestReattachFromOnline(t *testing.T) {
	t.Parallel()
	tb := newBroker(t, broker.Config{})
	alice := tb.dial(t, newKey(t, testMesh), "alice")
	bobKey := newKey(t, testMesh)
	old := tb.join(t, bobKey, websocket.DefaultDialer)

	// The old connection has a DM pushed and not acked when the session
	// reattaches from another process.
	first, _ := sendText(t, alice, bobKey, "first")
	if dm, ok := old.frame(t).(wire.DM); !ok || dm.ID != first {
		t.Fatalf("old connection got %+v, want DM %s", dm, first)
	}
	bob := tb.dial(t, bobKey, "bob")
	e, ok := old.frame(t).(*wire.Error)
	if !ok || e.Code != wire.CodeSessionReplaced {
		t.Fatalf("old connection got %+v, want session_replaced", e)
	}
	old.SetReadDeadline(time.Now().Add(waitTimeout))
	if _, data, err := old.ReadMessage(); err == nil {
		t.Fatalf("old connection got %s after session_replaced, want it closed", data)
	}
	second, status := sendText(t, alice, bobKey, "second")
	if status != wire.StatusDelivered {
		t.Errorf("DM after reattach: %s, want delivered", status)
	}
	bob.sync(t, alice)
	exactlyOnce(t, bob, first, second)
	wantState(t, alice, bobKey.ID(), wire.PeerOnline)
	if n := tb.srv.Stats().Replacements; n != 1 {
		t.Errorf("%d replacements, want 1", n)
	}
}

// A client whose session another process took stands by: its probes are
// refused while the other holds the session or is in grace, and it takes
// the session back, once, after the grace period. Over the whole run the
// broker replaces the session once.
func TestReplacedClientStandsByWithoutFighting(t *testing.T) {
	t.Parallel()
	clk := newClock()
	const grace = time.Minute
	tb := newBroker(t, broker.Config{Now: clk.Now, Grace: grace})
	alice := tb.dial(t, newKey(t, testMesh), "alice")
	bobKey := newKey(t, testMesh)
	first := tb.dial(t, bobKey, "bob", func(c *client.Config) { c.StandbyProbe = 20 * time.Millisecond })

	other := tb.join(t, bobKey, websocket.DefaultDialer) // another process
	eventually(t, "the first process stands by", func() bool { return first.State().Replaced })
	// Every connection from here is a probe of the standby client, and it
	// stays in standby only if the broker refused it: session_active.
	probes := func() int64 { return tb.requests.Load() }
	refusedActive := func() bool {
		s := first.State()
		we, ok := errors.AsType[*wire.Error](s.LastError)
		return ok && we.Code == wire.CodeSessionActive && s.Replaced && !s.Connected
	}
	seen := probes()
	eventually(t, "standby probes refused while the other is online", func() bool { return probes() >= seen+3 && refusedActive() })
	wantState(t, alice, bobKey.ID(), wire.PeerOnline)

	other.NetConn().Close()
	waitState(t, alice, bobKey.ID(), wire.PeerGrace)
	seen = probes()
	eventually(t, "standby probes refused while the other is in grace", func() bool { return probes() >= seen+3 && refusedActive() })
	if s := first.State(); s.Connected || !s.Replaced {
		t.Fatalf("standby client took the session during grace: %+v", s)
	}
	queued, _ := sendText(t, alice, bobKey, "during grace")

	clk.Advance(grace)
	if err := first.WaitConnected(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	if s := first.State(); s.Replaced {
		t.Errorf("client back from standby still reports replaced: %+v", s)
	}
	first.sync(t, alice)
	exactlyOnce(t, first, queued)
	wantState(t, alice, bobKey.ID(), wire.PeerOnline)
	if n := tb.srv.Stats().Replacements; n != 1 {
		t.Errorf("%d replacements over the run, want 1", n)
	}
}

// blackhole is a TCP proxy whose connections can be made to stop carrying
// bytes without closing: to the ends it looks like a half-open connection.
type blackhole struct {
	ln      net.Listener
	target  string
	dropped atomic.Bool
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   []net.Conn
}

func newBlackhole(t *testing.T, target string) *blackhole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{ln: ln, target: target}
	b.wg.Add(1)
	go b.accept()
	t.Cleanup(func() {
		ln.Close()
		b.mu.Lock()
		for _, c := range b.conns {
			c.Close()
		}
		b.mu.Unlock()
		b.wg.Wait()
	})
	return b
}

func (b *blackhole) accept() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", b.target)
		if err != nil {
			c.Close()
			continue
		}
		b.mu.Lock()
		b.conns = append(b.conns, c, up)
		b.mu.Unlock()
		// Connections accepted after drop carry bytes again: the client
		// must be able to come back.
		live := !b.dropped.Load()
		b.wg.Add(2)
		go b.pipe(up, c, live)
		go b.pipe(c, up, live)
	}
}

// pipe copies src to dst until src ends, discarding once the proxy drops
// the connections that were live when drop was called.
func (b *blackhole) pipe(dst, src net.Conn, wasLive bool) {
	defer b.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !(wasLive && b.dropped.Load()) {
			dst.Write(buf[:n])
		}
		if err != nil {
			if err != io.EOF {
				dst.Close()
			}
			return
		}
	}
}

// drop makes every connection open now go silent.
func (b *blackhole) drop() { b.dropped.Store(true) }

func TestHalfOpenConnectionGoesToGraceAndBack(t *testing.T) {
	t.Parallel()
	// The broker gives up on silence well before the client does, so that
	// the client's reconnect does not find the old connection still there,
	// and the session is seen in grace in between.
	tb := newBroker(t, broker.Config{PingInterval: 50 * time.Millisecond, PongTimeout: 300 * time.Millisecond, Grace: time.Hour})
	alice := tb.dial(t, newKey(t, testMesh), "alice")
	proxy := newBlackhole(t, strings.TrimSuffix(strings.TrimPrefix(tb.url, "ws://"), wire.Path))
	bobKey := newKey(t, testMesh)
	bob := tb.dial(t, bobKey, "bob", func(c *client.Config) {
		c.Endpoint = func() (client.Endpoint, error) {
			return client.Endpoint{URL: "ws://" + proxy.ln.Addr().String() + wire.Path, Token: tb.token}, nil
		}
		c.PingInterval = 50 * time.Millisecond
		c.PongTimeout = 2 * time.Second
	})
	bob.sync(t, alice)
	since := bob.State().Since

	proxy.drop()
	// Neither end sees a FIN: the broker notices the silence and puts the
	// session in grace, and the client notices it and reconnects.
	eventually(t, "the broker gives up on the silent connection", func() bool {
		return tb.srv.Stats().Grace == 1
	})
	queued, _ := sendText(t, alice, bobKey, "across the outage")
	eventually(t, "bob reconnects", func() bool {
		s := bob.State()
		return s.Connected && !s.Since.Equal(since)
	})
	bob.sync(t, alice)
	exactlyOnce(t, bob, queued)
	wantState(t, alice, bobKey.ID(), wire.PeerOnline)
	if n := tb.srv.Stats().Replacements; n != 0 {
		t.Errorf("%d replacements, want none: the client's own reconnect replaces nothing", n)
	}
}

func TestReattachFromGrace(t *testing.T) {
	t.Parallel()
	clk := newClock()
	tb := newBroker(t, broker.Config{Now: clk.Now, Grace: time.Minute})
	alice := tb.dial(t, newKey(t, testMesh), "alice")
	bobKey := newKey(t, testMesh)
	tb.join(t, bobKey, websocket.DefaultDialer).NetConn().Close()
	waitState(t, alice, bobKey.ID(), wire.PeerGrace)
	queued, status := sendText(t, alice, bobKey, "while reconnecting")
	if status != wire.StatusQueued {
		t.Errorf("DM to a session in grace: %s, want queued", status)
	}
	clk.Advance(30 * time.Second)

	bob := tb.dial(t, bobKey, "bob")
	if n := tb.srv.Stats().Replacements; n != 0 {
		t.Errorf("reattaching from grace counted %d replacements", n)
	}
	bob.sync(t, alice)
	exactlyOnce(t, bob, queued)
	got := wantState(t, alice, bobKey.ID(), wire.PeerOnline)
	if !got.ConnectedSince.Equal(clk.Now()) || !got.GraceUntil.IsZero() {
		t.Errorf("bob after reattaching: %+v", got)
	}
	// Grace would have ended now; the session is online, not offline.
	clk.Advance(time.Minute)
	wantState(t, alice, bobKey.ID(), wire.PeerOnline)
	if st := tb.srv.Stats(); st.Replacements != 0 || st.Grace != 0 {
		t.Errorf("stats %+v, want no replacement and nothing in grace", st)
	}
}
