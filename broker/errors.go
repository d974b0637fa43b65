package broker

import (
	"crypto/ed25519"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/claudemesh/claudemesh/identity"
	"github.com/claudemesh/claudemesh/store"
	"github.com/claudemesh/claudemesh/wire"
)

// This file is the one place where what the store returns for a client
// becomes what the client is told. A store call made for a client is a
// storeOp; storeRefusal maps its error: a store sentinel the call may meet
// either lets the request go on or refuses it with a code of its own
// (refusals); anything else is the broker's own failure, logged once, here,
// and answered internal with what the client may do about it (storeOps).

// storeOp is a store call made for a client.
type storeOp int

const (
	opMeshExists    storeOp = iota // a hello: does the mesh have members
	opAttester                     // a hello: the member that attests the session
	opSessionOwner                 // a hello: the member that vouched for the session key before
	opRecordSession                // a hello: record the session and its UUID
	opReadQueue                    // the pump: the session's queued DMs
	opRecipient                    // a send: is the recipient known
	opQueueStats                   // a send: what waits for the recipient
	opEnqueue                      // a send: store the DM
	opAck                          // an ack
	opReceipt                      // a receipt
	opStatus                       // a status request
	opPeerSessions                 // a peers request: the sessions seen
	opPeerMembers                  // a peers request: the members that vouch for them
	opMemberHello                  // a member hello: is the key a member
	opRequester                    // a member request: its member, as it is now
	opCreateMesh                   // mesh_create
	opCreateInvite                 // invite_create
	opRevokeInvite                 // invite_revoke; false (no such invite) is store.ErrNotFound
	opListMembers                  // member_list, member_remove: the members
	opRemoveMember                 // member_remove
	opRedeemInvite                 // a join
	opClaim                        // a hello: take the session key's lease
	opLeases                       // a peers request or member list: the leases of the mesh
	opLease                        // a send: is the recipient connected to another node
	opGroupMembers                 // a group send: who the group's members are
	opEnqueueGroup                 // a group send: store its DMs
	opGroupStatus                  // a status request: a group send's DMs
	opJoinGroup                    // join_group, leave_group
	opPresence                     // set_status: what the session said before
	opSetPresence                  // set_status
	opPeerTeams                    // a peers request: groups and presence

	numStoreOps
)

// Messages name what a call was about with these placeholders: {mesh},
// {key} (a key id), {id} (a DM id), {name} (quoted), {session} (a session
// UUID), {state} (a receipt state) and {ttl} (the queue TTL).

// storeOps says, for each call, what its failure is called in the log and
// what the client is told.
var storeOps = [numStoreOps]struct{ what, internal string }{
	opMeshExists:    {"look up mesh", "broker could not look up the mesh; retry"},
	opAttester:      {"look up member", "broker could not look up the member; retry"},
	opSessionOwner:  {"look up session", "broker could not look up the session; retry"},
	opRecordSession: {"record session", "broker could not record the session; retry"},
	opReadQueue:     {"read queued DMs", "broker could not read the queue; reconnect"},
	opRecipient:     {"look up recipient", "broker could not look up the recipient; retry with the same id"},
	opQueueStats:    {"queue stats", "broker could not check the recipient's queue; retry with the same id"},
	opEnqueue:       {"store DM", "broker could not store the DM; retry with the same id"},
	opAck:           {"ack DMs", "broker could not record the ack; the DMs will be delivered again"},
	opReceipt:       {"record receipt", "broker could not record the {state} receipt"},
	opStatus:        {"read DM status", "broker could not read the DM status; retry"},
	opPeerSessions:  {"list sessions", "broker could not list sessions; retry"},
	opPeerMembers:   {"list members", "broker could not list sessions; retry"},
	opMemberHello:   {"look up member", "broker could not look up the member; retry"},
	opRequester:     {"look up member", "broker could not look up the member; retry"},
	opCreateMesh:    {"create mesh", "broker could not create the mesh; retry"},
	opCreateInvite:  {"create invite", "broker could not store the invite; retry"},
	opRevokeInvite:  {"revoke invite", "broker could not revoke the invite; retry"},
	opListMembers:   {"list members", "broker could not list the members; retry"},
	opRemoveMember:  {"remove member", "broker could not remove the member; retry"},
	opRedeemInvite:  {"redeem invite", "broker could not add the member; retry"},
	opClaim:         {"claim lease", "broker could not record the session's presence; retry"},
	opLeases:        {"list leases", "broker could not list sessions; retry"},
	opLease:         {"look up lease", "broker could not look up the recipient; retry with the same id"},
	opGroupMembers:  {"list group members", "broker could not list the group's members; retry with the same id"},
	opEnqueueGroup:  {"store group DMs", "broker could not store the DMs; nothing was stored; retry with the same id"},
	opGroupStatus:   {"read group send status", "broker could not read the DM status; retry"},
	opJoinGroup:     {"change group membership", "broker could not change the group membership; retry"},
	opPresence:      {"read status", "broker could not read the session's status; retry"},
	opSetPresence:   {"record status", "broker could not record the session's status; retry"},
	opPeerTeams:     {"list groups and status", "broker could not list sessions; retry"},
}

