package history

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func open(t *testing.T, path, key string, cfg Config) *DB {
	t.Helper()
	d, err := Open(t.Context(), path, key, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func ids(ms []Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func TestSearchThreadsAndFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.history.db")
	d := open(t, path, "key1", Config{})
	ctx := t.Context()
	t0 := time.Now().Add(-time.Hour)
	add := func(m Message, refs ...Ref) {
		t.Helper()
		if err := d.Add(ctx, m, refs); err != nil {
			t.Fatal(err)
		}
	}
	add(Message{ID: "m1", Dir: Out, Peer: "bob", PeerKeyID: "bbbb", Text: "is the schema migration merged?", At: t0}, Ref{"m1", "bbbb"})
	add(Message{ID: "m2", Dir: In, Peer: "bob", PeerKeyID: "bbbb", Text: "yes, merged this morning", At: t0.Add(time.Minute), ReplyTo: "m1", ReplyStatus: ReplyKnown, Thread: "m1"}, Ref{"m2", "bbbb"})
	add(Message{ID: "m3", Dir: In, Peer: "carol", PeerKeyID: "cccc", Text: `lunch "at" noon? AND OR NOT (`, At: t0.Add(2 * time.Minute)}, Ref{"m3", "cccc"})
	add(Message{ID: "m1", Dir: Out, Peer: "bob", Text: "a second copy is ignored", At: t0})

	for _, tc := range []struct {
		name string
		q    Query
		want []string
	}{
		{"newest first", Query{}, []string{"m3", "m2", "m1"}},
		{"words", Query{Text: "migration merged"}, []string{"m1"}},
		{"prefix", Query{Text: "merg*"}, []string{"m2", "m1"}},
		{"fts syntax is text", Query{Text: `"at" AND (`}, []string{"m3"}},
		{"with name", Query{With: "BOB"}, []string{"m2", "m1"}},
		{"with key id", Query{With: "cccc"}, []string{"m3"}},
		{"thread", Query{Thread: "m1"}, []string{"m2", "m1"}},
		{"limit", Query{Limit: 1}, []string{"m3"}},
		{"nothing", Query{Text: "kubernetes"}, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := d.Find(ctx, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			if g := ids(got); len(g) != len(tc.want) || (len(g) > 0 && g[0] != tc.want[0]) || (len(g) > 1 && g[1] != tc.want[1]) {
				t.Errorf("Find(%+v) = %v, want %v", tc.q, g, tc.want)
			}
		})
	}
	// A thread is joined only through a message exchanged with that peer.
	if th, ok, _ := d.Thread(ctx, "m1", "bbbb"); !ok || th != "m1" {
		t.Errorf("m1 with bob: %q %v", th, ok)
	}
	if _, ok, _ := d.Thread(ctx, "m1", "cccc"); ok {
		t.Error("carol can join bob's thread")
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v, want mode 0600", p, fi, err)
		}
	}
}

// A history made for another key is the history of a deleted key: it is
// gone when the new key opens it.
func TestNewKeyForgetsHistory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.history.db")
	d, err := Open(t.Context(), path, "old", Config{})
	if err != nil {
		t.Fatal(err)
	}
	d.Add(t.Context(), Message{ID: "x", Dir: In, Peer: "bob", Text: "secret plan", At: time.Now()}, nil)
	d.Close()
	d = open(t, path, "new", Config{})
	if got, _ := d.Find(t.Context(), Query{}); len(got) != 0 {
		t.Fatalf("new key sees %d messages of the old one", len(got))
	}
	d2 := open(t, path, "new", Config{})
	if got, _ := d2.Find(t.Context(), Query{}); len(got) != 0 {
		t.Fatal("reopen")
	}
}

func TestRefusesPathTricks(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	os.WriteFile(target, []byte("not yours"), 0o644)
	link := filepath.Join(dir, "link.history.db")
	os.Symlink(target, link)
	if _, err := Open(t.Context(), link, "k", Config{}); err == nil {
		t.Fatal("a symbolic link was opened")
	}
	if b, _ := os.ReadFile(target); string(b) != "not yours" {
		t.Fatal("the link's target was written")
	}
	if _, err := Open(t.Context(), dir, "k", Config{}); err == nil {
		t.Fatal("a directory was opened")
	}
}

func TestRetentionAndAsks(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	path := filepath.Join(t.TempDir(), "s.history.db")
	d := open(t, path, "k", Config{Retention: time.Hour, Now: clock})
	ctx := t.Context()
	d.Add(ctx, Message{ID: "old", Dir: In, Peer: "bob", Text: "old", At: now.Add(-2 * time.Hour)}, nil)
	d.Add(ctx, Message{ID: "new", Dir: In, Peer: "bob", Text: "new", At: now}, nil)
	if err := d.Prune(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := d.Find(ctx, Query{}); len(got) != 1 || got[0].ID != "new" {
		t.Fatalf("after prune: %v", ids(got))
	}
	// A long-lived history prunes itself as it is written.
	now = now.Add(2 * time.Hour)
	d.Add(ctx, Message{ID: "later", Dir: In, Peer: "bob", Text: "later", At: now}, nil)
	if got, _ := d.Find(ctx, Query{}); len(got) != 1 || got[0].ID != "later" {
		t.Fatalf("two hours later: %v", ids(got))
	}

	d.AddAsk(ctx, Ask{ID: "a1", Dir: Out, PeerKeyID: "bbbb", Peer: "bob", Question: "q", Created: now, Deadline: now.Add(time.Minute)},
		Ask{ID: "a1", Dir: Out, PeerKeyID: "cccc", Peer: "carol", Question: "q", Created: now, Deadline: now.Add(time.Minute)})
	if _, found, _, _ := d.SetAnswer(ctx, "a1", Out, "eeee", "x", "m", now, false); found {
		t.Fatal("an answer from someone not asked was taken")
	}
	a, found, first, err := d.SetAnswer(ctx, "a1", Out, "bbbb", "yes", "m9", now, false)
	if err != nil || !found || !first || a.Answer != "yes" {
		t.Fatalf("answer: %+v %v %v %v", a, found, first, err)
	}
	if _, _, first, _ := d.SetAnswer(ctx, "a1", Out, "bbbb", "no", "m10", now, false); first {
		t.Fatal("a second answer replaced the first")
	}
	if open, _ := d.Asks(ctx); len(open) != 2 {
		t.Fatalf("open asks: %+v", open)
	}
	now = now.Add(2 * time.Minute) // past the deadline: listed until seen
	if open, _ := d.Asks(ctx); len(open) != 2 {
		t.Fatalf("expired, unseen: %+v", open)
	}
	d.MarkSeen(ctx)
	if open, _ := d.Asks(ctx); len(open) != 0 {
		t.Fatalf("expired and seen: %+v", open)
	}
}
