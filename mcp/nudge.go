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
	"time"

	"github.com/claudemesh/claudemesh/history"
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
	// Asks are the asks with an answer missing: asked of this session
	// and not answered, or asked by it and not answered by everyone.
	Asks []askNote `json:"asks,omitempty"`
}

// askNote is one ask with an answer missing, as the prompt hook sees it;
// the hook decides by its deadline whether it is open or expired.
type askNote struct {
	ID       string    `json:"id"`
	Dir      string    `json:"dir"`  // history.In or history.Out
	Peer     string    `json:"peer"` // the asker; for Out, who has not answered
	Deadline time.Time `json:"deadline"`
	// Seen: the asks tool listed it after its deadline passed.
	Seen bool `json:"seen,omitempty"`
}

// maxAskNotes bounds how many asks the prompt hook mentions.
const maxAskNotes = 5

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
	return nudgeText(st, time.Now()), nil
}

// nudgeText is what the prompt hook says of st at now: the unread DMs,
// then the asks.
func nudgeText(st unreadState, now time.Time) string {
	if st.Delivery == DeliveryOff {
		return ""
	}
	var lines []string
	if st.New > 0 {
		lines = append(lines, nudgeLine(st.New, st.From))
	}
	lines = append(lines, askLines(st.Asks, now)...)
	return strings.Join(lines, "\n")
}

// askLines mentions the questions asked of this session that wait for an
// answer, and the asks that expired with an answer missing (until the
// asks tool has listed them).
func askLines(notes []askNote, now time.Time) []string {
	var lines []string
	for _, n := range notes {
		if len(lines) == maxAskNotes {
			lines = append(lines, "claudemesh: more asks are open: call the asks tool.")
			break
		}
		open := now.Before(n.Deadline)
		at := n.Deadline.UTC().Format(time.RFC3339)
		switch {
		case n.Dir == history.In && open:
			lines = append(lines, fmt.Sprintf("claudemesh: %s asked you a question (ask %s) that waits for your answer until %s — answer it with the reply tool.", strconv.Quote(n.Peer), n.ID, at))
		case n.Seen:
		case n.Dir == history.In:
			lines = append(lines, fmt.Sprintf("claudemesh: the question %s asked you (ask %s) expired at %s unanswered.", strconv.Quote(n.Peer), n.ID, at))
		case !open:
			lines = append(lines, fmt.Sprintf("claudemesh: your ask %s expired at %s without an answer from %s — the asks tool lists it.", n.ID, at, n.Peer))
		}
	}
	return lines
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
