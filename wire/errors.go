package wire

import "fmt"

// Error codes. They are stable: clients branch on them.
const (
	CodeBadFrame           = "bad_frame"           // not a frame, or a field is invalid
	CodeTooLarge           = "too_large"           // frame or DM above the size limit
	CodeUnsupportedVersion = "unsupported_version" // hello speaks another protocol version
	CodeHelloRequired      = "hello_required"      // a frame other than hello before the handshake
	CodeHandshakeTimeout   = "handshake_timeout"   // no valid hello in time
	CodeUnauthorized       = "unauthorized"        // missing or wrong broker credential
	CodeBadSignature       = "bad_signature"       // hello signature does not verify
	CodeBadMesh            = "bad_mesh"            // mesh name refused
	CodeSessionReplaced    = "session_replaced"    // a newer connection took this session key
	CodeUnknownPeer        = "unknown_peer"        // recipient never seen in this mesh
	CodeDuplicateID        = "duplicate_id"        // DM id already used for another DM
	CodeShuttingDown       = "shutting_down"       // broker is stopping (draining); reconnect, to another broker if any
	CodeSessionActive      = "session_active"      // standby hello: the session is live in another process
	CodeInternal           = "internal"            // broker-side failure; retry

	// Membership and limits.
	CodeAttestationRequired = "attestation_required" // the mesh admits members' sessions only
	CodeBadAttestation      = "bad_attestation"      // attestation signature, mesh or expiry refused
	CodeNotMember           = "not_member"           // the key is not a member of the mesh (or was removed)
	CodeSessionOwned        = "session_owned"        // another member vouches for this session key
	CodeSessionIDTaken      = "session_id_taken"     // another key registered this session UUID in the mesh first
	CodeNotOwner            = "not_owner"            // only the mesh's owner may do that
	CodeBadInvite           = "bad_invite"           // unknown, used up, expired or revoked invite code
	CodeNameTaken           = "name_taken"           // a member of the mesh already has that name
	CodeMeshExists          = "mesh_exists"          // a mesh of that name exists on the broker
	CodeMemberRemoved       = "member_removed"       // the member was removed; its sessions are closed
	CodeRateLimited         = "rate_limited"         // too many DMs per second; retry later with the same id
	CodeQueueFull           = "queue_full"           // the recipient has too many DMs or bytes waiting
	CodeTooManyConnections  = "too_many_connections" // the member has too many connections open
	CodeBadGroup            = "bad_group"            // group name refused
	CodeGroupChanged        = "group_changed"        // a group send's boxes are not the group's members; see Error.Members
	CodeGroupTooLarge       = "group_too_large"      // a group send to more recipients than the broker allows
)

// Error is the error frame. Ref names the request it answers (a DM id, or the
// number of a peers or status request) when there is one. An error frame sent during the
// handshake, or with code session_replaced or shutting_down, is followed
// by the broker closing the connection.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Ref     string `json:"ref,omitempty"`
	// Members answers a group send refused with group_changed: the
	// recipients the broker expects now, so that the sender can seal to
	// them and send again.
	Members []Key `json:"members,omitempty"`
}

// Errorf builds an error frame.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string {
	if e.Ref != "" {
		return fmt.Sprintf("broker: %s (%s, ref %s)", e.Message, e.Code, e.Ref)
	}
	return fmt.Sprintf("broker: %s (%s)", e.Message, e.Code)
}

func (e *Error) validate() error {
	if e.Code == "" {
		return fmt.Errorf("code is required")
	}
	return nil
}
