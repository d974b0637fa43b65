// Package wire defines the frames that claudemesh clients and brokers
// exchange over a WebSocket: one JSON object per text message, tagged by its
// "type" field.
//
// A connection starts with the broker's Challenge; the client answers with a
// Hello signed by its session key over HelloTranscript; the broker answers
// Welcome or an Error and closes. After that the client sends Send, Receipt,
// Ack, PeersRequest and StatusRequest frames and the broker answers with
// Sent, DM, PeerList, StatusList and Error frames. PROTOCOL.md at the
// repository root is the prose version.
//
// wire is a leaf package: it imports no other claudemesh package.
package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// Version is the protocol version spoken by this package. A broker refuses a
// Hello whose version it does not speak.
const Version = 1

// Size limits. MaxFrameSize bounds every frame in both directions; the
// WebSocket read limit is set to it. MaxBoxSize bounds a DM's ciphertext so
// that a DM frame always fits in a frame.
const (
	MaxFrameSize = 1 << 20
	MaxBoxSize   = 256 << 10
	MaxNameLen   = 128
	MaxPathLen   = 4096
	// MaxAckIDs bounds the ids of one Ack, Receipt or StatusRequest.
	MaxAckIDs = 512
	// MaxPeers bounds a peer list; a broker lists the most present first.
	MaxPeers  = 1000
	NonceSize = 24
	KeySize   = 32
	// ChallengeSize is the length of the broker's random hello challenge.
	ChallengeSize = 32
)

// Frame types.
const (
	TypeChallenge  = "challenge"
	TypeHello      = "hello"
	TypeWelcome    = "welcome"
	TypeSend       = "send"
	TypeSent       = "sent"
	TypeDM         = "dm"
	TypeAck        = "ack"
	TypeReceipt    = "receipt"
	TypePeers      = "peers"
	TypePeerList   = "peer_list"
	TypeStatus     = "status"
	TypeStatusList = "status_list"
	TypeError      = "error"
	TypeBye        = "bye"
)

// Frame is any frame. Type reports the value of its "type" field.
type Frame interface {
	Type() string
	validate() error
}

// Key is an ed25519 public key, hex-encoded in JSON.
type Key []byte

// MarshalText encodes k as lowercase hex.
func (k Key) MarshalText() ([]byte, error) {
	return []byte(hex.EncodeToString(k)), nil
}

// UnmarshalText decodes a 64-character hex key.
func (k *Key) UnmarshalText(b []byte) error {
	if len(b) != 2*KeySize {
		return fmt.Errorf("key must be %d hex characters, got %d", 2*KeySize, len(b))
	}
	v := make([]byte, KeySize)
	if _, err := hex.Decode(v, b); err != nil {
		return fmt.Errorf("key: %w", err)
	}
	*k = v
	return nil
}

// String returns the hex form of k.
func (k Key) String() string { return hex.EncodeToString(k) }

// Challenge is the broker's first frame on every connection.
type Challenge struct {
	Version int    `json:"v"`
	Nonce   []byte `json:"nonce"` // ChallengeSize random bytes, base64 in JSON
}

// Hello is the client's answer to Challenge. Sig is the ed25519 signature by
// Key over HelloTranscript(challenge nonce, h).
type Hello struct {
	Version    int    `json:"v"`
	Mesh       string `json:"mesh"`
	SessionID  string `json:"session_id,omitempty"` // "" for an ephemeral identity
	Key        Key    `json:"key"`
	Name       string `json:"name"`
	ProjectDir string `json:"project_dir,omitempty"`
	Token      string `json:"token,omitempty"` // local broker credential
	// Instance identifies the client process (a UUID it picks at start),
	// so the broker can tell a reconnect of the same process from another
	// process presenting the same session key.
	Instance string `json:"instance,omitempty"`
	// Standby asks to attach only if the session is free: no other
	// connection holds it and it is not in its grace period. A client that
	// was replaced probes with it, so it never takes the session back from
	// a process that is using it.
	Standby bool `json:"standby,omitempty"`
	// Attestation is the member's word for this session key; meshes with
	// members require it.
	Attestation *Attestation `json:"attestation,omitempty"`
	// Kind says what speaks for the key: "" (KindSession) for a Claude
	// Code session, KindHuman for a person at a terminal. Older clients
	// omit it.
	Kind string `json:"kind,omitempty"`
	// Check asks the broker only to verify the hello: it answers Welcome
	// (or the Error that refuses the hello) and closes, recording nothing —
	// no session, no presence, no lease. `claudemesh doctor` checks with it
	// that a session would be let in.
	Check bool   `json:"check,omitempty"`
	Sig   []byte `json:"sig"`
}

