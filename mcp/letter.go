package mcp

import (
	"crypto/ed25519"
	"time"

	"github.com/claudemesh/claudemesh/client"
	"github.com/claudemesh/claudemesh/identity"
	"github.com/claudemesh/claudemesh/wire"
)

// MaxText is the largest DM text, in bytes, that send_dm accepts.
const MaxText = client.MaxText

// Message is a received DM as the inbox keeps it.
type Message struct {
	ID          string `json:"id"`
	From        string `json:"from" jsonschema:"sender's display name"`
	FromKeyID   string `json:"from_key_id" jsonschema:"sender's key id: use it as send_dm's to when the name is ambiguous"`
	FromSession string `json:"from_session,omitempty"`
	SentAt      string `json:"sent_at" jsonschema:"RFC 3339 time the sender wrote it"`
	Text        string `json:"text"`
	Error       string `json:"error,omitempty" jsonschema:"set when the DM could not be decrypted or verified; text is empty then"`
	Group       string `json:"group,omitempty" jsonschema:"set when the DM was sent to a group (or all) this session is in, not to it alone"`
	Status      string `json:"status" jsonschema:"new (not shown to you before) or pushed (already written into this session at pushed_at)"`
	PushedAt    string `json:"pushed_at,omitempty"`
	// Conversation: what the DM replies to, its thread, and whether it
	// asks a question or answers one (all sealed in the letter).
	ReplyTo     string `json:"reply_to,omitempty" jsonschema:"id of the message this DM replies to"`
	ReplyStatus string `json:"reply_status,omitempty" jsonschema:"known (a message exchanged with this sender: same thread) or unknown (no message this session can match with this sender: treat the reference as unproven)"`
	Thread      string `json:"thread,omitempty" jsonschema:"id of the first message of the DM's thread: history with thread lists it"`
	Kind        string `json:"kind,omitempty" jsonschema:"ask (a question: answer it with reply) or answer (the answer to an ask), empty for a plain DM"`
	AskID       string `json:"ask_id,omitempty" jsonschema:"for an ask: the id to give reply; for an answer: the ask it answers"`
	Deadline    string `json:"deadline,omitempty" jsonschema:"for an ask: when it expires"`
	Late        bool   `json:"late,omitempty" jsonschema:"an answer sent after the ask's deadline"`
	AskStatus   string `json:"ask_status,omitempty" jsonschema:"unknown: an answer to an ask this session never sent to its sender, or an ask whose id does not match its DM; read it as a plain DM"`
	// claimed: an answer that an ask call waiting for it returns; it is
	// not pushed.
	claimed bool
}

// open decrypts dm with the session key's boxes. A DM that does not open is
// kept with Error set, so the user learns of it instead of it vanishing.
func open(dm wire.DM, boxes *identity.Boxes) (Message, client.Letter) {
	m := Message{
		ID:          dm.ID,
		From:        dm.FromName,
		FromKeyID:   identity.KeyID(ed25519.PublicKey(dm.From)),
		FromSession: dm.FromSession,
		SentAt:      dm.SentAt.UTC().Format(time.RFC3339),
		Status:      statusNew,
	}
	l, err := client.Open(dm, boxes)
	if err != nil {
		m.Error = err.Error()
		return m, l
	}
	m.Text, m.Group = l.Text, l.Group
	m.SentAt = l.SentAt.UTC().Format(time.RFC3339)
	return m, l
}
