package broker_test

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/claudemesh/claudemesh/broker"
	"github.com/claudemesh/claudemesh/wire"
)

// After the hello, a bad frame is answered with an error frame and the
// connection carries on; only a frame over the size limit ends it.
func TestBadFramesAfterHello(t *testing.T) {
	t.Parallel()
	smallOrder := make(ed25519.PublicKey, ed25519.PublicKeySize)
	smallOrder[0] = 1
	sendTo := func(to []byte, box int) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			return encode(t, wire.Send{ID: uuid.NewString(), To: to, Nonce: make([]byte, wire.NonceSize), Box: make([]byte, box)})
		}
	}
	text := func(s string) func(t *testing.T) []byte { return func(*testing.T) []byte { return []byte(s) } }

	tests := []struct {
		name   string
		typ    int
		data   func(t *testing.T) []byte
		code   string
		refSet bool // the error names the DM it answers
		closed bool
	}{
		{name: "malformed JSON", typ: websocket.TextMessage, data: text(`{"type":`), code: wire.CodeBadFrame},
		{name: "unknown type", typ: websocket.TextMessage, data: text(`{"type":"gossip"}`), code: wire.CodeBadFrame},
		{name: "binary message", typ: websocket.BinaryMessage, data: text(`{"type":"peers","req":1}`), code: wire.CodeBadFrame},
		{name: "frame only a broker sends", typ: websocket.TextMessage, data: func(t *testing.T) []byte {
			return encode(t, wire.Sent{ID: uuid.NewString(), Status: wire.StatusQueued})
		}, code: wire.CodeBadFrame},
		{name: "second hello", typ: websocket.TextMessage, data: func(t *testing.T) []byte {
			k := newKey(t, testMesh)
			return encode(t, hello(make([]byte, wire.ChallengeSize), testMesh, k.Public, k.Private, testToken))
		}, code: wire.CodeBadFrame},
		{name: "box over the limit", typ: websocket.TextMessage, data: sendTo(make([]byte, wire.KeySize), wire.MaxBoxSize+1), code: wire.CodeTooLarge, refSet: true},
		{name: "too many acks", typ: websocket.TextMessage, data: func(t *testing.T) []byte {
			ids := make([]string, wire.MaxAckIDs+1)
			for i := range ids {
				ids[i] = uuid.NewString()
			}
			return encode(t, wire.Ack{IDs: ids})
		}, code: wire.CodeTooLarge},
		{name: "too many status ids", typ: websocket.TextMessage, data: func(t *testing.T) []byte {
			ids := make([]string, wire.MaxAckIDs+1)
			for i := range ids {
				ids[i] = uuid.NewString()
			}
			return encode(t, wire.StatusRequest{Req: 5, IDs: ids})
		}, code: wire.CodeTooLarge, refSet: true},
		{name: "status without ids", typ: websocket.TextMessage, data: text(`{"type":"status","req":6,"ids":[]}`), code: wire.CodeBadFrame, refSet: true},
		{name: "receipt of an unknown state", typ: websocket.TextMessage, data: func(t *testing.T) []byte {
			return encode(t, wire.Receipt{IDs: []string{uuid.NewString()}, State: wire.StateRead})
		}, code: wire.CodeBadFrame},
		{name: "frame only a broker sends: status_list", typ: websocket.TextMessage, data: func(t *testing.T) []byte {
			return encode(t, wire.StatusList{Req: 1})
		}, code: wire.CodeBadFrame},
		{name: "small-order recipient", typ: websocket.TextMessage, data: sendTo(smallOrder, 32), code: wire.CodeUnknownPeer, refSet: true},
		{name: "frame over the limit", typ: websocket.TextMessage, data: text(`{"type":"peers","req":1,"pad":"` + strings.Repeat("x", wire.MaxFrameSize) + `"}`), code: wire.CodeTooLarge, closed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tb := newBroker(t, broker.Config{})
			key := newKey(t, testMesh)
			rc := tb.join(t, key, websocket.DefaultDialer)
			data := tt.data(t)
			if tt.closed {
				// The broker stops reading a frame over the limit: write
				// from a goroutine so that reading its answer never waits
				// for the write.
				written := make(chan error, 1)
				go func() { written <- rc.WriteMessage(tt.typ, data) }()
				t.Cleanup(func() {
					rc.Close()
					<-written
				})
			} else if err := rc.WriteMessage(tt.typ, data); err != nil {
				t.Fatal(err)
			}

			e, ok := rc.frame(t).(*wire.Error)
			if !ok || e.Code != tt.code {
				t.Fatalf("broker answered %+v, want error %s", e, tt.code)
			}
			if (e.Ref != "") != tt.refSet {
				t.Errorf("error ref %q; want one: %t", e.Ref, tt.refSet)
			}
			if tt.closed {
				rc.SetReadDeadline(time.Now().Add(waitTimeout))
				_, _, err := rc.ReadMessage()
				var ce *websocket.CloseError
				if !errors.As(err, &ce) || ce.Text != tt.code {
					t.Fatalf("after the error: %v, want the connection closed with reason %s", err, tt.code)
				}
				other := tb.dial(t, newKey(t, testMesh), "other")
				eventually(t, "the closed session is listed offline", func() bool {
					p, ok := other.peers(t)[key.ID()]
					return ok && !p.Online()
				})
				return
			}
			rc.write(t, wire.PeersRequest{Req: 9})
			if l, ok := rc.frame(t).(wire.PeerList); !ok || l.Req != 9 || len(l.Peers) != 1 {
				t.Errorf("peers request after the error answered with %+v, want the connection still serving", l)
			}
		})
	}
}
