package mcp

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	mcpgo "github.com/mark3labs/mcp-go/mcp"
	"github.com/mark3labs/mcp-go/server"

	"github.com/claudemesh/claudemesh/client"
	"github.com/claudemesh/claudemesh/history"
	"github.com/claudemesh/claudemesh/wire"
)

// Bounds of an ask.
const (
	defaultAskWait     = 60 * time.Second
	maxAskWait         = 300 * time.Second
	defaultAskDeadline = 30 * time.Minute
	maxAskDeadline     = 24 * time.Hour
	// askProgressEvery is how often a waiting ask sends a progress
	// notification to a client that asked for them.
	askProgressEvery = 5 * time.Second
	// maxQuestionShown bounds a question in asks' text.
	maxQuestionShown = 200
)

// AskAnswer is one answer to an ask.
type AskAnswer struct {
	Name       string `json:"name"`
	KeyID      string `json:"key_id"`
	Answer     string `json:"answer"`
	AnsweredAt string `json:"answered_at"`
	Late       bool   `json:"late,omitempty" jsonschema:"sent after the ask's deadline"`
	MessageID  string `json:"message_id"`
}

// AskResult is ask's result.
type AskResult struct {
	ID       string `json:"id" jsonschema:"the ask's id: answers name it; asks lists it"`
	To       string `json:"to"`
	Group    string `json:"group,omitempty"`
	Deadline string `json:"deadline"`
	// State: answered (every recipient answered), waiting (answers missing,
	// deadline ahead: they arrive as DMs marked as answers to this ask) or
	// expired (deadline passed with answers missing).
	State   string      `json:"state" jsonschema:"answered, waiting (answers missing; they arrive as DMs marked as the answer to this ask) or expired (deadline passed with answers missing)"`
	Answers []AskAnswer `json:"answers"`
	// NoAnswer: recipients that were online when asked and have not
	// answered; Away: recipients that were away when asked and have not
	// answered.
	NoAnswer []string `json:"no_answer,omitempty" jsonschema:"recipients online when asked that have not answered (by the deadline, when state is expired)"`
	Away     []string `json:"away,omitempty" jsonschema:"recipients away when asked that have not answered: they get the question when they return"`
	Unread   int      `json:"unread" jsonschema:"DMs sent to you that you have not seen yet: call inbox"`
}

// ReplyResult is reply's result.
type ReplyResult struct {
	ID     string `json:"id" jsonschema:"id of the DM that carried the answer"`
	AskID  string `json:"ask_id"`
	To     string `json:"to"`
	Status string `json:"status" jsonschema:"delivered, queued (the asker is away) or pending"`
	Late   bool   `json:"late,omitempty" jsonschema:"the ask's deadline had passed: the asker gets it marked late"`
	Unread int    `json:"unread"`
}

// AskInfo is one ask in asks' result.
type AskInfo struct {
	ID       string   `json:"id"`
	Peer     string   `json:"peer" jsonschema:"sent: who was asked (a name or @GROUP); received: who asks"`
	Question string   `json:"question"`
	AskedAt  string   `json:"asked_at"`
	Age      string   `json:"age"`
	Deadline string   `json:"deadline"`
	State    string   `json:"state" jsonschema:"open or expired"`
	Answered []string `json:"answered,omitempty"`
	Missing  []string `json:"missing,omitempty" jsonschema:"sent asks: who has not answered yet"`
}

// AsksResult is asks' result.
type AsksResult struct {
	Sent     []AskInfo `json:"sent" jsonschema:"asks this session made that wait for answers, or expired with answers missing"`
	Received []AskInfo `json:"received" jsonschema:"asks made of this session that it has not answered: answer with reply"`
	Unread   int       `json:"unread"`
}

// HistoryResult is history's result.
type HistoryResult struct {
	Messages []history.Message `json:"messages" jsonschema:"newest first"`
	Unread   int               `json:"unread"`
}

