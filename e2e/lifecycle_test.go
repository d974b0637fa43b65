package e2e

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/claudemesh/claudemesh/e2e/fakemodel"
	"github.com/claudemesh/claudemesh/mcp"
)

// install runs `claudemesh install` for the seat's user, as a user would
// once: it registers the MCP server and the SessionStart hook in the
// seat's private Claude Code config.
func (s *seat) install() {
	t := s.h.t
	t.Helper()
	cmd := exec.CommandContext(t.Context(), claudemeshBin, "install")
	cmd.Env = s.env()
	cmd.Dir = s.project
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("claudemesh install: %v\n%s", err, out)
	}
}

// peerRows returns the rows of list_peers naming name.
func peerRows(peers mcp.PeersResult, name string) []mcp.PeerInfo {
	var rows []mcp.PeerInfo
	for _, p := range peers.Peers {
		if p.Name == name {
			rows = append(rows, p)
		}
	}
	return rows
}

// Under --continue Claude Code gives the MCP server a throwaway session id;
// with claudemesh installed, the SessionStart hook hands the server the
// continued session, which keeps its identity, gets what was queued for it,
// and leaves no trace of the throwaway identity in list_peers.
func TestContinueKeepsIdentityThroughTheHook(t *testing.T) {
	h := newHarness(t)
	xavier, yolanda := h.newSeat("xavier"), h.newSeat("yolanda")
	xavier.install()
	id := uuid.NewString()
	text := "Queued for the continued session " + uuid.NewString()

	h.model.Script("x-first", fakemodel.CallTool(toolWhoami, nil), fakemodel.Text("Noted."))
	h.model.Script("y-send", fakemodel.CallTool(toolSendDM, map[string]any{"to": "xavier", "message": text}), fakemodel.Text("Sent."))
	h.model.Script("x-continued",
		fakemodel.CallTool(toolWhoami, nil),
		fakemodel.CallTool(toolInbox, nil),
		fakemodel.Text("Read."))
	h.model.Script("y-peers", fakemodel.CallTool(toolListPeers, nil), fakemodel.Text("Listed."))

	first := xavier.run("x-first", "--session-id", id)
	who := structured[mcp.WhoamiResult](t, h.toolResults("x-first", 1)[0])
	if who.SessionID != id {
		t.Fatalf("whoami: %+v, want session %s", who, id)
	}
	first.waitGroupGone()

	yolanda.run("y-send")
	if sent := structured[mcp.SendResult](t, h.toolResults("y-send", 1)[0]); sent.Status != "queued" || sent.ToKeyID != who.KeyID {
		t.Fatalf("send_dm to the exited session: %+v, want queued for key %s", sent, who.KeyID)
	}

	again := xavier.run("x-continued", "--continue")
	if got := again.sessionID(); got != id {
		t.Fatalf("claude --continue reports session %s, want the continued %s", got, id)
	}
	again.waitGroupGone()
	res := h.toolResults("x-continued", 2)
	who2 := structured[mcp.WhoamiResult](t, res[0])
	if who2.SessionID != id || who2.KeyID != who.KeyID || !strings.Contains(who2.SessionSource, "SessionStart") {
		t.Fatalf("whoami under --continue: %+v; want session %s with key %s, from the SessionStart hook", who2, id, who.KeyID)
	}
	inbox := structured[mcp.InboxResult](t, res[1])
	if len(inbox.Messages) != 1 || inbox.Messages[0].Text != text || inbox.Messages[0].From != "yolanda" {
		t.Fatalf("inbox under --continue: %+v; want yolanda's queued DM", inbox)
	}

	yolanda.run("y-peers")
	peers := structured[mcp.PeersResult](t, h.toolResults("y-peers", 1)[0])
	rows := peerRows(peers, "xavier")
	if len(rows) != 1 || rows[0].KeyID != who.KeyID || rows[0].SessionID != id {
		t.Fatalf("yolanda's list_peers shows xavier as %+v; want one row, session %s (no throwaway identity)", rows, id)
	}
}

// One session resumed in two processes at once: the newer process holds
// the session and the older one stands by. Neither takes it back from the
// other, so over the run the broker replaces the session once.
func TestSameSessionInTwoProcessesDoesNotFight(t *testing.T) {
	h := newHarness(t)
	xavier, yolanda := h.newSeat("xavier"), h.newSeat("yolanda")
	// The DM is read with inbox: no push starting turns of its own.
	xavier.vars = append(xavier.vars, "CLAUDEMESH_DELIVERY=inbox")
	id := uuid.NewString()

	h.model.Script("x-start", fakemodel.CallTool(toolWhoami, nil), fakemodel.Text("Started."))
	h.model.Script("x-one", fakemodel.CallTool(toolWhoami, nil), fakemodel.Text("One."))
	h.model.Script("x-two", fakemodel.CallTool(toolWhoami, nil), fakemodel.Text("Two."))
	h.model.Script("x-one-later",
		fakemodel.CallTool(toolWhoami, nil),
		fakemodel.CallTool(toolInbox, nil),
		fakemodel.Text("Standing by."))
	h.model.Script("x-two-later", fakemodel.CallTool(toolInbox, nil), fakemodel.Text("Read."))
	text := "To whichever process holds the session " + uuid.NewString()
	h.model.Script("y-send", fakemodel.CallTool(toolSendDM, map[string]any{"to": "xavier", "message": text}), fakemodel.Text("Sent."))

	xavier.run("x-start", "--session-id", id).waitGroupGone()

	one := xavier.live("--resume", id)
	one.turn("x-one", 1)
	if w := structured[mcp.WhoamiResult](t, h.toolResults("x-one", 1)[0]); w.Connection != "connected" {
		t.Fatalf("first process: %+v, want connected", w)
	}
	two := xavier.live("--resume", id)
	two.turn("x-two", 1)
	if w := structured[mcp.WhoamiResult](t, h.toolResults("x-two", 1)[0]); w.Connection != "connected" || w.SessionID != id {
		t.Fatalf("second process: %+v, want connected as %s", w, id)
	}
	h.broker.waitLog(t, "session replaced by another process", "session="+id)

	// Both keep running for a bounded while (many of the first process's
	// reconnect backoffs): it stands by instead of reconnecting.
	<-time.After(3 * time.Second)
	one.turn("x-one-later", 2)
	res := h.toolResults("x-one-later", 2)
	if w := structured[mcp.WhoamiResult](t, res[0]); w.Connection != "standby" {
		t.Errorf("first process after the second started: %+v, want standby", w)
	}
	if !res[1].IsError || !strings.Contains(res[1].Text, "active in another process") {
		t.Errorf("inbox in the standing-by process: is_error=%v %q, want an error saying the session is active in another process", res[1].IsError, res[1].Text)
	}

	yolanda.run("y-send")
	two.turn("x-two-later", 2)
	inbox := structured[mcp.InboxResult](t, h.toolResults("x-two-later", 1)[0])
	if len(inbox.Messages) != 1 || inbox.Messages[0].Text != text {
		t.Errorf("inbox of the process holding the session: %+v, want yolanda's DM", inbox)
	}
	if n := strings.Count(h.broker.out.String(), "session replaced by another process"); n != 1 {
		t.Errorf("the broker replaced the session %d times over the run, want 1", n)
	}
	one.closeInput()
	two.closeInput()
	one.waitGroupGone()
	two.waitGroupGone()
}
