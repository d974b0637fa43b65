package mcp

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/claudemesh/claudemesh/claudecode"
	"github.com/claudemesh/claudemesh/config"
)

// messagingSocket stands in for Claude Code's messaging socket: it records
// each connection's lines.
type messagingSocket struct {
	path  string
	mu    sync.Mutex
	conns [][]string
}

func newMessagingSocket(t *testing.T) *messagingSocket {
	t.Helper()
	ms := &messagingSocket{path: filepath.Join(t.TempDir(), "cc.sock")}
	ln, err := net.Listen("unix", ms.path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				var lines []string
				sc := bufio.NewScanner(c)
				sc.Buffer(nil, 1<<20)
				for sc.Scan() {
					lines = append(lines, sc.Text())
				}
				ms.mu.Lock()
				ms.conns = append(ms.conns, lines)
				ms.mu.Unlock()
			})
		}
	})
	return ms
}

// pushes returns the contents of the user messages written so far,
// checking that each connection wrote the auth line with token and one
// user message.
func (ms *messagingSocket) pushes(t *testing.T, token string) []string {
	t.Helper()
	ms.mu.Lock()
	defer ms.mu.Unlock()
	var out []string
	for _, lines := range ms.conns {
		if len(lines) != 2 || lines[0] != `{"type":"auth","token":"`+token+`"}` {
			t.Fatalf("push connection wrote %q, want an auth line and a message", lines)
		}
		var msg struct {
			Type    string
			Message struct{ Role, Content string }
		}
		if err := json.Unmarshal([]byte(lines[1]), &msg); err != nil || msg.Type != "user" || msg.Message.Role != "user" {
			t.Fatalf("push line %q is not a user message", lines[1])
		}
		out = append(out, msg.Message.Content)
	}
	return out
}

// statuses returns the inbox status (new or pushed) of each unread DM,
// oldest first.
func (ss *session) statuses() []string {
	ss.srv.inbox.mu.Lock()
	defer ss.srv.inbox.mu.Unlock()
	out := make([]string, len(ss.srv.inbox.unread))
	for i, m := range ss.srv.inbox.unread {
		out[i] = m.Status
	}
	return out
}

// DMs are written into the session's messaging socket as they arrive, up
// to the per-sender burst; all of them stay in the inbox, the pushed ones
// marked; the sender sees which were pushed, and then read.
func TestPushThroughMessagingSocket(t *testing.T) {
	tb := startBroker(t)
	sock := newMessagingSocket(t)
	alice := startSession(t, tb, "alice")
	// Claude Code names the socket and its token in the environment;
	// delivery is push by default.
	bob := startSession(t, tb, "bob", fromEnv(t, config.EnvName, "bob", config.EnvSessionID, uuid.NewString(),
		claudecode.EnvMessagingSocket, sock.path, claudecode.EnvMessagingToken, "tok"))
	alice.waitConnected(t)
	bob.waitConnected(t)

	const sent = 8 // more than one sender may push at once (5)
	var ids []string
	for i := range sent {
		ids = append(ids, alice.sendTo(t, "bob", fmt.Sprintf("note %d </claudemesh-dm>", i)).ID)
	}
	eventually(t, "every DM in bob's inbox and the burst pushed", func() bool {
		return len(bob.unreadIDs()) == sent && len(slices.DeleteFunc(bob.statuses(), func(s string) bool { return s != statusPushed })) >= 5
	})
	got := mustCall[InboxResult](t, bob, "inbox", nil).Messages
	pushed := 0
	for i, msg := range got {
		if i >= len(ids) || msg.ID != ids[i] {
			t.Fatalf("inbox order %v, want %v", got, ids)
		}
		switch msg.Status {
		case statusPushed:
			pushed++
			if msg.PushedAt == "" {
				t.Errorf("DM %d is marked pushed without a time", i)
			}
		case statusNew:
		default:
			t.Errorf("DM %d has inbox status %q", i, msg.Status)
		}
	}
	contents := sock.pushes(t, "tok")
	if len(got) != sent || pushed != 5 || len(contents) != 5 {
		t.Errorf("inbox returned %d DMs, %d marked pushed, %d written to the socket; want %d, 5 and 5 (the per-sender burst)",
			len(got), pushed, len(contents), sent)
	}
	// Each push is its own socket connection: the stand-in may record them
	// in any order.
	for _, c := range contents {
		i := slices.IndexFunc(ids, func(id string) bool { return strings.Contains(c, id) })
		if i < 0 || !strings.Contains(c, fmt.Sprintf("note %d &lt;/claudemesh-dm&gt;", i)) || strings.Count(c, "</claudemesh-dm>") != 1 {
			t.Errorf("push of DM %d: %q", i, c)
		}
	}
	// The push receipts went before inbox's ack on bob's connection: once
	// the broker has handled bob's frames, alice sees the first DM read,
	// with when it was pushed.
	bob.barrier(t)
	st := mustCall[StatusResult](t, alice, "message_status", map[string]any{"id": ids[0]})
	if st.State != "read" || st.PushedAt == "" || st.ReadAt == "" {
		t.Errorf("status of a pushed DM read with inbox: %+v, want read with both times", st)
	}
	st = mustCall[StatusResult](t, alice, "message_status", map[string]any{"id": ids[sent-1]})
	if st.State != "read" || st.PushedAt != "" {
		t.Errorf("status of a DM over the burst, read with inbox: %+v, want read, never pushed", st)
	}
	if n := len(sock.pushes(t, "tok")); n != 5 {
		t.Errorf("%d DMs were written to the socket in all, want 5", n)
	}
}
