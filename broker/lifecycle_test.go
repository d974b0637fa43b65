package broker_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/claudemesh/claudemesh/broker"
	"github.com/claudemesh/claudemesh/client"
	"github.com/claudemesh/claudemesh/store"
	"github.com/claudemesh/claudemesh/wire"
)

// brokerGoroutines returns the stacks of the goroutines running code of
// package broker (the tests themselves run in package broker_test).
func brokerGoroutines() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var out []string
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte("github.com/claudemesh/claudemesh/broker.")) {
			out = append(out, string(g))
		}
	}
	return out
}

// noBrokerGoroutines waits until no goroutine runs broker code.
func noBrokerGoroutines(t *testing.T, when string) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		left := brokerGoroutines()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d broker goroutines still running:\n\n%s", when, len(left), strings.Join(left, "\n\n"))
		}
		<-tick.C
	}
}

// Not parallel: it counts every goroutine of the process, and parallel
// tests only start once the sequential ones are done.
func TestCloseStopsEverything(t *testing.T) {
	noBrokerGoroutines(t, "before the test")

	tb := newBroker(t, broker.Config{})
	alice := tb.dial(t, newKey(t, testMesh), "alice")
	bob := tb.dial(t, newKey(t, testMesh), "bob")
	id, _ := sendText(t, alice, bob.key, "before closing")
	bob.in.wait(t, id)
	bob.peers(t)
	// A connection that never says hello, well within its handshake
	// timeout.
	silent := tb.dialRaw(t)
	silent.challenge(t)

	// A connected client closes promptly, and again.
	closeWithin(t, "bob", bob)
	closeWithin(t, "bob again", bob)

	// The broker closes every connection, even one in its handshake, and
	// tells why.
	closeWithin(t, "broker", tb.srv)
	if e, ok := silent.frame(t).(*wire.Error); !ok || e.Code != wire.CodeShuttingDown {
		t.Errorf("connection in handshake got %+v at shutdown, want %s", e, wire.CodeShuttingDown)
	}
	silent.SetReadDeadline(time.Now().Add(waitTimeout))
	if _, _, err := silent.ReadMessage(); !websocket.IsCloseError(err, websocket.CloseGoingAway) {
		t.Errorf("connection in handshake ended with %v, want close code %d", err, websocket.CloseGoingAway)
	}
	closeWithin(t, "broker again", tb.srv)

	// A client told the broker is shutting down keeps trying, unlike a
	// replaced one; the closed broker turns it away.
	eventually(t, "alice heard the broker shut down and retried", func() bool {
		return alice.logs.count("broker error", "code", wire.CodeShuttingDown) == 1 && alice.State().Attempts >= 2
	})
	if s := alice.State(); s.Connected || s.Replaced {
		t.Errorf("alice after shutdown: %+v", s)
	}
	_, resp, err := websocket.DefaultDialer.DialContext(waitCtx(t), tb.url, nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("dial a closed broker: %v, %v; want status %d", err, resp, http.StatusServiceUnavailable)
	}
	if resp != nil {
		resp.Body.Close()
	}

	// A client between attempts closes promptly, and again.
	closeWithin(t, "alice", alice)
	closeWithin(t, "alice again", alice)
	if _, err := alice.Send(t.Context(), id, bob.key.Public, [wire.NonceSize]byte{}, []byte{1}); !errors.Is(err, client.ErrClosed) {
		t.Errorf("send after close: %v, want %v", err, client.ErrClosed)
	}
	if _, err := alice.Peers(t.Context()); !errors.Is(err, client.ErrClosed) {
		t.Errorf("peers after close: %v, want %v", err, client.ErrClosed)
	}
	if err := alice.WaitConnected(t.Context()); !errors.Is(err, client.ErrClosed) {
		t.Errorf("wait connected after close: %v, want %v", err, client.ErrClosed)
	}

	noBrokerGoroutines(t, "after closing the clients and the broker")
}

// stuckStore is a store that stops answering: a call to enqueue a DM or
// to expire DMs waits until its context ends and reports how it ended (the
// first call of each; the janitor may try again while it stops).
type stuckStore struct {
	store.Store
	enqueue, expire chan error    // the context's error of each stuck call
	entered         chan struct{} // an enqueue is stuck
	expiring        chan struct{} // an expiry is stuck
}

func (s *stuckStore) Enqueue(ctx context.Context, m store.Message) (store.EnqueueResult, error) {
	select {
	case s.entered <- struct{}{}:
	default:
	}
	<-ctx.Done()
	select {
	case s.enqueue <- ctx.Err():
	default:
	}
	return 0, ctx.Err()
}

func (s *stuckStore) Expire(ctx context.Context, now time.Time, retention time.Duration, sessionsBefore time.Time) (int, error) {
	select {
	case s.expiring <- struct{}{}:
	default:
	}
	<-ctx.Done()
	select {
	case s.expire <- ctx.Err():
	default:
	}
	return 0, ctx.Err()
}

// Close does not wait for a store that stopped answering: it cancels the
// calls made for clients once it stops waiting for their connections, and
// the janitor's at once, instead of waiting for their timeouts.
func TestCloseCancelsStoreCalls(t *testing.T) {
	t.Parallel()
	st := openStore(t, filepath.Join(t.TempDir(), "broker.db"), "NORMAL")
	stuck := &stuckStore{Store: st, enqueue: make(chan error, 1), expire: make(chan error, 1),
		entered: make(chan struct{}, 1), expiring: make(chan struct{}, 1)}
	tb := serveStore(t, st, broker.Config{Store: stuck, ExpireInterval: time.Millisecond})
	key := newKey(t, testMesh)
	rc := tb.join(t, key, websocket.DefaultDialer)
	rc.write(t, wire.Send{ID: uuid.NewString(), To: wire.Key(key.Public), Nonce: make([]byte, wire.NonceSize), Box: []byte("to myself")})
	for what, in := range map[string]chan struct{}{"the DM": stuck.entered, "the janitor's expiry": stuck.expiring} {
		select {
		case <-in:
		case <-waitCtx(t).Done():
			t.Fatalf("%s never reached the store", what)
		}
	}

	closeWithin(t, "broker", tb.srv)
	for what, ended := range map[string]chan error{"a DM's enqueue": stuck.enqueue, "the janitor's expiry": stuck.expire} {
		select {
		case err := <-ended:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("%s ended with %v, want it cancelled by Close", what, err)
			}
		default:
			t.Errorf("%s still waits after Close returned", what)
		}
	}
}
