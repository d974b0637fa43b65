package mcp

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	mcpgo "github.com/mark3labs/mcp-go/mcp"

	"github.com/claudemesh/claudemesh/client"
	"github.com/claudemesh/claudemesh/history"
	"github.com/claudemesh/claudemesh/identity"
	"github.com/claudemesh/claudemesh/wire"
)

// RecipientResult is where a group DM went for one recipient.
type RecipientResult struct {
	Name         string `json:"name"`
	KeyID        string `json:"key_id"`
	Status       string `json:"status" jsonschema:"delivered (online) or queued (away)"`
	Availability string `json:"availability,omitempty" jsonschema:"dnd: the DM waits in its inbox and is not pushed into its session"`
}

// RecipientStatus is where a group DM stands for one recipient.
type RecipientStatus struct {
	Name       string `json:"name,omitempty"`
	KeyID      string `json:"key_id"`
	State      string `json:"state"`
	ReceivedAt string `json:"received_at,omitempty"`
	PushedAt   string `json:"pushed_at,omitempty"`
	ReadAt     string `json:"read_at,omitempty"`
}

// GroupsResult is join_group's and leave_group's result.
type GroupsResult struct {
	Groups []string `json:"groups" jsonschema:"the groups this session belongs to now"`
	Unread int      `json:"unread" jsonschema:"DMs sent to you that you have not seen yet: call inbox"`
}

// SetStatusResult is set_status' result.
type SetStatusResult struct {
	Summary string `json:"summary,omitempty"`
	State   string `json:"state,omitempty" jsonschema:"available, busy or dnd (do not disturb: DMs wait in the inbox and are not pushed into this session)"`
	Unread  int    `json:"unread" jsonschema:"DMs sent to you that you have not seen yet: call inbox"`
}

// groupOf returns the group `to` names ("@NAME", or "@all" for the mesh) and
// whether it names one: "@NAME" names a group when a peer is in it, or
// when no peer is called NAME (so that "@bob" still reaches bob).
func groupOf(to string, peers []wire.Peer) (string, bool) {
	name, ok := strings.CutPrefix(to, "@")
	if !ok {
		return "", false
	}
	if name == wire.GroupAll {
		return name, true
	}
	for _, p := range peers {
		if slices.Contains(p.Groups, name) {
			return name, true
		}
	}
	if _, err := resolve(name, peers); err == nil {
		return "", false
	}
	return name, true
}

// groupMembers returns the peers a send to group reaches: those in it, or
// every peer for wire.GroupAll.
func groupMembers(group string, peers []wire.Peer) []wire.Peer {
	if group == wire.GroupAll {
		return peers
	}
	return slices.DeleteFunc(slices.Clone(peers), func(p wire.Peer) bool { return !slices.Contains(p.Groups, group) })
}

// sealGroup seals the letter tmpl once per recipient key, each under its
// own DM id.
func sealGroup(id string, tmpl client.Letter, keys []wire.Key, b *binding) ([]wire.Box, error) {
	boxes := make([]wire.Box, len(keys))
	for i, k := range keys {
		l := tmpl
		l.ID = wire.GroupDMID(id, k)
		nonce, box, err := client.SealLetter(l, ed25519.PublicKey(k), b.boxes)
		if err != nil {
			return nil, err
		}
		boxes[i] = wire.Box{To: k, Nonce: nonce[:], Box: box}
	}
	return boxes, nil
}

