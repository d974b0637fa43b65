package testproc_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh/internal/testproc"
)

func TestBufferConcurrentWrites(t *testing.T) {
	var b testproc.Buffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 100 {
				fmt.Fprintf(&b, "%d\n", i)
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if n := strings.Count(b.String(), "\n"); n != 800 {
		t.Errorf("%d lines, want 800", n)
	}
}

func TestEventually(t *testing.T) {
	var calls atomic.Int32
	testproc.Eventually(t, time.Minute, "the third call", func() bool { return calls.Add(1) >= 3 })
	if n := calls.Load(); n != 3 {
		t.Errorf("cond called %d times, want 3: it polls until the condition holds and no further", n)
	}
}

func TestReadBrokerInfo(t *testing.T) {
	home := t.TempDir()
	if _, err := testproc.ReadBrokerInfo(home); err == nil {
		t.Error("read a broker.json that does not exist")
	}
	data := `{"url": "ws://127.0.0.1:7733/v1/ws", "token": "secret", "pid": 42}`
	if err := os.WriteFile(filepath.Join(home, "broker.json"), []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	info, err := testproc.ReadBrokerInfo(home)
	if err != nil || info.URL != "ws://127.0.0.1:7733/v1/ws" || info.PID != 42 {
		t.Errorf("ReadBrokerInfo = %+v, %v; want the URL and PID written", info, err)
	}
}
