// Package store is the broker's durable memory: the DMs waiting for their
// recipients and the sessions the broker has seen.
//
// The broker writes a DM to the store before it acknowledges the sender and
// removes its payload only after the recipient acknowledged it or its time to
// live ran out. Along the way the store records when the recipient reported
// it received, pushed into its session and read (or cleared) the DM, so that
// the sender can ask where the DM stands (Status). Every implementation
// (store/sqlite, the embedded default; store/postgres, shared by the broker
// nodes of a cluster) must pass the conformance suite in store/storetest.
// Broker nodes coordinate through a Cluster (store/memory for a broker
// alone, store/postgres for several), which must pass storetest.RunCluster.
//
// # Life of a DM
//
// A DM is pending from Enqueue until its recipient acknowledges it (Ack) or
// until its ExpiresAt. Acknowledged, it keeps no payload: its row is a
// tombstone that recognises a resent ID and remembers its times. Expire at or
// after ExpiresAt drops the payload of a DM never acknowledged; from
// ExpiresAt on it is expired and never pending again. Expire deletes a row,
// acknowledged or expired, once ExpiresAt + retention has passed; after that
// its ID is unknown and may be used again.
//
// Keys are ed25519 public keys (32 bytes). Message IDs are UUID strings chosen
// by the sender. A Store never sees plaintext: Box is NaCl ciphertext.
package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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
	// ErrSessionTaken reports a session UUID that another key of the mesh
	// registered first: a session UUID belongs to one key.
	ErrSessionTaken = errors.New("session id registered to another key")
)

// Message is one sealed DM as the broker keeps it.
type Message struct {
	ID          string // sender-chosen UUID, unique across the store
	Mesh        string // mesh the DM travels in
	From        []byte // sender's session public key
	FromName    string // sender's display name at send time
	FromSession string // sender's session UUID ("" for an ephemeral sender)
	To          []byte // recipient's session public key
	// Sender is who answers for the DM: the member key that vouched for
	// the sender in a mesh with members, else the sender's session key.
	// QueueStats counts per Sender. Empty means From.
	Sender    []byte
	Nonce     []byte    // 24-byte NaCl nonce
	Box       []byte    // NaCl box ciphertext
	CreatedAt time.Time // when the broker accepted it
	ExpiresAt time.Time // when it expires if still unread
	// ReceivedAt and PushedAt are when the recipient first reported the DM
	// received and pushed (see Receipt); zero if never. Pending returns
	// them; Enqueue ignores them.
	ReceivedAt time.Time
	PushedAt   time.Time
}

// SenderKey returns who answers for m: Sender, or From when Sender is
// empty.
func (m Message) SenderKey() []byte {
	if len(m.Sender) > 0 {
		return m.Sender
	}
	return m.From
}

// Receipt states, as the recipient reports them (Store.Receipt).
const (
	ReceiptReceived = "received" // the recipient's client holds the DM
	ReceiptPushed   = "pushed"   // the recipient's client wrote it into its session
)

// Delivery states of a DM, as Store.Status reports them. The first that
// applies wins.
const (
	StateUnknown   = "unknown"   // no such DM from this sender (never stored, or deleted)
	StateCleared   = "cleared"   // acknowledged as dismissed unread
	StateRead      = "read"      // acknowledged as read
	StateExpired   = "expired"   // ExpiresAt <= now and never acknowledged
	StatePushed    = "pushed"    // reported pushed
	StateDelivered = "delivered" // reported received
	StateQueued    = "queued"    // stored; nothing reported yet
)

// StateOf is the state of a DM at now, the first of the states that
// applies (see the State constants): acknowledged (cleared or read), then
// expired, then the receipts.
func StateOf(acked, cleared bool, expiresAt, now time.Time, received, pushed bool) string {
	switch {
	case acked && cleared:
		return StateCleared
	case acked:
		return StateRead
	case !expiresAt.After(now):
		return StateExpired
	case pushed:
		return StatePushed
	case received:
		return StateDelivered
	}
	return StateQueued
}

// MessageStatus is where one DM stands, as its sender may see it.
type MessageStatus struct {
	ID     string
	To     []byte // recipient's key; nil when unknown
	ToName string // recipient's display name as last seen; "" if not known
	State  string // one of the State constants
	// Times of the DM's events; zero when they did not happen. ReadAt is
	// the time of the acknowledgement, read or cleared.
	CreatedAt, ExpiresAt, ReceivedAt, PushedAt, ReadAt time.Time
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
	// AlreadyExpired: the same message was stored before and expired
	// unread; it is not delivered.
	AlreadyExpired
)

