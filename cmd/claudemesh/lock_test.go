package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/uuid"

	"github.com/claudemesh/claudemesh/internal/testproc"
)

// refusedBroker runs `claudemesh broker args...` with CLAUDEMESH_HOME home,
// which must exit with an error at once (within exitWait), and returns
// what it said.
func refusedBroker(t *testing.T, home string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), exitWait)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), append([]string{"broker"}, args...)...)
	cmd.Env = env(t, home)
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("broker %v still ran after %v, want it to refuse at once; output:\n%s", args, exitWait, out)
	}
	if ee, ok := errors.AsType[*exec.ExitError](err); !ok || ee.ExitCode() == 0 {
		t.Fatalf("broker %v: %v, want a non-zero exit; output:\n%s", args, err, out)
	}
	return string(out)
}

// wantPublished checks that home/broker.json names the broker b.
func wantPublished(t *testing.T, home string, b *brokerProc) {
	t.Helper()
	info, err := testproc.ReadBrokerInfo(home)
	if err != nil || info.PID != b.cmd.Process.Pid || info.URL != b.url {
		t.Errorf("broker.json: %+v (%v), want pid %d and %s", info, err, b.cmd.Process.Pid, b.url)
	}
}

func TestOneBrokerPerDataDirectory(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	m := &mesh{home: filepath.Join(root, "home"), data: filepath.Join(root, "data")}
	m.broker = startBroker(t, m.home, m.data)
	first := m.broker
	alice := m.join(t, "alice", uuid.NewString())
	alice.waitConnected(t)

	otherHome, otherData := filepath.Join(root, "other-home"), filepath.Join(root, "other-data")
	tests := []struct {
		name string
		home string
		args []string
		want []string // besides the running broker's pid and URL
	}{
		{"same data directory", m.home, []string{"--data", m.data, "--listen", "127.0.0.1:0"},
			[]string{"is running on data directory " + m.data}},
		{"same data directory and address", m.home, []string{"--data", m.data, "--listen", strings.TrimSuffix(strings.TrimPrefix(first.url, "ws://"), "/v1/ws")},
			[]string{"address already in use", "is running on data directory " + m.data}},
		{"same data directory, another home", otherHome, []string{"--data", m.data, "--listen", "127.0.0.1:0"},
			[]string{"is running on data directory " + m.data}},
		{"same home, another data directory", m.home, []string{"--data", otherData, "--listen", "127.0.0.1:0"},
			[]string{"publishes " + filepath.Join(m.home, "broker.json"), "data directory " + m.data, "CLAUDEMESH_HOME"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := refusedBroker(t, tt.home, tt.args...)
			for _, w := range append(tt.want, "pid "+strconv.Itoa(first.cmd.Process.Pid), first.url) {
				if !strings.Contains(out, w) {
					t.Errorf("refused broker said %q, want it to say %q", out, w)
				}
			}
			// It left what the running broker published alone and
			// published nothing of its own.
			wantPublished(t, m.home, first)
			if _, err := os.Stat(filepath.Join(otherHome, "broker.json")); err == nil {
				t.Error("the refused broker published broker.json in its home")
			}
			if _, err := os.Stat(filepath.Join(otherData, "claudemesh.db")); err == nil {
				t.Error("the refused broker opened a store")
			}
		})
	}

	// The first broker still serves: alice is still connected to it and
	// a newcomer gets in.
	if w := alice.whoami(t); w.Connection != "connected" || w.Broker != first.url {
		t.Errorf("alice after the refusals: %s to %s, want connected to %s", w.Connection, w.Broker, first.url)
	}
	bob := m.join(t, "bob", uuid.NewString())
	if w := bob.waitConnected(t); w.Broker != first.url {
		t.Errorf("bob connected to %s, want %s", w.Broker, first.url)
	}

	// Stopped, its lock is free: the next broker starts on the same data
	// directory and home, and the sessions follow it.
	first.stop(t)
	second := startBroker(t, m.home, m.data)
	wantPublished(t, m.home, second)
	waitFor(t, waitLong, "alice to reconnect to the new broker", func() (bool, error) {
		w := alice.whoami(t)
		return w.Connection == "connected" && w.Broker == second.url, nil
	})

	// Killed, it holds nothing either: the kernel released its locks.
	second.cmd.Process.Signal(syscall.SIGKILL)
	<-second.done
	third := startBroker(t, m.home, m.data)
	wantPublished(t, m.home, third)
	waitFor(t, waitLong, "alice to reconnect to the third broker", func() (bool, error) {
		w := alice.whoami(t)
		return w.Connection == "connected" && w.Broker == third.url, nil
	})
}
