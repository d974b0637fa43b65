package wire

import (
	"strconv"
	"time"
)

// Where a broker is found, shared by the broker and its clients.
const (
	// DefaultListen is the address a broker listens on by default.
	DefaultListen = "127.0.0.1:7733"
	// Path is the HTTP path of the broker's WebSocket endpoint.
	Path = "/v1/ws"
	// DefaultURL is the WebSocket URL of a broker on DefaultListen.
	DefaultURL = "ws://" + DefaultListen + Path
	// LocalFile is the file under CLAUDEMESH_HOME in which a local broker
	// publishes its URL and credential (LocalInfo) to local clients. It is
	// 0600: only the user who runs the broker can read the credential.
	LocalFile = "broker.json"
)

// LocalInfo is what a local broker publishes in LocalFile.
type LocalInfo struct {
	URL       string    `json:"url"`
	Token     string    `json:"token"`
	PID       int       `json:"pid"`
	StartedAt time.Time `json:"started_at"`
}

// RefOf is how an error frame's ref names request number req (of a peers,
// status or member request).
func RefOf(req uint64) string { return strconv.FormatUint(req, 10) }
