package store

import (
	"context"
	"time"
)

// Dump is the whole content of a store, as Dumper produces it and Loader
// takes it: how a broker moves from one store to another (from the
// embedded SQLite store to PostgreSQL) without losing a queued DM, its
// status, a session or a member.
type Dump struct {
	Meshes   []MeshRow
	Members  []Member
	Invites  []InviteRow
	Sessions []Session
	// Messages holds every DM row, tombstones included, each recipient's
	// in the order Pending returns them.
	Messages []MessageRow
	// Groups, GroupDMs and Presences are the groups' memberships, the
	// group rows of the DMs and what sessions said about themselves.
	Groups    []GroupRow
	GroupDMs  []GroupDMRow
	Presences []Presence
	// Token is the broker credential of the meshes without members, so
	// that sessions keep being let in after the move ("" when none).
	Token string
}

// MeshRow is a mesh with members.
type MeshRow struct {
	Name      string
	CreatedAt time.Time
}

// InviteRow is an invite with what is left of it: Uses is the uses left.
type InviteRow struct {
	Invite
	Revoked bool
}

// MessageRow is a DM as kept, with its acknowledgement. An acknowledged or
// expired DM has no Nonce and Box.
type MessageRow struct {
	Message
	BoxLen  int
	ReadAt  time.Time // zero when not acknowledged
	Acked   bool
	Cleared bool
}

// Dumper is a store whose content can be read whole.
type Dumper interface {
	Dump(ctx context.Context) (*Dump, error)
}

// Loader is a store that can take a Dump. Load refuses a store that holds
// anything already (ErrConflict), and loads all of d or nothing.
type Loader interface {
	Load(ctx context.Context, d *Dump) error
}

// GroupRow is a membership, with its mesh.
type GroupRow struct {
	Mesh string
	Membership
}

// GroupDMRow says which group send a DM belongs to.
type GroupDMRow struct {
	ID, SendID, Group string
	ExpiresAt         time.Time
}
