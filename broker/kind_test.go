package broker_test

import (
	"crypto/ed25519"
	"testing"

	"github.com/claudemesh/claudemesh/broker"
	"github.com/claudemesh/claudemesh/client"
	"github.com/claudemesh/claudemesh/wire"
)

// A peer that says hello as a human is listed as one while online (from
// its lease) and once away (from the store); sessions are listed without a
// kind.
func TestHumanKindListed(t *testing.T) {
	tb := newBroker(t, broker.Config{})
	alice := tb.dial(t, newKey(t, "default"), "alice")
	humanKey := newKey(t, "default")
	human := tb.dial(t, humanKey, "olga (terminal)", func(c *client.Config) { c.Kind = wire.KindHuman })

	peers := alice.peers(t)
	if p := peers[humanKey.ID()]; p.Kind != wire.KindHuman || p.State != wire.PeerOnline {
		t.Errorf("online human listed as %+v", p)
	}
	if p := human.peers(t)[alice.key.ID()]; p.Kind != wire.KindSession {
		t.Errorf("session listed with kind %q", p.Kind)
	}
	closeWithin(t, "human", human)
	eventually(t, "the human to be away", func() bool {
		p := alice.peers(t)[humanKey.ID()]
		return p.State == wire.PeerOffline && p.Kind == wire.KindHuman
	})
}

// The kind is signed: a hello whose kind was changed after signing is
// refused, and so is a kind the protocol does not know.
func TestHelloKindSignedAndChecked(t *testing.T) {
	tb := newBroker(t, broker.Config{})
	key := newKey(t, "default")
	for _, tt := range []struct {
		name   string
		signed string // the kind signed
		sent   string // the kind sent
		code   string
	}{
		{"kind dropped after signing", wire.KindHuman, wire.KindSession, wire.CodeBadSignature},
		{"kind added after signing", wire.KindSession, wire.KindHuman, wire.CodeBadSignature},
		{"unknown kind", "robot", "robot", wire.CodeBadFrame},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rc := tb.dialRaw(t)
			h := wire.Hello{Version: wire.Version, Mesh: "default", Key: wire.Key(key.Public), Name: "raw", Token: tb.token, Kind: tt.signed}
			h.Sig = ed25519.Sign(key.Private, wire.HelloTranscript(rc.challenge(t), h))
			h.Kind = tt.sent
			rc.write(t, h)
			f := rc.frame(t)
			if e, ok := f.(*wire.Error); !ok || e.Code != tt.code {
				t.Errorf("hello answered with %+v, want %s", f, tt.code)
			}
		})
	}
}
