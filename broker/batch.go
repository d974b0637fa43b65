package broker

import (
	"bufio"
	"net"
	"net/http"
	"sync"
)

// heldMax bounds what the writer holds back before it writes.
const heldMax = 64 << 10

// A batchConn is the connection under a session's WebSocket. Its writer
// holds back the frames it has queued together and writes them at once:
// one system call and a few large TCP segments instead of a small one per
// frame. Many small segments make a busy receiver's socket account for far
// more memory than their bytes; past its buffer the kernel prunes its
// queue and drops segments, which loopback retransmits only after 200 ms.
type batchConn struct {
	net.Conn
	mu      sync.Mutex // gorilla/websocket writes a pong from the read loop
	holding bool
	held    *[]byte // from heldBufs while holding
}

// heldBufs are the buffers of the connections holding frames: an idle
// connection keeps none.
var heldBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.holding {
		return b.Conn.Write(p)
	}
	*b.held = append(*b.held, p...)
	return len(p), nil
}

// hold starts holding writes back.
func (b *batchConn) hold() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.holding = true
	if b.held == nil {
		b.held = heldBufs.Get().(*[]byte)
	}
}

// full reports whether what is held back should be written now.
func (b *batchConn) full() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(*b.held) >= heldMax
}

// release writes what was held back and stops holding.
func (b *batchConn) release() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.holding = false
	if b.held == nil {
		return nil
	}
	buf := b.held
	b.held = nil
	defer func() {
		if cap(*buf) <= heldMax {
			*buf = (*buf)[:0]
			heldBufs.Put(buf)
		}
	}()
	if len(*buf) == 0 {
		return nil
	}
	_, err := b.Conn.Write(*buf)
	return err
}

// batchingWriter hands gorilla/websocket's upgrade the hijacked connection
// as a batchConn.
type batchingWriter struct{ http.ResponseWriter }

func (w batchingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	return &batchConn{Conn: c}, rw, nil
}