func (s *Server) ask(ctx context.Context, req mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
	to := strings.TrimSpace(req.GetString("to", ""))
	question := req.GetString("question", "")
	wait := time.Duration(req.GetFloat("wait_s", defaultAskWait.Seconds()) * float64(time.Second))
	deadlineIn := time.Duration(req.GetFloat("deadline_s", 0) * float64(time.Second))
	switch {
	case to == "":
		return mcpgo.NewToolResultError("`to` is empty: give a peer name or key id from list_peers, or @GROUP; nothing was asked."), nil
	case strings.TrimSpace(question) == "":
		return mcpgo.NewToolResultError("`question` is empty; nothing was asked."), nil
	case len(question) > MaxText:
		return mcpgo.NewToolResultError(tooLong("question", len(question), MaxText) + "; nothing was asked."), nil
	case wait < 0 || wait > maxAskWait:
		return mcpgo.NewToolResultError(fmt.Sprintf("`wait_s` must be between 0 and %d; nothing was asked.", int(maxAskWait.Seconds()))), nil
	case deadlineIn < 0 || deadlineIn > maxAskDeadline:
		return mcpgo.NewToolResultError(fmt.Sprintf("`deadline_s` must be between 1 and %d; nothing was asked.", int(maxAskDeadline.Seconds()))), nil
	}
	if deadlineIn == 0 {
		deadlineIn = max(defaultAskDeadline, wait)
	}
	b := s.current()
	if !s.connected(ctx, b) {
		return s.brokerDown(), nil
	}
	peers, err := s.peers(ctx, b)
	if err != nil {
		return s.toolError("list peers", err), nil
	}
	var (
		recipients []wire.Peer
		group      string
		label      string
	)
	if g, ok := groupOf(to, peers); ok {
		group, label, recipients = g, "@"+g, groupMembers(g, peers)
		if len(recipients) == 0 {
			return noGroupMembers(g, peers), nil
		}
	} else {
		p, err := resolve(to, peers)
		if err != nil {
			return mcpgo.NewToolResultError(err.Error()), nil
		}
		label, recipients = p.Name, []wire.Peer{p}
	}
	id, now := uuid.NewString(), time.Now()
	deadline := now.Add(deadlineIn)
	// Recorded before it is sent, so that the quickest answer finds it.
	rows := make([]history.Ask, len(recipients))
	for i, p := range recipients {
		msgID := id
		if group != "" {
			msgID = wire.GroupDMID(id, p.Key)
		}
		rows[i] = history.Ask{ID: id, Dir: history.Out, PeerKeyID: p.KeyID, Peer: p.Name, PeerKey: p.Key.String(), MsgID: msgID, Group: group,
			Question: question, Created: now, Deadline: deadline, Away: presence(p.State) != presenceOnline}
	}
	hctx, cancel := context.WithTimeout(ctx, historyWait)
	err = b.hist.AddAsk(hctx, rows...)
	cancel()
	if err != nil {
		return nil, err
	}
	l := client.Letter{Version: 1, ID: id, Text: question, SentAt: now.UTC(), Group: group, Kind: client.LetterAsk, Ask: id, Deadline: deadline.UTC()}
	msg := history.Message{ID: id, Dir: history.Out, Peer: label, Group: group, Text: question, At: now, Kind: client.LetterAsk, AskID: id}
	// An ask that could not be sent is not one: no answer is waited for.
	unsent := func() {
		ctx, cancel := context.WithTimeout(context.Background(), historyWait)
		defer cancel()
		if err := b.hist.DeleteAsk(ctx, id, history.Out); err != nil {
			s.log.Warn("history", "msg_id", id, "err", err)
		}
	}
	if group != "" {
		sent, refusal, err := s.groupSend(ctx, b, id, l, recipients)
		if refusal != nil || err != nil {
			unsent()
			return refusal, err
		}
		s.remember(b, msg, groupRefs(id, recipientKeys(sent, recipients)))
	} else {
		p := recipients[0]
		_, refusal, err := s.sendOne(ctx, b, ed25519.PublicKey(p.Key), l)
		if refusal != nil || err != nil {
			unsent()
			return refusal, err
		}
		msg.PeerKeyID = p.KeyID
		s.remember(b, msg, []history.Ref{{ID: id, PeerKeyID: p.KeyID}})
	}
	s.log.Info("ask sent", "msg_id", id, "to", label, "recipients", len(recipients), "deadline", deadline)
	s.publishUnread()
	if wait > 0 {
		until := now.Add(wait)
		if deadline.Before(until) {
			until = deadline
		}
		s.waitAnswers(ctx, req, b, id, until, wait)
	}
	return s.askResult(ctx, b, id, label, group)
}

