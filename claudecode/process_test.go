package claudecode

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

func TestParseStat(t *testing.T) {
	// The fields after comm, as in /proc/PID/stat: state, ppid, ... with
	// the start time the 20th of them.
	rest := " S 42 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10"
	for _, tc := range []struct {
		name, stat string
		want       procStat
		ok         bool
	}{
		{"plain", "123 (claude)" + rest, procStat{comm: "claude", ppid: 42, start: 987654}, true},
		{"spaces and parentheses in comm", "123 (a b) (c))" + rest, procStat{comm: "a b) (c)", ppid: 42, start: 987654}, true},
		{"no comm", "123 claude" + rest, procStat{}, false},
		{"too few fields", "123 (claude) S 42 42", procStat{}, false},
		{"ppid not a number", "123 (claude) S x 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10", procStat{}, false},
		{"empty", "", procStat{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseStat([]byte(tc.stat))
			if ok != tc.ok || got != tc.want {
				t.Errorf("parseStat = %+v, %v; want %+v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// self is this test process as /proc describes it.
func self(t *testing.T) Process {
	t.Helper()
	st, err := readStat(os.Getpid())
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	return Process{PID: os.Getpid(), Start: st.start}
}

// A command that Claude Code runs through a shell finds the process that
// started the shell, the same one an MCP server started directly finds.
func TestClaudeProcessPassesShells(t *testing.T) {
	me := self(t)
	if got, err := claudeProcess(me.PID); err != nil || got != me {
		t.Errorf("claudeProcess(this process) = %+v, %v; want %+v", got, err, me)
	}
	sh := exec.Command("/bin/sh", "-c", "read x")
	stdin, err := sh.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sh.Start(); err != nil {
		t.Skipf("no shell: %v", err)
	}
	t.Cleanup(func() {
		stdin.Close()
		sh.Wait()
	})
	if got, err := claudeProcess(sh.Process.Pid); err != nil || got != me {
		t.Errorf("claudeProcess(a shell started by this process) = %+v, %v; want this process, %+v", got, err, me)
	}
}

// ended returns the pid of a process that has exited.
func ended(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", "exit 0")
	if err := cmd.Run(); err != nil {
		t.Skipf("no shell: %v", err)
	}
	return cmd.Process.Pid
}

func TestRemoveGone(t *testing.T) {
	me := self(t)
	gone := ended(t)
	dir := t.TempDir()
	keep := []string{
		me.FileName("unread"),                           // this process: alive
		Process{PID: gone, Start: 0}.FileName("unread"), // start unknown: cannot tell
		Process{PID: gone, Start: 7}.FileName("other"),  // not a kind asked for
		"notes.txt",
		"unread-x-1.json",
	}
	remove := []string{
		Process{PID: me.PID, Start: me.Start + 1}.FileName("session-start"), // the pid, reused
		Process{PID: gone, Start: 7}.FileName("session-start"),              // no such process
	}
	for _, name := range append(slices.Clone(keep), remove...) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	RemoveGone(dir, "session-start", "unread")
	var left []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			left = append(left, d.Name())
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(left)
	slices.Sort(keep)
	if !slices.Equal(left, keep) {
		t.Errorf("left %q, want %q", left, keep)
	}
}

func TestFileName(t *testing.T) {
	if got, want := (Process{PID: 4242, Start: 17}).FileName("unread"), "unread-4242-17.json"; got != want {
		t.Errorf("FileName = %q, want %q", got, want)
	}
}
