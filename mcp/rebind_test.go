package mcp

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/claudemesh/claudemesh/claudecode"
	"github.com/claudemesh/claudemesh/config"
)

// publishSessionStart does what `claudemesh hook session-start` does with
// the hook's JSON: the test process stands in for both the hook and the
// server, which are children of one Claude Code process.
func publishSessionStart(t *testing.T, home, hookJSON string) {
	t.Helper()
	ev, err := claudecode.ParseSessionStart([]byte(hookJSON))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := PublishSessionStart(home, ev); err != nil {
		t.Fatal(err)
	}
}

// Under --continue Claude Code gives the MCP server a throwaway session id
// and the SessionStart hook the true one. The server switches to the true
// identity, receives what was queued for it, and the throwaway identity
// leaves no trace. After /clear it switches again, and the session it
// leaves (a real conversation) stays listed as away.
func TestRebindFollowsSessionStart(t *testing.T) {
	tb := startBroker(t)
	home := t.TempDir()
	inHome := func(c *Config) { c.Home = home }
	alice := startSession(t, tb, "alice")
	alice.waitConnected(t)
	transcripts := t.TempDir()
	transcript := func(id string) string {
		p := filepath.Join(transcripts, id+".jsonl")
		if err := os.WriteFile(p, []byte("{}\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	// The real session ran before and is away; alice writes to it.
	realID := uuid.NewString()
	before := startSession(t, tb, "bob", inHome, withID(realID))
	before.waitConnected(t)
	realKey := before.keyID()
	before.stop()
	alice.waitPeer(t, realKey, "away")
	queued := alice.sendTo(t, realKey, "queued for the real session")
	if queued.Status != "queued" {
		t.Fatalf("send_dm to the away real session = %+v, want queued", queued)
	}

	// --continue: the server starts with a throwaway id from Claude Code.
	throwaway := uuid.NewString()
	bob := startSession(t, tb, "bob", inHome, fromEnv(t, config.EnvName, "bob", claudecode.EnvSessionID, throwaway))
	if bob.srv.cfg.SessionStartFile == "" {
		t.Fatal("a server with Claude Code's session id does not follow the SessionStart hook")
	}
	bob.waitConnected(t)
	throwKey := bob.keyID()
	alice.waitPeer(t, throwKey, "online")

	publishSessionStart(t, home, `{"session_id":"`+realID+`","source":"resume","transcript_path":"`+transcript(realID)+`","cwd":"/projects/bob","hook_event_name":"SessionStart"}`)
	// A tool called right after the hook already speaks as the session.
	if w := bob.whoami(t); w.SessionID != realID || w.KeyID != realKey || w.IdentityMode != "stable" || w.SessionSource != "SessionStart hook (resume)" {
		t.Errorf("bob after the hook: %+v, want session %s, key %s, from the SessionStart hook", w, realID, realKey)
	}
	bob.waitConnected(t)
	if got := bob.waitInbox(t, 1); len(got) != 1 || got[0].ID != queued.ID || got[0].Text != "queued for the real session" {
		t.Errorf("bob's inbox after the switch: %+v, want the queued DM", got)
	}
	alice.waitPeer(t, realKey, "online")
	eventually(t, "the throwaway identity vanishes", func() bool {
		for _, p := range alice.peers(t) {
			if p.KeyID == throwKey {
				return false
			}
		}
		return true
	})
	if _, err := os.Stat(filepath.Join(home, "sessions", config.DefaultMesh, realID+".json")); err != nil {
		t.Errorf("the real session's key is not in the keystore: %v", err)
	}

	// /clear: a new session in the same process; the old one was a real
	// conversation, so it stays listed, away.
	cleared := uuid.NewString()
	publishSessionStart(t, home, `{"session_id":"`+cleared+`","source":"clear","transcript_path":"`+transcript(cleared)+`","hook_event_name":"SessionStart"}`)
	w := bob.whoami(t)
	if w.SessionID != cleared || w.KeyID == realKey || w.SessionSource != "SessionStart hook (clear)" {
		t.Errorf("bob after /clear: %+v, want session %s under a new key", w, cleared)
	}
	bob.waitConnected(t)
	alice.waitPeer(t, w.KeyID, "online")
	alice.waitPeer(t, realKey, "away")
}

// An explicit CLAUDEMESH_SESSION_ID pins the identity: the hook does not
// move it. The same hook moves a server that has only Claude Code's id.
func TestExplicitSessionIDIgnoresHook(t *testing.T) {
	tb := startBroker(t)
	pinnedHome, followingHome := t.TempDir(), t.TempDir()
	pinned := uuid.NewString()
	bob := startSession(t, tb, "bob", func(c *Config) { c.Home = pinnedHome },
		fromEnv(t, config.EnvName, "bob", config.EnvSessionID, pinned, claudecode.EnvSessionID, uuid.NewString()))
	carol := startSession(t, tb, "carol", func(c *Config) { c.Home = followingHome },
		fromEnv(t, config.EnvName, "carol", claudecode.EnvSessionID, uuid.NewString()))
	bob.waitConnected(t)
	carol.waitConnected(t)
	if f := bob.srv.cfg.SessionStartFile; f != "" {
		t.Errorf("the pinned server watches %s", f)
	}

	for _, s := range []struct {
		home string
		ss   *session
	}{{pinnedHome, bob}, {followingHome, carol}} {
		publishSessionStart(t, s.home, `{"session_id":"`+uuid.NewString()+`","source":"resume"}`)
	}
	// Tools look at the SessionStart channel before they answer: this
	// whoami has seen the event if the server follows it at all.
	if w := bob.whoami(t); w.SessionID != pinned || w.SessionSource != config.EnvSessionID {
		t.Errorf("pinned session moved to %s (%s)", w.SessionID, w.SessionSource)
	}
	if w := carol.whoami(t); !strings.HasPrefix(w.SessionSource, "SessionStart hook") {
		t.Errorf("a server with Claude Code's id did not follow the hook: %+v", w)
	}
}
