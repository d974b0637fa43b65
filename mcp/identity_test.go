package mcp

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/claudemesh/claudemesh/claudecode"
	"github.com/claudemesh/claudemesh/config"
)

// A DM to a session that is away is queued; the session's next process,
// with the same session id, has the same key, gets the DM, and is one
// peer, not a ghost beside its old self.
func TestDMQueuedForAwaySessionAndStableIdentity(t *testing.T) {
	lb := startLocalBroker(t)
	alice := startSession(t, nil, "alice", lb.in)
	bobID := uuid.NewString()
	bobEnv := fromEnv(t, config.EnvName, "bob", config.EnvSessionID, bobID)
	bob := startSession(t, nil, "bob", lb.in, bobEnv)
	alice.waitConnected(t)
	bob.waitConnected(t)
	before := bob.whoami(t)
	alice.waitPeer(t, before.KeyID, "online")
	bob.stop()
	alice.waitPeer(t, before.KeyID, "away")

	sent := alice.sendTo(t, "bob", "while you were away")
	if sent.Status != "queued" || sent.ToKeyID != before.KeyID {
		t.Fatalf("send_dm to away bob = %+v, want queued for %s", sent, before.KeyID)
	}
	if got := alice.status(t, sent.ID); got != "queued" {
		t.Errorf("message_status of the DM to away bob = %s, want queued", got)
	}

	bob = startSession(t, nil, "bob", lb.in, bobEnv)
	after := bob.whoami(t)
	if after.KeyID != before.KeyID || after.PublicKey != before.PublicKey || after.IdentityMode != "stable" ||
		after.SessionID != bobID || after.SessionSource != config.EnvSessionID {
		t.Errorf("bob's identity after restart = %+v, want key %s (stable) of session %s from %s", after, before.KeyID, bobID, config.EnvSessionID)
	}
	got := bob.waitInbox(t, 1)
	if len(got) != 1 || got[0].ID != sent.ID || got[0].Text != "while you were away" || got[0].From != "alice" {
		t.Fatalf("bob's inbox after restart = %+v, want the queued DM %s", got, sent.ID)
	}
	bob.assertInboxEmpty(t)

	// The returning session is one peer, not a ghost beside its old self.
	alice.waitPeer(t, before.KeyID, "online")
	var bobs []PeerInfo
	for _, p := range alice.peers(t) {
		if p.Name == "bob" {
			bobs = append(bobs, p)
		}
	}
	if len(bobs) != 1 {
		t.Errorf("alice sees %d peers named bob, want 1: %+v", len(bobs), bobs)
	}
}

// Without a session id the server still works, under an ephemeral
// identity that whoami reports as such and that is never stored.
func TestEphemeralIdentity(t *testing.T) {
	lb := startLocalBroker(t)
	eve := startSession(t, nil, "eve", lb.in, fromEnv(t, config.EnvName, "eve"))
	eve.waitConnected(t)
	res, text := eve.call(t, "whoami", nil)
	w := decode[WhoamiResult](t, res)
	if w.IdentityMode != "ephemeral" || w.SessionID != "" || w.SessionSource != "" || w.KeyID == "" {
		t.Errorf("whoami without a session id = %+v, want an ephemeral identity", w)
	}
	if !strings.Contains(text, "this identity disappears when the process exits") || !strings.Contains(text, claudecode.EnvSessionID) {
		t.Errorf("whoami's text %q does not warn that the identity is ephemeral and where a session id comes from", text)
	}
	// An ephemeral key is never stored.
	if _, err := os.Stat(filepath.Join(lb.home, "sessions")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an ephemeral session touched the keystore: %v", err)
	}
	// It is still a working peer.
	bob := startSession(t, nil, "bob", lb.in)
	bob.waitConnected(t)
	if p := bob.waitPeer(t, w.KeyID, "online"); p.Name != "eve" || p.SessionID != "" {
		t.Errorf("bob sees eve as %+v", p)
	}
	// "@" names nobody, not the one session without a session id.
	if res, text := bob.call(t, "send_dm", map[string]any{"to": "@", "message": "to whom?"}); !res.IsError {
		t.Errorf("send_dm to \"@\" succeeded: %s", text)
	}
	bob.sendTo(t, "eve", "hi eve")
	if got := eve.waitInbox(t, 1); len(got) != 1 || got[0].Text != "hi eve" {
		t.Errorf("eve received %+v", got)
	}
}

// Claude Code may start the server of one session twice: the newer
// process takes the session over and the older one stands by, without
// showing or sending anything of the session; take_over gives it back.
// Each move is one replacement at the broker: no reconnect war.
func TestSameSessionTwice(t *testing.T) {
	lb := startLocalBroker(t)
	alice := startSession(t, nil, "alice", lb.in)
	alice.waitConnected(t)
	bobID := uuid.NewString()
	first := startSession(t, nil, "bob", lb.in, withID(bobID))
	first.waitConnected(t)
	key := first.keyID()
	second := startSession(t, nil, "bob", lb.in, withID(bobID))
	second.waitConnected(t)
	if k := second.keyID(); k != key {
		t.Fatalf("second process of bob has key %s, want %s", k, key)
	}
	eventually(t, "the first process stands by", func() bool { return first.whoami(t).Connection == "standby" })
	res, text := first.call(t, "send_dm", map[string]any{"to": "alice", "message": "from the old process"})
	if !res.IsError || !strings.Contains(text, "another process") {
		t.Errorf("send_dm from the replaced process: isError=%v %q, want an error that the session is active in another process", res.IsError, text)
	}
	alice.sendTo(t, "bob", "to the live process")
	if got := second.waitInbox(t, 1); len(got) != 1 || got[0].Text != "to the live process" {
		t.Errorf("the live process received %+v", got)
	}
	// The standing-by process shows none of the session's DMs: they are
	// the live process's.
	if res, text := first.call(t, "inbox", nil); !res.IsError || !strings.Contains(text, "another process") {
		t.Errorf("inbox of the standing-by process: isError=%v %q, want an error that the session is active in another process", res.IsError, text)
	}
	if got := first.unreadIDs(); len(got) != 0 {
		t.Errorf("the standing-by process holds DMs %v", got)
	}
	var bobs int
	for _, p := range alice.peers(t) {
		if p.KeyID == key {
			bobs++
		}
	}
	if bobs != 1 {
		t.Errorf("alice sees bob %d times, want once", bobs)
	}

	// The first process was asked to take the session back: the second
	// stands by in turn, and the broker saw exactly two replacements.
	if w := mustCall[WhoamiResult](t, first, "whoami", map[string]any{"take_over": true}); w.Connection != "connected" {
		t.Fatalf("after take_over the first process is %q, want connected", w.Connection)
	}
	eventually(t, "the second process stands by", func() bool { return second.whoami(t).Connection == "standby" })
	alice.sendTo(t, "bob", "to the first process again")
	if got := first.waitInbox(t, 1); len(got) != 1 || got[0].Text != "to the first process again" {
		t.Errorf("the first process received %+v", got)
	}
	if got := second.unreadIDs(); len(got) != 0 {
		t.Errorf("the process standing by now holds DMs %v", got)
	}
	if n := lb.srv.Stats().Replacements; n != 2 {
		t.Errorf("the broker replaced bob's session %d times, want 2 (no reconnect war)", n)
	}
}