// waitAnswers waits until every recipient of ask id answered, or until,
// sending progress notifications when the client gave a progress token.
func (s *Server) waitAnswers(ctx context.Context, req mcpgo.CallToolRequest, b *binding, id string, until time.Time, total time.Duration) {
	woke, remove := s.waiters.add(id)
	defer remove()
	var token mcpgo.ProgressToken
	if req.Params.Meta != nil {
		token = req.Params.Meta.ProgressToken
	}
	timer := time.NewTimer(time.Until(until))
	defer timer.Stop()
	tick := time.NewTicker(cmp.Or(s.cfg.AskProgress, askProgressEvery))
	defer tick.Stop()
	start := time.Now()
	for {
		rows, err := b.hist.AskOf(ctx, id, history.Out)
		if err != nil {
			s.log.Warn("history", "msg_id", id, "err", err)
			return
		}
		answered := 0
		for _, a := range rows {
			if a.Answered {
				answered++
			}
		}
		if answered == len(rows) {
			return
		}
		select {
		case <-woke:
		case <-timer.C:
			return
		case <-ctx.Done():
			return
		case <-s.stop:
			return
		case <-tick.C:
			if token == nil {
				continue
			}
			srv := server.ServerFromContext(ctx)
			if srv == nil {
				continue
			}
			err := srv.SendNotificationToClient(ctx, "notifications/progress", map[string]any{
				"progressToken": token,
				"progress":      time.Since(start).Seconds(),
				"total":         total.Seconds(),
				"message":       fmt.Sprintf("waiting for answers: %d of %d answered", answered, len(rows)),
			})
			if err != nil {
				s.log.Debug("progress notification", "msg_id", id, "err", err)
			}
		}
	}
}

// askResult says where ask id stands. The answers it returns are read:
// they leave the inbox and are acknowledged, as inbox would.
func (s *Server) askResult(ctx context.Context, b *binding, id, label, group string) (*mcpgo.CallToolResult, error) {
	// Also when the wait ended because the call was cancelled.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), historyWait)
	defer cancel()
	rows, err := b.hist.AskOf(ctx, id, history.Out)
	if err != nil {
		return nil, err
	}
	res := AskResult{ID: id, To: label, Group: group, Answers: []AskAnswer{}}
	var answerIDs []string
	expired := false
	for _, a := range rows {
		res.Deadline = stamp(a.Deadline)
		expired = time.Now().After(a.Deadline)
		who := fmt.Sprintf("%s (%s)", a.Peer, a.PeerKeyID)
		switch {
		case a.Answered:
			res.Answers = append(res.Answers, AskAnswer{Name: a.Peer, KeyID: a.PeerKeyID, Answer: a.Answer, AnsweredAt: stamp(a.AnsweredAt), Late: a.Late, MessageID: a.AnswerID})
			answerIDs = append(answerIDs, a.AnswerID)
		case a.Away:
			res.Away = append(res.Away, who)
		default:
			res.NoAnswer = append(res.NoAnswer, who)
		}
	}
	switch {
	case len(res.Answers) == len(rows):
		res.State = "answered"
	case expired:
		res.State = "expired"
	default:
		res.State = "waiting"
	}
	// Including answers the inbox does not hold yet (the receiving
	// goroutine records an answer before it adds it to the inbox): it
	// acknowledges them when they come.
	s.inbox.takeIDs(answerIDs)
	if len(answerIDs) > 0 {
		if err := b.client.Ack(answerIDs); err != nil {
			s.log.Debug("ack answers", "count", len(answerIDs), "err", err)
		}
	}
	res.Unread = s.unread()
	var t strings.Builder
	fmt.Fprintf(&t, "Ask %s to %s (deadline %s): ", id, label, res.Deadline)
	switch res.State {
	case "answered":
		t.WriteString("answered by everyone asked.")
	case "expired":
		t.WriteString("expired with answers missing.")
	default:
		t.WriteString("answers missing; they arrive as DMs marked as answers to this ask (asks lists it).")
	}
	for _, a := range res.Answers {
		late := ""
		if a.Late {
			late = ", late"
		}
		fmt.Fprintf(&t, "\n- %s (%s) answered at %s%s:\n%s", a.Name, a.KeyID, a.AnsweredAt, late, a.Answer)
	}
	if len(res.NoAnswer) > 0 {
		when := "no answer yet"
		if res.State == "expired" {
			when = "did not answer by the deadline"
		}
		fmt.Fprintf(&t, "\n- %s: %s", when, strings.Join(res.NoAnswer, ", "))
	}
	if len(res.Away) > 0 {
		fmt.Fprintf(&t, "\n- away when asked, no answer: %s (they get the question when they return)", strings.Join(res.Away, ", "))
	}
	return mcpgo.NewToolResultStructured(res, t.String()+unreadNote(res.Unread)), nil
}

