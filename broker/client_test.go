package broker_test

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh/broker"
)

// silentURL returns a loopback WebSocket URL whose listener accepts
// connections and never answers: a connection attempt to it stays in
// flight until the client's dial timeout. accepted receives a value for
// each connection (buffered; sends never block).
func silentURL(t *testing.T) (url string, accepted <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	acc := make(chan struct{}, 16)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			select {
			case acc <- struct{}{}:
			default:
			}
		}
	})
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return "ws://" + ln.Addr().String() + broker.Path, acc
}

// Close returns at once while an attempt hangs in the WebSocket handshake,
// not after the dial timeout.
func TestCloseDoesNotWaitForAHangingDial(t *testing.T) {
	url, accepted := silentURL(t)
	c, err := broker.Dial(broker.ClientConfig{
		Endpoint:    func() (broker.Endpoint, error) { return broker.Endpoint{URL: url}, nil },
		Key:         newKey(t, testMesh),
		DialTimeout: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-accepted:
	case <-waitCtx(t).Done():
		t.Fatal("the client never connected to the silent listener")
	}
	closeWithin(t, "a client dialing a silent broker", c)
}