// Kinds of peer (Hello.Kind, Peer.Kind). A client shows a kind it does not
// know as a session.
const (
	KindSession = ""      // a Claude Code session (its MCP server)
	KindHuman   = "human" // a person at a terminal (claudemesh send, inbox, ...)
)

// Welcome accepts a Hello.
type Welcome struct {
	Version    int       `json:"v"`
	KeyID      string    `json:"key_id"`
	ServerTime time.Time `json:"server_time"`
	// Replaced is true when this hello displaced a connection of another
	// instance that held the same session key.
	Replaced bool `json:"replaced,omitempty"`
	// GraceMS is the broker's grace period in milliseconds: how long a
	// session whose connection dropped stays reserved for it.
	GraceMS int64 `json:"grace_ms,omitempty"`
}

// Bye announces that the client is leaving on purpose: the broker ends the
// session's presence at once instead of holding it in grace. With Forget
// the broker also forgets the session unless DMs wait for it (the client
// found out the identity was never a real session).
type Bye struct {
	Forget bool `json:"forget,omitempty"`
}

// Send asks the broker to store and route one sealed DM. ID is a UUID chosen
// by the sender; resending the same ID is idempotent.
//
// A group send sets Group (a group name, or GroupAll for every other
// session of the mesh) and Boxes, one per recipient, instead of To, Nonce
// and Box; the DM to each recipient has the id GroupDMID(ID, recipient).
type Send struct {
	ID    string `json:"id"`
	To    Key    `json:"to,omitempty"`
	Nonce []byte `json:"nonce,omitempty"`
	Box   []byte `json:"box,omitempty"`
	Group string `json:"group,omitempty"`
	Boxes []Box  `json:"boxes,omitempty"`
}

// Delivery states reported in Sent.
const (
	// StatusDelivered: the recipient is connected and the DM is being pushed
	// to it (or it already acknowledged the DM).
	StatusDelivered = "delivered"
	// StatusQueued: the recipient is not connected; the DM waits durably.
	StatusQueued = "queued"
)

// Sent acknowledges a Send after the DM is durably stored.
type Sent struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	// ExpiresAt is when the DM expires if its recipient has not read it by
	// then. For a resend it is the time set when the DM was first stored,
	// which is in the past for a DM that already expired.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// Recipients answers a group send: where the DM to each recipient
	// went, StatusDelivered or StatusQueued.
	Recipients []Recipient `json:"recipients,omitempty"`
}

// DM delivers one sealed DM to its recipient. The recipient answers with an
// Ack once the DM was read (or dismissed); until then the broker keeps it and
// delivers it again on the next connection.
type DM struct {
	ID          string    `json:"id"`
	From        Key       `json:"from"`
	FromName    string    `json:"from_name"`
	FromSession string    `json:"from_session,omitempty"`
	Nonce       []byte    `json:"nonce"`
	Box         []byte    `json:"box"`
	SentAt      time.Time `json:"sent_at"`
	// PushedAt is set when the recipient reported before (Receipt with
	// ReceiptPushed) that it wrote this DM into its session, so that it
	// does not write it again after a restart.
	PushedAt time.Time `json:"pushed_at,omitzero"`
}

// Ack tells the broker that the listed DMs were read: the recipient's model
// was shown them, or with Cleared the user dismissed them unread. The broker
// drops their payload and stops delivering them.
type Ack struct {
	IDs     []string `json:"ids"`
	Cleared bool     `json:"cleared,omitempty"`
}

// Receipt states: how far the recipient's side got with a DM it has not
// read yet.
const (
	// ReceiptReceived: the recipient's client holds the DM.
	ReceiptReceived = "received"
	// ReceiptPushed: the recipient's client wrote the DM into its session.
	ReceiptPushed = "pushed"
)

// Receipt tells the broker that the listed DMs, addressed to the sender of
// the frame, reached State at At. The broker keeps the first time of each
// state per DM and ignores ids addressed to anyone else. It does not answer.
type Receipt struct {
	IDs   []string  `json:"ids"`
	State string    `json:"state"` // ReceiptReceived or ReceiptPushed
	At    time.Time `json:"at"`
}

// PeersRequest asks for the sessions of the caller's mesh.
type PeersRequest struct {
	Req uint64 `json:"req"`
}