// sendGroup sends the letter tmpl (its text, what it replies to) to every
// member of group (every peer for @all): one box per recipient in one
// send, recorded in the history in thread.
func (s *Server) sendGroup(ctx context.Context, b *binding, group string, tmpl client.Letter, thread string, peers []wire.Peer) (*mcpgo.CallToolResult, error) {
	label := "@" + group
	to := groupMembers(group, peers)
	if len(to) == 0 {
		return noGroupMembers(group, peers), nil
	}
	id, now := uuid.NewString(), time.Now()
	tmpl.SentAt, tmpl.Group = now.UTC(), group
	sent, refusal, err := s.groupSend(ctx, b, id, tmpl, to)
	if refusal != nil || err != nil {
		return refusal, err
	}
	s.remember(b, history.Message{ID: id, Dir: history.Out, Peer: label, Group: group, Text: tmpl.Text, At: now,
		ReplyTo: tmpl.ReplyTo, ReplyStatus: replyStatus(tmpl.ReplyTo), Thread: thread}, groupRefs(id, recipientKeys(sent, to)))
	if sent.Status == "pending" {
		res := SendResult{ID: id, To: label, Group: group, Status: "pending", Unread: s.unread()}
		return mcpgo.NewToolResultStructured(res, fmt.Sprintf("DM %s to %s: pending: the broker has not confirmed it yet; it is retried automatically with the same id.%s", id, label, unreadNote(res.Unread))), nil
	}
	byKey := make(map[string]wire.Peer, len(peers))
	for _, p := range peers {
		byKey[string(p.Key)] = p
	}
	res := SendResult{ID: id, To: label, Group: group, Status: sent.Status, Reached: len(sent.Recipients), Unread: s.unread()}
	counts := map[string]int{}
	var dnd []string
	for _, r := range sent.Recipients {
		p, ok := byKey[string(r.To)]
		name := p.Name
		if !ok {
			name = "(joined just now)"
		}
		rr := RecipientResult{Name: name, KeyID: identity.KeyID(ed25519.PublicKey(r.To)), Status: r.Status, Availability: p.Availability}
		res.Recipients = append(res.Recipients, rr)
		counts[r.Status]++
		if p.Availability == wire.DND {
			dnd = append(dnd, fmt.Sprintf("%s (%s)", name, rr.KeyID))
		}
	}
	s.log.Info("group DM sent", "msg_id", id, "group", group, "reached", res.Reached)
	text2 := fmt.Sprintf("DM %s to %s reached %d session(s): %s.", id, label, res.Reached, summarize(counts, []string{wire.StatusDelivered, wire.StatusQueued}))
	if len(dnd) > 0 {
		text2 += fmt.Sprintf(" In do-not-disturb (it waits in their inbox, not pushed): %s.", strings.Join(dnd, ", "))
	}
	return mcpgo.NewToolResultStructured(res, text2+unreadNote(res.Unread)), nil
}

// boxesSize is about what boxes take in a send frame.
func boxesSize(boxes []wire.Box) int {
	n := 0
	for _, b := range boxes {
		n += 64 + 32 + (len(b.Box)+2)/3*4 + 32
	}
	return n
}

// summarize says how many are in each state, in the order given, e.g.
// "4 read, 1 queued".
func summarize(counts map[string]int, order []string) string {
	var parts []string
	for _, st := range order {
		if n := counts[st]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, st))
		}
	}
	return strings.Join(parts, ", ")
}

// groupsKnown names the groups the peers are in.
func groupsKnown(peers []wire.Peer) string {
	var all []string
	for _, p := range peers {
		for _, g := range p.Groups {
			if !slices.Contains(all, g) {
				all = append(all, g)
			}
		}
	}
	if len(all) == 0 {
		return "No peer is in any group; @all reaches every session."
	}
	slices.Sort(all)
	return "Groups with members: @" + strings.Join(all, ", @") + "; @all reaches every session."
}

func (s *Server) joinGroup(ctx context.Context, req mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
	return s.membership(ctx, req, true)
}

func (s *Server) leaveGroup(ctx context.Context, req mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
	return s.membership(ctx, req, false)
}

func (s *Server) membership(ctx context.Context, req mcpgo.CallToolRequest, join bool) (*mcpgo.CallToolResult, error) {
	name := strings.TrimPrefix(strings.TrimSpace(req.GetString("name", "")), "@")
	if err := wire.ValidGroup(name); err != nil {
		return mcpgo.NewToolResultError(fmt.Sprintf("`name`: %v; nothing was changed.", err)), nil
	}
	b := s.current()
	if !s.connected(ctx, b) {
		return s.brokerDown(), nil
	}
	sctx, cancel := context.WithTimeout(ctx, peersWait)
	defer cancel()
	var (
		groups []string
		err    error
		verb   = "joined"
	)
	if join {
		groups, err = b.client.JoinGroup(sctx, name)
	} else {
		groups, err = b.client.LeaveGroup(sctx, name)
		verb = "left"
	}
	if err != nil {
		return s.toolError(strings.TrimSuffix(verb, "ed")+" group", err), nil
	}
	res := GroupsResult{Groups: groups, Unread: s.unread()}
	now := "This session is in no group."
	if len(groups) > 0 {
		now = "This session is in @" + strings.Join(groups, ", @") + "."
	}
	return mcpgo.NewToolResultStructured(res, fmt.Sprintf("%s @%s. %s%s", strings.ToUpper(verb[:1])+verb[1:], name, now, unreadNote(res.Unread))), nil
}

