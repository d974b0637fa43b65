package broker_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/claudemesh/claudemesh/broker"
	"github.com/claudemesh/claudemesh/store"
	"github.com/claudemesh/claudemesh/wire"
)

// attempt is what a handshake case presents: the session it claims and the
// message it answers the challenge with.
type attempt struct {
	mesh string
	pub  ed25519.PublicKey
	// typ and data are written unless skip is set.
	typ  int
	data []byte
	skip bool
}

func encode(t testing.TB, f wire.Frame) []byte {
	t.Helper()
	b, err := wire.Encode(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHandshakeRefused(t *testing.T) {
	t.Parallel()
	// signed answers the challenge with a hello for a fresh key in mesh,
	// after edit changed it; edit may re-sign.
	signed := func(mesh string, edit func(h *wire.Hello, priv ed25519.PrivateKey)) func(t *testing.T, tb *testBroker, challenge []byte) attempt {
		return func(t *testing.T, tb *testBroker, challenge []byte) attempt {
			pub, priv, err := ed25519.GenerateKey(nil)
			if err != nil {
				t.Fatal(err)
			}
			h := hello(challenge, mesh, pub, priv, tb.token)
			if edit != nil {
				edit(&h, priv)
			}
			return attempt{mesh: mesh, pub: pub, typ: websocket.TextMessage, data: encode(t, h)}
		}
	}
	resign := func(h *wire.Hello, priv ed25519.PrivateKey, challenge []byte) {
		h.Sig = ed25519.Sign(priv, wire.HelloTranscript(challenge, *h))
	}

	tests := []struct {
		name    string
		timeout time.Duration // Config.HandshakeTimeout; 0 for the default
		answer  func(t *testing.T, tb *testBroker, challenge []byte) attempt
		code    string
	}{
		{
			name: "wrong token",
			answer: func(t *testing.T, tb *testBroker, challenge []byte) attempt {
				return signed(testMesh, func(h *wire.Hello, priv ed25519.PrivateKey) {
					h.Token = strings.ToUpper(tb.token)
				})(t, tb, challenge)
			},
			code: wire.CodeUnauthorized,
		},
		{
			name: "missing token",
			answer: signed(testMesh, func(h *wire.Hello, priv ed25519.PrivateKey) {
				h.Token = "" // the token is not part of the transcript
			}),
			code: wire.CodeUnauthorized,
		},
		{
			name: "signed by another key",
			answer: func(t *testing.T, tb *testBroker, challenge []byte) attempt {
				return signed(testMesh, func(h *wire.Hello, _ ed25519.PrivateKey) {
					_, other, _ := ed25519.GenerateKey(nil)
					resign(h, other, challenge)
				})(t, tb, challenge)
			},
			code: wire.CodeBadSignature,
		},
		{
			name: "signed over another challenge",
			answer: func(t *testing.T, tb *testBroker, challenge []byte) attempt {
				// A hello prepared for another connection of the
				// same broker does not open this one.
				earlier := tb.dialRaw(t).challenge(t)
				if bytes.Equal(earlier, challenge) {
					t.Fatal("two connections got the same challenge")
				}
				return signed(testMesh, func(h *wire.Hello, priv ed25519.PrivateKey) {
					resign(h, priv, earlier)
				})(t, tb, challenge)
			},
			code: wire.CodeBadSignature,
		},
		{
			name: "missing signature",
			answer: signed(testMesh, func(h *wire.Hello, _ ed25519.PrivateKey) {
				h.Sig = nil
			}),
			code: wire.CodeBadSignature,
		},
		{
			name: "other protocol version",
			answer: func(t *testing.T, tb *testBroker, challenge []byte) attempt {
				return signed(testMesh, func(h *wire.Hello, priv ed25519.PrivateKey) {
					h.Version = wire.Version + 1
					resign(h, priv, challenge)
				})(t, tb, challenge)
			},
			code: wire.CodeUnsupportedVersion,
		},
		{
			name: "other frame first",
			answer: func(t *testing.T, tb *testBroker, challenge []byte) attempt {
				return attempt{mesh: testMesh, typ: websocket.TextMessage, data: encode(t, wire.PeersRequest{Req: 1})}
			},
			code: wire.CodeHelloRequired,
		},
		{
			name: "malformed JSON",
			answer: func(t *testing.T, tb *testBroker, challenge []byte) attempt {
				return attempt{mesh: testMesh, typ: websocket.TextMessage, data: []byte(`{"type":"hello","v":1,`)}
			},
			code: wire.CodeBadFrame,
		},
		{
			name: "binary message",
			answer: func(t *testing.T, tb *testBroker, challenge []byte) attempt {
				a := signed(testMesh, nil)(t, tb, challenge)
				a.typ = websocket.BinaryMessage // a valid hello, in the wrong kind of message
				return a
			},
			code: wire.CodeBadFrame,
		},
		{
			name:   "mesh escapes its directory",
			answer: signed("../x", nil),
			code:   wire.CodeBadMesh,
		},
		{
			name:   "mesh in upper case",
			answer: signed("UPPER", nil),
			code:   wire.CodeBadMesh,
		},
		{
			name: "small-order key",
			answer: func(t *testing.T, tb *testBroker, challenge []byte) attempt {
				// The identity point: with R = identity and S = 0 any
				// message verifies under ed25519, so only the key check
				// can refuse this hello.
				pub := make(ed25519.PublicKey, ed25519.PublicKeySize)
				pub[0] = 1
				h := wire.Hello{Version: wire.Version, Mesh: testMesh, Key: wire.Key(pub), Name: "raw", Token: tb.token}
				h.Sig = make([]byte, ed25519.SignatureSize)
				h.Sig[0] = 1
				if !ed25519.Verify(pub, wire.HelloTranscript(challenge, h), h.Sig) {
					t.Fatal("the forged signature does not verify: the case no longer tests the key check")
				}
				return attempt{mesh: testMesh, pub: pub, typ: websocket.TextMessage, data: encode(t, h)}
			},
			code: wire.CodeBadSignature,
		},
		{
			name: "oversized frame",
			answer: func(t *testing.T, tb *testBroker, challenge []byte) attempt {
				a := signed(testMesh, nil)(t, tb, challenge)
				// A hello padded with an unknown field past the limit.
				pad := `,"pad":"` + strings.Repeat("x", wire.MaxFrameSize) + `"}`
				a.data = append(bytes.TrimSuffix(a.data, []byte("}")), pad...)
				return a
			},
			code: wire.CodeTooLarge,
		},
		{
			name:    "silent client",
			timeout: 200 * time.Millisecond,
			answer: func(t *testing.T, tb *testBroker, challenge []byte) attempt {
				return attempt{mesh: testMesh, skip: true}
			},
			code: wire.CodeHandshakeTimeout,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tb := newBroker(t, broker.Config{HandshakeTimeout: tt.timeout})
			rc := tb.dialRaw(t)
			a := tt.answer(t, tb, rc.challenge(t))
			if !a.skip {
				// The broker may stop reading a message it refuses: write
				// from a goroutine so that reading its answer never waits
				// for the write.
				written := make(chan error, 1)
				go func() { written <- rc.WriteMessage(a.typ, a.data) }()
				t.Cleanup(func() {
					rc.Close()
					<-written
				})
			}

			f := rc.frame(t)
			e, ok := f.(*wire.Error)
			if !ok {
				t.Fatalf("broker answered %+v, want an error frame", f)
			}
			if e.Code != tt.code {
				t.Errorf("error code %q (%s), want %q", e.Code, e.Message, tt.code)
			}
			// The error frame is the last one: the broker closes the
			// connection, naming the code in the close reason.
			rc.SetReadDeadline(time.Now().Add(waitTimeout))
			_, data, err := rc.ReadMessage()
			var ce *websocket.CloseError
			switch {
			case err == nil:
				t.Fatalf("broker sent %q after the error frame, want the connection closed", data)
			case !errors.As(err, &ce):
				t.Fatalf("connection ended with %v, want a close frame", err)
			case ce.Code != closeCodeOf(tt.code) || ce.Text != tt.code:
				t.Errorf("closed with code %d %q, want %d %q", ce.Code, ce.Text, closeCodeOf(tt.code), tt.code)
			}

			// Nothing was recorded or registered for the refused session.
			if a.pub != nil {
				if s, err := tb.st.Session(t.Context(), a.mesh, a.pub); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("store has session %+v (err %v) for the refused hello", s, err)
				}
			}
			good := tb.dial(t, newKey(t, testMesh), "good")
			peers := good.peers(t)
			if len(peers) != 1 || peers[good.key.ID()].Name != "good" {
				t.Errorf("peers after a refused hello: %+v, want only the good client", peers)
			}
		})
	}
}