func (s *Server) reply(ctx context.Context, req mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
	id := strings.TrimSpace(req.GetString("id", ""))
	answer := req.GetString("answer", "")
	switch {
	case uuid.Validate(id) != nil || len(id) != 36:
		return mcpgo.NewToolResultError(fmt.Sprintf("`id` %q is not an ask id: use the ask_id of the question (asks lists them); nothing was sent.", id)), nil
	case strings.TrimSpace(answer) == "":
		return mcpgo.NewToolResultError("`answer` is empty; nothing was sent."), nil
	case len(answer) > MaxText:
		return mcpgo.NewToolResultError(tooLong("answer", len(answer), MaxText) + "; nothing was sent."), nil
	}
	b := s.current()
	rows, err := b.hist.AskOf(ctx, id, history.In)
	if err != nil {
		return nil, err
	}
	switch len(rows) {
	case 0:
		return mcpgo.NewToolResultError(fmt.Sprintf("no ask %s was made of this session (or it was forgotten): nothing was sent. asks lists the open ones; to answer a plain DM, use send_dm with reply_to.", id)), nil
	case 1:
	default:
		return mcpgo.NewToolResultError(fmt.Sprintf("ask id %s was used by %d askers, which a real ask never does; nothing was sent. Answer with send_dm and reply_to instead.", id, len(rows))), nil
	}
	a := rows[0]
	key, err := hex.DecodeString(a.PeerKey)
	if err != nil || len(key) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("ask %s: stored key of %s: %v", id, a.PeerKeyID, err)
	}
	if !s.connected(ctx, b) {
		return s.brokerDown(), nil
	}
	msgID, now := uuid.NewString(), time.Now()
	late := now.After(a.Deadline)
	l := client.Letter{Version: 1, ID: msgID, Text: answer, SentAt: now.UTC(), Kind: client.LetterAnswer, Ask: id, ReplyTo: a.MsgID}
	status, refusal, err := s.sendOne(ctx, b, ed25519.PublicKey(key), l)
	if refusal != nil || err != nil {
		return refusal, err
	}
	hctx, cancel := context.WithTimeout(context.Background(), historyWait)
	_, _, first, herr := b.hist.SetAnswer(hctx, id, history.In, a.PeerKeyID, answer, msgID, now, late)
	thread, _, _ := b.hist.Thread(hctx, a.MsgID, a.PeerKeyID)
	cancel()
	if herr != nil {
		s.log.Warn("history", "msg_id", msgID, "err", herr)
	}
	s.remember(b, history.Message{ID: msgID, Dir: history.Out, Peer: a.Peer, PeerKeyID: a.PeerKeyID, Text: answer, At: now,
		ReplyTo: a.MsgID, ReplyStatus: history.ReplyKnown, Thread: thread, Kind: client.LetterAnswer, AskID: id, Late: late},
		[]history.Ref{{ID: msgID, PeerKeyID: a.PeerKeyID}})
	s.publishUnread()
	res := ReplyResult{ID: msgID, AskID: id, To: a.Peer, Status: status, Late: late, Unread: s.unread()}
	text := fmt.Sprintf("Answer %s to %s's ask %s: %s.", msgID, a.Peer, id, status)
	if late {
		text += fmt.Sprintf(" The ask expired at %s: %s gets the answer marked late.", stamp(a.Deadline), a.Peer)
	}
	if !first {
		text += " You had answered this ask before: the asker keeps your first answer and gets this one as a DM."
	}
	return mcpgo.NewToolResultStructured(res, text+unreadNote(res.Unread)), nil
}

