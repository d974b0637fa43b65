package postgres_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/claudemesh/claudemesh/internal/testpg"
	"github.com/claudemesh/claudemesh/store"
	"github.com/claudemesh/claudemesh/store/sqlite"
)

// A broker that started on SQLite moves to PostgreSQL: every mesh, member,
// invite, session and DM — queued, read, cleared, expired, with its
// receipts — arrives as it was, the queued DMs stay deliverable in their
// order and their senders see the same status.
func TestLoadFromSQLite(t *testing.T) {
	ctx := t.Context()
	lite, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "claudemesh.db"), sqlite.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	now := time.Now().UTC().Truncate(time.Microsecond)
	owner, vic := store.Member{Key: randKey(), Name: "olga"}, store.Member{Key: randKey(), Name: "vic"}
	if err := lite.CreateMesh(ctx, "crew", owner, now); err != nil {
		t.Fatal(err)
	}
	for i, uses := range []int{1, 2} {
		inv := store.Invite{Hash: randKey(), Mesh: "crew", CreatedBy: owner.Key, Uses: uses, ExpiresAt: now.Add(time.Hour), CreatedAt: now}
		if err := lite.CreateInvite(ctx, inv); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if _, err := lite.RedeemInvite(ctx, inv.Hash, vic, now); err != nil {
				t.Fatal(err)
			}
		} else if _, err := lite.RevokeInvite(ctx, "crew", inv.Hash); err != nil {
			t.Fatal(err)
		}
	}
	alice, bob := randKey(), randKey()
	for _, s := range []store.Session{
		{Mesh: "default", PublicKey: alice, SessionID: uuid.NewString(), Name: "alice", ProjectDir: "/src/a", FirstSeen: now, LastSeen: now},
		{Mesh: "default", PublicKey: bob, SessionID: uuid.NewString(), Name: "bob", ProjectDir: "/src/b", FirstSeen: now, LastSeen: now.Add(time.Second)},
		{Mesh: "crew", PublicKey: randKey(), SessionID: uuid.NewString(), Name: "vic's", FirstSeen: now, LastSeen: now, Member: vic.Key},
	} {
		if err := lite.UpsertSession(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	for i := range 6 {
		m := store.Message{ID: uuid.NewString(), Mesh: "default", From: alice, FromName: "alice", To: bob,
			Nonce: randKey()[:24], Box: randKey(), CreatedAt: now.Add(time.Duration(i) * time.Millisecond), ExpiresAt: now.Add(time.Hour)}
		if i == 5 {
			m.ExpiresAt = now.Add(time.Minute) // expires before the others
		}
		if _, err := lite.Enqueue(ctx, m); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	if _, err := lite.Receipt(ctx, "default", bob, ids[:3], store.ReceiptReceived, now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := lite.Receipt(ctx, "default", bob, ids[1:2], store.ReceiptPushed, now.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := lite.Ack(ctx, "default", bob, ids[:1], now.Add(3*time.Second), false); err != nil {
		t.Fatal(err)
	}
	if _, err := lite.Ack(ctx, "default", bob, ids[2:3], now.Add(3*time.Second), true); err != nil {
		t.Fatal(err)
	}
	if _, err := lite.JoinGroup(ctx, "default", "backend", bob, now); err != nil {
		t.Fatal(err)
	}
	if err := lite.SetPresence(ctx, store.Presence{Mesh: "default", Key: bob, Summary: "rebasing", Availability: "dnd", Activity: "working", ActivitySince: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := lite.SetPresence(ctx, store.Presence{Mesh: "default", Key: alice, Availability: "busy", UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	groupMsg := store.Message{ID: uuid.NewString(), Mesh: "default", From: alice, FromName: "alice", To: bob,
		Nonce: randKey()[:24], Box: randKey(), CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	groupSend := uuid.NewString()
	if _, err := lite.EnqueueGroup(ctx, groupSend, "backend", []store.Message{groupMsg}); err != nil {
		t.Fatal(err)
	}
	if _, err := lite.Expire(ctx, now.Add(2*time.Minute), 24*time.Hour, now.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}

	d, err := lite.Dump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d.Token = "the-local-credential"
	pg := open(t, testpg.URL(t))
	if err := pg.Load(ctx, d); err != nil {
		t.Fatal(err)
	}
	got, err := pg.Dump(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(d, got, cmpDump...); diff != "" {
		t.Errorf("PostgreSQL after the load differs from the SQLite dump (-sqlite +postgres):\n%s", diff)
	}
	if tok, err := pg.Token(ctx); err != nil || tok != "the-local-credential" {
		t.Errorf("cluster credential %q (%v), want the SQLite broker's", tok, err)
	}

	// The same answers from both stores.
	at := now.Add(2 * time.Minute)
	for _, s := range []store.Store{lite, pg} {
		pend, err := s.Pending(ctx, "default", bob, at, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		var pids []string
		for _, m := range pend {
			pids = append(pids, m.ID)
		}
		if want := []string{ids[1], ids[3], ids[4], groupMsg.ID}; fmt.Sprint(pids) != fmt.Sprint(want) {
			t.Errorf("%T: pending %v, want %v", s, pids, want)
		}
	}
	ls, err := lite.Status(ctx, "default", alice, ids, at)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := pg.Status(ctx, "default", alice, ids, at)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ls, ps); diff != "" {
		t.Errorf("status differs (-sqlite +postgres):\n%s", diff)
	}
	for _, s := range []store.Store{lite, pg} {
		if group, sts, err := s.GroupStatus(ctx, "default", alice, groupSend, at); err != nil || group != "backend" || len(sts) != 1 || sts[0].ID != groupMsg.ID {
			t.Errorf("%T: group status %q %+v (%v), want the group DM to backend", s, group, sts, err)
		}
	}
	// The moved queue keeps numbering after its last DM.
	next := store.Message{ID: uuid.NewString(), Mesh: "default", From: alice, FromName: "alice", To: bob,
		Nonce: randKey()[:24], Box: randKey(), CreatedAt: at, ExpiresAt: at.Add(time.Hour)}
	if _, err := pg.Enqueue(ctx, next); err != nil {
		t.Fatal(err)
	}
	pend, err := pg.Pending(ctx, "default", bob, at, groupMsg.ID, 10)
	if err != nil || len(pend) != 1 || pend[0].ID != next.ID {
		t.Errorf("after the moved queue: %v (%v), want only the new DM", pend, err)
	}

	// A second load into a used database is refused and changes nothing.
	if err := pg.Load(ctx, d); !errors.Is(err, store.ErrConflict) {
		t.Errorf("load into a used database: %v, want ErrConflict", err)
	}
}

var cmpDump = []cmp.Option{
	cmp.Transformer("utc", func(t time.Time) time.Time { return t.UTC() }),
}
