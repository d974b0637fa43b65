package wire

// WebSocket close codes the broker ends a connection with. The close
// frame's reason is the wire error code of the error frame sent just
// before it; a client acts on that error frame, the close code says the
// same to anything that reads only the close.
const (
	// CloseGoingAway (RFC 6455's 1001) ends the connections of a broker
	// that drains to stop (error code shutting_down): reconnect at once,
	// to another broker of the cluster when the client knows several.
	CloseGoingAway = 1001
	// CloseSessionReplaced ends a connection displaced by a newer
	// connection of the same session key (error code session_replaced).
	CloseSessionReplaced = 4001
)