func (s *Server) setStatus(ctx context.Context, req mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
	args := req.GetArguments()
	var st wire.SetStatus
	if v, ok := args["summary"].(string); ok {
		v = strings.TrimSpace(v)
		if len(v) > wire.MaxSummaryLen {
			return mcpgo.NewToolResultError(fmt.Sprintf("`summary` is %d bytes; the limit is %d: one line; nothing was changed.", len(v), wire.MaxSummaryLen)), nil
		}
		if strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return mcpgo.NewToolResultError("`summary` must be one line without control characters; nothing was changed."), nil
		}
		st.Summary = &v
	}
	if v, ok := args["state"].(string); ok {
		st.Availability = v
	}
	if st.Summary == nil && st.Availability == "" {
		return mcpgo.NewToolResultError("give `summary`, `state` or both; nothing was changed."), nil
	}
	b := s.current()
	if !s.connected(ctx, b) {
		return s.brokerDown(), nil
	}
	sctx, cancel := context.WithTimeout(ctx, peersWait)
	defer cancel()
	if err := b.client.SetStatus(sctx, st); err != nil {
		return s.toolError("set status", err), nil
	}
	if st.Availability != "" {
		s.dnd.Store(st.Availability == wire.DND)
	}
	res := SetStatusResult{State: st.Availability, Unread: s.unread()}
	var parts []string
	if st.Summary != nil {
		res.Summary = *st.Summary
		parts = append(parts, fmt.Sprintf("summary %q", *st.Summary))
	}
	switch st.Availability {
	case wire.DND:
		parts = append(parts, "do not disturb: DMs wait in the inbox and are not pushed into this session; senders are told")
	case "":
	default:
		parts = append(parts, st.Availability)
	}
	return mcpgo.NewToolResultStructured(res, "Status set: "+strings.Join(parts, "; ")+"."+unreadNote(res.Unread)), nil
}

// groupStatus renders message_status for a group send.
func (s *Server) groupStatus(st wire.MessageStatus) (*mcpgo.CallToolResult, error) {
	res := StatusResult{ID: st.ID, To: "@" + st.Group, Group: st.Group, State: st.State, SentAt: stamp(st.CreatedAt), ExpiresAt: stamp(st.ExpiresAt), Unread: s.unread()}
	counts := map[string]int{}
	var lines []string
	for _, r := range st.Recipients {
		rs := RecipientStatus{Name: r.ToName, KeyID: identity.KeyID(ed25519.PublicKey(r.To)), State: r.State,
			ReceivedAt: stamp(r.ReceivedAt), PushedAt: stamp(r.PushedAt), ReadAt: stamp(r.ReadAt)}
		res.Recipients = append(res.Recipients, rs)
		counts[r.State]++
		line := fmt.Sprintf("- %s (%s): %s", orNone(rs.Name), rs.KeyID, rs.State)
		switch r.State {
		case wire.StateRead, wire.StateCleared:
			line += " at " + rs.ReadAt
		case wire.StatePushed:
			line += " at " + rs.PushedAt
		case wire.StateDelivered:
			line += " at " + rs.ReceivedAt
		}
		lines = append(lines, line)
	}
	res.Summary = summarize(counts, []string{wire.StateRead, wire.StatePushed, wire.StateDelivered, wire.StateQueued, wire.StateCleared, wire.StateExpired})
	text := fmt.Sprintf("DM %s to @%s, %d recipient(s): %s.\n%s", st.ID, st.Group, len(st.Recipients), res.Summary, strings.Join(lines, "\n"))
	return mcpgo.NewToolResultStructured(res, text+unreadNote(res.Unread)), nil
}

