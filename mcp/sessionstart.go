package mcp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/claudemesh/claudemesh/identity"
	"github.com/claudemesh/claudemesh/internal/atomicfile"
)

// The SessionStart channel tells the MCP server which session its Claude
// Code process is really in. Claude Code gives its MCP servers the session
// id it started with, which is a throwaway under --continue and stale after
// /clear; its SessionStart hook gets the true one. `claudemesh hook
// session-start` runs as a child of the same claude process as the server
// and writes the hook's event to a file named after that process:
//
//	$CLAUDEMESH_HOME/run/session-start-<claude pid>-<claude start time>.json
//
// (directory 0700, file 0600, replaced atomically with atomicfile.Write). The server polls that
// file. A file written before the server started is read at start, so the
// order in which Claude Code starts the hook and the server does not
// matter. The start time in the name keeps a reused pid from reading a
// dead process's file.

// SessionStart is what the SessionStart hook learns about the session.
type SessionStart struct {
	SessionID      string    `json:"session_id"`
	Source         string    `json:"source,omitempty"` // startup, resume, clear, compact
	CWD            string    `json:"cwd,omitempty"`
	TranscriptPath string    `json:"transcript_path,omitempty"`
	At             time.Time `json:"at"`
}

// maxHookInput bounds what the hook reads from Claude Code.
const maxHookInput = 1 << 20

// ParseSessionStart reads the JSON Claude Code gives a SessionStart hook on
// stdin.
func ParseSessionStart(data []byte) (SessionStart, error) {
	if len(data) > maxHookInput {
		return SessionStart{}, fmt.Errorf("hook input is %d bytes; the limit is %d", len(data), maxHookInput)
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

// PublishSessionStart writes ev for the MCP server that runs under the same
// Claude Code process as the caller (a SessionStart hook). It returns the
// file written.
func PublishSessionStart(home string, ev SessionStart) (string, error) {
	proc, err := claudeProcess(os.Getppid())
	if err != nil {
		return "", fmt.Errorf("find the Claude Code process: %w", err)
	}
	dir := filepath.Join(home, runDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("session start channel: %w", err)
	}
	removeStale(dir)
	if ev.At.IsZero() {
		ev.At = time.Now().UTC()
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, proc.file(sessionStartKind))
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
	proc, err := claudeProcess(os.Getppid())
	if err != nil {
		return ""
	}
	return filepath.Join(home, runDir, proc.file(kind))
}

// The files under $CLAUDEMESH_HOME/run, one of each kind per Claude Code
// process.
const (
	runDir           = "run"
	sessionStartKind = "session-start" // hook → server: the true session
	unreadKind       = "unread"        // server → prompt hook: the unread DMs
)

// process names one process across pid reuse.
type process struct {
	pid   int
	start uint64 // start time in clock ticks after boot; 0 where unknown
}

func (p process) file(kind string) string {
	return fmt.Sprintf("%s-%d-%d.json", kind, p.pid, p.start)
}

// shells are what may stand between Claude Code and a command it runs: a
// hook runs as `sh -c COMMAND`, and a server may be wrapped in a script.
var shells = map[string]bool{"sh": true, "bash": true, "dash": true, "zsh": true, "ksh": true, "fish": true, "busybox": true}

// claudeProcess walks up from pid past shells to the process that started
// them: the claude process for both a hook and an MCP server.
func claudeProcess(pid int) (process, error) {
	for range 8 {
		st, err := readStat(pid)
		if errors.Is(err, fs.ErrNotExist) && pid == os.Getppid() {
			// No /proc: trust the parent.
			return process{pid: pid}, nil
		}
		if err != nil {
			return process{}, err
		}
		if !shells[st.comm] || st.ppid <= 1 {
			return process{pid: pid, start: st.start}, nil
		}
		pid = st.ppid
	}
	return process{}, errors.New("too many shells above this process")
}

type procStat struct {
	comm  string
	ppid  int
	start uint64
}

// readStat parses /proc/PID/stat: "pid (comm) state ppid ... starttime"
// with starttime the 22nd field. comm may hold spaces and parentheses, so
// the fields after it are found from its last ')'.
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, err
	}
	open, close := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || close < open {
		return procStat{}, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	fields := strings.Fields(string(b[close+1:]))
	if len(fields) < 20 {
		return procStat{}, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	ppid, err1 := strconv.Atoi(fields[1])
	start, err2 := strconv.ParseUint(fields[19], 10, 64)
	if err1 != nil || err2 != nil {
		return procStat{}, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	return procStat{comm: string(b[open+1 : close]), ppid: ppid, start: start}, nil
}

// removeStale deletes the run files of processes that are gone.
func removeStale(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		var name string
		var ok bool
		for _, kind := range []string{sessionStartKind, unreadKind} {
			if name, ok = strings.CutPrefix(e.Name(), kind+"-"); ok {
				break
			}
		}
		if !ok {
			continue
		}
		pidStr, startStr, _ := strings.Cut(strings.TrimSuffix(name, ".json"), "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || startStr == "0" {
			continue
		}
		st, err := readStat(pid)
		if errors.Is(err, fs.ErrNotExist) || (err == nil && strconv.FormatUint(st.start, 10) != startStr) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// readSessionStart reads a channel file; ok is false when there is none.
func readSessionStart(path string) (ev SessionStart, ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return SessionStart{}, false, nil
	}
	if err != nil {
		return SessionStart{}, false, err
	}
	ev, err = ParseSessionStart(b)
	return ev, err == nil, err
}

// transcriptExists reports whether Claude Code has a transcript of session
// id next to the one the hook named: whether id was ever a real
// conversation rather than a throwaway id.
func transcriptExists(hookTranscript, id string) bool {
	if hookTranscript == "" || id == "" {
		return true // cannot tell: assume it was real
	}
	_, err := os.Stat(filepath.Join(filepath.Dir(hookTranscript), id+".jsonl"))
	return err == nil
}
