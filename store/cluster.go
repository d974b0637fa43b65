package store

import (
	"context"
	"errors"
	"time"
)

// Lease states, as a cluster judges them at a moment (see LeaseTimes).
const (
	LeaseOnline  = "online"  // its connection is up on a live node
	LeaseGrace   = "grace"   // its connection dropped, or its node stopped heartbeating, less than Grace ago
	LeaseOffline = "offline" // longer ago: the lease is over
)

// Lease is a session key's presence as the broker nodes of a cluster share
// it: which node and connection hold the key, and since when.
type Lease struct {
	Mesh       string
	Key        []byte // session public key
	Node       string // the node whose connection holds it
	Conn       uint64 // that connection's number on its node
	Epoch      int64  // grows with every claim of the key: fences older holders
	Instance   string // the client process instance that said hello
	SessionID  string
	Name       string
	ProjectDir string
	Kind       string    // the hello's kind: wire.KindSession ("") or wire.KindHuman
	Member     []byte    // member that vouched for the session; nil without members
	Since      time.Time // when the holding connection said hello
	// DroppedAt is when the holding connection ended without a bye (zero
	// while connected); for a lease on a node that stopped heartbeating,
	// the node's last heartbeat.
	DroppedAt time.Time
	// State is the lease's state at the time it was read (LeaseOnline,
	// LeaseGrace or LeaseOffline).
	State string
}

// LeaseTimes is how a cluster judges leases: at Now, a connection dropped
// less than Grace ago is in grace, and a node whose last heartbeat is more
// than Lapse old is dead (its connections count as dropped then). A Lapse
// of zero judges no node dead: a broker alone.
type LeaseTimes struct {
	Now          time.Time
	Grace, Lapse time.Duration
}

// Judge returns l with its State at lt, where heartbeat is the last
// heartbeat of l's node (zero when it never heartbeated): a lease whose
// node is dead counts as dropped at that heartbeat (or at its hello, when
// the node was never heard after it).
func (lt LeaseTimes) Judge(l Lease, heartbeat time.Time) Lease {
	if l.DroppedAt.IsZero() && lt.Lapse > 0 && heartbeat.Before(lt.Now.Add(-lt.Lapse)) {
		l.DroppedAt = l.Since
		if heartbeat.After(l.Since) {
			l.DroppedAt = heartbeat
		}
	}
	switch {
	case l.DroppedAt.IsZero():
		l.State = LeaseOnline
	case lt.Now.Before(l.DroppedAt.Add(lt.Grace)):
		l.State = LeaseGrace
	default:
		l.State = LeaseOffline
	}
	return l
}

// ErrLeaseHeld reports a standby claim refused: another instance holds
// the lease, online or in grace.
var ErrLeaseHeld = errors.New("lease held by another instance")

// Event kinds a cluster carries between nodes. Events carry no DM content.
const (
	// EventDM: DMs were stored for Key: the node holding its connection
	// pushes them.
	EventDM = "dm"
	// EventClaimed: Key's lease was claimed at Epoch on Node: any other
	// connection holding it is replaced.
	EventClaimed = "claimed"
	// EventMemberRemoved: Key, a member of Mesh, was removed: its
	// connections are cut everywhere.
	EventMemberRemoved = "member_removed"
	// EventResync: the listener (re)connected and may have missed events:
	// every node checks its connections against the shared state.
	EventResync = "resync"
)

// Event is a notification between the nodes of a cluster.
type Event struct {
	Kind  string `json:"k"`
	Mesh  string `json:"m,omitempty"`
	Key   []byte `json:"key,omitempty"`
	Node  string `json:"n,omitempty"`
	Epoch int64  `json:"e,omitempty"`
}

// Cluster is what broker nodes sharing a store coordinate through:
// presence (one live connection per session key across nodes, fenced by
// epochs), node heartbeats, events between nodes, and the credential of
// the meshes without members.
type Cluster interface {
	// Heartbeat records that node is alive at now.
	Heartbeat(ctx context.Context, node string, now time.Time) error
	// Claim makes l (Mesh, Key, Node, Conn, Instance, the hello's fields,
	// Member, Since) the holder of its key's lease and returns the new
	// epoch and the lease it took over (zero Lease when there was none or
	// it was offline). With standby, a lease that another instance holds
	// online or in grace is not taken: ErrLeaseHeld, with that lease.
	Claim(ctx context.Context, l Lease, standby bool, at LeaseTimes) (prev Lease, epoch int64, err error)
	// Release ends the hold of the connection that claimed the key at
	// epoch: its lease goes to grace at now, or ends at once with bye. It
	// reports false, changing nothing, when a newer claim holds the key.
	Release(ctx context.Context, mesh string, key []byte, epoch int64, now time.Time, bye bool) (bool, error)
	// Lease returns key's lease in mesh (ErrNotFound when none is kept).
	Lease(ctx context.Context, mesh string, key []byte, at LeaseTimes) (Lease, error)
	// Leases returns the leases of mesh that are online or in grace.
	Leases(ctx context.Context, mesh string, at LeaseTimes) ([]Lease, error)
	// NodeLeases returns the leases node holds, online or in grace.
	NodeLeases(ctx context.Context, node string, at LeaseTimes) ([]Lease, error)
	// ReleaseNode puts every lease node holds online in grace from at: a
	// node that starts again under the same name holds no connection of
	// its earlier run.
	ReleaseNode(ctx context.Context, node string, at time.Time) error
	// DropLeases ends at once the leases that member vouched for in mesh.
	DropLeases(ctx context.Context, mesh string, member []byte) error
	// SweepLeases deletes offline leases and returns them, so that the
	// caller records when their sessions were last seen.
	SweepLeases(ctx context.Context, at LeaseTimes) ([]Lease, error)
	// Publish sends e to every node, this one included.
	Publish(ctx context.Context, e Event) error
	// Listen calls f with every event published, until ctx ends. It
	// reconnects when its connection breaks, and calls f with an
	// EventResync after every (re)connection, the first included.
	Listen(ctx context.Context, f func(Event)) error
	// Token returns the cluster's broker credential, creating it once.
	Token(ctx context.Context) (string, error)
}
