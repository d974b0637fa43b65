package broker

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/claudemesh/claudemesh/wire"
)

// accepted is the handshake clock of one accepted connection.
type accepted struct {
	at    time.Time   // when it was accepted
	timer *time.Timer // closes it HandshakeTimeout after at, unless stopped
}

type acceptedKey struct{}

// ConfigureHTTPServer makes hs hold every connection it accepts to
// HandshakeTimeout from its accept to a valid hello, all steps included: a
// connection still in its TLS handshake or its HTTP request when the time
// is up is closed, and an upgraded one that has not said
// its hello is refused with handshake_timeout. So a client cannot hold a
// connection open without saying who it is, however slowly it writes. It
// sets hs.ConnContext and hs.ConnState, keeping any hooks hs had; no
// ReadHeaderTimeout is needed besides. Call it before hs serves.
func (s *Server) ConfigureHTTPServer(hs *http.Server) {
	connContext, connState := hs.ConnContext, hs.ConnState
	hs.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if connContext != nil {
			ctx = connContext(ctx, c)
		}
		raw := c
		if tc, ok := c.(*tls.Conn); ok {
			raw = tc.NetConn() // closing a tls.Conn may wait on its handshake
		}
		a := &accepted{at: time.Now()}
		a.timer = time.AfterFunc(s.cfg.HandshakeTimeout, func() { raw.Close() })
		s.accepting.Store(c, a)
		return context.WithValue(ctx, acceptedKey{}, a)
	}
	hs.ConnState = func(c net.Conn, state http.ConnState) {
		if connState != nil {
			connState(c, state)
		}
		switch state {
		case http.StateHijacked:
			// ServeHTTP has it: it stops the clock once upgraded.
			s.accepting.Delete(c)
		case http.StateClosed:
			if a, ok := s.accepting.LoadAndDelete(c); ok {
				a.(*accepted).timer.Stop()
			}
		}
	}
}

// ServeHTTP upgrades the request to a WebSocket and serves one client until
// it disconnects or the server closes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		http.Error(w, "broker is shutting down", http.StatusServiceUnavailable)
		return
	}
	s.wg.Add(1)
	s.nextConn++
	id := s.nextConn
	s.mu.Unlock()
	served := false
	defer func() {
		if !served {
			s.wg.Done()
		}
	}()

	// The hello is due HandshakeTimeout after the connection was accepted
	// (when ConfigureHTTPServer set up the http.Server that accepted it),
	// else after this request arrived.
	helloBy := time.Now().Add(s.cfg.HandshakeTimeout)
	a, _ := r.Context().Value(acceptedKey{}).(*accepted)
	if a != nil {
		helloBy = a.at.Add(s.cfg.HandshakeTimeout)
	}
	ws, err := s.upgrader.Upgrade(batchingWriter{w}, r, nil)
	if err != nil {
		s.log.Debug("websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	s.cfg.Metrics.connAccepted()
	if a != nil {
		// From here the read deadline of the hello holds it, so that the
		// client learns why it is closed.
		a.timer.Stop()
	}
	// The connection's context ends when Close gives up waiting for it
	// (or when the connection is over), not when the HTTP server stops:
	// a session that leaves while the broker stops still records when it
	// was last seen.
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	c := newConn(s, ws, id, cancel)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		cancel()
		ws.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()

	// The connection is served on a goroutine of its own, so that the
	// HTTP server's goroutine returns and lets go of what it keeps for a
	// request (its buffered reader and writer, its stack): an idle
	// session then holds only what the WebSocket needs.
	served = true
	go func() {
		defer s.wg.Done()
		defer cancel()
		s.serveConn(ctx, c, helloBy)
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
}

// serveConn challenges the client, opens what its first frame, due by
// helloBy, says it is: a session (hello), a member (member_hello) or a
// join, then serves its frames. It returns when the connection is over and
// its goroutines have exited.
//
// Opening runs aside: checking a hello and recording it take a deep stack
// (JSON, signatures, the store's calls), and the runtime gives a
// goroutine's stack back only while under a quarter of it is in use. This
// goroutine, which stays as long as the connection, then keeps the small
// stack that waiting for the next frame needs.
func (s *Server) serveConn(ctx context.Context, c *conn, helloBy time.Time) {
	defer c.stop()
	var p peer
	aside(func() { p = s.open(ctx, c, helloBy) })
	if p == nil {
		return
	}
	c.readLoop(ctx, p.handle)
	p.end(ctx)
}

// A peer is what a connection's first frame opened: it serves the frames
// that follow, and end closes it once they are over.
type peer interface {
	handle(context.Context, wire.Frame) bool
	end(context.Context)
}

// open reads the first frame and opens what it says; nil when there is
// nothing more to serve (c is then shut down).
func (s *Server) open(ctx context.Context, c *conn, helloBy time.Time) peer {
	challenge := newChallenge()
	if !c.send(wire.Challenge{Version: wire.Version, Nonce: challenge}) {
		return nil
	}
	c.ws.SetReadDeadline(helloBy)
	typ, data, err := readMessage(c.ws, s.cfg.MaxFrameSize)
	if err != nil {
		var ne interface{ Timeout() bool }
		if errors.As(err, &ne) && ne.Timeout() {
			c.shutdown(wire.Errorf(wire.CodeHandshakeTimeout, "no hello within %v", s.cfg.HandshakeTimeout))
		} else {
			c.readFailed(err)
		}
		return nil
	}
	f, e := decodeMessage(typ, data)
	if e != nil {
		c.shutdown(e)
		return nil
	}
	switch f := f.(type) {
	case wire.Hello:
		if sc := s.openSession(ctx, c, challenge, f); sc != nil {
			return sc
		}
	case wire.MemberHello:
		if mc := s.openMember(ctx, c, challenge, f); mc != nil {
			return mc
		}
	case wire.Join:
		s.serveJoin(ctx, c, challenge, f)
	default:
		c.shutdown(wire.Errorf(wire.CodeHelloRequired, "the first frame must be a hello, got %s", f.Type()))
	}
	return nil
}

// aside runs f on a goroutine of its own and waits for it.
func aside(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	<-done
}

// newChallenge returns a fresh random nonce for a connection's hello to
// sign.
func newChallenge() []byte {
	b := make([]byte, wire.ChallengeSize)
	rand.Read(b)
	return b
}
