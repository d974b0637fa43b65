package mcp

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/claudemesh/claudemesh/client"
	"github.com/claudemesh/claudemesh/history"
	"github.com/claudemesh/claudemesh/identity"
	"github.com/claudemesh/claudemesh/wire"
)

// Conversations: what a DM replies to, asks and their answers. All of it
// travels sealed in the letter (client.Letter: reply_to, kind, ask,
// deadline); the broker routes an ask, an answer and a reply like any DM.
// Each side keeps its own record in the session's history (package
// history), and trusts a reference only when its history proves it: a
// reply joins a thread only through a message exchanged with the same peer,
// and an answer counts only for an ask this session sent to that peer.

// historyWait bounds a history query or write done for a DM received.
const historyWait = 5 * time.Second

// openHistory opens the history of identity key: a file beside its key,
// or memory for an ephemeral key.
func (s *Server) openHistory(key *identity.Key) (*history.DB, error) {
	var path string
	if !key.Ephemeral {
		keyFile, err := s.keystore.Path(key.Mesh, key.SessionID)
		if err != nil {
			return nil, err
		}
		path = history.FileFor(keyFile)
	}
	ctx, cancel := context.WithTimeout(context.Background(), historyWait)
	defer cancel()
	return history.Open(ctx, path, key.ID(), history.Config{Retention: s.cfg.HistoryRetention})
}

// askWaiters wakes the ask calls that wait for the answers of an ask.
type askWaiters struct {
	mu sync.Mutex
	m  map[string]map[chan struct{}]bool
}

// add registers a waiter for ask id; remove unregisters it.
func (w *askWaiters) add(id string) (ch chan struct{}, remove func()) {
	ch = make(chan struct{}, 1)
	w.mu.Lock()
	if w.m == nil {
		w.m = make(map[string]map[chan struct{}]bool)
	}
	if w.m[id] == nil {
		w.m[id] = make(map[chan struct{}]bool)
	}
	w.m[id][ch] = true
	w.mu.Unlock()
	return ch, func() {
		w.mu.Lock()
		delete(w.m[id], ch)
		if len(w.m[id]) == 0 {
			delete(w.m, id)
		}
		w.mu.Unlock()
	}
}

// wake tells the waiters of ask id that an answer came.
func (w *askWaiters) wake(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for ch := range w.m[id] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// waiting reports whether an ask call waits for ask id.
func (w *askWaiters) waiting(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.m[id]) > 0
}

// converse reads what a DM received by b says of its conversation —
// what it replies to, an ask, an answer — checks it against the history,
// fills in m, and records the DM in the history.
func (s *Server) converse(b *binding, dm wire.DM, l client.Letter, m *Message) {
	ctx, cancel := context.WithTimeout(context.Background(), historyWait)
	defer cancel()
	m.Thread = dm.ID
	if l.ReplyTo != "" {
		m.ReplyTo, m.ReplyStatus = l.ReplyTo, history.ReplyUnknown
		switch thread, ok, err := b.hist.Thread(ctx, l.ReplyTo, m.FromKeyID); {
		case err != nil:
			s.log.Warn("history", "msg_id", dm.ID, "err", err)
		case ok:
			m.ReplyStatus, m.Thread = history.ReplyKnown, thread
		default:
			s.log.Info("DM replies to a message this session did not exchange with its sender", "msg_id", dm.ID, "from", m.FromKeyID)
		}
	}
	late := false
	switch l.Kind {
	case client.LetterAsk:
		m.Kind, m.AskID = client.LetterAsk, l.Ask
		if !askBound(l, dm.ID, b.key) {
			// An ask id that is not its DM's could name another ask.
			m.AskStatus = askUnknown
			break
		}
		// A peer cannot keep an ask open longer than an asker here may.
		if limit := dm.SentAt.Add(maxAskDeadline); l.Deadline.After(limit) {
			l.Deadline = limit
		}
		m.Deadline = stamp(l.Deadline)
		err := b.hist.AddAsk(ctx, history.Ask{ID: l.Ask, Dir: history.In, PeerKeyID: m.FromKeyID, Peer: m.From,
			PeerKey: wire.Key(dm.From).String(), MsgID: dm.ID, Group: m.Group, Question: l.Text, Created: dm.SentAt, Deadline: l.Deadline})
		if err != nil {
			s.log.Warn("history", "msg_id", dm.ID, "err", err)
		}
		defer s.publishUnread()
	case client.LetterAnswer:
		m.Kind, m.AskID = client.LetterAnswer, l.Ask
		late = s.answered(ctx, b, dm, l, m)
	}
	m.Late = late
	err := b.hist.Add(ctx, history.Message{ID: dm.ID, Dir: history.In, Peer: m.From, PeerKeyID: m.FromKeyID, Group: m.Group, Text: m.Text,
		At: dm.SentAt, ReplyTo: m.ReplyTo, ReplyStatus: m.ReplyStatus, Thread: m.Thread, Kind: m.Kind, AskID: m.AskID, Late: late},
		[]history.Ref{{ID: dm.ID, PeerKeyID: m.FromKeyID}})
	if err != nil {
		s.log.Warn("history", "msg_id", dm.ID, "err", err)
	}
}

// askUnknown marks an answer to an ask this session did not send to the
// answerer, or an ask whose id does not match its DM.
const askUnknown = "unknown"

// askBound reports whether an ask letter's id is bound to the DM it came
// in: the DM's id for an ask of one session, the send id the DM's id was
// derived from for an ask of a group. Its deadline must be set.
func askBound(l client.Letter, dmID string, me *identity.Key) bool {
	if uuid.Validate(l.Ask) != nil || l.Deadline.IsZero() {
		return false
	}
	if l.Group == "" {
		return l.Ask == dmID
	}
	return wire.GroupDMID(l.Ask, wire.Key(me.Public)) == dmID
}

