package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/claudemesh/claudemesh/store"
	"github.com/claudemesh/claudemesh/store/storetest"
)

func openAt(t testing.TB, path string, cfg Config) *Store {
	t.Helper()
	s, err := Open(t.Context(), path, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	for _, mode := range []string{"FULL", "NORMAL"} {
		t.Run(mode, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) store.Store {
				return openAt(t, filepath.Join(t.TempDir(), "broker.db"), Config{Synchronous: mode})
			})
		})
	}
}

func newMessage(to []byte, now time.Time) store.Message {
	m := store.Message{
		ID: uuid.NewString(), Mesh: "team", From: make([]byte, 32), FromName: "alice", To: to,
		Nonce: make([]byte, 24), Box: make([]byte, 256),
		CreatedAt: now, ExpiresAt: now.Add(time.Hour),
	}
	rand.Read(m.From)
	rand.Read(m.Nonce)
	rand.Read(m.Box)
	return m
}

func TestReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "broker.db")
	now := time.Now()
	to := make([]byte, 32)
	rand.Read(to)
	kept, acked := newMessage(to, now), newMessage(to, now)

	s, err := Open(ctx, path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []store.Message{kept, acked} {
		if _, err := s.Enqueue(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Ack(ctx, "team", to, []string{acked.ID}, now, false); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openAt(t, path, Config{})
	got, err := s.Pending(ctx, "team", to, now, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != kept.ID {
		t.Fatalf("Pending after reopen = %v, want only %s", got, kept.ID)
	}
	if !got[0].CreatedAt.Equal(now) || got[0].CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt = %v, want %v in UTC", got[0].CreatedAt, now)
	}
	if res, err := s.Enqueue(ctx, acked); err != nil || res != store.AlreadyAcked {
		t.Errorf("re-enqueue of an acked DM after reopen = %v, %v; want already-acked", res, err)
	}
}

// A database written by the first schema keeps its DMs through the
// migration that added delivery times: the pending DM is still pending and
// reported queued, the acknowledged one read (at an unknown time).
func TestMigrateFromFirstSchema(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "broker.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	first, err := migrations.ReadFile("migrations/0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	to := make([]byte, 32)
	rand.Read(to)
	kept, acked := newMessage(to, now), newMessage(to, now)
	for _, q := range []struct {
		query string
		args  []any
	}{
		{string(first), nil},
		{`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY) STRICT`, nil},
		{`INSERT INTO schema_migrations (version) VALUES (1)`, nil},
		{`INSERT INTO messages (id, mesh, from_key, from_name, from_session, to_key, nonce, box, created_at, expires_at)
			VALUES (?, ?, ?, ?, '', ?, ?, ?, ?, ?)`, []any{kept.ID, kept.Mesh, kept.From, kept.FromName, kept.To, kept.Nonce, kept.Box,
			nanos(kept.CreatedAt), nanos(kept.ExpiresAt)}},
		{`INSERT INTO messages (id, mesh, from_key, from_name, from_session, to_key, created_at, expires_at, acked)
			VALUES (?, ?, ?, ?, '', ?, ?, ?, 1)`, []any{acked.ID, acked.Mesh, acked.From, acked.FromName, acked.To,
			nanos(acked.CreatedAt), nanos(acked.ExpiresAt)}},
	} {
		if _, err := db.ExecContext(ctx, q.query, q.args...); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s := openAt(t, path, Config{})
	got, err := s.Pending(ctx, "team", to, now, "", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != kept.ID || !got[0].ReceivedAt.IsZero() || !got[0].PushedAt.IsZero() {
		t.Fatalf("Pending after the migration = %+v, want only %s with no receipt times", got, kept.ID)
	}
	for _, tt := range []struct {
		m     store.Message
		state string
	}{{kept, store.StateQueued}, {acked, store.StateRead}} {
		st, err := s.Status(ctx, "team", tt.m.From, []string{tt.m.ID}, now)
		if err != nil {
			t.Fatal(err)
		}
		if st[0].State != tt.state || !st[0].ReadAt.IsZero() || !st[0].CreatedAt.Equal(now) {
			t.Errorf("Status of %s after the migration = %+v, want %s", tt.m.ID, st[0], tt.state)
		}
	}
}

func TestFileMode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "claude mesh #1?%20")
	path := filepath.Join(dir, "broker.db")
	s := openAt(t, path, Config{})
	if _, err := s.Enqueue(t.Context(), newMessage(make([]byte, 32), time.Now())); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]os.FileMode{dir: 0o700 | os.ModeDir, path: 0o600, path + "-wal": 0o600, path + "-shm": 0o600} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode(), want)
		}
	}
}

func TestNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broker.db")
	s, err := Open(t.Context(), path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO schema_migrations (version) VALUES (1000)`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	if s, err := Open(t.Context(), path, Config{}); err == nil {
		s.Close()
		t.Fatal("Open of a database with a newer schema succeeded")
	}
}

func TestConfig(t *testing.T) {
	dir := t.TempDir()
	for _, cfg := range []Config{{Synchronous: "OFF"}, {Synchronous: "fast"}, {BatchMax: -1}} {
		if s, err := Open(t.Context(), filepath.Join(dir, "broker.db"), cfg); err == nil {
			s.Close()
			t.Errorf("Open with %+v succeeded", cfg)
		}
	}
	openAt(t, filepath.Join(dir, "broker.db"), Config{Synchronous: "normal", BatchMax: 1})
}

func TestCanceledContext(t *testing.T) {
	s := openAt(t, filepath.Join(t.TempDir(), "broker.db"), Config{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	m := newMessage(make([]byte, 32), time.Now())
	if _, err := s.Enqueue(ctx, m); !errors.Is(err, context.Canceled) {
		t.Fatalf("Enqueue with a canceled context: err = %v, want context.Canceled", err)
	}
	if got, err := s.Pending(t.Context(), m.Mesh, m.To, m.CreatedAt, "", 10); err != nil || len(got) != 0 {
		t.Errorf("Pending = %v, %v; want nothing stored", got, err)
	}
}

// TestCloseDuringWrites closes the store under load: every write either
// fails with ErrClosed or was made durable, and nothing panics or hangs.
func TestCloseDuringWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broker.db")
	s, err := Open(t.Context(), path, Config{Synchronous: "NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	to := make([]byte, 32)
	now := time.Now()
	var (
		mu      sync.Mutex
		stored  []string
		wg      sync.WaitGroup
		started = make(chan struct{}, 16)
	)
	for range 16 {
		wg.Go(func() {
			var once sync.Once
			signal := func() { started <- struct{}{} }
			defer once.Do(signal)
			for i := 0; ; i++ {
				if i == 5 {
					once.Do(signal)
				}
				m := newMessage(to, now)
				if _, err := s.Enqueue(t.Context(), m); err != nil {
					if !errors.Is(err, store.ErrClosed) {
						t.Errorf("Enqueue: %v", err)
					}
					return
				}
				mu.Lock()
				stored = append(stored, m.ID)
				mu.Unlock()
			}
		})
	}
	for range 16 {
		<-started
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()

	s = openAt(t, path, Config{})
	got := map[string]bool{}
	after := ""
	for {
		page, err := s.Pending(t.Context(), "team", to, now, after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, m := range page {
			got[m.ID] = true
		}
		after = page[len(page)-1].ID
	}
	for _, id := range stored {
		if !got[id] {
			t.Fatalf("acknowledged write %s lost", id)
		}
	}
	if len(got) != len(stored) {
		t.Errorf("%d messages stored, %d acknowledged", len(got), len(stored))
	}
}

func TestNanos(t *testing.T) {
	for _, tt := range []time.Time{
		{},
		time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC),
		time.Unix(0, 1).UTC(),
	} {
		if got := fromNanos(nanos(tt)); !got.Equal(tt) {
			t.Errorf("fromNanos(nanos(%v)) = %v", tt, got)
		}
	}
	far := time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC)
	if got := nanos(far); got <= nanos(time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("nanos(%v) = %d, not clamped to the maximum", far, got)
	}
}

func benchmarkEnqueue(b *testing.B, parallel bool) {
	for _, mode := range []string{"FULL", "NORMAL"} {
		b.Run(mode, func(b *testing.B) {
			s := openAt(b, filepath.Join(b.TempDir(), "broker.db"), Config{Synchronous: mode})
			to := make([]byte, 32)
			now := time.Now()
			enqueue := func() {
				if _, err := s.Enqueue(b.Context(), newMessage(to, now)); err != nil {
					b.Error(err)
				}
			}
			b.ResetTimer()
			if !parallel {
				for b.Loop() {
					enqueue()
				}
				return
			}
			b.SetParallelism(16) // 16 × GOMAXPROCS concurrent senders
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					enqueue()
				}
			})
		})
	}
}

// BenchmarkEnqueue measures one sender: every write waits for its own commit.
func BenchmarkEnqueue(b *testing.B) { benchmarkEnqueue(b, false) }

// BenchmarkEnqueueParallel measures many senders, whose writes share commits.
func BenchmarkEnqueueParallel(b *testing.B) { benchmarkEnqueue(b, true) }

// A database from before session ids were bound to keys may hold one id
// under two keys (a session that posed as another). Migrating keeps the id
// with the key that registered it first; the later key loses its claim and
// cannot take the id back.
func TestMigrateKeepsFirstSessionIDOwner(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "broker.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY) STRICT`); err != nil {
		t.Fatal(err)
	}
	for v, name := range []string{"0001_init.sql", "0002_delivery_status.sql", "0003_members.sql", "0004_box_len.sql"} {
		body, err := migrations.ReadFile("migrations/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, string(body)); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO schema_migrations (version) VALUES (?)`, v+1); err != nil {
			t.Fatal(err)
		}
	}
	id := uuid.NewString()
	owner, impostor := make([]byte, 32), make([]byte, 32)
	rand.Read(owner)
	rand.Read(impostor)
	now := time.Now()
	for i, k := range [][]byte{owner, impostor} {
		if _, err := db.ExecContext(ctx, `INSERT INTO sessions (mesh, key, session_id, name, project_dir, first_seen, last_seen)
			VALUES ('team', ?, ?, 'amy', '', ?, ?)`, k, id, nanos(now.Add(time.Duration(i)*time.Minute)), nanos(now)); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	s := openAt(t, path, Config{})
	if got, err := s.Session(ctx, "team", owner); err != nil || got.SessionID != id {
		t.Errorf("first key's session id after the migration = %q (err %v), want %s", got.SessionID, err, id)
	}
	if got, err := s.Session(ctx, "team", impostor); err != nil || got.SessionID != "" {
		t.Errorf("later key's session id after the migration = %q (err %v), want none", got.SessionID, err)
	}
	err = s.UpsertSession(ctx, store.Session{Mesh: "team", PublicKey: impostor, SessionID: id, Name: "amy", LastSeen: now})
	if !errors.Is(err, store.ErrSessionTaken) {
		t.Errorf("the later key presenting the id again: err = %v, want ErrSessionTaken", err)
	}
}

