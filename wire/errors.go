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
	CodeShuttingDown       = "shutting_down"       // broker is stopping; reconnect later
	CodeSessionActive      = "session_active"      // standby hello: the session is live in another process
	CodeInternal           = "internal"            // broker-side failure; retry
)

// Error is the error frame. Ref names the request it answers (a DM id, or the
// number of a peers or status request) when there is one. An error frame sent during the
// handshake, or with code session_replaced or shutting_down, is followed
// by the broker closing the connection.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Ref     string `json:"ref,omitempty"`
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