// A hello captured from an accepted connection does not open another one,
// and the failed replay does not displace the session it copied.
func TestHandshakeReplayRefused(t *testing.T) {
	t.Parallel()
	tb := newBroker(t, broker.Config{})
	key := newKey(t, testMesh)

	first := tb.dialRaw(t)
	captured := encode(t, hello(first.challenge(t), key.Mesh, key.Public, key.Private, tb.token))
	if err := first.WriteMessage(websocket.TextMessage, captured); err != nil {
		t.Fatal(err)
	}
	if f := first.frame(t); f.Type() != wire.TypeWelcome {
		t.Fatalf("hello answered with %+v, want a welcome", f)
	}

	replay := tb.dialRaw(t)
	replay.challenge(t)
	if err := replay.WriteMessage(websocket.TextMessage, captured); err != nil {
		t.Fatal(err)
	}
	if e, ok := replay.frame(t).(*wire.Error); !ok || e.Code != wire.CodeBadSignature {
		t.Fatalf("replayed hello answered with %+v, want %s", e, wire.CodeBadSignature)
	}

	// The first connection is still the live one: it answers requests.
	first.write(t, wire.PeersRequest{Req: 7})
	list, ok := first.frame(t).(wire.PeerList)
	if !ok || list.Req != 7 || len(list.Peers) != 1 || !list.Peers[0].Online() {
		t.Fatalf("first connection after the replay: got %+v, want a peer list with itself online", list)
	}
	if n := tb.srv.Stats().Replacements; n != 0 {
		t.Errorf("broker replaced a session %d times after a refused replay", n)
	}
}

// closeCodeOf is the WebSocket close code that goes with a refusal.
func closeCodeOf(code string) int {
	if code == wire.CodeTooLarge {
		return websocket.CloseMessageTooBig
	}
	return websocket.ClosePolicyViolation
}