// refusals are the store sentinels that are an answer rather than a
// failure, for the calls that may meet them: code "" lets the request go
// on, any other code refuses it.
var refusals = []struct {
	op   storeOp
	err  error
	code string
	msg  string
}{
	{opAttester, store.ErrNotFound, wire.CodeNotMember, "member key {key} is not a member of mesh {mesh}"},
	{opSessionOwner, store.ErrNotFound, "", ""}, // a session key not seen before
	{opRecordSession, store.ErrSessionTaken, wire.CodeSessionIDTaken, "session {session} is registered in mesh {mesh} to another key; a session UUID belongs to the key that first registered it. If this session's key file was lost or replaced, start a new session: the old registration is forgotten {ttl} after it was last seen"},
	{opRecipient, store.ErrNotFound, wire.CodeUnknownPeer, "no session with key {key} in mesh {mesh}"},
	{opLease, store.ErrNotFound, "", ""}, // not connected anywhere
	{opEnqueue, store.ErrConflict, wire.CodeDuplicateID, "DM id {id} is already used by another DM; use a new id"},
	{opEnqueueGroup, store.ErrConflict, wire.CodeDuplicateID, "a DM id of group send {id} is already used by another DM; nothing was stored; use a new id"},
	{opGroupStatus, store.ErrNotFound, "", ""}, // no such group send: the id is unknown
	{opPresence, store.ErrNotFound, "", ""},    // the session said nothing yet
	{opMemberHello, store.ErrNotFound, wire.CodeNotMember, "key {key} is not a member of mesh {mesh}"},
	{opRequester, store.ErrNotFound, wire.CodeNotMember, "this key is not a member of mesh {mesh}"},
	{opCreateMesh, store.ErrConflict, wire.CodeMeshExists, "mesh {mesh} exists on this broker"},
	{opRevokeInvite, store.ErrNotFound, wire.CodeBadInvite, "no such invite in mesh {mesh}"},
	{opRedeemInvite, store.ErrInvite, wire.CodeBadInvite, "this invite code is unknown, used up, expired or revoked"},
	{opRedeemInvite, store.ErrConflict, wire.CodeNameTaken, "the mesh already has a member named {name} or with this key; choose another name"},
}

// about is what a store call was about, as its refusal names it.
type about struct {
	mesh    string
	key     []byte
	id      string
	name    string
	session string
	state   string
	ttl     time.Duration
}

// fill puts a into the placeholders of msg.
func (a about) fill(msg string) string {
	if !strings.Contains(msg, "{") {
		return msg
	}
	return strings.NewReplacer(
		"{mesh}", a.mesh,
		"{key}", identity.KeyID(ed25519.PublicKey(a.key)),
		"{id}", a.id,
		"{name}", strconv.Quote(a.name),
		"{session}", a.session,
		"{state}", a.state,
		"{ttl}", a.ttl.String(),
	).Replace(msg)
}

// storeRefusal maps the error of the store call op, made for the client
// whose logger is log, to the wire error the client is answered with: nil
// when err is nil or a sentinel that lets the request go on, the refusal a
// sentinel means, or else internal, after logging the failure.
func storeRefusal(log *slog.Logger, op storeOp, err error, a about) *wire.Error {
	if err == nil {
		return nil
	}
	for _, r := range refusals {
		if r.op == op && errors.Is(err, r.err) {
			if r.code == "" {
				return nil
			}
			return &wire.Error{Code: r.code, Message: a.fill(r.msg)}
		}
	}
	o := storeOps[op]
	attrs := []any{"err", err}
	if a.id != "" {
		attrs = append(attrs, "msg_id", a.id)
	}
	if a.state != "" {
		attrs = append(attrs, "state", a.state)
	}
	log.Error(o.what, attrs...)
	return &wire.Error{Code: wire.CodeInternal, Message: a.fill(o.internal)}
}
