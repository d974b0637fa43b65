package broker_test

import (
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh/broker"
	"github.com/claudemesh/claudemesh/wire"
)

func mode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestLoadOrCreateToken(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data", "broker") // does not exist yet
	tok, err := broker.LoadOrCreateToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := hex.DecodeString(tok); err != nil || len(b) != 32 {
		t.Errorf("token %q, want 64 hex characters", tok)
	}
	if m := mode(t, dir); m != 0o700 {
		t.Errorf("data directory mode %v, want 0700", m)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Fatalf("data directory holds %v (%v), want one credential file", entries, err)
	}
	if m := mode(t, filepath.Join(dir, entries[0].Name())); m != 0o600 {
		t.Errorf("credential file mode %v, want 0600", m)
	}
	again, err := broker.LoadOrCreateToken(dir)
	if err != nil || again != tok {
		t.Errorf("second load: %q, %v; want the same token %q", again, err, tok)
	}
	if other, err := broker.LoadOrCreateToken(t.TempDir()); err != nil || other == tok {
		t.Errorf("another data directory: %q, %v; want a new token", other, err)
	}

	// Brokers starting together agree on one token.
	dir = t.TempDir()
	toks := make([]string, 8)
	var wg sync.WaitGroup
	for i := range toks {
		wg.Go(func() {
			var err error
			if toks[i], err = broker.LoadOrCreateToken(dir); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for _, tok := range toks {
		if tok != toks[0] {
			t.Fatalf("concurrent loads returned different tokens: %q", toks)
		}
	}

	// A truncated credential is refused, not used.
	dir = t.TempDir()
	if _, err := broker.LoadOrCreateToken(dir); err != nil {
		t.Fatal(err)
	}
	entries, _ = os.ReadDir(dir)
	if err := os.WriteFile(filepath.Join(dir, entries[0].Name()), []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if tok, err := broker.LoadOrCreateToken(dir); err == nil {
		t.Errorf("short credential accepted as %q", tok)
	}
}

// The broker publishes wire.LocalFile whole, readable by its owner only,
// replacing what it published before.
func TestWriteLocalInfo(t *testing.T) {
	t.Parallel()
	home := filepath.Join(t.TempDir(), "home") // does not exist yet
	want := wire.LocalInfo{
		URL:       "ws://127.0.0.1:40000/v1/ws",
		Token:     "secret-token",
		PID:       4242,
		StartedAt: time.Date(2031, 1, 2, 3, 4, 5, 6, time.UTC),
	}
	for _, info := range []wire.LocalInfo{{URL: "ws://127.0.0.1:1/v1/ws", Token: "old"}, want} {
		if err := broker.WriteLocalInfo(home, info); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(filepath.Join(home, wire.LocalFile))
	if err != nil {
		t.Fatal(err)
	}
	var got wire.LocalInfo
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%s: %v", wire.LocalFile, err)
	}
	if got.URL != want.URL || got.Token != want.Token || got.PID != want.PID || !got.StartedAt.Equal(want.StartedAt) {
		t.Errorf("published %+v, want %+v", got, want)
	}
	if m := mode(t, filepath.Join(home, wire.LocalFile)); m != 0o600 {
		t.Errorf("%s mode %v, want 0600", wire.LocalFile, m)
	}
	if m := mode(t, home); m != 0o700 {
		t.Errorf("home mode %v, want 0700", m)
	}
	// The replacement leaves no temporary file behind.
	entries, err := os.ReadDir(home)
	if err != nil || len(entries) != 1 {
		t.Errorf("home holds %v (%v), want only %s", entries, err, wire.LocalFile)
	}
}
