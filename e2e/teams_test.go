package e2e

import (
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/claudemesh/claudemesh/e2e/fakemodel"
	"github.com/claudemesh/claudemesh/internal/testproc"
	"github.com/claudemesh/claudemesh/mcp"
)

// restart stops the broker and starts it again on the same home and data
// directory; sessions find the new one through broker.json.
func (h *harness) restartBroker() {
	t := h.t
	t.Helper()
	old := h.broker
	old.stop(t)
	b := runBroker(t, "restarted broker", old.home, old.data)
	h.broker = b
}

// peersOf runs a one-turn list_peers (filtered by group, if any) in the
// live session p and returns the row of the peer named name.
func (h *harness) peerIn(p *proc, turn int, group, name string) (mcp.PeerInfo, bool) {
	h.t.Helper()
	script := "peers-" + uuid.NewString()[:8]
	args := map[string]any{}
	if group != "" {
		args["group"] = group
	}
	h.model.Script(script, fakemodel.CallTool(toolListPeers, args), fakemodel.Text("Listed."))
	p.turn(script, turn)
	rows := peerRows(structured[mcp.PeersResult](h.t, h.toolResults(script, 1)[0]), name)
	if len(rows) != 1 {
		return mcp.PeerInfo{}, false
	}
	return rows[0], true
}

// A group joined in one run of a session is still its group after the
// broker restarted and when the session is resumed: a DM to the group
// waits for it and reaches it in the resumed run, marked with the group;
// once it left, the group no longer lists it.
func TestGroupsSurviveRestartAndResume(t *testing.T) {
	h := newHarness(t)
	xavier, yolanda := h.newSeat("xavier"), h.newSeat("yolanda")
	id := uuid.NewString()
	text := "Rebasing main, hold your pushes " + uuid.NewString()

	h.model.Script("x-join", fakemodel.CallTool(toolJoinGroup, map[string]any{"name": "backend"}), fakemodel.Text("Joined."))
	h.model.Script("y-send",
		fakemodel.CallTool(toolListPeers, map[string]any{"group": "backend"}),
		fakemodel.CallTool(toolSendDM, map[string]any{"to": "@backend", "message": text}),
		fakemodel.Text("Sent."))
	h.model.Script("x-resumed",
		fakemodel.CallTool(toolInbox, nil),
		fakemodel.CallTool(toolLeaveGroup, map[string]any{"name": "backend"}),
		fakemodel.Text("Left."))
	h.model.Script("y-after", fakemodel.CallTool(toolListPeers, map[string]any{"group": "backend"}), fakemodel.Text("Listed."))

	first := xavier.run("x-join", "--session-id", id)
	if g := structured[mcp.GroupsResult](t, h.toolResults("x-join", 1)[0]); !slices.Equal(g.Groups, []string{"backend"}) {
		t.Fatalf("join_group: %+v", g)
	}
	first.waitGroupGone()

	h.restartBroker()

	yolanda.run("y-send")
	res := h.toolResults("y-send", 2)
	peers := structured[mcp.PeersResult](t, res[0])
	rows := peerRows(peers, "xavier")
	if len(rows) != 1 || rows[0].SessionID != id || !slices.Equal(rows[0].Groups, []string{"backend"}) {
		t.Fatalf("after the restart, @backend lists %+v; want xavier's session %s in backend", peers.Peers, id)
	}
	sent := structured[mcp.SendResult](t, res[1])
	if sent.Reached != 1 || sent.Group != "backend" || sent.Recipients[0].Status != "queued" {
		t.Fatalf("send_dm to @backend: %+v, want it queued for xavier", sent)
	}

	xavier.run("x-resumed", "--resume", id).waitGroupGone()
	res = h.toolResults("x-resumed", 2)
	inbox := structured[mcp.InboxResult](t, res[0])
	if len(inbox.Messages) != 1 || inbox.Messages[0].Text != text || inbox.Messages[0].Group != "backend" || inbox.Messages[0].From != "yolanda" {
		t.Fatalf("resumed inbox: %+v; want yolanda's DM to @backend", inbox)
	}
	if g := structured[mcp.GroupsResult](t, res[1]); len(g.Groups) != 0 {
		t.Fatalf("leave_group: %+v, want no group left", g)
	}

	yolanda.run("y-after")
	if after := structured[mcp.PeersResult](t, h.toolResults("y-after", 1)[0]); len(after.Peers) != 0 {
		t.Fatalf("@backend after xavier left: %+v, want nobody", after.Peers)
	}
}