// Peer is one session of a mesh, online or recently seen.
type Peer struct {
	Key            Key       `json:"key"`
	KeyID          string    `json:"key_id"`
	Name           string    `json:"name"`
	SessionID      string    `json:"session_id,omitempty"`
	ProjectDir     string    `json:"project_dir,omitempty"`
	State          string    `json:"state"` // PeerOnline, PeerGrace or PeerOffline
	ConnectedSince time.Time `json:"connected_since,omitzero"`
	LastSeen       time.Time `json:"last_seen"`
	// GraceUntil is when a session in grace goes offline.
	GraceUntil time.Time `json:"grace_until,omitzero"`
	// Member and MemberKeyID name the member that vouches for the session
	// in a mesh with members; empty otherwise.
	Member      string `json:"member,omitempty"`
	MemberKeyID string `json:"member_key_id,omitempty"`
	// Kind is the kind the peer said hello as: KindSession ("") or
	// KindHuman.
	Kind string `json:"kind,omitempty"`
	// Groups are the groups the session belongs to, by name.
	Groups []string `json:"groups,omitempty"`
	// Summary, Availability, Activity and ActivitySince are what the
	// session said about itself (SetStatus); empty when it said nothing.
	Summary       string    `json:"summary,omitempty"`
	Availability  string    `json:"availability,omitempty"` // Available, Busy or DND
	Activity      string    `json:"activity,omitempty"`     // Working or Idle
	ActivitySince time.Time `json:"activity_since,omitzero"`
}

// Lease states of a session, as Peer.State reports them.
const (
	PeerOnline  = "online"  // connected now
	PeerGrace   = "grace"   // connection dropped; reserved for its return until GraceUntil
	PeerOffline = "offline" // gone; DMs to it are queued
)

// Online reports whether the peer is connected now.
func (p Peer) Online() bool { return p.State == PeerOnline }

// PeerList answers PeersRequest.
type PeerList struct {
	Req   uint64 `json:"req"`
	Peers []Peer `json:"peers"`
}

// StatusRequest asks where DMs the caller sent stand.
type StatusRequest struct {
	Req uint64   `json:"req"`
	IDs []string `json:"ids"`
}

// Delivery states of a DM, as MessageStatus.State reports them.
const (
	// StateQueued: stored; the recipient's client does not have it yet.
	StateQueued = "queued"
	// StateDelivered: the recipient's client has it.
	StateDelivered = "delivered"
	// StatePushed: written into the recipient's session; not read through
	// its inbox yet.
	StatePushed = "pushed"
	// StateRead: the recipient's inbox returned it.
	StateRead = "read"
	// StateCleared: the recipient dismissed it unread.
	StateCleared = "cleared"
	// StateExpired: its time to live passed before it was read.
	StateExpired = "expired"
	// StateUnknown: the broker knows no DM with this id from the caller:
	// never sent by this session key, or forgotten since.
	StateUnknown = "unknown"
)

// MessageStatus is where one DM stands. Times are zero when the event has
// not happened (or, for an unknown DM, is not known); each is the first
// time it happened.
type MessageStatus struct {
	ID     string `json:"id"`
	To     Key    `json:"to,omitempty"`
	ToName string `json:"to_name,omitempty"`
	// State is one of the State constants; a client treats a state it does
	// not know as StateUnknown.
	State      string    `json:"state"`
	CreatedAt  time.Time `json:"created_at,omitzero"`
	ExpiresAt  time.Time `json:"expires_at,omitzero"`
	ReceivedAt time.Time `json:"received_at,omitzero"`
	PushedAt   time.Time `json:"pushed_at,omitzero"`
	// ReadAt is when the recipient acknowledged the DM: read it
	// (StateRead) or dismissed it (StateCleared).
	ReadAt time.Time `json:"read_at,omitzero"`
	// Group and Recipients answer for a group send's id: the group it went
	// to and the status of the DM to each recipient.
	Group      string          `json:"group,omitempty"`
	Recipients []MessageStatus `json:"recipients,omitempty"`
}

// StatusList answers StatusRequest: one status per requested id, in the
// order of the request.
type StatusList struct {
	Req      uint64          `json:"req"`
	Statuses []MessageStatus `json:"statuses"`
}

