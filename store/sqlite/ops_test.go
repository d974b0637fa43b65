package sqlite

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/claudemesh/claudemesh/store"
	"github.com/claudemesh/claudemesh/store/storetest"
)

func TestOps(t *testing.T) {
	storetest.RunOps(t, func(t *testing.T) store.Store {
		return openAt(t, filepath.Join(t.TempDir(), "ops.db"), Config{})
	})
}

func opsMessage(to []byte, at time.Time) store.Message {
	box := make([]byte, 64)
	rand.Read(box)
	from := make([]byte, 32)
	rand.Read(from)
	return store.Message{ID: uuid.NewString(), Mesh: "m", From: from, To: to, Nonce: make([]byte, 24), Box: box,
		CreatedAt: at, ExpiresAt: at.Add(time.Hour)}
}

// The commit observer is told of every batch: the writes it reports add up
// to the writes made.
func TestCommitObserver(t *testing.T) {
	var commits, writes atomic.Int64
	s := openAt(t, filepath.Join(t.TempDir(), "obs.db"), Config{Synchronous: "NORMAL", OnCommit: func(n int, took time.Duration) {
		if n < 1 || took < 0 {
			t.Errorf("commit of %d writes in %v", n, took)
		}
		commits.Add(1)
		writes.Add(int64(n))
	}})
	to := make([]byte, 32)
	const n = 50
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if _, err := s.Enqueue(t.Context(), opsMessage(to, time.Now())); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if writes.Load() != n || commits.Load() < 1 || commits.Load() > n {
		t.Errorf("observer saw %d commits of %d writes in all, want %d writes", commits.Load(), writes.Load(), n)
	}
}

// A backup taken while writes go on opens as a store of its own that holds
// what was committed before it began, each DM as it was; it never replaces
// a file.
func TestBackupWhileWriting(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.db")
	s := openAt(t, src, Config{Synchronous: "NORMAL"})
	to := make([]byte, 32)
	now := time.Now()
	var before []store.Message
	for range 20 {
		m := opsMessage(to, now)
		if _, err := s.Enqueue(t.Context(), m); err != nil {
			t.Fatal(err)
		}
		before = append(before, m)
	}
	stop := make(chan struct{})
	var wrote atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := s.Enqueue(t.Context(), opsMessage(to, now)); err != nil {
				t.Error(err)
				return
			}
			wrote.Add(1)
		}
	})
	backup := filepath.Join(dir, "backup.db")
	err := Backup(t.Context(), src, backup)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(backup)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("backup mode %v, want 0600", fi.Mode().Perm())
	}
	b := openAt(t, backup, Config{})
	got, err := b.Pending(t.Context(), "m", to, now, "", 100000)
	if err != nil {
		t.Fatal(err)
	}
	all, err := s.Pending(t.Context(), "m", to, now, "", 100000)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < len(before) || len(got) > len(all) {
		t.Fatalf("backup holds %d DMs; %d were committed before it, %d in all", len(got), len(before), len(all))
	}
	for i, m := range got {
		if m.ID != all[i].ID || string(m.Box) != string(all[i].Box) {
			t.Fatalf("backup DM %d is %s, the store's %s: not a prefix of the store's queue", i, m.ID, all[i].ID)
		}
	}
	t.Logf("backup took %d of %d DMs (%d written during it)", len(got), len(all), wrote.Load())

	// Never over an existing file.
	if err := Backup(t.Context(), src, backup); err == nil {
		t.Error("a backup over an existing file succeeded")
	}
	if _, err := b.Pending(t.Context(), "m", to, now, "", 1); err != nil {
		t.Errorf("the earlier backup after a refused one: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".backup-*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// An ack waits, up to the linger, for a DM to commit with, and commits with
// it; a store closed while an ack waits commits it at once.
func TestAcksShareTheNextCommit(t *testing.T) {
	var mu sync.Mutex
	var batches []int
	const linger = 10 * time.Second // far beyond what the test waits, unless it goes wrong
	s := openAt(t, filepath.Join(t.TempDir(), "lazy.db"), Config{Synchronous: "NORMAL", Linger: linger,
		OnCommit: func(n int, _ time.Duration) {
			mu.Lock()
			batches = append(batches, n)
			mu.Unlock()
		}})
	to := make([]byte, 32)
	now := time.Now()
	m1 := opsMessage(to, now)
	if _, err := s.Enqueue(t.Context(), m1); err != nil {
		t.Fatal(err)
	}
	acked := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := s.Ack(t.Context(), "m", to, []string{m1.ID}, now, false)
		acked <- err
	}()
	time.Sleep(50 * time.Millisecond) // the ack waits with the writer
	select {
	case err := <-acked:
		t.Fatalf("an ack alone committed before its linger was over (%v)", err)
	default:
	}
	if _, err := s.Enqueue(t.Context(), opsMessage(to, now)); err != nil {
		t.Fatal(err)
	}
	if err := <-acked; err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took >= linger {
		t.Fatalf("the ack took %v: it did not commit with the DM", took)
	}
	mu.Lock()
	got := slices.Clone(batches)
	mu.Unlock()
	if want := []int{1, 2}; !slices.Equal(got, want) {
		t.Fatalf("commits of %v writes, want %v: the ack and the DM after it in one", got, want)
	}

	// Closing the store commits an ack still lingering.
	go func() {
		_, err := s.Ack(t.Context(), "m", to, []string{m1.ID}, now, false)
		acked <- err
	}()
	time.Sleep(50 * time.Millisecond)
	start = time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-acked; err != nil {
		t.Fatalf("an ack lingering when the store closed: %v", err)
	}
	if took := time.Since(start); took >= linger {
		t.Fatalf("Close waited %v for the linger", took)
	}
}
