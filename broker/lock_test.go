package broker_test

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh/broker"
	"github.com/claudemesh/claudemesh/client"
	"github.com/claudemesh/claudemesh/wire"
)

// The kernel does not care which process holds a flock, only which open
// file: a second LockLocal in the same process is refused as a second
// broker would be. Refusals of a second process, and locks released by a
// killed one, are tested with the binary in cmd/claudemesh.

func lockLocal(t *testing.T, home, data string, h broker.Holder) *broker.Lock {
	t.Helper()
	l, err := broker.LockLocal(home, data, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// refused checks that err is a *RunningError about dir (home or data)
// naming first, and that its message says who runs and where.
func refused(t *testing.T, err error, home bool, dir string, first broker.Holder) {
	t.Helper()
	re, ok := errors.AsType[*broker.RunningError](err)
	if !ok {
		t.Fatalf("second lock: %v, want a *RunningError", err)
	}
	if re.Home != home || re.Dir != dir || re.Holder.PID != first.PID || re.Holder.URL != first.URL {
		t.Errorf("refusal %+v, want home %t, dir %s, holder pid %d url %s", re, home, dir, first.PID, first.URL)
	}
	for _, w := range []string{"pid " + strconv.Itoa(first.PID), first.URL, dir} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("refusal %q does not say %q", err, w)
		}
	}
}

func TestLockLocal(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	home, data := filepath.Join(root, "home"), filepath.Join(root, "home", "broker")
	first := broker.Holder{PID: 4242, URL: "ws://127.0.0.1:40000/v1/ws", StartedAt: time.Now().UTC()}
	l := lockLocal(t, home, data, first)
	if err := l.Publish(wire.LocalInfo{URL: first.URL, Token: "first-secret", PID: first.PID}); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(home, broker.HomeLockFile), filepath.Join(data, broker.DataLockFile), filepath.Join(home, wire.LocalFile)} {
		if m := mode(t, path); m != 0o600 {
			t.Errorf("%s has mode %v, want 0600", path, m)
		}
	}
	second := broker.Holder{PID: 4343, URL: "ws://127.0.0.1:40001/v1/ws"}

	t.Run("same data directory", func(t *testing.T) {
		_, err := broker.LockLocal(home, data, second)
		refused(t, err, false, data, first)
		if err := broker.RunningOn(data); err == nil {
			t.Error("RunningOn reports nobody on the data directory")
		} else {
			refused(t, err, false, data, first)
		}
	})
	t.Run("same data directory, another home", func(t *testing.T) {
		other := filepath.Join(root, "other-home")
		_, err := broker.LockLocal(other, data, second)
		refused(t, err, false, data, first)
		if _, err := os.Stat(filepath.Join(other, wire.LocalFile)); err == nil {
			t.Errorf("the refused broker published %s in its home", wire.LocalFile)
		}
	})
	t.Run("another data directory, same home", func(t *testing.T) {
		otherData := filepath.Join(root, "other-data")
		_, err := broker.LockLocal(home, otherData, second)
		refused(t, err, true, home, first)
		if !strings.Contains(err.Error(), data) {
			t.Errorf("refusal %q does not name the running broker's data directory %s", err, data)
		}
		if _, err := os.Stat(otherData); err == nil {
			t.Error("the refused broker made its data directory")
		}
	})
	// Nothing a refused broker did changed what the first one published.
	if info, err := client.ReadLocalInfo(home); err != nil || info.URL != first.URL || info.Token != "first-secret" {
		t.Errorf("broker.json after the refusals: %+v, %v; want the first broker's", info, err)
	}

	// Once the first lets go, the next one takes both locks.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := broker.RunningOn(data); err != nil {
		t.Errorf("RunningOn after the lock was released: %v", err)
	}
	next := lockLocal(t, home, data, second)
	if err := next.Publish(wire.LocalInfo{URL: second.URL, Token: "first-secret", PID: second.PID}); err != nil {
		t.Fatal(err)
	}
	_, err := broker.LockLocal(home, data, first)
	refused(t, err, false, data, second) // the record is the new holder's
}

func TestRunningOnCreatesNothing(t *testing.T) {
	t.Parallel()
	data := filepath.Join(t.TempDir(), "data")
	if err := broker.RunningOn(data); err != nil {
		t.Errorf("RunningOn of a missing directory: %v", err)
	}
	if _, err := os.Stat(data); err == nil {
		t.Error("RunningOn made the data directory")
	}
}
