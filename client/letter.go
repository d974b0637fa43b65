package client

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/nacl/box"

	"github.com/claudemesh/claudemesh/identity"
	"github.com/claudemesh/claudemesh/wire"
)

// MaxText is the largest DM text, in bytes, that a sender accepts.
const MaxText = 64 << 10

// Letter is the plaintext inside a DM's box. Sealing the id and time with
// the text means the broker cannot replay a DM under a new id.
type Letter struct {
	Version int       `json:"v"`
	ID      string    `json:"id"`
	Text    string    `json:"text"`
	SentAt  time.Time `json:"sent_at"`
	// Group is the group the DM was sent to ("all" for the whole mesh),
	// sealed so that the broker cannot say otherwise; empty for a DM to
	// this session alone.
	Group string `json:"group,omitempty"`
	// ReplyTo is the id of the message this one replies to, as the
	// recipient knows it. Sealed, so that the broker never learns which
	// DMs make a conversation.
	ReplyTo string `json:"reply_to,omitempty"`
	// Kind is LetterAsk for a question, LetterAnswer for the answer to
	// one, "" for a plain DM.
	Kind string `json:"kind,omitempty"`
	// Ask is the ask's id, in an ask and in its answers: the DM id for an
	// ask of one session, the send id for an ask of a group (each
	// recipient's DM id is derived from it, see wire.GroupDMID).
	Ask string `json:"ask,omitempty"`
	// Deadline is when an ask expires; answers after it are late.
	Deadline time.Time `json:"deadline,omitzero"`
}

// Kinds of letter (Letter.Kind).
const (
	LetterAsk    = "ask"
	LetterAnswer = "answer"
)

// ErrTooLarge: a DM's box would exceed what the broker accepts.
var ErrTooLarge = errors.New("message too large once encrypted")

// Seal encrypts a letter from the sender's key to the recipient's. The
// letter is encoded without HTML escaping, so that text full of <, > and &
// does not grow sixfold; text that still does not fit in wire.MaxBoxSize
// (control characters are escaped as \u00XX) fails with ErrTooLarge, since
// the broker would refuse it.
func Seal(id, text string, sentAt time.Time, to ed25519.PublicKey, from *identity.Boxes) ([wire.NonceSize]byte, []byte, error) {
	return SealLetter(Letter{Version: 1, ID: id, Text: text, SentAt: sentAt.UTC()}, to, from)
}

// SealLetter encrypts l from the sender's key to the recipient's (see Seal).
func SealLetter(l Letter, to ed25519.PublicKey, from *identity.Boxes) ([wire.NonceSize]byte, []byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(l); err != nil {
		return [wire.NonceSize]byte{}, nil, err
	}
	plain := bytes.TrimSuffix(b.Bytes(), []byte("\n"))
	if n := len(plain) + box.Overhead; n > wire.MaxBoxSize {
		return [wire.NonceSize]byte{}, nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, n, wire.MaxBoxSize)
	}
	return from.Seal(plain, to)
}

// Open decrypts dm with the recipient's boxes and checks that it is a
// letter sealed under the id it was delivered with. Its error says, in
// words for the user, why a DM cannot be read.
func Open(dm wire.DM, boxes *identity.Boxes) (Letter, error) {
	var nonce [wire.NonceSize]byte
	copy(nonce[:], dm.Nonce)
	plain, err := boxes.Open(dm.Box, nonce, ed25519.PublicKey(dm.From))
	if err != nil {
		return Letter{}, fmt.Errorf("could not decrypt: %v", err)
	}
	var l Letter
	if err := json.Unmarshal(plain, &l); err != nil || l.Version != 1 {
		return Letter{}, errors.New("decrypted content is not a claudemesh DM")
	}
	if l.ID != dm.ID {
		return Letter{}, fmt.Errorf("sealed id %s does not match delivered id: possible replay", l.ID)
	}
	return l, nil
}

// Match returns the peers `to` names: a display name (case-insensitive,
// an @ before it ignored), a key id or public key prefix (at least 4 hex
// digits), or a session UUID. A sender must refuse a `to` that matches
// several peers, whatever their states, rather than guess: otherwise
// anybody posing under another session's name or key prefix could receive
// its DMs.
func Match(to string, peers []wire.Peer) []wire.Peer {
	to = strings.TrimPrefix(strings.TrimSpace(to), "@")
	lower := strings.ToLower(to)
	var matches []wire.Peer
	for _, p := range peers {
		if strings.EqualFold(p.Name, to) || (p.SessionID != "" && p.SessionID == lower) ||
			(len(lower) >= 4 && strings.HasPrefix(p.Key.String(), lower)) {
			matches = append(matches, p)
		}
	}
	return matches
}
