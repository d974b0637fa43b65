package main

import (
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// --handshake-timeout holds a connection from its accept: one that never
// finishes its HTTP request is closed by then, not after a fixed time of
// the HTTP server's own.
func TestBrokerHandshakeTimeout(t *testing.T) {
	t.Parallel()
	const timeout = time.Second // the smallest the flag takes
	root := t.TempDir()
	b := startBrokerWith(t, filepath.Join(root, "home"), filepath.Join(root, "data"),
		"--listen", "127.0.0.1:0", "--handshake-timeout", timeout.String())
	addr := strings.TrimSuffix(strings.TrimPrefix(b.url, "ws://"), "/v1/ws")

	start := time.Now()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Half a request, then nothing.
	if _, err := io.WriteString(c, "GET /v1/ws HTTP/1.1\r\nHost: "+addr+"\r\n"); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(start.Add(timeout + 5*time.Second))
	_, err = io.ReadAll(c)
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		t.Fatalf("connection still open %v after it was opened, want it closed after %v", time.Since(start), timeout)
	}
	if d := time.Since(start); d < timeout {
		t.Errorf("closed after %v, before the handshake timeout %v", d, timeout)
	}

	// The broker still serves.
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("healthz after the slow client: %s", resp.Status)
	}
}
