package e2e

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/claudemesh/claudemesh/e2e/fakemodel"
	"github.com/claudemesh/claudemesh/internal/testproc"
	"github.com/claudemesh/claudemesh/mcp"
)

// askIDRe finds the ask id in a pushed question.
var askIDRe = regexp.MustCompile(`<claudemesh-ask [^>]*ask_id="([0-9a-f-]{36})"`)

// askIDIn reads the ask id of the latest question pushed into a
// conversation, as the model would.
func askIDIn(r fakemodel.Request) string {
	for i := len(r.Messages) - 1; i >= 0; i-- {
		if m := askIDRe.FindAllStringSubmatch(r.Messages[i].Text(), -1); len(m) > 0 {
			return m[len(m)-1][1]
		}
	}
	return ""
}

// Between two real Claude Code sessions: alice's model asks bob and waits;
// bob is idle, gets the question pushed, his model answers with reply, and
// alice's ask returns bob's exact answer within the wait. Alice's next run
// of the same session (resumed) finds the answer in her history by its
// words, in the ask's thread.
func TestAskBetweenTwoSessions(t *testing.T) {
	h := newHarness(t)
	alice, bob := h.newSeat("alice"), h.newSeat("bob")
	word := "port" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	question := "Which port does staging listen on? " + fakemodel.Marker("b-answer")
	answer := "Staging listens on 8443, codename " + word

	h.model.Script("a-hello", fakemodel.CallTool(toolWhoami, nil), fakemodel.Text("Here."))
	h.model.Script("b-hello", fakemodel.CallTool(toolWhoami, nil), fakemodel.Text("Here."))
	h.model.Script("a-ask", fakemodel.CallTool(toolAsk, map[string]any{"to": "bob", "question": question, "wait_s": 30}), fakemodel.Text("Got the answer."))
	h.model.Script("b-answer", fakemodel.CallToolWith(toolReply, func(r fakemodel.Request) map[string]any {
		return map[string]any{"id": askIDIn(r), "answer": answer}
	}), fakemodel.Text("Answered."))
	h.model.Script("a-history", fakemodel.CallTool(toolHistory, map[string]any{"query": word}), fakemodel.Text("Found it."))

	a, b := alice.live(), bob.live()
	a.turn("a-hello", 1)
	b.turn("b-hello", 1)
	aliceID := a.sessionID()

	start := time.Now()
	a.turn("a-ask", 2) // bob is idle: nobody writes to his stdin
	took := time.Since(start)
	// Bob's tool result reaches the model with his next request, which
	// may come after alice's turn ended.
	testproc.Eventually(t, pushBound, "bob's reply result", func() bool { return len(h.model.ToolResults("b-answer")) == 1 })
	ask := structured[mcp.AskResult](t, h.toolResults("a-ask", 1)[0])
	if ask.State != "answered" || len(ask.Answers) != 1 || ask.Answers[0].Answer != answer || ask.Answers[0].Name != "bob" || ask.Answers[0].Late {
		t.Fatalf("alice's ask returned %+v, want bob's exact answer", ask)
	}
	if took >= 30*time.Second {
		t.Errorf("the ask took %v, more than its wait", took)
	}
	rep := structured[mcp.ReplyResult](t, h.toolResults("b-answer", 1)[0])
	if rep.AskID != ask.ID || rep.To != "alice" {
		t.Fatalf("bob's reply: %+v, want the answer to ask %s", rep, ask.ID)
	}
	// Bob's model saw the question framed as one, with how to answer.
	pushed := h.model.ScriptRequests("b-answer")[0]
	if i := messageIndex(pushed, question); i < 0 || !strings.Contains(pushed.Messages[i].Text(), "reply tool") {
		t.Errorf("bob's pushed question lacks its framing")
	}
	// The answer came back in the ask: it was not pushed into alice again.
	if got := h.requestsWith(aliceID, `<claudemesh-dm from="bob"`); len(got) != 0 {
		t.Errorf("the answer was also pushed into alice's session")
	}
	a.closeInput()
	b.closeInput()

	alice.run("a-history", "--resume", aliceID)
	hist := structured[mcp.HistoryResult](t, h.toolResults("a-history", 1)[0])
	if len(hist.Messages) != 1 || hist.Messages[0].Text != answer || hist.Messages[0].Kind != "answer" || hist.Messages[0].Thread != ask.ID {
		t.Fatalf("alice's history in the resumed session: %+v, want bob's answer in the ask's thread", hist.Messages)
	}
}

