package claudecode

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// listenLines listens on a Unix socket in a temporary directory and sends
// the lines of the first connection it accepts once that connection
// closes (nil if accepting failed).
func listenLines(t *testing.T) (path string, lines <-chan []string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "s")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan []string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			ch <- nil
			return
		}
		defer c.Close()
		var got []string
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			got = append(got, sc.Text())
		}
		ch <- got
	}()
	return path, ch
}

// The socket protocol: an auth line when there is a token, then one user
// message line whose content is the text.
func TestWriteMessagingSocket(t *testing.T) {
	path, lines := listenLines(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	text := "<claudemesh-dm>x &amp; y</claudemesh-dm>"
	if err := WriteMessagingSocket(ctx, path, "tok", text); err != nil {
		t.Fatal(err)
	}
	got := <-lines
	if len(got) != 2 {
		t.Fatalf("socket got %d lines %q, want 2", len(got), got)
	}
	var auth struct{ Type, Token string }
	var msg struct {
		Type    string
		Message struct{ Role, Content string }
	}
	if json.Unmarshal([]byte(got[0]), &auth) != nil || auth.Type != "auth" || auth.Token != "tok" {
		t.Errorf("first line %q, want the auth line", got[0])
	}
	if json.Unmarshal([]byte(got[1]), &msg) != nil || msg.Type != "user" || msg.Message.Role != "user" || msg.Message.Content != text {
		t.Errorf("second line %q, want the user message", got[1])
	}
}

// Without a token there is no auth line; an empty message is refused
// before anything is written, as Claude Code wants a non-empty string.
func TestWriteMessagingSocketWithoutToken(t *testing.T) {
	path, lines := listenLines(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := WriteMessagingSocket(ctx, path, "", ""); err == nil {
		t.Error("an empty message was written")
	}
	if err := WriteMessagingSocket(ctx, path, "", "hello"); err != nil {
		t.Fatal(err)
	}
	got := <-lines
	if len(got) != 1 {
		t.Fatalf("socket got %d lines %q, want only the user message", len(got), got)
	}
	var msg struct {
		Type    string
		Message struct{ Role, Content string }
	}
	if json.Unmarshal([]byte(got[0]), &msg) != nil || msg.Type != "user" || msg.Message.Content != "hello" {
		t.Errorf("line %q, want the user message", got[0])
	}
	if err := WriteMessagingSocket(ctx, filepath.Join(t.TempDir(), "none"), "", "hello"); err == nil {
		t.Error("writing to a socket that does not exist succeeded")
	}
}
