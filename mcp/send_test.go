package mcp

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/claudemesh/claudemesh/config"
)

// Two sessions of one home find the broker through broker.json, see each
// other (never themselves), and exchange DMs byte for byte, each returned
// once, in order.
func TestDMBetweenOnlineSessions(t *testing.T) {
	lb := startLocalBroker(t)
	aliceID, bobID := uuid.NewString(), uuid.NewString()
	alice := startSession(t, nil, "alice", lb.in, withID(aliceID), func(c *Config) { c.ProjectDir = "/projects/alice" })
	bob := startSession(t, nil, "bob", lb.in, withID(bobID), func(c *Config) { c.ProjectDir = "/projects/bob" })
	alice.waitConnected(t)
	bob.waitConnected(t)
	a, b := alice.whoami(t), bob.whoami(t)
	if a.Broker != lb.url || a.Connection != "connected" {
		t.Errorf("alice's whoami: broker %q (%s), want the published %q, connected", a.Broker, a.Connection, lb.url)
	}
	if a.KeyID == b.KeyID {
		t.Fatalf("alice and bob share key id %s", a.KeyID)
	}

	peers := mustCall[PeersResult](t, alice, "list_peers", nil)
	if peers.Mesh != "default" {
		t.Errorf("list_peers mesh = %q, want default", peers.Mesh)
	}
	want := PeerInfo{Name: "bob", KeyID: b.KeyID, SessionID: bobID, ProjectDir: "/projects/bob", State: "online", Kind: "session"}
	if len(peers.Peers) != 1 {
		t.Errorf("alice's list_peers = %+v, want only %+v (and never alice herself)", peers.Peers, want)
	} else if p := peers.Peers[0]; p.Name != want.Name || p.KeyID != want.KeyID || p.SessionID != want.SessionID ||
		p.ProjectDir != want.ProjectDir || p.State != want.State || p.ConnectedSince == "" {
		t.Errorf("alice's list_peers row = %+v, want %+v online since a time", p, want)
	}

	sent := alice.sendTo(t, "bob", "hello bob")
	if sent.Status != "delivered" || sent.To != "bob" || sent.ToKeyID != b.KeyID || sent.ID == "" {
		t.Errorf("send_dm to bob = %+v, want delivered to bob (%s) with an id", sent, b.KeyID)
	}
	got := bob.waitInbox(t, 1)
	if len(got) != 1 {
		t.Fatalf("bob's inbox returned %d DMs, want 1: %+v", len(got), got)
	}
	msg := got[0]
	if msg.ID != sent.ID || msg.Text != "hello bob" || msg.From != "alice" || msg.FromKeyID != a.KeyID ||
		msg.FromSession != aliceID || msg.Error != "" {
		t.Errorf("bob received %+v, want id %s text %q from alice (%s, session %s)", msg, sent.ID, "hello bob", a.KeyID, aliceID)
	}
	if at, err := time.Parse(time.RFC3339, msg.SentAt); err != nil || time.Since(at) > time.Minute || time.Until(at) > time.Minute {
		t.Errorf("sent_at = %q (%v), want an RFC 3339 time close to now", msg.SentAt, err)
	}
	bob.assertInboxEmpty(t)   // returned once, never twice
	alice.assertInboxEmpty(t) // a DM does not come back to its sender

	// Text the model writes goes through byte for byte: non-ASCII,
	// newlines, quotes, characters JSON escapes, and a large body. This one
	// is addressed by key id prefix.
	big := strings.Repeat("0123456789abcdef", 10<<10/16)
	texts := []string{
		"héllo wörld — 你好, 👋🏽 \"quoted\" 'single' `back` \\ backslash\nline two\r\n\ttabbed <tag> & ampersand \u2028 \x00\x07 end",
		big,
		"third, to check order",
	}
	for i, text := range texts {
		res := alice.sendTo(t, b.KeyID[:8], text)
		if res.Status != "delivered" || res.ToKeyID != b.KeyID {
			t.Errorf("send_dm %d by key prefix = %+v, want delivered to %s", i, res, b.KeyID)
		}
	}
	got = bob.waitInbox(t, len(texts))
	if len(got) != len(texts) {
		t.Fatalf("bob's inbox returned %d DMs, want %d", len(got), len(texts))
	}
	for i, msg := range got {
		if msg.Text != texts[i] {
			t.Errorf("DM %d arrived as %d bytes %q, want %d bytes %q", i, len(msg.Text), abbrev(msg.Text), len(texts[i]), abbrev(texts[i]))
		}
	}
	bob.assertInboxEmpty(t)
}

