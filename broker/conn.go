package broker

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/claudemesh/claudemesh/wire"
)

// storeTimeout bounds one store call made on behalf of a client.
const storeTimeout = 15 * time.Second

// conn is what every client connection has, whatever it speaks for: the
// socket, the one writer goroutine that writes to it (queued frames, pings
// and the close), the read loop and the shutdown. The first frame says
// what the connection is: a sessionConn or a memberConn embeds it from
// then on, and a join uses it as it is.
//
// The read loop runs in the HTTP handler's goroutine (Server.ServeHTTP),
// which owns the writer and returns only after it has exited. Nothing
// outside the connection ever blocks on it: other connections only wake a
// session's pump (a non-blocking signal) or shut the connection down.
type conn struct {
	s   *Server
	ws  *websocket.Conn
	id  uint64
	log *slog.Logger // the read loop's; it names the session or member once known
	// cancel ends the connection's context, to which every store call made
	// for the client is bound. Close calls it when it cuts the socket.
	cancel context.CancelFunc

	out        chan []byte   // frames for the writer; bounded
	quit       chan struct{} // closed by shutdown
	quitOnce   sync.Once
	final      *wire.Error // written before the close frame; set before quit is closed
	writerDone chan struct{}
}

func newConn(s *Server, ws *websocket.Conn, id uint64, cancel context.CancelFunc) *conn {
	return &conn{
		s:          s,
		ws:         ws,
		id:         id,
		log:        s.log.With("conn", id),
		cancel:     cancel,
		out:        make(chan []byte, s.cfg.SendQueue),
		quit:       make(chan struct{}),
		writerDone: make(chan struct{}),
	}
}

// shutdown closes the connection, first sending e when it is not nil. It is
// idempotent and never blocks.
func (c *conn) shutdown(e *wire.Error) {
	c.quitOnce.Do(func() {
		if e != nil {
			c.s.cfg.Metrics.refused(e.Code)
		}
		c.final = e
		close(c.quit)
	})
}

// stop shuts the connection down, if it is not already, and waits until
// its writer has said the last frames and closed the socket.
func (c *conn) stop() {
	c.shutdown(nil)
	<-c.writerDone
}

// send queues a frame for the writer, waiting while the queue is full. It
// reports false once the connection is shutting down. Only the connection's
// own goroutines call it, so a full queue slows this client alone.
func (c *conn) send(f wire.Frame) bool {
	b, err := wire.Encode(f)
	if err != nil {
		c.log.Error("encode frame", "type", f.Type(), "err", err)
		return false
	}
	select {
	case c.out <- b:
		return true
	case <-c.quit:
		return false
	}
}

// reply queues an error frame that does not end the connection.
func (c *conn) reply(e *wire.Error) {
	c.log.Debug("rejected frame", "code", e.Code, "msg", e.Message)
	c.s.cfg.Metrics.refused(e.Code)
	c.send(e)
}

// writer is the only goroutine that writes to the socket. It logs to log,
// the connection's logger when it started: the read loop goes on to name
// the session in c.log.
func (c *conn) writer(log *slog.Logger) {
	defer close(c.writerDone)
	defer c.ws.Close()
	cfg := &c.s.cfg
	ping := time.NewTicker(cfg.PingInterval)
	defer ping.Stop()
	for {
		select {
		case b := <-c.out:
			c.ws.SetWriteDeadline(time.Now().Add(cfg.WriteTimeout))
			if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
				log.Debug("write failed", "err", err)
				c.shutdown(nil)
				return
			}
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(cfg.WriteTimeout)); err != nil {
				log.Debug("ping failed", "err", err)
				c.shutdown(nil)
				return
			}
		case <-c.quit:
			deadline := time.Now().Add(time.Second)
			code, reason := websocket.CloseNormalClosure, ""
			if c.final == nil {
				// A connection that ends normally (a join answered, a
				// bye) says its last frames before the close; one ended
				// by an error (replaced, refused) says only the error.
				c.ws.SetWriteDeadline(deadline)
				c.flush()
			}
			if c.final != nil {
				if b, err := wire.Encode(c.final); err == nil {
					c.ws.SetWriteDeadline(deadline)
					c.ws.WriteMessage(websocket.TextMessage, b)
				}
				code, reason = closeCode(c.final.Code), c.final.Code
			}
			c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), deadline)
			return
		}
	}
}

// flush writes the frames already queued, until the first failure.
func (c *conn) flush() {
	for {
		select {
		case b := <-c.out:
			if c.ws.WriteMessage(websocket.TextMessage, b) != nil {
				return
			}
		default:
			return
		}
	}
}

