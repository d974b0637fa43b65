// Package store is the broker's durable memory: the DMs waiting for their
// recipients and the sessions the broker has seen.
//
// The broker writes a DM to the store before it acknowledges the sender and
// removes its payload only after the recipient acknowledged it. Every
// implementation (store/sqlite, the embedded default; store/postgres for
// scale-out) must pass the conformance suite in store/storetest.
//
// Keys are ed25519 public keys (32 bytes). Message IDs are UUID strings chosen
// by the sender. A Store never sees plaintext: Box is NaCl ciphertext.
package store

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors. Implementations wrap them so callers test with errors.Is.
var (
	// ErrNotFound reports that no row matched.
	ErrNotFound = errors.New("not found")
	// ErrConflict reports a message ID already used for a different
	// message (another sender, recipient or ciphertext).
	ErrConflict = errors.New("message id already used for a different message")
	// ErrClosed reports a call on a closed store.
	ErrClosed = errors.New("store closed")
)

// Message is one sealed DM as the broker keeps it.
type Message struct {
	ID          string    // sender-chosen UUID, unique across the store
	Mesh        string    // mesh the DM travels in
	From        []byte    // sender's session public key
	FromName    string    // sender's display name at send time
	FromSession string    // sender's session UUID ("" for an ephemeral sender)
	To          []byte    // recipient's session public key
	Nonce       []byte    // 24-byte NaCl nonce
	Box         []byte    // NaCl box ciphertext
	CreatedAt   time.Time // when the broker accepted it
	ExpiresAt   time.Time // when it is dropped if still undelivered
}

// EnqueueResult says what Enqueue did with a message.
type EnqueueResult int

const (
	// Stored: the message is new and now durably queued.
	Stored EnqueueResult = iota + 1
	// AlreadyQueued: the same message was stored before and still waits for
	// its recipient's acknowledgement.
	AlreadyQueued
	// AlreadyAcked: the same message was stored before and its recipient
	// has acknowledged it; it must not be delivered again.
	AlreadyAcked
)

func (r EnqueueResult) String() string {
	switch r {
	case Stored:
		return "stored"
	case AlreadyQueued:
		return "already-queued"
	case AlreadyAcked:
		return "already-acked"
	}
	return "unknown"
}

// Session is a session key the broker has seen in a mesh.
type Session struct {
	Mesh       string
	PublicKey  []byte // ed25519 session public key
	SessionID  string // Claude Code session UUID ("" when ephemeral)
	Name       string // display name last presented
	ProjectDir string // project directory last presented
	FirstSeen  time.Time
	LastSeen   time.Time
}

// Store is the broker's persistence. All methods are safe for concurrent use.
// A method that returns without error has made its change durable according
// to the implementation's documented durability mode. Times are compared as
// instants and kept to at least microsecond precision.
type Store interface {
	// Enqueue stores m durably. Re-enqueueing an ID with the same mesh,
	// sender, recipient, nonce and box is idempotent and reports
	// AlreadyQueued or AlreadyAcked (an acked DM keeps only its id, mesh,
	// sender and recipient, so only those are compared); the same ID with
	// different contents is ErrConflict. If ctx ends after the write was
	// handed to the store, it may still commit: callers retry with the same
	// ID, which is idempotent.
	Enqueue(ctx context.Context, m Message) (EnqueueResult, error)

	// Pending returns up to limit (>= 1) unacknowledged, unexpired
	// (ExpiresAt > now) messages for recipient `to` in mesh, in commit
	// order, starting after the message with ID `after` ("" = from the
	// start). A message committed later always comes after one committed
	// earlier, so a reader that remembers the last ID it saw misses nothing.
	// `after` may name an acked message; an ID that does not exist (any
	// more) or belongs to another recipient is an error wrapping ErrNotFound.
	Pending(ctx context.Context, mesh string, to []byte, now time.Time, after string, limit int) ([]Message, error)

	// Ack marks messages addressed to `to` in mesh as received and forgets
	// their payload. IDs that do not exist, are addressed to another key, or
	// were already acked are ignored. It returns how many were newly acked.
	Ack(ctx context.Context, mesh string, to []byte, ids []string) (int, error)

	// Expire deletes messages whose ExpiresAt <= now (acked or not) and
	// sessions last seen before sessionsBefore. It returns the number of
	// messages removed.
	Expire(ctx context.Context, now, sessionsBefore time.Time) (int, error)

	// UpsertSession records that s was seen: it creates the row or updates
	// SessionID, Name, ProjectDir and LastSeen (FirstSeen is kept; a zero
	// FirstSeen on insert takes LastSeen).
	UpsertSession(ctx context.Context, s Session) error

	// ForgetSession deletes the session with that key in mesh unless a
	// message waits for it (unacknowledged and unexpired at now), so that a
	// sender can still address what is queued. It reports whether the row
	// is gone; a session that does not exist is reported gone.
	ForgetSession(ctx context.Context, mesh string, key []byte, now time.Time) (bool, error)

	// Session returns the session with that key in mesh, or ErrNotFound.
	Session(ctx context.Context, mesh string, key []byte) (Session, error)

	// Sessions returns the sessions of mesh last seen at or after since,
	// most recently seen first.
	Sessions(ctx context.Context, mesh string, since time.Time) ([]Session, error)

	// Close flushes pending writes and releases resources. It is idempotent.
	Close() error
}
