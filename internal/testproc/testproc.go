// Package testproc is what the tests of the built binary share, those of
// cmd/claudemesh and the end-to-end tests with Claude Code: building the
// claudemesh binary, collecting a child process's output, waiting on a
// condition with a deadline, and waiting for a started `claudemesh broker`
// to publish its URL. Only tests import it.
package testproc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Build compiles the claudemesh command into dir/claudemesh and returns
// its path. It builds without cgo, as the release binary must stay a
// static, cgo-free build.
func Build(dir string) (string, error) {
	path := filepath.Join(dir, "claudemesh")
	cmd := exec.Command("go", "build", "-o", path, "github.com/claudemesh/claudemesh/cmd/claudemesh")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build with CGO_ENABLED=0: %v\n%s", err, out)
	}
	return path, nil
}

// Buffer collects a process's output; it is safe for concurrent use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p to the buffer.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Eventually polls cond every 20 ms until it holds, failing t when
// timeout passes or the test ends first. cond runs on the caller's
// goroutine, so it may fail t itself.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	Poll(t, timeout, 20*time.Millisecond, what, cond)
}

// Poll is Eventually polling every tick: a cheap cond, on an in-process
// broker, may be polled often.
func Poll(t testing.TB, timeout, tick time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		select {
		case <-ticker.C:
		case <-t.Context().Done():
			t.Fatalf("test ended while waiting for %s: %v", what, t.Context().Err())
		}
	}
}

// BrokerInfo is what a running broker publishes in
// CLAUDEMESH_HOME/broker.json, written out here rather than imported so
// that a renamed field breaks the tests as it would break a reader.
type BrokerInfo struct {
	URL string `json:"url"`
	PID int    `json:"pid"`
}

// ReadBrokerInfo reads home/broker.json.
func ReadBrokerInfo(home string) (BrokerInfo, error) {
	var info BrokerInfo
	b, err := os.ReadFile(filepath.Join(home, "broker.json"))
	if err == nil {
		err = json.Unmarshal(b, &info)
	}
	return info, err
}

// WaitBroker waits until the broker that cmd started has published its
// URL in home/broker.json, and returns what it published. done is closed
// once cmd.Wait has returned; t fails if that happens first or timeout
// passes.
func WaitBroker(t testing.TB, timeout time.Duration, home string, cmd *exec.Cmd, done <-chan struct{}) BrokerInfo {
	t.Helper()
	var info BrokerInfo
	Eventually(t, timeout, "the broker to publish its URL in broker.json", func() bool {
		select {
		case <-done:
			t.Fatalf("broker exited: %v", cmd.ProcessState)
		default:
		}
		var err error
		info, err = ReadBrokerInfo(home)
		// Not written yet, or still the previous broker's.
		return err == nil && info.PID == cmd.Process.Pid && info.URL != ""
	})
	return info
}