func (Challenge) Type() string     { return TypeChallenge }
func (Hello) Type() string         { return TypeHello }
func (Welcome) Type() string       { return TypeWelcome }
func (Send) Type() string          { return TypeSend }
func (Sent) Type() string          { return TypeSent }
func (DM) Type() string            { return TypeDM }
func (Ack) Type() string           { return TypeAck }
func (Receipt) Type() string       { return TypeReceipt }
func (PeersRequest) Type() string  { return TypePeers }
func (PeerList) Type() string      { return TypePeerList }
func (StatusRequest) Type() string { return TypeStatus }
func (StatusList) Type() string    { return TypeStatusList }
func (*Error) Type() string        { return TypeError }
func (Bye) Type() string           { return TypeBye }

// Encode returns the JSON form of f with its "type" field.
func Encode(f Frame) ([]byte, error) {
	body, err := json.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("encode %s frame: %w", f.Type(), err)
	}
	// A struct always marshals to an object: splice the tag in front.
	var b bytes.Buffer
	b.Grow(len(body) + 32)
	b.WriteString(`{"type":"`)
	b.WriteString(f.Type())
	b.WriteByte('"')
	if len(body) > 2 {
		b.WriteByte(',')
	}
	b.Write(body[1:])
	if b.Len() > MaxFrameSize {
		return nil, fmt.Errorf("encode %s frame: %d bytes exceeds the %d-byte frame limit", f.Type(), b.Len(), MaxFrameSize)
	}
	return b.Bytes(), nil
}

// ParseError is the one error type Decode returns. Code is the wire error
// code a broker answers with.
type ParseError struct {
	Code string
	Err  error
}

func (e *ParseError) Error() string { return "decode frame: " + e.Err.Error() }
func (e *ParseError) Unwrap() error { return e.Err }

// Decode parses and validates one frame. Unknown fields are ignored so that
// newer peers can add optional fields; unknown types are an error.
func Decode(data []byte) (Frame, error) {
	if len(data) > MaxFrameSize {
		return nil, &ParseError{CodeTooLarge, fmt.Errorf("%d bytes exceeds the %d-byte frame limit", len(data), MaxFrameSize)}
	}
	var env struct {
		Type string `json:"type"`
	}
	if t, ok := leadingType(data); ok {
		env.Type = t
	} else if err := json.Unmarshal(data, &env); err != nil {
		return nil, &ParseError{CodeBadFrame, fmt.Errorf("not a JSON object: %w", err)}
	}
	if env.Type == "" {
		return nil, &ParseError{CodeBadFrame, errors.New(`missing "type"`)}
	}
	newFrame, ok := frameTypes[env.Type]
	if !ok {
		return nil, &ParseError{CodeBadFrame, fmt.Errorf("unknown frame type %q", truncate(env.Type, 32))}
	}
	f := newFrame()
	if err := json.Unmarshal(data, f); err != nil {
		return nil, &ParseError{CodeBadFrame, fmt.Errorf("%s frame: %w", env.Type, err)}
	}
	if err := f.validate(); err != nil {
		code := CodeBadFrame
		var pe *ParseError
		if errors.As(err, &pe) {
			return nil, pe
		}
		return nil, &ParseError{code, fmt.Errorf("%s frame: %w", env.Type, err)}
	}
	return deref(f), nil
}

// leadingType reads the type of a frame that begins as Encode begins one,
// {"type":"NAME", and names "type" nowhere else, without parsing the rest:
// the parse into the frame checks the whole of it. Any other frame is
// parsed for its type (of several "type" members, the last counts).
func leadingType(data []byte) (string, bool) {
	rest, ok := bytes.CutPrefix(data, []byte(`{"type":"`))
	if !ok {
		return "", false
	}
	end := bytes.IndexByte(rest, '"')
	if end < 1 || end+1 >= len(rest) || (rest[end+1] != ',' && rest[end+1] != '}') ||
		bytes.IndexByte(rest[:end], '\\') >= 0 || bytes.Contains(rest[end:], []byte(`"type"`)) {
		return "", false
	}
	return string(rest[:end]), true
}

