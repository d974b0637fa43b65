package broker_test

import (
	"errors"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/claudemesh/claudemesh/broker"
	"github.com/claudemesh/claudemesh/wire"
)

// What a liveness close looks like on the wire (PROTOCOL.md, Liveness): a
// client from which nothing, not even a pong, arrives for PongTimeout gets
// no error frame, only a close frame with code 1000 and no reason; its
// session goes to grace.
func TestLivenessCloseOnTheWire(t *testing.T) {
	t.Parallel()
	const pongTimeout = 300 * time.Millisecond
	tb := newBroker(t, broker.Config{PingInterval: 50 * time.Millisecond, PongTimeout: pongTimeout, Grace: time.Hour})
	observer := tb.dial(t, newKey(t, testMesh), "observer")
	key := newKey(t, testMesh)
	start := time.Now()
	rc := tb.join(t, key, websocket.DefaultDialer)
	pings := 0
	rc.SetPingHandler(func(string) error { pings++; return nil }) // answer no ping

	rc.SetReadDeadline(time.Now().Add(waitTimeout))
	typ, data, err := rc.ReadMessage()
	var ce *websocket.CloseError
	switch {
	case err == nil:
		t.Fatalf("broker sent %d %q to a silent client, want only a close frame", typ, data)
	case !errors.As(err, &ce):
		t.Fatalf("silent connection ended with %v, want a close frame", err)
	case ce.Code != websocket.CloseNormalClosure || ce.Text != "":
		t.Errorf("silent connection closed with %d %q, want %d and no reason", ce.Code, ce.Text, websocket.CloseNormalClosure)
	}
	if pings == 0 {
		t.Error("the broker closed the connection without pinging it first")
	}
	if d := time.Since(start); d < pongTimeout {
		t.Errorf("closed %v after the connect, before the liveness timeout %v", d, pongTimeout)
	}
	waitState(t, observer, key.ID(), wire.PeerGrace)
}
