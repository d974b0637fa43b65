package claudecode

import (
	"encoding/json"
	"fmt"

	"github.com/claudemesh/claudemesh/identity"
)

// SessionStart is what Claude Code tells a SessionStart hook on stdin. The
// hook runs as a child of the claude process (see FindProcess) on startup,
// resume, /clear and compaction, and its session_id is the session the
// process is really in, also where the MCP server's EnvSessionID is not.
type SessionStart struct {
	SessionID      string `json:"session_id"`
	Source         string `json:"source,omitempty"` // startup, resume, clear, compact
	CWD            string `json:"cwd,omitempty"`
	TranscriptPath string `json:"transcript_path,omitempty"`
}

// MaxHookInput bounds what a hook reads from Claude Code on stdin.
const MaxHookInput = 1 << 20

// ParseSessionStart reads the JSON Claude Code gives a SessionStart hook on
// stdin: at most MaxHookInput bytes, with a valid session UUID (returned
// in its canonical form) and a source that is one lowercase word.
func ParseSessionStart(data []byte) (SessionStart, error) {
	if len(data) > MaxHookInput {
		return SessionStart{}, fmt.Errorf("hook input is %d bytes; the limit is %d", len(data), MaxHookInput)
	}
	var ev SessionStart
	if err := json.Unmarshal(data, &ev); err != nil {
		return SessionStart{}, fmt.Errorf("hook input is not the JSON Claude Code sends: %w", err)
	}
	id, err := identity.ParseSessionID(ev.SessionID)
	if err != nil {
		return SessionStart{}, fmt.Errorf("hook input session_id: %w", err)
	}
	ev.SessionID = id
	if ev.Source != "" && !validWord(ev.Source) {
		return SessionStart{}, fmt.Errorf("hook input source %q is not a word", ev.Source)
	}
	return ev, nil
}

func validWord(s string) bool {
	if len(s) > 32 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}