// frameTypes makes an empty frame of each type Decode knows.
var frameTypes = map[string]func() Frame{
	TypeChallenge:    func() Frame { return new(Challenge) },
	TypeHello:        func() Frame { return new(Hello) },
	TypeWelcome:      func() Frame { return new(Welcome) },
	TypeSend:         func() Frame { return new(Send) },
	TypeSent:         func() Frame { return new(Sent) },
	TypeDM:           func() Frame { return new(DM) },
	TypeAck:          func() Frame { return new(Ack) },
	TypeReceipt:      func() Frame { return new(Receipt) },
	TypePeers:        func() Frame { return new(PeersRequest) },
	TypePeerList:     func() Frame { return new(PeerList) },
	TypeStatus:       func() Frame { return new(StatusRequest) },
	TypeStatusList:   func() Frame { return new(StatusList) },
	TypeError:        func() Frame { return new(Error) },
	TypeBye:          func() Frame { return new(Bye) },
	TypeMemberHello:  func() Frame { return new(MemberHello) },
	TypeJoin:         func() Frame { return new(Join) },
	TypeJoined:       func() Frame { return new(Joined) },
	TypeMeshCreate:   func() Frame { return new(MeshCreate) },
	TypeInviteCreate: func() Frame { return new(InviteCreate) },
	TypeInvite:       func() Frame { return new(Invite) },
	TypeInviteRevoke: func() Frame { return new(InviteRevoke) },
	TypeMemberList:   func() Frame { return new(MemberList) },
	TypeMembers:      func() Frame { return new(Members) },
	TypeMemberRemove: func() Frame { return new(MemberRemove) },
	TypeOK:           func() Frame { return new(OK) },
	TypeJoinGroup:    func() Frame { return new(JoinGroup) },
	TypeLeaveGroup:   func() Frame { return new(LeaveGroup) },
	TypeGroups:       func() Frame { return new(Groups) },
	TypeSetStatus:    func() Frame { return new(SetStatus) },
}

// deref returns frames by value so callers switch on value types; *Error
// stays a pointer: it is an error value.
func deref(f Frame) Frame {
	if _, ok := f.(*Error); ok {
		return f
	}
	return reflect.ValueOf(f).Elem().Interface().(Frame)
}

func (c Challenge) validate() error {
	if len(c.Nonce) != ChallengeSize {
		return fmt.Errorf("nonce must be %d bytes", ChallengeSize)
	}
	return nil
}

func (h Hello) validate() error {
	if err := checkVersion(h.Version); err != nil {
		return err
	}
	if h.Mesh == "" {
		// A mesh name refused like any other invalid one.
		return &ParseError{CodeBadMesh, errors.New("hello frame: mesh is required")}
	}
	if len(h.Key) != KeySize {
		return errors.New("key is required")
	}
	if h.SessionID != "" {
		if err := validUUID(h.SessionID); err != nil {
			return fmt.Errorf("session_id: %w", err)
		}
	}
	if err := validText("name", h.Name, MaxNameLen); err != nil {
		return err
	}
	if h.Name == "" {
		return errors.New("name is required")
	}
	if err := validText("project_dir", h.ProjectDir, MaxPathLen); err != nil {
		return err
	}
	if h.Instance != "" {
		if err := validUUID(h.Instance); err != nil {
			return fmt.Errorf("instance: %w", err)
		}
	}
	if h.Attestation != nil {
		if err := h.Attestation.validate(); err != nil {
			return fmt.Errorf("attestation: %w", err)
		}
	}
	switch h.Kind {
	case KindSession, KindHuman:
	default:
		return fmt.Errorf("kind %q: want %q or none", truncate(h.Kind, 16), KindHuman)
	}
	if len(h.Sig) == 0 {
		return &ParseError{CodeBadSignature, errors.New("hello frame: sig is required")}
	}
	return nil
}

func (w Welcome) validate() error { return nil }

func (s Send) validate() error {
	if err := validUUID(s.ID); err != nil {
		return fmt.Errorf("id: %w", err)
	}
	if s.Group != "" || len(s.Boxes) > 0 {
		return s.validateGroup()
	}
	if len(s.To) != KeySize {
		return errors.New("to is required")
	}
	if len(s.Nonce) != NonceSize {
		return fmt.Errorf("nonce must be %d bytes", NonceSize)
	}
	if len(s.Box) == 0 {
		return errors.New("box is required")
	}
	if len(s.Box) > MaxBoxSize {
		return &ParseError{CodeTooLarge, fmt.Errorf("send frame: box of %d bytes exceeds the %d-byte limit", len(s.Box), MaxBoxSize)}
	}
	return nil
}

func (s Sent) validate() error {
	if s.ID == "" {
		return errors.New("id is required")
	}
	return nil
}

func (d DM) validate() error {
	if err := validUUID(d.ID); err != nil {
		return fmt.Errorf("id: %w", err)
	}
	if len(d.From) != KeySize {
		return errors.New("from is required")
	}
	if len(d.Nonce) != NonceSize {
		return fmt.Errorf("nonce must be %d bytes", NonceSize)
	}
	if len(d.Box) == 0 || len(d.Box) > MaxBoxSize {
		return errors.New("box size out of range")
	}
	return nil
}

