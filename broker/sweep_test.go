package broker

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh/store"
	"github.com/claudemesh/claudemesh/wire"
)

// lockProbe is a log handler that notes every record logged while
// Server.mu is held.
type lockProbe struct {
	srv *Server

	mu               sync.Mutex
	records, underMu int
}

func (p *lockProbe) Enabled(context.Context, slog.Level) bool { return true }

func (p *lockProbe) Handle(context.Context, slog.Record) error {
	held := !p.srv.mu.TryLock()
	if !held {
		p.srv.mu.Unlock()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.records++
	if held {
		p.underMu++
	}
	return nil
}

func (p *lockProbe) WithAttrs([]slog.Attr) slog.Handler { return p }
func (p *lockProbe) WithGroup(string) slog.Handler      { return p }

// sweep logs the sessions it takes offline, but not while it holds the
// server's lock: every connection waits on that lock.
func TestSweepLogsOutsideTheLock(t *testing.T) {
	now := time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)
	probe := &lockProbe{}
	// The store is never called: the janitor's first round is an hour
	// away.
	srv, err := NewServer(Config{Store: struct{ store.Store }{}, Logger: slog.New(probe), Now: func() time.Time { return now },
		Grace: time.Minute, ExpireInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	probe.srv = srv
	srv.mu.Lock()
	for i := range 3 {
		key := make([]byte, wire.KeySize)
		key[0] = byte(i)
		srv.leases[keyOf("team", key)] = &lease{hello: wire.Hello{Mesh: "team", Key: key}, droppedAt: now.Add(-time.Hour)}
	}
	srv.mu.Unlock()
	srv.sweep()

	probe.mu.Lock()
	defer probe.mu.Unlock()
	if probe.records != 3 || probe.underMu != 0 {
		t.Errorf("sweep logged %d records, %d of them holding Server.mu; want 3, none under the lock", probe.records, probe.underMu)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if n := len(srv.leases); n != 0 {
		t.Errorf("%d leases after the sweep, want none", n)
	}
}