func (r EnqueueResult) String() string {
	switch r {
	case Stored:
		return "stored"
	case AlreadyQueued:
		return "already-queued"
	case AlreadyAcked:
		return "already-acked"
	case AlreadyExpired:
		return "already-expired"
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
	Kind       string // what said hello: wire.KindSession ("") or wire.KindHuman
	FirstSeen  time.Time
	LastSeen   time.Time
	// Member is the member key that vouched for the session key, nil in a
	// mesh without members. The first member to vouch keeps it: an upsert
	// never changes it.
	Member []byte
}

// Member is a member of a mesh with members.
type Member struct {
	Mesh     string
	Key      []byte // ed25519 member public key
	Name     string
	Role     string // "owner" or "member"
	JoinedAt time.Time
}

// Invite is an invite code as the store keeps it: by its hash.
type Invite struct {
	Hash      []byte // SHA-256 of the raw code
	Mesh      string
	CreatedBy []byte // member key of its creator
	Uses      int
	ExpiresAt time.Time
	CreatedAt time.Time
}

// ErrInvite reports an invite code that is unknown, used up, expired or
// revoked; which of these is not said.
var ErrInvite = errors.New("invite code is not valid")

// Members is the part of a Store that keeps meshes with members.
type Members interface {
	// CreateMesh creates mesh with owner as its first member (role
	// "owner"). A mesh that exists is ErrConflict.
	CreateMesh(ctx context.Context, mesh string, owner Member, now time.Time) error
	// MeshExists reports whether mesh has members.
	MeshExists(ctx context.Context, mesh string) (bool, error)
	// Member returns the member with key in mesh, or ErrNotFound.
	Member(ctx context.Context, mesh string, key []byte) (Member, error)
	// MemberList returns the members of mesh, by name.
	MemberList(ctx context.Context, mesh string) ([]Member, error)
	// RemoveMember removes a member; it reports whether there was one.
	RemoveMember(ctx context.Context, mesh string, key []byte) (bool, error)
	// CreateInvite stores an invite.
	CreateInvite(ctx context.Context, inv Invite) error
	// RedeemInvite uses one use of the invite with hash to add m (its Mesh
	// is taken from the invite; its Role is "member") and returns the
	// member added. ErrInvite for an unknown, used up, expired (at now) or
	// revoked invite; ErrConflict when the mesh already has that key or
	// name (the use is not spent then).
	RedeemInvite(ctx context.Context, hash []byte, m Member, now time.Time) (Member, error)
	// RevokeInvite revokes the invite with hash in mesh; it reports
	// whether there was one.
	RevokeInvite(ctx context.Context, mesh string, hash []byte) (bool, error)
}

// Store is the broker's persistence. All methods are safe for concurrent use.
// A method that returns without error has made its change durable according
// to the implementation's documented durability mode. Times are compared as
// instants and kept to at least microsecond precision.
type Store interface {
	// Enqueue stores m durably; m needs an ID, a sender, a recipient and a
	// box. Re-enqueueing an ID with the same mesh, sender, recipient, nonce
	// and box is idempotent and reports AlreadyQueued, AlreadyAcked or
	// AlreadyExpired (an acked or expired DM keeps only its id, mesh, sender
	// and recipient, so only those are compared); the same ID with different
	// contents is ErrConflict. If ctx ends after the write was handed to the
	// store, it may still commit: callers retry with the same ID, which is
	// idempotent.
	Enqueue(ctx context.Context, m Message) (EnqueueResult, error)

	// Pending returns up to limit (>= 1) unacknowledged, unexpired
	// (ExpiresAt > now, payload not dropped by Expire) messages for
	// recipient `to` in mesh, in commit order, starting after the message
	// with ID `after` ("" = from the start). A message committed later
	// always comes after one committed earlier, so a reader that remembers
	// the last ID it saw misses nothing. `after` may name an acked or
	// expired message; an ID that does not exist (any more) or belongs to
	// another recipient is an error wrapping ErrNotFound.
	Pending(ctx context.Context, mesh string, to []byte, now time.Time, after string, limit int) ([]Message, error)

	// Receipt records that the recipient `to` reached state (ReceiptReceived
	// or ReceiptPushed) with the listed messages at `at`, which must not be
	// zero. Only the first report of each state counts: it applies to
	// messages addressed to `to` in mesh, not yet acknowledged, for which
	// that state has no time yet. A time before a message's CreatedAt is
	// recorded as its CreatedAt. Other IDs are ignored. It returns how many
	// messages got the time; an unknown state is an error.
	Receipt(ctx context.Context, mesh string, to []byte, ids []string, state string, at time.Time) (int, error)

	// QueueStats counts the DMs waiting for `to` in mesh at now (unacked,
	// unexpired) and the bytes of their boxes: all of them, or with a
	// non-empty sender only those whose Sender it is.
	QueueStats(ctx context.Context, mesh string, to, sender []byte, now time.Time) (count int, bytes int64, err error)

	// Ack marks messages addressed to `to` in mesh as read at `at` (or,
	// with cleared, dismissed unread) and forgets their payload. IDs that do
	// not exist, are addressed to another key, or were already acked are
	// ignored; an ack of an expired message that is still kept counts (the
	// recipient had it). A time before a message's CreatedAt is recorded
	// as its CreatedAt. It returns how many were newly acked.
	Ack(ctx context.Context, mesh string, to []byte, ids []string, at time.Time, cleared bool) (int, error)

	// Record applies the receipts and acks of the recipient `to` in mesh
	// in their order, as Receipt and Ack would one after another, all or
	// none: a failure fails them all. It returns how many messages each
	// changed, as Receipt and Ack report it.
	Record(ctx context.Context, mesh string, to []byte, rs []Record) ([]int, error)

	// Status reports, for each of ids in order (repeats included), where
	// the message with that ID stands at now, as its sender `from` in mesh
	// may see it: StateUnknown, with only ID set, when no such message is
	// kept or it was sent by another key or in another mesh.
	Status(ctx context.Context, mesh string, from []byte, ids []string, now time.Time) ([]MessageStatus, error)

	// Expire ages messages and sessions at now:
	//   - a message never acknowledged with ExpiresAt <= now loses its
	//     payload; it stays, expired, for Status and to recognise a resend;
	//   - a message with ExpiresAt + retention <= now, acknowledged or not,
	//     is deleted;
	//   - a session last seen before sessionsBefore is deleted.
	// It returns how many messages expired unread in this call (lost their
	// payload). A negative retention is an error.
	Expire(ctx context.Context, now time.Time, retention time.Duration, sessionsBefore time.Time) (int, error)

	// UpsertSession records that s was seen: it creates the row or updates
	// SessionID, Name, ProjectDir and LastSeen (FirstSeen is kept; a zero
	// FirstSeen on insert takes LastSeen). A non-empty SessionID that
	// another key of the mesh holds is ErrSessionTaken, and nothing
	// changes: a session UUID belongs to the first key that registered it
	// for as long as that session is kept (until ForgetSession or Expire
	// removes it).
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

	Members
	Teams

	// Close flushes pending writes and releases resources. It is idempotent.
	Close() error
}

// Record is a receipt or an ack for Store.Record.
type Record struct {
	Ack     bool   // an ack; else a receipt
	State   string // a receipt's state: ReceiptReceived or ReceiptPushed
	Cleared bool   // an ack's: dismissed unread
	IDs     []string
	At      time.Time
}

// Check refuses a receipt of an unknown state or without a time.
func (r Record) Check() error {
	if r.Ack {
		return nil
	}
	if r.State != ReceiptReceived && r.State != ReceiptPushed {
		return fmt.Errorf("receipt: unknown state %q", r.State)
	}
	if r.At.IsZero() {
		return errors.New("receipt: zero time")
	}
	return nil
}

// RecordsName names what rs records, for errors: "ack", "receipt STATE",
// or "record" for several.
func RecordsName(rs []Record) string {
	switch {
	case len(rs) != 1:
		return "record"
	case rs[0].Ack:
		return "ack"
	default:
		return "receipt " + rs[0].State
	}
}

// Resent says what Enqueue reports for m when its id is stored already, as
// was (with acked, whether it was acknowledged; an acknowledged or expired
// DM keeps no nonce or box): ErrConflict when the id names another DM,
// else AlreadyAcked, AlreadyExpired (its payload dropped, or m sent after
// its ExpiresAt) or AlreadyQueued. Every store answers a resend by it.
func Resent(m, was Message, acked bool) (EnqueueResult, error) {
	switch {
	case was.Mesh != m.Mesh || !bytes.Equal(was.From, m.From) || !bytes.Equal(was.To, m.To):
		return 0, ErrConflict
	case acked:
		return AlreadyAcked, nil
	case was.Box == nil:
		return AlreadyExpired, nil // Expire dropped the payload
	case !bytes.Equal(was.Nonce, m.Nonce) || !bytes.Equal(was.Box, m.Box):
		return 0, ErrConflict
	case !was.ExpiresAt.After(m.CreatedAt):
		return AlreadyExpired, nil
	}
	return AlreadyQueued, nil
}

// Check refuses a message Enqueue cannot store: one without an id, a
// sender, a recipient or a box.
func (m Message) Check() error {
	if m.ID == "" || len(m.From) == 0 || len(m.To) == 0 || len(m.Box) == 0 {
		return errors.New("message needs an id, a sender, a recipient and a box")
	}
	return nil
}