func (a Ack) validate() error { return validIDs(TypeAck, a.IDs) }

func (r Receipt) validate() error {
	if err := validIDs(TypeReceipt, r.IDs); err != nil {
		return err
	}
	switch r.State {
	case ReceiptReceived, ReceiptPushed:
		return nil
	}
	return fmt.Errorf("unknown state %q", truncate(r.State, 16))
}

func (PeersRequest) validate() error { return nil }

func (r StatusRequest) validate() error { return validIDs(TypeStatus, r.IDs) }

func (l StatusList) validate() error {
	if len(l.Statuses) > MaxAckIDs {
		return fmt.Errorf("%d statuses exceeds the limit of %d", len(l.Statuses), MaxAckIDs)
	}
	for i, st := range l.Statuses {
		if err := validUUID(st.ID); err != nil {
			return fmt.Errorf("statuses[%d]: id: %w", i, err)
		}
		if st.State == "" {
			return fmt.Errorf("statuses[%d]: state is required", i)
		}
	}
	return nil
}

// validIDs checks the DM ids of a frame of type typ: 1 to MaxAckIDs UUIDs.
func validIDs(typ string, ids []string) error {
	if len(ids) == 0 {
		return errors.New("ids is required")
	}
	if len(ids) > MaxAckIDs {
		return &ParseError{CodeTooLarge, fmt.Errorf("%s frame: %d ids exceeds the limit of %d", typ, len(ids), MaxAckIDs)}
	}
	for _, id := range ids {
		if err := validUUID(id); err != nil {
			return fmt.Errorf("ids: %w", err)
		}
	}
	return nil
}

func (Bye) validate() error { return nil }

func (l PeerList) validate() error {
	for i, p := range l.Peers {
		if len(p.Key) != KeySize {
			return fmt.Errorf("peers[%d]: key is required", i)
		}
		if err := validText("member", p.Member, MaxNameLen); err != nil {
			return fmt.Errorf("peers[%d]: %w", i, err)
		}
		switch p.State {
		case PeerOnline, PeerGrace, PeerOffline:
		default:
			return fmt.Errorf("peers[%d]: unknown state %q", i, truncate(p.State, 16))
		}
	}
	return nil
}

// checkVersion refuses a protocol version this side does not speak.
func checkVersion(v int) error {
	if v != Version {
		return &ParseError{CodeUnsupportedVersion, fmt.Errorf("protocol version %d not supported (this side speaks %d)", v, Version)}
	}
	return nil
}

func validUUID(s string) error {
	if len(s) != 36 {
		return fmt.Errorf("%q is not a UUID", truncate(s, 40))
	}
	if _, err := uuid.Parse(s); err != nil {
		return fmt.Errorf("%q is not a UUID", s)
	}
	return nil
}

func validText(field, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%s longer than %d bytes", field, max)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s is not valid UTF-8", field)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%s contains control characters", field)
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// helloDomain separates hello signatures from every other use of a session
// key.
const helloDomain = "claudemesh/hello/v1"

// HelloTranscript returns the bytes a session key signs to answer
// challenge: the domain string, then every field of h that the broker acts
// on, each length-prefixed so no two hellos share a transcript.
func HelloTranscript(challenge []byte, h Hello) []byte {
	var b bytes.Buffer
	put := func(p []byte) {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(p)))
		b.Write(n[:])
		b.Write(p)
	}
	put([]byte(helloDomain))
	put(challenge)
	put([]byte{byte(h.Version)})
	put([]byte(h.Mesh))
	put([]byte(h.SessionID))
	put(h.Key)
	put([]byte(h.Name))
	put([]byte(h.ProjectDir))
	put([]byte(h.Instance))
	if h.Standby {
		put([]byte{1})
	} else {
		put([]byte{0})
	}
	if a := h.Attestation; a != nil {
		put(a.Member)
		put(binary.BigEndian.AppendUint64(nil, uint64(a.Expires.UnixNano())))
		put(a.Sig)
	} else {
		put(nil)
	}
	// The kind is signed only when set, so that the transcript of a
	// hello without one is the transcript older clients sign.
	if h.Kind != KindSession {
		put([]byte(h.Kind))
	}
	if h.Check {
		// Only a checking hello has this last field ("check" is no kind),
		// so a hello signed without it cannot be replayed as one, nor the
		// other way round.
		put([]byte("check"))
	}
	return b.Bytes()
}