// With claudemesh installed, one session is working while its model is at
// a turn and idle once the turn ended, as the other session's list_peers
// shows; in dnd a DM is not pushed into it, stays in its inbox, and the
// sender is told.
func TestWorkingIdleAndDND(t *testing.T) {
	h := newHarness(t)
	alice, bob := h.newSeat("alice"), h.newSeat("bob")
	bob.install()
	text := "Are you free? " + uuid.NewString()
	release := make(chan struct{})
	releaseOnce := func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}
	t.Cleanup(releaseOnce)

	h.model.Script("a-hello", fakemodel.CallTool(toolWhoami, nil), fakemodel.Text("Here."))
	h.model.Script("b-hello", fakemodel.CallTool(toolWhoami, nil), fakemodel.Text("Here."))
	// Bob's model runs a tool and then keeps working until released.
	h.model.Script("b-work",
		fakemodel.CallTool(toolSetStatus, map[string]any{"summary": "migrating the schema"}),
		fakemodel.Text("Done.").After(release))
	h.model.Script("b-dnd", fakemodel.CallTool(toolSetStatus, map[string]any{"state": "dnd"}), fakemodel.Text("Quiet now."))
	h.model.Script("a-send", fakemodel.CallTool(toolSendDM, map[string]any{"to": "bob", "message": text}), fakemodel.Text("Sent."))
	h.model.Script("b-inbox", fakemodel.CallTool(toolInbox, nil), fakemodel.Text("Read."))

	a, b := alice.live(), bob.live()
	a.turn("a-hello", 1)
	b.turn("b-hello", 1)
	aTurns := 1

	// Bob's turn: its tool has run, his model is still at work.
	b.send(fakemodel.Marker("b-work") + " Use claudemesh as scripted.")
	testproc.Eventually(t, pushBound, "bob's set_status ran", func() bool { return len(h.model.ToolResults("b-work")) == 1 })
	var row mcp.PeerInfo
	deadline := time.Now().Add(pushBound)
	for {
		aTurns++
		var ok bool
		row, ok = h.peerIn(a, aTurns, "", "bob")
		if ok && row.Activity == "working" && row.Summary == "migrating the schema" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob as alice sees him while his model works: %+v, want working on %q", row, "migrating the schema")
		}
	}
	working := row.ActivitySince

	// The turn ends: the Stop hook makes him idle.
	releaseOnce()
	b.waitEvents("bob's turn ended", func(ev []map[string]any) bool { return results(ev) >= 2 })
	deadline = time.Now().Add(pushBound)
	for {
		aTurns++
		row, _ = h.peerIn(a, aTurns, "", "bob")
		if row.Activity == "idle" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob after his turn: %+v, want idle", row)
		}
	}
	if row.ActivitySince == "" || row.ActivitySince < working {
		t.Errorf("idle since %q, working since %q: want idle after working", row.ActivitySince, working)
	}

	// Do not disturb: the DM waits in his inbox and starts no turn.
	b.turn("b-dnd", 3)
	aTurns++
	a.turn("a-send", aTurns)
	sent := structured[mcp.SendResult](t, h.toolResults("a-send", 1)[0])
	if sent.ToAvailability != "dnd" {
		t.Fatalf("send_dm to bob in dnd: %+v, want it to say dnd", sent)
	}
	aTurns = h.waitStatus(a, aTurns, sent.ID, "delivered")
	<-time.After(2 * time.Second) // a push would long have happened
	if st := h.statusOf(a, aTurns+1, sent.ID); st.State != "delivered" {
		t.Fatalf("DM state %q with bob in dnd, want delivered (not pushed)", st.State)
	}
	if got := h.requestsWith(b.sessionID(), text); len(got) != 0 {
		t.Fatalf("bob's model saw the DM while in dnd")
	}
	b.turn("b-inbox", 4)
	if inbox := structured[mcp.InboxResult](t, h.toolResults("b-inbox", 1)[0]); len(inbox.Messages) != 1 || inbox.Messages[0].Text != text || inbox.Messages[0].Status != "new" {
		t.Fatalf("bob's inbox: %+v, want alice's DM, status new", inbox)
	}
}
