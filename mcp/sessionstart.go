package mcp

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/claudemesh/claudemesh/claudecode"
	"github.com/claudemesh/claudemesh/internal/atomicfile"
)

// The SessionStart channel tells the MCP server which session its Claude
// Code process is really in. Claude Code gives its MCP servers the session
// id it started with, which is a throwaway under --continue and stale after
// /clear; its SessionStart hook gets the true one. `claudemesh hook
// session-start` runs as a child of the same claude process as the server
// and writes the hook's event to a file named after that process
// (claudecode.FindProcess, Process.FileName):
//
//	$CLAUDEMESH_HOME/run/session-start-<claude pid>-<claude start time>.json
//
// (directory 0700, file 0600, replaced atomically with atomicfile.Write). The server polls that
// file. A file written before the server started is read at start, so the
// order in which Claude Code starts the hook and the server does not
// matter. The start time in the name keeps a reused pid from reading a
// dead process's file.

// published is the content of the SessionStart channel file: the hook's
// event and when the hook wrote it.
type published struct {
	claudecode.SessionStart
	At time.Time `json:"at"`
}

// PublishSessionStart writes ev for the MCP server that runs under the same
// Claude Code process as the caller (a SessionStart hook). It returns the
// file written.
func PublishSessionStart(home string, ev claudecode.SessionStart) (string, error) {
	proc, err := claudecode.FindProcess()
	if err != nil {
		return "", fmt.Errorf("find the Claude Code process: %w", err)
	}
	dir := filepath.Join(home, runDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("session start channel: %w", err)
	}
	claudecode.RemoveGone(dir, sessionStartKind, unreadKind, activityKind)
	b, err := json.Marshal(published{SessionStart: ev, At: time.Now().UTC()})
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, proc.FileName(sessionStartKind))
	if err := atomicfile.Write(path, b, 0o600); err != nil {
		return "", fmt.Errorf("session start channel: %w", err)
	}
	return path, nil
}

// SessionStartFile returns the SessionStart channel file of the Claude
// Code process that runs the caller (the MCP server), or "" when there is
// none to find.
func SessionStartFile(home string) string { return runFile(home, sessionStartKind) }

// runFile returns the file of kind under $CLAUDEMESH_HOME/run for the
// Claude Code process that runs the caller, or "" when there is none.
func runFile(home, kind string) string {
	proc, err := claudecode.FindProcess()
	if err != nil {
		return ""
	}
	return filepath.Join(home, runDir, proc.FileName(kind))
}

// The files under $CLAUDEMESH_HOME/run, one of each kind per Claude Code
// process.
const (
	runDir           = "run"
	sessionStartKind = "session-start" // hook → server: the true session
	unreadKind       = "unread"        // server → prompt hook: the unread DMs
	activityKind     = "activity"      // prompt and stop hooks → server: working or idle
)

// readSessionStart reads a channel file; ok is false when there is none.
func readSessionStart(path string) (ev claudecode.SessionStart, ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return claudecode.SessionStart{}, false, nil
	}
	if err != nil {
		return claudecode.SessionStart{}, false, err
	}
	ev, err = claudecode.ParseSessionStart(b)
	return ev, err == nil, err
}
