package broker

import (
	"bytes"
	"net"
	"sync"
	"testing"
)

// writesConn records each write it is given.
type writesConn struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
}

func (c *writesConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes = append(c.writes, bytes.Clone(p))
	return len(p), nil
}

// Frames written while held go out in one write, in order, with a write
// from another goroutine meanwhile; outside a hold each write goes as it
// comes; a connection that holds nothing keeps no buffer.
func TestBatchConnHoldsFramesTogether(t *testing.T) {
	under := &writesConn{}
	bc := &batchConn{Conn: under}
	if _, err := bc.Write([]byte("alone")); err != nil {
		t.Fatal(err)
	}
	bc.hold()
	var wg sync.WaitGroup
	for _, f := range []string{"one,", "two,", "three"} {
		if _, err := bc.Write([]byte(f)); err != nil {
			t.Fatal(err)
		}
		if f == "one," {
			wg.Go(func() { bc.Write([]byte("pong,")) }) // as the read loop answers a ping
			wg.Wait()
		}
	}
	if len(under.writes) != 1 {
		t.Fatalf("%d writes reached the socket while held, want only the one before", len(under.writes))
	}
	if err := bc.release(); err != nil {
		t.Fatal(err)
	}
	if bc.held != nil {
		t.Error("a released connection still keeps a buffer")
	}
	if _, err := bc.Write([]byte("after")); err != nil {
		t.Fatal(err)
	}
	want := []string{"alone", "one,pong,two,three", "after"}
	if len(under.writes) != len(want) {
		t.Fatalf("writes %q, want %q", under.writes, want)
	}
	for i, w := range want {
		if string(under.writes[i]) != w {
			t.Errorf("write %d = %q, want %q", i, under.writes[i], w)
		}
	}
	if err := bc.release(); err != nil || len(under.writes) != len(want) {
		t.Errorf("releasing with nothing held wrote (%v, %d writes)", err, len(under.writes))
	}
}