// Alice asks a group of three real Claude Code sessions: bob is idle and
// answers, carol is in do-not-disturb and stays silent, dave is away. The
// ask's result names who answered, who did not by the deadline and who was
// away; dave, resumed after the deadline, finds the question in asks and
// answers, and his answer reaches alice, pushed, marked late.
func TestAskGroupOfThree(t *testing.T) {
	h := newHarness(t)
	alice, bob, carol, dave := h.newSeat("alice"), h.newSeat("bob"), h.newSeat("carol"), h.newSeat("dave")
	daveID := uuid.NewString()
	question := "Who holds the release branch? " + fakemodel.Marker("team-q")
	answerOf := map[string]string{}
	h.model.Script("join", fakemodel.CallTool(toolJoinGroup, map[string]any{"name": "team"}), fakemodel.Text("Joined."))
	h.model.Script("join-dnd",
		fakemodel.CallTool(toolJoinGroup, map[string]any{"name": "team"}),
		fakemodel.CallTool(toolSetStatus, map[string]any{"state": "dnd"}),
		fakemodel.Text("Quiet."))
	h.model.Script("team-q", fakemodel.CallToolWith(toolReply, func(r fakemodel.Request) map[string]any {
		return map[string]any{"id": askIDIn(r), "answer": "answer from session " + r.SessionID}
	}), fakemodel.Text("Answered."))
	h.model.Script("a-hello", fakemodel.CallTool(toolWhoami, nil), fakemodel.Text("Here."))
	h.model.Script("a-ask", fakemodel.CallTool(toolAsk, map[string]any{"to": "@team", "question": question, "wait_s": 8, "deadline_s": 8}), fakemodel.Text("Done."))
	// Dave, back, looks at his open asks and answers the one he finds.
	h.model.Script("d-late",
		fakemodel.CallTool(toolAsks, nil),
		fakemodel.CallToolWith(toolReply, func(r fakemodel.Request) map[string]any {
			return map[string]any{"id": receivedAskIn(r), "answer": "answer from session " + r.SessionID}
		}),
		fakemodel.Text("Answered late."))

	dave.run("join", "--session-id", daveID).waitGroupGone() // then away
	b, c, a := bob.live(), carol.live(), alice.live()
	b.turn("join", 1)
	c.turn("join-dnd", 1)
	a.turn("a-hello", 1)
	bobID := b.sessionID()
	answerOf[bobID] = "answer from session " + bobID

	a.turn("a-ask", 2)
	res := structured[mcp.AskResult](t, h.toolResults("a-ask", 1)[0])
	if res.State != "expired" || len(res.Answers) != 1 || res.Answers[0].Name != "bob" || res.Answers[0].Answer != answerOf[bobID] || res.Answers[0].Late {
		t.Fatalf("group ask: %+v; want bob's answer and the deadline passed", res)
	}
	if len(res.NoAnswer) != 1 || !strings.HasPrefix(res.NoAnswer[0], "carol") || len(res.Away) != 1 || !strings.HasPrefix(res.Away[0], "dave") {
		t.Fatalf("group ask: no answer %v, away %v; want carol silent and dave away", res.NoAnswer, res.Away)
	}
	if got := h.requestsWith(c.sessionID(), question); len(got) != 0 {
		t.Errorf("carol's model saw the question while in dnd")
	}

	// Dave returns after the deadline and answers the question he finds in
	// asks. (His DMs wait in his inbox rather than being pushed: a push
	// landing in the middle of his scripted turn would change the script.)
	dave.vars = append(dave.vars, "CLAUDEMESH_DELIVERY=inbox")
	dave.run("d-late", "--resume", daveID)
	got := h.toolResults("d-late", 2)
	asks := structured[mcp.AsksResult](t, got[0])
	if len(asks.Received) != 1 || asks.Received[0].ID != res.ID || asks.Received[0].State != "expired" || asks.Received[0].Peer != "alice" {
		t.Fatalf("dave's asks after the deadline: %+v", asks)
	}
	late := structured[mcp.ReplyResult](t, got[1])
	if !late.Late || late.AskID != res.ID || late.To != "alice" {
		t.Fatalf("dave's reply: %+v, want a late answer to alice's ask", late)
	}
	pushed := h.waitRequestWith(a.sessionID(), "answer from session "+daveID, "dave's late answer pushed to alice")
	text := pushed.Messages[messageIndex(pushed, "answer from session "+daveID)].Text()
	for _, want := range []string{`late="true"`, `ask_id="` + res.ID + `"`, "late"} {
		if !strings.Contains(text, want) {
			t.Errorf("alice's pushed answer lacks %q:\n%s", want, tail(text, 2000))
		}
	}
	a.closeInput()
	b.closeInput()
	c.closeInput()
}

// receivedAskIn reads the id of the first question asked of the session
// from the asks tool's latest result in the request.
func receivedAskIn(r fakemodel.Request) string {
	for i := len(r.Messages) - 1; i >= 0; i-- {
		for _, b := range r.Messages[i].Content {
			if b.Type != "tool_result" {
				continue
			}
			var res mcp.AsksResult
			if json.Unmarshal([]byte(b.ResultText()), &res) == nil && len(res.Received) > 0 {
				return res.Received[0].ID
			}
		}
	}
	return ""
}