// closeCode maps the wire error that ends a connection to a WebSocket close
// code; the close reason carries the wire code itself.
func closeCode(code string) int {
	switch code {
	case wire.CodeSessionReplaced:
		return wire.CloseSessionReplaced
	case wire.CodeShuttingDown:
		return wire.CloseGoingAway
	case wire.CodeInternal:
		return websocket.CloseInternalServerErr
	case wire.CodeTooLarge:
		return websocket.CloseMessageTooBig
	}
	return websocket.ClosePolicyViolation
}

// CloseSessionReplaced is the WebSocket close code of a connection displaced
// by a newer connection of the same session key.
const CloseSessionReplaced = wire.CloseSessionReplaced

// readLoop hands every valid frame from the client to handle until the
// connection ends or handle returns false. From here anything that arrives
// (a pong too) counts as the client being alive for PongTimeout more.
func (c *conn) readLoop(ctx context.Context, handle func(context.Context, wire.Frame) bool) {
	c.watchLiveness()
	for {
		f, ok := c.next()
		if !ok || !handle(ctx, f) {
			return
		}
	}
}

// watchLiveness makes anything that arrives after the handshake (a pong
// too) count as the client being alive for PongTimeout more.
func (c *conn) watchLiveness() {
	c.alive()
	c.ws.SetPongHandler(func(string) error { c.alive(); return nil })
}

func (c *conn) alive() { c.ws.SetReadDeadline(time.Now().Add(c.s.cfg.PongTimeout)) }

// next returns the next valid frame after the handshake, answering the
// invalid ones with an error frame on the way; false once the connection
// is over.
func (c *conn) next() (wire.Frame, bool) {
	for {
		typ, data, err := readMessage(c.ws, c.s.cfg.MaxFrameSize)
		if err != nil {
			c.readFailed(err)
			return nil, false
		}
		c.alive()
		f, e := decodeMessage(typ, data)
		if e != nil {
			if typ == websocket.TextMessage {
				e.Ref = refusedRef(data)
			}
			c.reply(e)
			continue
		}
		return f, true
	}
}

// decodeMessage decodes a WebSocket message into a frame, or returns the
// error frame that refuses it.
func decodeMessage(typ int, data []byte) (wire.Frame, *wire.Error) {
	if typ != websocket.TextMessage {
		return nil, wire.Errorf(wire.CodeBadFrame, "frames are JSON text messages")
	}
	f, err := wire.Decode(data)
	if err != nil {
		var pe *wire.ParseError
		errors.As(err, &pe)
		return nil, &wire.Error{Code: pe.Code, Message: err.Error()}
	}
	return f, nil
}

// readMessage reads one message of at most limit bytes and
// reports websocket.ErrReadLimit for a longer one. It enforces the limit
// itself instead of through SetReadLimit because on a message over that
// limit gorilla/websocket writes a close frame of its own, after which the
// too_large error frame could no longer be sent.
func readMessage(ws *websocket.Conn, limit int) (int, []byte, error) {
	typ, r, err := ws.NextReader()
	if err != nil {
		return 0, nil, err
	}
	data, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return 0, nil, err
	}
	if len(data) > limit {
		return 0, nil, websocket.ErrReadLimit
	}
	return typ, data, nil
}

func (c *conn) readFailed(err error) {
	var ce *websocket.CloseError
	switch {
	case errors.As(err, &ce):
		c.log.Debug("client closed", "code", ce.Code)
	case errors.Is(err, websocket.ErrReadLimit):
		c.shutdown(wire.Errorf(wire.CodeTooLarge, "frame exceeds the %d-byte limit", c.s.cfg.MaxFrameSize))
	default:
		c.log.Debug("read failed", "err", err)
	}
}

// refusedRef returns what names the request in a frame that failed
// validation: the id of a send, the number of a peers or status request. So
// the client learns which request was refused instead of waiting for an
// answer. It returns "" when there is none.
func refusedRef(data []byte) string {
	var f struct {
		Type string          `json:"type"`
		ID   json.RawMessage `json:"id"`
		Req  json.RawMessage `json:"req"`
	}
	if json.Unmarshal(data, &f) != nil {
		return ""
	}
	switch f.Type {
	case wire.TypeSend:
		var id string
		if json.Unmarshal(f.ID, &id) != nil || len(id) > 64 {
			return ""
		}
		return id
	case wire.TypePeers, wire.TypeStatus:
		var req uint64
		if json.Unmarshal(f.Req, &req) != nil {
			return ""
		}
		return wire.RefOf(req)
	}
	return ""
}
