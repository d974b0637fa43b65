package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh/store"
)

// RunOps tests what an operator watches of a store: Ping (store.Pinger)
// and QueueTotals (store.Totals), which the store returned by open must
// implement. open returns a new, empty store; the test may close it.
func RunOps(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("QueueTotals", func(t *testing.T) { testQueueTotals(t, open(t)) })
	t.Run("Ping", func(t *testing.T) { testPing(t, open(t)) })
}

// QueueTotals counts what waits for anyone, in every mesh: not what was
// acknowledged nor what expired.
func testQueueTotals(t *testing.T, s store.Store) {
	tot, ok := s.(store.Totals)
	if !ok {
		t.Fatalf("%T does not implement store.Totals", s)
	}
	want := func(at time.Time, n int, bytes int64) {
		t.Helper()
		gn, gb, err := tot.QueueTotals(t.Context(), at)
		if err != nil {
			t.Fatal(err)
		}
		if gn != n || gb != bytes {
			t.Errorf("QueueTotals at %v = %d DMs, %d bytes; want %d, %d", at, gn, gb, n, bytes)
		}
	}
	want(ackTime, 0, 0)
	alice, bob, carol := newKey(), newKey(), newKey()
	m1 := newMessage("one", alice, bob, base)
	m2 := newMessage("one", alice, carol, base)
	m2.Box = randBytes(200)
	m3 := newMessage("two", bob, alice, base.Add(time.Second))
	m3.Box = randBytes(1000)
	for _, m := range []store.Message{m1, m2, m3} {
		enqueue(t, s, m, store.Stored)
	}
	want(ackTime, 3, 80+200+1000)
	ack(t, s, "one", carol, 1, m2.ID)
	want(ackTime, 2, 80+1000)
	// m1 expires an hour after base, m3 a second later.
	want(base.Add(time.Hour), 1, 1000)
	want(base.Add(time.Hour+time.Second), 0, 0)
}

// Ping answers nil on an open store and an error wrapping store.ErrClosed
// once it is closed.
func testPing(t *testing.T, s store.Store) {
	p, ok := s.(store.Pinger)
	if !ok {
		t.Fatalf("%T does not implement store.Pinger", s)
	}
	if err := p.Ping(t.Context()); err != nil {
		t.Fatalf("Ping on an open store: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Ping(t.Context()); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Ping on a closed store = %v, want store.ErrClosed", err)
	}
}
