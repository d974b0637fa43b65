package postgres_test

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/claudemesh/claudemesh/internal/testpg"
	"github.com/claudemesh/claudemesh/store"
	"github.com/claudemesh/claudemesh/store/postgres"
	"github.com/claudemesh/claudemesh/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(testpg.Run(m)) }

func open(t *testing.T, url string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(t.Context(), url, postgres.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, testpg.URL(t)) })
}

// Brokers starting at the same moment on one database each open the store:
// every Open succeeds and each migration is applied once.
func TestConcurrentOpenMigratesOnce(t *testing.T) {
	url := testpg.URL(t)
	const nodes = 4
	errs := make(chan error, nodes)
	for range nodes {
		go func() {
			s, err := postgres.Open(t.Context(), url, postgres.Config{})
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	for range nodes {
		if err := <-errs; err != nil {
			t.Errorf("open: %v", err)
		}
	}
	s := open(t, url)
	var rows, max int
	if err := s.Pool().QueryRow(t.Context(), `SELECT count(*), max(version) FROM schema_migrations`).Scan(&rows, &max); err != nil {
		t.Fatal(err)
	}
	if rows != max {
		t.Errorf("schema_migrations holds %d rows for %d migrations", rows, max)
	}
}

// Two nodes enqueue for one recipient at once while a third reads its queue
// with a cursor, as a broker's pump does: the reader misses nothing and sees
// nothing twice, because one recipient's DMs commit in the order they are
// numbered.
func TestTwoNodesOneQueueOrder(t *testing.T) {
	url := testpg.URL(t)
	a, b, reader := open(t, url), open(t, url), open(t, url)
	to := make([]byte, 32)
	rand.Read(to)
	const perNode, senders = 150, 4
	now := time.Now()
	var wg sync.WaitGroup
	for _, node := range []*postgres.Store{a, b} {
		for range senders {
			wg.Go(func() {
				from := make([]byte, 32)
				rand.Read(from)
				for range perNode / senders {
					box := make([]byte, 48)
					rand.Read(box)
					_, err := node.Enqueue(t.Context(), store.Message{ID: uuid.NewString(), Mesh: "team", From: from, FromName: "x",
						To: to, Nonce: make([]byte, 24), Box: box, CreatedAt: now, ExpiresAt: now.Add(time.Hour)})
					if err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	seen := make(map[string]int)
	cursor := ""
	read := func() {
		for {
			msgs, err := reader.Pending(t.Context(), "team", to, now, cursor, 17)
			if err != nil {
				t.Fatal(err)
			}
			if len(msgs) == 0 {
				return
			}
			for _, m := range msgs {
				seen[m.ID]++
			}
			cursor = msgs[len(msgs)-1].ID
		}
	}
	for finished := false; !finished; {
		select {
		case <-done:
			finished = true
		default:
		}
		read()
	}
	read()
	want := 2 * (perNode / senders) * senders
	if len(seen) != want {
		t.Errorf("the reader saw %d distinct DMs, want %d: a DM committed behind its cursor was skipped", len(seen), want)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("DM %s read %d times", id, n)
		}
	}
}

// An invite's uses are not overspent by joins through several nodes at once.
func TestInviteUsesAcrossNodes(t *testing.T) {
	url := testpg.URL(t)
	a, b := open(t, url), open(t, url)
	now := time.Now()
	owner := store.Member{Key: randKey(), Name: "owner"}
	if err := a.CreateMesh(t.Context(), "team", owner, now); err != nil {
		t.Fatal(err)
	}
	hash := randKey()
	if err := a.CreateInvite(t.Context(), store.Invite{Hash: hash, Mesh: "team", CreatedBy: owner.Key, Uses: 3,
		ExpiresAt: now.Add(time.Hour), CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	const joins = 12
	errs := make(chan error, joins)
	for i := range joins {
		node := []*postgres.Store{a, b}[i%2]
		go func() {
			_, err := node.RedeemInvite(t.Context(), hash, store.Member{Key: randKey(), Name: fmt.Sprint("m", i)}, now)
			errs <- err
		}()
	}
	ok := 0
	for range joins {
		switch err := <-errs; {
		case err == nil:
			ok++
		case !errors.Is(err, store.ErrInvite):
			t.Errorf("join: %v", err)
		}
	}
	if ok != 3 {
		t.Errorf("%d joins with an invite of 3 uses", ok)
	}
}

// A session UUID claimed through one node is refused through another.
func TestSessionIDAcrossNodes(t *testing.T) {
	url := testpg.URL(t)
	a, b := open(t, url), open(t, url)
	id, now := uuid.NewString(), time.Now()
	if err := a.UpsertSession(t.Context(), store.Session{Mesh: "team", PublicKey: randKey(), SessionID: id, Name: "amy", LastSeen: now}); err != nil {
		t.Fatal(err)
	}
	err := b.UpsertSession(t.Context(), store.Session{Mesh: "team", PublicKey: randKey(), SessionID: id, Name: "amy", LastSeen: now})
	if !errors.Is(err, store.ErrSessionTaken) {
		t.Errorf("another key with the id through another node: %v, want ErrSessionTaken", err)
	}
}

func randKey() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
}

func TestCluster(t *testing.T) {
	storetest.RunCluster(t, func(t *testing.T) func() store.Cluster {
		url := testpg.URL(t)
		return func() store.Cluster { return open(t, url) }
	})
}
