package mcp

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"golang.org/x/crypto/nacl/box"

	"github.com/claudemesh/claudemesh/identity"
	"github.com/claudemesh/claudemesh/wire"
)

// MaxText is the largest DM text, in bytes, that send_dm accepts.
const MaxText = 64 << 10

// letter is the plaintext inside a DM's box. Sealing the id and time with
// the text means the broker cannot replay a DM under a new id.
type letter struct {
	Version int       `json:"v"`
	ID      string    `json:"id"`
	Text    string    `json:"text"`
	SentAt  time.Time `json:"sent_at"`
	// Group is the group the DM was sent to ("all" for the whole mesh),
	// sealed so that the broker cannot say otherwise; empty for a DM to
	// this session alone.
	Group string `json:"group,omitempty"`
}

// errTooLarge: a DM's box would exceed what the broker accepts.
var errTooLarge = errors.New("message too large once encrypted")

// seal encrypts a letter from the sender's key to the recipient's. The
// letter is encoded without HTML escaping, so that text full of <, > and &
// does not grow sixfold; text that still does not fit in wire.MaxBoxSize
// (control characters are escaped as \u00XX) fails with errTooLarge, since
// the broker would refuse it.
func seal(id, text string, sentAt time.Time, to ed25519.PublicKey, from *identity.Boxes) ([wire.NonceSize]byte, []byte, error) {
	return sealLetter(letter{Version: 1, ID: id, Text: text, SentAt: sentAt.UTC()}, to, from)
}

// sealLetter encrypts l from the sender's key to the recipient's (see seal).
func sealLetter(l letter, to ed25519.PublicKey, from *identity.Boxes) ([wire.NonceSize]byte, []byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(l); err != nil {
		return [wire.NonceSize]byte{}, nil, err
	}
	plain := bytes.TrimSuffix(b.Bytes(), []byte("\n"))
	if n := len(plain) + box.Overhead; n > wire.MaxBoxSize {
		return [wire.NonceSize]byte{}, nil, fmt.Errorf("%w: %d bytes, the limit is %d", errTooLarge, n, wire.MaxBoxSize)
	}
	return from.Seal(plain, to)
}

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
}

// open decrypts dm with the session key's boxes. A DM that does not open is
// kept with Error set, so the user learns of it instead of it vanishing.
func open(dm wire.DM, boxes *identity.Boxes) Message {
	m := Message{
		ID:          dm.ID,
		From:        dm.FromName,
		FromKeyID:   identity.KeyID(ed25519.PublicKey(dm.From)),
		FromSession: dm.FromSession,
		SentAt:      dm.SentAt.UTC().Format(time.RFC3339),
		Status:      statusNew,
	}
	var nonce [wire.NonceSize]byte
	copy(nonce[:], dm.Nonce)
	plain, err := boxes.Open(dm.Box, nonce, ed25519.PublicKey(dm.From))
	if err != nil {
		m.Error = fmt.Sprintf("could not decrypt: %v", err)
		return m
	}
	var l letter
	if err := json.Unmarshal(plain, &l); err != nil || l.Version != 1 {
		m.Error = "decrypted content is not a claudemesh DM"
		return m
	}
	if l.ID != dm.ID {
		m.Error = fmt.Sprintf("sealed id %s does not match delivered id: possible replay", l.ID)
		return m
	}
	m.Text, m.Group = l.Text, l.Group
	m.SentAt = l.SentAt.UTC().Format(time.RFC3339)
	return m
}
