package mcp

import (
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/claudemesh/claudemesh/config"
)

// With CLAUDEMESH_BROKER naming an address where nothing listens, the
// server starts, says who it is, and the tools that need the broker answer
// side by side with the reason and how to start it.
func TestWithoutBroker(t *testing.T) {
	url := closedURL(t)
	alice := startSession(t, nil, "alice", fromEnv(t, config.EnvName, "alice", config.EnvSessionID, uuid.NewString(), config.EnvBroker, url))

	w := alice.whoami(t)
	if w.Connection != "connecting" || w.Broker != url || w.Name != "alice" || w.KeyID == "" || w.IdentityMode != "stable" {
		t.Errorf("whoami without a broker = %+v, want alice connecting to %s", w, url)
	}
	// Both calls answer with the reason: at once when an attempt has
	// failed, after at most a second while the first is in flight. Run
	// them side by side.
	var wg sync.WaitGroup
	results := make([]*mcpgo.CallToolResult, 2)
	texts := make([]string, 2)
	for i, c := range []struct {
		tool string
		args map[string]any
	}{{"send_dm", map[string]any{"to": "bob", "message": "hi"}}, {"list_peers", nil}} {
		wg.Go(func() {
			req := mcpgo.CallToolRequest{}
			req.Params.Name, req.Params.Arguments = c.tool, c.args
			res, err := alice.c.CallTool(waitCtx(t), req)
			if err != nil {
				t.Errorf("%s: %v", c.tool, err)
				return
			}
			results[i] = res
			for _, c := range res.Content {
				if tc, ok := c.(mcpgo.TextContent); ok {
					texts[i] += tc.Text
				}
			}
		})
	}
	wg.Wait()
	for i, tool := range []string{"send_dm", "list_peers"} {
		if r := results[i]; r == nil || !r.IsError || !strings.Contains(texts[i], "claudemesh broker") || !strings.Contains(texts[i], url) {
			t.Errorf("%s without a broker: %q, want an error telling to start `claudemesh broker` at %s", tool, texts[i], url)
		}
	}
	res, text := alice.call(t, "inbox", nil)
	if in := decode[InboxResult](t, res); res.IsError || len(in.Messages) != 0 || !strings.Contains(text, "Not connected") {
		t.Errorf("inbox without a broker: isError=%v %+v %q, want an empty inbox that says it is not connected", res.IsError, in, text)
	}
	eventually(t, "a connection attempt fails", func() bool { return alice.srv.bound().client.State().Attempts > 0 })
	if w := alice.whoami(t); w.Connection != "connecting" || !strings.Contains(w.LastError, "refused") {
		t.Errorf("whoami after failed attempts = %+v, want connecting with the last error", w)
	}
}

// A DM survives a broker restart, whether it waited in the broker or had
// reached a session that had not read it yet; the servers find the broker
// again through broker.json. The DM the broker delivers again comes out of
// the inbox once, and once read it never comes back to a later process of
// the session.
func TestDMSurvivesBrokerRestart(t *testing.T) {
	lb := startLocalBroker(t)
	alice := startSession(t, nil, "alice", lb.in)
	bobID, carolID := uuid.NewString(), uuid.NewString()
	bob := startSession(t, nil, "bob", lb.in, withID(bobID))
	carol := startSession(t, nil, "carol", lb.in, withID(carolID))
	alice.waitConnected(t)
	bob.waitConnected(t)
	carol.waitConnected(t)
	bobKey, carolKey := bob.keyID(), carol.keyID()
	alice.waitPeer(t, bobKey, "online")
	alice.waitPeer(t, carolKey, "online")
	bob.stop()
	alice.waitPeer(t, bobKey, "away")

	// bob's DM waits in the broker; carol's reached her server but she has
	// not read it, so the broker has no ack for it.
	toBob := alice.sendTo(t, "bob", "queued before the restart")
	if toBob.Status != "queued" {
		t.Fatalf("send_dm to bob = %+v, want queued", toBob)
	}
	toCarol := alice.sendTo(t, "carol", "delivered before the restart")
	if toCarol.Status != "delivered" {
		t.Fatalf("send_dm to carol = %+v, want delivered", toCarol)
	}
	eventually(t, "carol's server holds the DM", func() bool { return len(carol.unreadIDs()) == 1 })

	// The broker restarts on the same data directory and a new port.
	oldURL := lb.url
	lb.close()
	eventually(t, "alice fails to reconnect while the broker is down", func() bool {
		return strings.Contains(alice.whoami(t).LastError, "refused")
	})
	lb.start(t)
	if lb.url == oldURL {
		t.Fatalf("the broker came back on its old address %s: the test would not show that it is found again", oldURL)
	}

	// carol reconnects by herself. The broker delivers her unacked DM again
	// and her server keeps it once: a newer DM arrives after it (the broker
	// pushes oldest first) and the two come out once each.
	alice.waitPeer(t, carolKey, "online")
	if w := alice.whoami(t); w.Broker != lb.url || w.Connection != "connected" {
		t.Errorf("alice's whoami after the broker restart: broker %s (%s), want %s", w.Broker, w.Connection, lb.url)
	}
	after := alice.sendTo(t, "carol", "sent after the restart")
	eventually(t, "carol has the DM sent after the restart", func() bool {
		ids := carol.unreadIDs()
		return len(ids) > 0 && ids[len(ids)-1] == after.ID
	})
	got := carol.waitInbox(t, 2)
	if len(got) != 2 || got[0].ID != toCarol.ID || got[1].ID != after.ID || got[0].Text != "delivered before the restart" {
		t.Errorf("carol's inbox after the broker restart = %+v, want DMs %s and %s once each", got, toCarol.ID, after.ID)
	}
	carol.assertInboxEmpty(t)

	bob = startSession(t, nil, "bob", lb.in, withID(bobID))
	got = bob.waitInbox(t, 1)
	if len(got) != 1 || got[0].ID != toBob.ID || got[0].Text != "queued before the restart" {
		t.Fatalf("bob's inbox after the broker restart = %+v, want DM %s", got, toBob.ID)
	}
	bob.assertInboxEmpty(t)
	for _, id := range []string{toBob.ID, toCarol.ID, after.ID} {
		eventually(t, "alice sees "+id+" read", func() bool { return alice.status(t, id) == "read" })
	}

	// Going away is handled after every frame a session sent before it, so
	// the acks are stored once alice sees both away.
	bob.stop()
	carol.stop()
	alice.waitPeer(t, bobKey, "away")
	alice.waitPeer(t, carolKey, "away")

	// Later sessions of bob and carol must not get those DMs again. Once a
	// newer DM has arrived, an unacked older one would have arrived before
	// it.
	for _, who := range []struct {
		name, id string
	}{{"bob", bobID}, {"carol", carolID}} {
		s := startSession(t, nil, who.name, lb.in, withID(who.id))
		newer := alice.sendTo(t, s.keyID(), "newer")
		got := s.waitInbox(t, 1)
		if len(got) != 1 || got[0].ID != newer.ID {
			t.Errorf("%s's next session received %+v, want only the newer DM %s", who.name, got, newer.ID)
		}
		s.assertInboxEmpty(t)
	}
}
