package broker

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/claudemesh/claudemesh/wire"
)

// storeTimeout bounds one store call made on behalf of a client.
const storeTimeout = 15 * time.Second

// conn is what every client connection has, whatever it speaks for: the
// socket, the writer that writes to it (queued frames, pings and the
// close), the read loop and the shutdown. The first frame says what the
// connection is: a sessionConn or a memberConn embeds it from then on,
// and a join uses it as it is.
//
// The read loop runs in the connection's own goroutine (started by
// Server.ServeHTTP), which returns only after the socket is closed. The
// writer runs only while there is something to write: send, ping and
// shutdown start it when none runs, and it returns once nothing is left,
// so an idle connection keeps no goroutine but its read loop. At most one
// writer runs at a time; the one that finds the connection shut down
// writes the last frames, closes the socket and stays the last. Nothing
// outside the connection ever blocks on it: other connections only wake a
// session's pump (a non-blocking signal) or shut the connection down.
type conn struct {
	s    *Server
	ws   *websocket.Conn
	id   uint64
	log  *slog.Logger // the read loop's; it names the session or member once known
	wlog *slog.Logger // the writer's: the connection's logger when it was accepted
	// cancel ends the connection's context, to which every store call made
	// for the client is bound. Close calls it when it cuts the socket.
	cancel context.CancelFunc

	out         chan []byte   // frames for the writer; bounded
	quit        chan struct{} // closed by shutdown
	quitOnce    sync.Once
	final       *wire.Error   // written before the close frame; set before quit is closed
	writing     atomic.Bool   // a writer runs, or the last one closed the socket
	writeFailed bool          // a write failed; the writer's
	pingDue     atomic.Bool   // the pinger asked for a ping
	writerDone  chan struct{} // closed once the socket is closed
}

func newConn(s *Server, ws *websocket.Conn, id uint64, cancel context.CancelFunc) *conn {
	log := s.log.With("conn", id)
	return &conn{
		s:          s,
		ws:         ws,
		id:         id,
		log:        log,
		wlog:       log,
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
		c.final = e
		close(c.quit)
		c.kickWriter()
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
		c.kickWriter()
		return true
	case <-c.quit:
		return false
	}
}

// ping asks the writer for a ping. The server's pinger calls it.
func (c *conn) ping() {
	c.pingDue.Store(true)
	c.kickWriter()
}

// reply queues an error frame that does not end the connection.
func (c *conn) reply(e *wire.Error) {
	c.log.Debug("rejected frame", "code", e.Code, "msg", e.Message)
	c.s.cfg.Metrics.refused(e.Code)
	c.send(e)
}

// kickWriter starts the writer unless one runs.
func (c *conn) kickWriter() {
	if c.writing.CompareAndSwap(false, true) {
		go c.writer()
	}
}

// quitting reports whether the connection is shutting down.
func (c *conn) quitting() bool {
	select {
	case <-c.quit:
		return true
	default:
		return false
	}
}

// writer writes what there is to write: queued frames and a ping asked
// for. Once the connection shuts down it writes the last frames and closes
// the socket. It returns when there is nothing left, after saying so
// (writing) and looking once more: a send, ping or shutdown meanwhile
// either saw it still running or starts the next writer.
func (c *conn) writer() {
	cfg := &c.s.cfg
	for {
		if c.quitting() {
			c.closeSocket()
			return // writing stays set: no writer starts again
		}
		if c.pingDue.Swap(false) {
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(cfg.WriteTimeout)); err != nil {
				c.wlog.Debug("ping failed", "err", err)
				c.writeFailed = true
				c.shutdown(nil)
				continue
			}
		}
		select {
		case b := <-c.out:
			c.ws.SetWriteDeadline(time.Now().Add(cfg.WriteTimeout))
			if err := c.writeQueued(b); err != nil {
				c.wlog.Debug("write failed", "err", err)
				c.writeFailed = true
				c.shutdown(nil)
			}
		case <-c.quit:
		default:
			c.writing.Store(false)
			more := len(c.out) > 0 || c.pingDue.Load() || c.quitting()
			if !more || !c.writing.CompareAndSwap(false, true) {
				return
			}
		}
	}
}

// writeQueued writes b and the frames queued behind it, at once when the
// connection is a batchConn.
func (c *conn) writeQueued(b []byte) error {
	bc, _ := c.ws.NetConn().(*batchConn)
	if bc == nil {
		return c.ws.WriteMessage(websocket.TextMessage, b)
	}
	bc.hold()
	err := c.ws.WriteMessage(websocket.TextMessage, b)
	for err == nil && !bc.full() {
		select {
		case b = <-c.out:
			err = c.ws.WriteMessage(websocket.TextMessage, b)
			continue
		default:
		}
		break
	}
	if rerr := bc.release(); err == nil {
		err = rerr
	}
	return err
}

// closeSocket says the connection's last frames and closes the socket: the
// frames queued before it shut down (a welcome, a join's answer), then the
// error that ended it, if any, then the close. After a failed write it
// only closes the socket: a client that stopped reading would hold it for
// the last frames' deadline.
func (c *conn) closeSocket() {
	defer close(c.writerDone)
	defer c.ws.Close()
	if c.writeFailed {
		return
	}
	deadline := time.Now().Add(time.Second)
	code, reason := websocket.CloseNormalClosure, ""
	c.ws.SetWriteDeadline(deadline)
	c.flush()
	if c.final != nil {
		if b, err := wire.Encode(c.final); err == nil {
			c.ws.SetWriteDeadline(deadline)
			c.ws.WriteMessage(websocket.TextMessage, b)
		}
		code, reason = closeCode(c.final.Code), c.final.Code
	}
	c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), deadline)
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
