package store

import (
	"context"
	"time"
)

// Membership is one session key's membership of a named group of its mesh.
type Membership struct {
	Group    string
	Key      []byte // session public key
	JoinedAt time.Time
}

// Presence is what a session said about itself: a one-line summary, its
// availability (available, busy, dnd) and its activity (working, idle)
// since when. Empty fields were never set.
type Presence struct {
	Mesh          string
	Key           []byte
	Summary       string
	Availability  string
	Activity      string
	ActivitySince time.Time
	UpdatedAt     time.Time
}

// Teams is the part of a Store that keeps groups, group sends and what
// sessions say about themselves. A session's memberships and presence go
// when the session is forgotten (ForgetSession, or Expire of the session).
type Teams interface {
	// EnqueueGroup stores the DMs of one group send, one per recipient, in
	// one transaction: all of them or none. Each is checked as Enqueue
	// checks it (a resend of the same send reports AlreadyQueued,
	// AlreadyAcked or AlreadyExpired per DM); if any is ErrConflict,
	// nothing is stored. sendID and group are kept with each DM for
	// GroupStatus. The results are in the order of msgs.
	EnqueueGroup(ctx context.Context, sendID, group string, msgs []Message) ([]EnqueueResult, error)

	// GroupStatus reports where each DM of the group send sendID stands,
	// as its sender `from` in mesh may see it, and the group it went to;
	// ErrNotFound when no such send from that sender is kept.
	GroupStatus(ctx context.Context, mesh string, from []byte, sendID string, now time.Time) (string, []MessageStatus, error)

	// JoinGroup makes key a member of group in mesh; it reports whether
	// it was not a member before.
	JoinGroup(ctx context.Context, mesh, group string, key []byte, now time.Time) (bool, error)

	// LeaveGroup ends key's membership of group in mesh; it reports
	// whether it was a member.
	LeaveGroup(ctx context.Context, mesh, group string, key []byte) (bool, error)

	// GroupMembers returns the keys of the members of group in mesh whose
	// sessions the store keeps, in key order.
	GroupMembers(ctx context.Context, mesh, group string) ([][]byte, error)

	// Memberships returns every membership in mesh, by group, then key.
	Memberships(ctx context.Context, mesh string) ([]Membership, error)

	// SetPresence records p for its session, replacing what was there.
	SetPresence(ctx context.Context, p Presence) error

	// Presence returns what the session with key said in mesh, or
	// ErrNotFound.
	Presence(ctx context.Context, mesh string, key []byte) (Presence, error)

	// Presences returns what the sessions of mesh said, in key order.
	Presences(ctx context.Context, mesh string) ([]Presence, error)
}
