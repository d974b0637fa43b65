package mcp

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/claudemesh/claudemesh/claudecode"
	"github.com/claudemesh/claudemesh/config"
	"github.com/claudemesh/claudemesh/wire"
)

// send_dm to @group reaches each member, sealed to each, and they see the
// group; message_status says where it is for each recipient with a
// summary; a session outside the group gets nothing.
func TestGroupDMThroughTools(t *testing.T) {
	tb := startBroker(t)
	alice := startSession(t, tb, "alice")
	bob := startSession(t, tb, "bob")
	carol := startSession(t, tb, "carol", fromEnv(t, config.EnvName, "carol", config.EnvSessionID, uuid.NewString(), config.EnvGroups, "backend,ops"))
	dave := startSession(t, tb, "dave")
	for _, ss := range []*session{alice, bob, carol, dave} {
		ss.waitConnected(t)
	}
	if g := mustCall[GroupsResult](t, bob, "join_group", map[string]any{"name": "backend"}); !slices.Equal(g.Groups, []string{"backend"}) {
		t.Fatalf("bob's groups: %v", g.Groups)
	}
	eventually(t, "carol in backend from CLAUDEMESH_GROUPS", func() bool {
		res := mustCall[PeersResult](t, alice, "list_peers", map[string]any{"group": "backend"})
		return len(res.Peers) == 2
	})

	sent := mustCall[SendResult](t, alice, "send_dm", map[string]any{"to": "@backend", "message": "rebasing main, hold your pushes"})
	if sent.Reached != 2 || sent.Group != "backend" || sent.To != "@backend" {
		t.Fatalf("send_dm to @backend: %+v", sent)
	}
	for _, ss := range []*session{bob, carol} {
		got := ss.waitInbox(t, 1)
		if got[0].Group != "backend" || got[0].Text != "rebasing main, hold your pushes" || got[0].From != "alice" || got[0].Error != "" {
			t.Errorf("%v received %+v", ss.srv.cfg.Name, got[0])
		}
	}
	dave.assertInboxEmpty(t)

	eventually(t, "both copies read", func() bool {
		st := mustCall[StatusResult](t, alice, "message_status", map[string]any{"id": sent.ID})
		return st.Group == "backend" && len(st.Recipients) == 2 && st.Summary == "2 read" && st.State == wire.StateRead
	})

	// @all reaches everyone but the sender.
	all := mustCall[SendResult](t, bob, "send_dm", map[string]any{"to": "@all", "message": "lunch"})
	if all.Reached != 3 {
		t.Errorf("@all reached %d, want 3", all.Reached)
	}
	for _, ss := range []*session{alice, carol, dave} {
		if got := ss.waitInbox(t, 1); got[0].Group != wire.GroupAll {
			t.Errorf("@all received as %+v", got[0])
		}
	}
	bob.assertInboxEmpty(t)

	// Leaving: the next send no longer reaches bob.
	mustCall[GroupsResult](t, bob, "leave_group", map[string]any{"name": "backend"})
	again := mustCall[SendResult](t, alice, "send_dm", map[string]any{"to": "@backend", "message": "done"})
	if again.Reached != 1 || again.Recipients[0].Name != "carol" {
		t.Errorf("after bob left: %+v", again)
	}
	// A group nobody is in, and a bad name, are clear errors.
	if res, text := alice.call(t, "send_dm", map[string]any{"to": "@nobody", "message": "x"}); !res.IsError || !strings.Contains(text, "no other session is in @nobody") {
		t.Errorf("send to an empty group: %q", text)
	}
	if res, text := alice.call(t, "join_group", map[string]any{"name": "../etc"}); !res.IsError || !strings.Contains(text, "invalid group name") {
		t.Errorf("join a bad name: %q", text)
	}
}

// set_status shows in the peers' list_peers, and dnd keeps DMs in the
// inbox instead of pushing them, which the sender is told.
func TestStatusAndDND(t *testing.T) {
	tb := startBroker(t)
	sock := newMessagingSocket(t)
	alice := startSession(t, tb, "alice")
	bobHome, bobID := t.TempDir(), uuid.NewString()
	asBob := func(cfg *Config) {
		cfg.Home = bobHome
		fromEnv(t, config.EnvName, "bob", config.EnvSessionID, bobID,
			claudecode.EnvMessagingSocket, sock.path, claudecode.EnvMessagingToken, "tok")(cfg)
	}
	bob := startSession(t, tb, "bob", asBob)
	alice.waitConnected(t)
	bob.waitConnected(t)

	mustCall[SetStatusResult](t, bob, "set_status", map[string]any{"summary": "migrating the schema", "state": "dnd"})
	var row PeerInfo
	for _, p := range mustCall[PeersResult](t, alice, "list_peers", nil).Peers {
		if p.Name == "bob" {
			row = p
		}
	}
	if row.Summary != "migrating the schema" || row.Availability != wire.DND {
		t.Fatalf("bob as alice sees him: %+v", row)
	}
	res, text := alice.call(t, "send_dm", map[string]any{"to": "bob", "message": "quick question"})
	if res.IsError || !strings.Contains(text, "do-not-disturb") {
		t.Errorf("send_dm to a dnd peer says %q, want it to say do-not-disturb", text)
	}
	eventually(t, "the DM in bob's inbox", func() bool { return len(bob.unreadIDs()) == 1 })
	if p := sock.pushes(t, "tok"); len(p) != 0 {
		t.Errorf("pushed into a dnd session: %q", p)
	}
	if bob.statuses()[0] != statusNew {
		t.Errorf("the DM is %s, want new (in the inbox, not pushed)", bob.statuses()[0])
	}
	// A new process of the session is still in dnd: what was queued
	// meanwhile is not pushed either.
	bob.stop()
	alice.sendTo(t, "bob", "while you were away")
	bob = startSession(t, tb, "bob", asBob)
	eventually(t, "both DMs in the new process's inbox", func() bool { return len(bob.unreadIDs()) == 2 })
	eventually(t, "the new process settled", func() bool {
		bob.srv.settleMu.Lock()
		defer bob.srv.settleMu.Unlock()
		return bob.srv.settled != nil
	})
	if p := sock.pushes(t, "tok"); len(p) != 0 {
		t.Errorf("a new process of a dnd session pushed: %q", p)
	}
	// Available again: DMs are pushed.
	mustCall[SetStatusResult](t, bob, "set_status", map[string]any{"state": "available"})
	alice.sendTo(t, "bob", "now?")
	eventually(t, "a push", func() bool { return len(sock.pushes(t, "tok")) == 1 })
	if got := bob.waitInbox(t, 3); got[0].Text != "quick question" {
		t.Errorf("inbox %+v", got)
	}
}
