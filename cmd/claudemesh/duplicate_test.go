package main

import (
	"context"
	"strings"
	"testing"

	"github.com/google/uuid"
	mcpgo "github.com/mark3labs/mcp-go/mcp"
)

// Registered both by `claudemesh install` and by the plugin, claudemesh is
// started twice by one Claude Code process for one session. The second
// server must not present the session a second time: it offers no tools,
// says why, and never reaches the broker.
func TestSecondMCPServerOfOneClaudeProcessStaysIdle(t *testing.T) {
	t.Parallel()
	m := newMesh(t)
	id := uuid.NewString()
	// Both are children of this test process, as both servers of a session
	// are children of its claude process.
	first := startSession(t, sessionConfig{home: m.home, sessionID: id, name: "first", env: []string{"CLAUDECODE=1"}})
	first.waitConnected(t)
	second := startSession(t, sessionConfig{home: m.home, sessionID: id, name: "second", env: []string{"CLAUDECODE=1"}})

	ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
	defer cancel()
	tools, err := second.c.ListTools(ctx, mcpgo.ListToolsRequest{})
	if err != nil {
		t.Fatalf("second server: tools/list: %v", err)
	}
	if len(tools.Tools) != 0 {
		t.Errorf("second server offers %d tools, want none", len(tools.Tools))
	}
	testLogContains(t, second.log.String(), "registered twice")
	if strings.Contains(second.log.String(), "connected to broker") {
		t.Errorf("the idle server connected to the broker:\n%s", second.log)
	}

	// The first server keeps the session: still connected, never replaced.
	if w := first.whoami(t); w.Connection != "connected" {
		t.Errorf("first server is %q after the second started, want connected", w.Connection)
	}
	observer := m.join(t, "observer", uuid.NewString())
	observer.waitConnected(t)
	for _, p := range observer.peers(t).Peers {
		if p.SessionID == id && p.Name != first.whoami(t).Name {
			t.Errorf("list_peers shows the session as %q, not the first server's name", p.Name)
		}
	}
	first.stop(t)
	second.stop(t)

	// Once the active server has exited, the next one started is active.
	third := startSession(t, sessionConfig{home: m.home, sessionID: id, name: "third", env: []string{"CLAUDECODE=1"}})
	third.waitConnected(t)
}

func testLogContains(t *testing.T, log, want string) {
	t.Helper()
	if !strings.Contains(log, want) {
		t.Errorf("log does not say %q:\n%s", want, log)
	}
}