func (s *Server) listAsks(ctx context.Context, req mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
	b := s.current()
	rows, err := b.hist.Asks(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	res := AsksResult{Sent: []AskInfo{}, Received: []AskInfo{}}
	byID := map[string]int{}
	for _, a := range rows {
		if a.Dir == history.In && a.Answered {
			continue
		}
		state := "open"
		if now.After(a.Deadline) {
			state = "expired"
		}
		list := &res.Received
		if a.Dir == history.Out {
			list = &res.Sent
		}
		i, seen := byID[a.Dir+a.ID]
		if !seen {
			peer := a.Peer
			if a.Group != "" && a.Dir == history.Out {
				peer = "@" + a.Group
			}
			*list = append(*list, AskInfo{ID: a.ID, Peer: peer, Question: a.Question, AskedAt: stamp(a.Created),
				Age: age(now.Sub(a.Created)), Deadline: stamp(a.Deadline), State: state})
			i = len(*list) - 1
			byID[a.Dir+a.ID] = i
		}
		if a.Dir == history.Out {
			if a.Answered {
				(*list)[i].Answered = append((*list)[i].Answered, a.Peer)
			} else {
				(*list)[i].Missing = append((*list)[i].Missing, a.Peer)
			}
		}
	}
	if err := b.hist.MarkSeen(ctx); err != nil {
		s.log.Warn("history", "err", err)
	}
	s.publishUnread()
	res.Unread = s.unread()
	var t strings.Builder
	if len(res.Sent)+len(res.Received) == 0 {
		t.WriteString("No open asks.")
	}
	for _, a := range res.Received {
		fmt.Fprintf(&t, "- asked of you by %s, %s ago, ask %s, %s (deadline %s): %q", a.Peer, a.Age, a.ID, a.State, a.Deadline, shorten(a.Question))
		if a.State == "open" {
			t.WriteString(" — answer with reply")
		}
		t.WriteByte('\n')
	}
	for _, a := range res.Sent {
		fmt.Fprintf(&t, "- you asked %s, %s ago, ask %s, %s (deadline %s): %q; no answer from %s", a.Peer, a.Age, a.ID, a.State, a.Deadline, shorten(a.Question), strings.Join(a.Missing, ", "))
		if len(a.Answered) > 0 {
			fmt.Fprintf(&t, "; answered: %s", strings.Join(a.Answered, ", "))
		}
		t.WriteByte('\n')
	}
	return mcpgo.NewToolResultStructured(res, strings.TrimSpace(t.String())+unreadNote(res.Unread)), nil
}

func (s *Server) searchHistory(ctx context.Context, req mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
	q := history.Query{
		With:   strings.TrimSpace(req.GetString("with", "")),
		Text:   req.GetString("query", ""),
		Thread: strings.TrimSpace(req.GetString("thread", "")),
		Limit:  req.GetInt("limit", history.DefaultLimit),
	}
	b := s.current()
	msgs, err := b.hist.Find(ctx, q)
	if err != nil {
		return nil, err
	}
	res := HistoryResult{Messages: msgs, Unread: s.unread()}
	var t strings.Builder
	if len(msgs) == 0 {
		t.WriteString("No message in this session's history matches.")
		if !b.hist.Keeps() {
			t.WriteString(" (This session keeps no history: CLAUDEMESH_HISTORY is off.)")
		}
	}
	for _, m := range msgs {
		arrow := "from"
		if m.Dir == history.Out {
			arrow = "to"
		}
		fmt.Fprintf(&t, "%s %s %s, id %s, thread %s", m.At.Format(time.RFC3339), arrow, m.Peer, m.ID, m.Thread)
		if m.ReplyTo != "" {
			fmt.Fprintf(&t, ", reply to %s (%s)", m.ReplyTo, m.ReplyStatus)
		}
		if m.Kind != "" {
			fmt.Fprintf(&t, ", %s of ask %s", m.Kind, m.AskID)
		}
		if m.Late {
			t.WriteString(", late")
		}
		fmt.Fprintf(&t, ":\n%s\n\n", m.Text)
	}
	return mcpgo.NewToolResultStructured(res, strings.TrimSpace(t.String())+unreadNote(res.Unread)), nil
}

// age says a duration the way asks lists it: 45s, 12m, 3h, 2d.
func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

// shorten cuts a question for a listing.
func shorten(s string) string {
	if len(s) <= maxQuestionShown {
		return s
	}
	cut := maxQuestionShown
	for cut > 0 && s[cut]&0xc0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}