// answered records an answer received: it counts only for an ask this
// session sent to its sender, and is late when the broker took it after
// the ask's deadline. It reports whether it is late.
func (s *Server) answered(ctx context.Context, b *binding, dm wire.DM, l client.Letter, m *Message) bool {
	rows, err := b.hist.AskOf(ctx, l.Ask, history.Out)
	if err != nil {
		s.log.Warn("history", "msg_id", dm.ID, "err", err)
	}
	for _, a := range rows {
		if a.PeerKeyID != m.FromKeyID {
			continue
		}
		late := dm.SentAt.After(a.Deadline)
		if _, _, _, err := b.hist.SetAnswer(ctx, l.Ask, history.Out, m.FromKeyID, l.Text, dm.ID, dm.SentAt, late); err != nil {
			s.log.Warn("history", "msg_id", dm.ID, "err", err)
		}
		// Decided before the waiter wakes, which may return at once.
		m.claimed = s.waiters.waiting(l.Ask)
		s.waiters.wake(l.Ask)
		s.publishUnread()
		return late
	}
	s.log.Info("answer to an ask this session did not send to its sender", "msg_id", dm.ID, "from", m.FromKeyID, "ask", l.Ask)
	m.AskStatus = askUnknown
	return false
}

// replyRef checks a reply_to given to a send to peer p (nil for a group):
// it names a message of this session's history exchanged with p (any
// message for a group). It returns the id the letter carries, the thread,
// or a refusal for the model.
func (s *Server) replyRef(ctx context.Context, b *binding, replyTo string, p *wire.Peer) (ref, thread string, refusal *mcpgo.CallToolResult) {
	if replyTo == "" {
		return "", "", nil
	}
	if uuid.Validate(replyTo) != nil || len(replyTo) != 36 {
		return "", "", mcpgo.NewToolResultError(fmt.Sprintf("`reply_to` %q is not a message id: use the id inbox, history or send_dm gave; nothing was sent.", replyTo))
	}
	if !b.hist.Keeps() {
		return replyTo, "", nil // no history to check it against
	}
	if p != nil {
		if r, th, ok, err := b.hist.PeerRef(ctx, replyTo, p.KeyID); err == nil && ok {
			return r, th, nil
		}
		if th, ok, err := b.hist.Thread(ctx, replyTo, p.KeyID); err == nil && ok {
			return replyTo, th, nil
		}
		return "", "", mcpgo.NewToolResultError(fmt.Sprintf("`reply_to` %s is no message this session exchanged with %s; nothing was sent. history with: %q lists them.", replyTo, peerLabel(*p), p.KeyID))
	}
	if th, ok, err := b.hist.Known(ctx, replyTo); err == nil && ok {
		return replyTo, th, nil
	}
	return "", "", mcpgo.NewToolResultError(fmt.Sprintf("`reply_to` %s is no message in this session's history; nothing was sent.", replyTo))
}

// sendOne seals l to the peer with public key to and sends it. It returns
// the broker's status ("pending" when not confirmed yet, retried with the
// same id), or a tool result for the model when it cannot be sent.
func (s *Server) sendOne(ctx context.Context, b *binding, to ed25519.PublicKey, l client.Letter) (string, *mcpgo.CallToolResult, error) {
	nonce, box, err := client.SealLetter(l, to, b.boxes)
	if errors.Is(err, client.ErrTooLarge) {
		return "", mcpgo.NewToolResultError(fmt.Sprintf("cannot be sent: %v. Control characters count 6 bytes each once encoded; split it into several DMs.", err)), nil
	}
	if err != nil {
		return "", nil, fmt.Errorf("seal DM: %w", err)
	}
	sctx, cancel := context.WithTimeout(ctx, sendWait)
	defer cancel()
	status, err := b.client.Send(sctx, l.ID, to, nonce, box)
	if errors.Is(err, client.ErrUnconfirmed) {
		status, err = "pending", nil
	}
	if err != nil {
		return "", s.toolError("send DM", err), nil
	}
	return status, nil, nil
}

// remember records a DM sent in the history; a failure is logged, the DM
// is sent all the same.
func (s *Server) remember(b *binding, m history.Message, refs []history.Ref) {
	ctx, cancel := context.WithTimeout(context.Background(), historyWait)
	defer cancel()
	if err := b.hist.Add(ctx, m, refs); err != nil {
		s.log.Warn("history", "msg_id", m.ID, "err", err)
	}
}

// groupRefs are the ids under which the recipients know a group DM.
func groupRefs(id string, keys []wire.Key) []history.Ref {
	refs := make([]history.Ref, len(keys))
	for i, k := range keys {
		refs[i] = history.Ref{ID: wire.GroupDMID(id, k), PeerKeyID: identity.KeyID(ed25519.PublicKey(k))}
	}
	return refs
}

// askNotes lists, for the prompt hook, the asks with an answer missing:
// one note per ask asked of this session, one per recipient missing of an
// ask it made.
func (s *Server) askNotes() []askNote {
	hist := s.hist.Load()
	if hist == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), historyWait)
	defer cancel()
	rows, err := hist.Asks(ctx)
	if err != nil {
		s.log.Warn("history", "err", err)
		return nil
	}
	var notes []askNote
	for _, a := range rows {
		if !a.Answered {
			notes = append(notes, askNote{ID: a.ID, Dir: a.Dir, Peer: a.Peer, Deadline: a.Deadline, Seen: a.Seen})
		}
	}
	return notes
}
