package claudecode

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Process is one claude process, told apart from a later process that
// reuses its pid by its start time. A hook and the MCP servers of a
// session run under the same claude process, so files named after it
// (FileName) pass word between them.
type Process struct {
	PID   int
	Start uint64 // start time in clock ticks after boot; 0 where unknown
}

// FindProcess returns the claude process that runs the caller: its
// parent, or, past the shells in between (a hook runs as `sh -c COMMAND`,
// and a server may be wrapped in a script), the process that started them.
// Without /proc it trusts the parent, with an unknown start time.
func FindProcess() (Process, error) { return claudeProcess(os.Getppid()) }

// FileName names the file of kind that belongs to p:
// "<kind>-<pid>-<start>.json".
func (p Process) FileName(kind string) string {
	return fmt.Sprintf("%s-%d-%d.json", kind, p.PID, p.Start)
}

// RemoveGone deletes the files in dir that FileName named after a claude
// process for one of kinds, where that process has ended: no process has
// its pid, or the one that has it started at another time. A file of an
// unknown start time is kept, as is every other file.
func RemoveGone(dir string, kinds ...string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		var name string
		var ok bool
		for _, kind := range kinds {
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

// shells are what may stand between Claude Code and a command it runs.
var shells = map[string]bool{"sh": true, "bash": true, "dash": true, "zsh": true, "ksh": true, "fish": true, "busybox": true}

// claudeProcess walks up from pid past shells to the process that started
// them: the claude process for both a hook and an MCP server.
func claudeProcess(pid int) (Process, error) {
	for range 8 {
		st, err := readStat(pid)
		if errors.Is(err, fs.ErrNotExist) && pid == os.Getppid() {
			// No /proc: trust the parent.
			return Process{PID: pid}, nil
		}
		if err != nil {
			return Process{}, err
		}
		if !shells[st.comm] || st.ppid <= 1 {
			return Process{PID: pid, Start: st.start}, nil
		}
		pid = st.ppid
	}
	return Process{}, errors.New("too many shells above this process")
}

type procStat struct {
	comm  string
	ppid  int
	start uint64
}

// readStat reads /proc/PID/stat.
func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procStat{}, err
	}
	st, ok := parseStat(b)
	if !ok {
		return procStat{}, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	return st, nil
}

// parseStat parses the content of /proc/PID/stat: "pid (comm) state ppid
// ... starttime" with starttime the 22nd field. comm may hold spaces and
// parentheses, so the fields after it are found from its last ')'.
func parseStat(b []byte) (procStat, bool) {
	open, close := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || close < open {
		return procStat{}, false
	}
	fields := strings.Fields(string(b[close+1:]))
	if len(fields) < 20 {
		return procStat{}, false
	}
	ppid, err1 := strconv.Atoi(fields[1])
	start, err2 := strconv.ParseUint(fields[19], 10, 64)
	if err1 != nil || err2 != nil {
		return procStat{}, false
	}
	return procStat{comm: string(b[open+1 : close]), ppid: ppid, start: start}, true
}
