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
	for i := range 3 {
		key := make([]byte, wire.KeySize)
		key[0] = byte(i)
		l := store.Lease{Mesh: "team", Key: key, Node: "local", Since: now.Add(-2 * time.Hour)}
		_, epoch, err := srv.cluster.Claim(t.Context(), l, false, srv.leaseTimes())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := srv.cluster.Release(t.Context(), "team", key, epoch, now.Add(-time.Hour), false); err != nil {
			t.Fatal(err)
		}
	}
	srv.sweep(t.Context())

	probe.mu.Lock()
	defer probe.mu.Unlock()
	if probe.records != 3 || probe.underMu != 0 {
		t.Errorf("sweep logged %d records, %d of them holding Server.mu; want 3, none under the lock", probe.records, probe.underMu)
	}
	if online, grace := srv.mem.Count(srv.leaseTimes()); online+grace != 0 {
		t.Errorf("%d leases after the sweep, want none", online+grace)
	}
}