// An operation that fails inside a batch (an invalid invite, a mesh that
// exists) must not take the other operations of its batch down with it,
// nor leave behind what it wrote before it failed.
func TestFailedOperationDoesNotFailItsBatch(t *testing.T) {
	s := openAt(t, filepath.Join(t.TempDir(), "broker.db"), Config{})
	insert := func(mesh string) func(context.Context, *sql.Tx) error {
		return func(ctx context.Context, tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO meshes (name, created_at) VALUES (?, 0)`, mesh)
			return err
		}
	}
	refused := errors.New("refused")
	errs := s.commit([]op{
		{apply: insert("before")},
		{apply: func(ctx context.Context, tx *sql.Tx) error {
			if err := insert("partial")(ctx, tx); err != nil {
				return err
			}
			return refused
		}},
		{apply: insert("before")}, // a constraint violation
		{apply: insert("after")},
	})
	for i, want := range []error{nil, refused, nil, nil} {
		if i == 2 {
			if errs[i] == nil {
				t.Errorf("op %d: a duplicate insert succeeded", i)
			}
			continue
		}
		if !errors.Is(errs[i], want) {
			t.Errorf("op %d: err = %v, want %v", i, errs[i], want)
		}
	}
	for mesh, want := range map[string]bool{"before": true, "partial": false, "after": true} {
		got, err := s.MeshExists(t.Context(), mesh)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("mesh %q exists: %v, want %v", mesh, got, want)
		}
	}
}