// peerStatus is the part of a list_peers line that says what the peer
// said about itself.
func peerStatus(p wire.Peer, info *PeerInfo) string {
	info.Groups, info.Summary, info.Availability, info.Activity = p.Groups, p.Summary, p.Availability, p.Activity
	info.ActivitySince = stamp(p.ActivitySince)
	var parts []string
	if p.Activity != "" {
		parts = append(parts, fmt.Sprintf("%s since %s", p.Activity, info.ActivitySince))
	}
	if p.Availability != "" && p.Availability != wire.Available {
		parts = append(parts, p.Availability)
	}
	if p.Summary != "" {
		parts = append(parts, fmt.Sprintf("%q", p.Summary))
	}
	if len(p.Groups) > 0 {
		parts = append(parts, "in @"+strings.Join(p.Groups, ", @"))
	}
	if len(parts) == 0 {
		return ""
	}
	return "; " + strings.Join(parts, "; ")
}

// noGroupMembers refuses a send to a group nobody else is in.
func noGroupMembers(group string, peers []wire.Peer) *mcpgo.CallToolResult {
	if group == wire.GroupAll {
		return mcpgo.NewToolResultError("no other session is in this mesh; nothing was sent.")
	}
	return mcpgo.NewToolResultError(fmt.Sprintf("no other session is in @%s (and no peer is named %q); nothing was sent. %s", group, group, groupsKnown(peers)))
}

// groupSend seals tmpl to each of the peers to and sends it under send id
// id. If the group changed since the peers were listed, the broker says who
// is in it now; the letter is sealed to them and sent once more with the
// same id. A send the broker has not confirmed has status pending (it is
// retried with the same id).
func (s *Server) groupSend(ctx context.Context, b *binding, id string, tmpl client.Letter, to []wire.Peer) (wire.Sent, *mcpgo.CallToolResult, error) {
	keys := make([]wire.Key, len(to))
	for i, p := range to {
		keys[i] = p.Key
	}
	sctx, cancel := context.WithTimeout(ctx, sendWait)
	defer cancel()
	var (
		sent wire.Sent
		err  error
	)
	for attempt := 0; ; attempt++ {
		boxes, serr := sealGroup(id, tmpl, keys, b)
		if errors.Is(serr, client.ErrTooLarge) {
			return sent, mcpgo.NewToolResultError(fmt.Sprintf("cannot be sent: %v; send a shorter text.", serr)), nil
		}
		if serr != nil {
			return sent, nil, fmt.Errorf("seal DM: %w", serr)
		}
		if n := boxesSize(boxes); n > wire.MaxFrameSize-4096 {
			return sent, mcpgo.NewToolResultError(fmt.Sprintf("a DM of %d bytes to %d recipients takes %d bytes sealed, more than one send carries (%d); send a shorter message.", len(tmpl.Text), len(keys), n, wire.MaxFrameSize)), nil
		}
		sent, err = b.client.SendGroup(sctx, id, tmpl.Group, boxes)
		we, ok := errors.AsType[*wire.Error](err)
		if attempt > 0 || !ok || we.Code != wire.CodeGroupChanged || len(we.Members) == 0 {
			break
		}
		s.log.Info("group changed under a send; sealing to its members now", "msg_id", id, "group", tmpl.Group, "members", len(we.Members))
		keys = we.Members
	}
	if errors.Is(err, client.ErrUnconfirmed) {
		recipients := make([]wire.Recipient, len(keys))
		for i, k := range keys {
			recipients[i] = wire.Recipient{To: k}
		}
		return wire.Sent{Status: "pending", Recipients: recipients}, nil, nil
	}
	if err != nil {
		return sent, s.toolError("send DM to @"+tmpl.Group, err), nil
	}
	return sent, nil, nil
}

// recipientKeys are the keys a group send reached (those of to while it
// is not confirmed).
func recipientKeys(sent wire.Sent, to []wire.Peer) []wire.Key {
	var keys []wire.Key
	for _, r := range sent.Recipients {
		keys = append(keys, r.To)
	}
	if len(keys) == 0 {
		for _, p := range to {
			keys = append(keys, p.Key)
		}
	}
	return keys
}

// replyStatus is the reply state of a message this session sent: what it
// replies to was checked (see replyRef).
func replyStatus(replyTo string) string {
	if replyTo == "" {
		return ""
	}
	return history.ReplyKnown
}

// outMessage is a DM sent to peer p, for the history.
func outMessage(id string, p wire.Peer, text string, at time.Time, replyTo, thread string) history.Message {
	return history.Message{ID: id, Dir: history.Out, Peer: p.Name, PeerKeyID: p.KeyID, Text: text, At: at,
		ReplyTo: replyTo, ReplyStatus: replyStatus(replyTo), Thread: thread}
}
