package mcp

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/claudemesh/claudemesh/internal/atomicfile"
)

// The server keeps, for the prompt hook, a small file that says how many
// DMs wait unshown: $CLAUDEMESH_HOME/run/unread-<claude pid>-<start>.json,
// replaced atomically whenever that changes. `claudemesh hook prompt`
// (UserPromptSubmit) runs under the same claude process and turns it into
// one line of context.

// unreadState is the unread file's content.
type unreadState struct {
	New      int      `json:"new"`  // unread DMs not shown in the session yet
	From     []string `json:"from"` // their senders' names
	Delivery string   `json:"delivery"`
}

// maxNudgeNames bounds how many senders a nudge names.
const maxNudgeNames = 5

// UnreadFile returns the unread file of the Claude Code process that runs
// the caller, or "" when there is none to find.
func UnreadFile(home string) string { return runFile(home, unreadKind) }

// writeUnread replaces the unread file.
func writeUnread(path string, st unreadState) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return atomicfile.Write(path, b, 0o600)
}

// Nudge returns the line the prompt hook adds to Claude's context for the
// session running the caller: how many DMs wait and from whom, or "" when
// none waits (or the session's delivery mode is off).
func Nudge(home string) (string, error) {
	path := UnreadFile(home)
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	var st unreadState
	if err := json.Unmarshal(b, &st); err != nil {
		return "", fmt.Errorf("unread file %s: %w", path, err)
	}
	if st.New <= 0 || st.Delivery == DeliveryOff {
		return "", nil
	}
	return nudgeLine(st.New, st.From), nil
}

// nudgeLine says that n DMs from the senders named wait.
func nudgeLine(n int, from []string) string {
	// Names are the peers' own words: quoted, so they read as names.
	var names []string
	for i, f := range from {
		if i == maxNudgeNames {
			names = append(names, fmt.Sprintf("%d others", len(from)-maxNudgeNames))
			break
		}
		names = append(names, strconv.Quote(f))
	}
	who := strings.Join(names, ", ")
	if n == 1 {
		return fmt.Sprintf("claudemesh: 1 unread DM from %s — call the inbox tool to read it.", who)
	}
	return fmt.Sprintf("claudemesh: %d unread DMs from %s — call the inbox tool to read them.", n, who)
}