func abbrev(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

// send_dm refuses, with a reason the model can act on and without sending
// anything, a recipient nobody or several sessions answer to and a message
// that is empty or too large; the largest message it accepts is delivered
// whatever it holds.
func TestSendDMErrors(t *testing.T) {
	tb, alice, bob := pair(t)
	bobKey := bob.keyID()
	alice.waitPeer(t, bobKey, "online")

	t.Run("unknown name", func(t *testing.T) {
		res, text := alice.call(t, "send_dm", map[string]any{"to": "carol", "message": "hi"})
		if !res.IsError || !strings.Contains(text, "carol") || !strings.Contains(text, "bob") || !strings.Contains(text, bobKey) {
			t.Errorf("send_dm to carol: isError=%v %q, want an error naming carol and the online bob (%s)", res.IsError, text, bobKey)
		}
		if strings.Contains(text, "alice") {
			t.Errorf("send_dm to carol: %q offers alice her own session as a recipient", text)
		}
	})
	for _, msg := range []string{"", "  \n\t "} {
		res, text := alice.call(t, "send_dm", map[string]any{"to": "bob", "message": msg})
		if !res.IsError || !strings.Contains(text, "message") {
			t.Errorf("send_dm of %q: isError=%v %q, want an error about the message", msg, res.IsError, text)
		}
	}
	res, text := alice.call(t, "send_dm", map[string]any{"to": "", "message": "hi"})
	if !res.IsError || !strings.Contains(text, "`to`") {
		t.Errorf("send_dm without a recipient: isError=%v %q", res.IsError, text)
	}
	res, text = alice.call(t, "send_dm", map[string]any{"to": "bob", "message": strings.Repeat("x", 64<<10+1)})
	if !res.IsError || !strings.Contains(text, "limit") {
		t.Errorf("send_dm of 64 KiB + 1: isError=%v %q, want an error about the limit", res.IsError, text)
	}

	// The largest message send_dm accepts is delivered whatever it holds:
	// characters JSON escapes must not push it over the broker's box limit.
	maxText := strings.Repeat("<&>", 64<<10/3)
	if res := alice.sendTo(t, "bob", maxText); res.Status != "delivered" {
		t.Errorf("send_dm of %d bytes of <&> = %+v, want delivered", len(maxText), res)
	}
	if got := bob.waitInbox(t, 1); len(got) != 1 || got[0].Text != maxText {
		t.Errorf("bob's inbox returned %d DMs, want the %d-byte DM once, intact", len(got), len(maxText))
	}
	// Control characters grow sixfold in JSON; a message that cannot fit
	// is refused at once, not left pending and retried for ever.
	res, text = alice.call(t, "send_dm", map[string]any{"to": "bob", "message": strings.Repeat("\x01", 60<<10)})
	if !res.IsError || !strings.Contains(text, "large") {
		t.Errorf("send_dm of 60 KiB of control characters: isError=%v %q, want an error that it is too large", res.IsError, text)
	}
	if st := alice.srv.bound().client.State(); st.Outbox != 0 {
		t.Errorf("alice's client holds %d unconfirmed DMs after the refusals, want none", st.Outbox)
	}
	bob.assertInboxEmpty(t)

	// Two online sessions named bob: the name is ambiguous, a key id is not.
	bob2 := startSession(t, tb, "bob")
	bob2.waitConnected(t)
	bob2Key := alice.waitPeer(t, bob2.keyID(), "online").KeyID
	res, text = alice.call(t, "send_dm", map[string]any{"to": "BOB", "message": "which one?"})
	if !res.IsError || !strings.Contains(text, bobKey) || !strings.Contains(text, bob2Key) || !strings.Contains(text, "key id") {
		t.Errorf("send_dm to an ambiguous name: isError=%v %q, want an error listing %s and %s and asking for a key id", res.IsError, text, bobKey, bob2Key)
	}
	if res := alice.sendTo(t, bob2Key, "to the second bob"); res.ToKeyID != bob2Key || res.Status != "delivered" {
		t.Errorf("send_dm by key id = %+v, want delivered to %s", res, bob2Key)
	}
	if got := bob2.waitInbox(t, 1); len(got) != 1 || got[0].Text != "to the second bob" {
		t.Errorf("the second bob received %+v", got)
	}
	bob.assertInboxEmpty(t)

	// A session never resolves to itself: bob2 writing to "bob" means the
	// other bob, even though its own name matches too.
	if res := bob2.sendTo(t, "bob", "from one bob to the other"); res.ToKeyID != bobKey {
		t.Errorf("bob2's send_dm to bob = %+v, want the other bob %s", res, bobKey)
	}
	if got := bob.waitInbox(t, 1); len(got) != 1 || got[0].Text != "from one bob to the other" {
		t.Errorf("bob received %+v", got)
	}
	bob2.assertInboxEmpty(t)
}

// Meshes are separate: the same session id in another mesh is another
// identity, and nobody sees or reaches a session of another mesh.
func TestMeshesAreSeparate(t *testing.T) {
	tb := startBroker(t)
	home, sharedID := t.TempDir(), uuid.NewString()
	inMesh := func(mesh string) func(*Config) { return func(c *Config) { c.Home, c.Mesh = home, mesh } }
	alice := startSession(t, tb, "alice", inMesh(config.DefaultMesh), withID(sharedID))
	bob := startSession(t, tb, "bob", inMesh("other"))
	alice2 := startSession(t, tb, "alice2", inMesh("other"), withID(sharedID))
	alice.waitConnected(t)
	alice2.waitConnected(t)
	a, a2 := alice.whoami(t), alice2.whoami(t)
	if a.KeyID == a2.KeyID || a2.Mesh != "other" {
		t.Errorf("one session id in meshes default and other: keys %s and %s (mesh %q), want two keys", a.KeyID, a2.KeyID, a2.Mesh)
	}
	bob.waitConnected(t)
	bob.waitPeer(t, a2.KeyID, "online")

	if peers := alice.peers(t); len(peers) != 0 {
		t.Errorf("alice in mesh default sees %+v, want nobody", peers)
	}
	if res, text := alice.call(t, "send_dm", map[string]any{"to": "bob", "message": "across meshes"}); !res.IsError {
		t.Errorf("send_dm across meshes succeeded: %s", text)
	}
	// Nor by key id: bob's key is unknown in mesh default.
	if res, text := alice.call(t, "send_dm", map[string]any{"to": bob.keyID(), "message": "across meshes"}); !res.IsError {
		t.Errorf("send_dm across meshes by key id succeeded: %s", text)
	}
	bob.assertInboxEmpty(t)
}
