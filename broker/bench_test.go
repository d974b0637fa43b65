package broker_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/claudemesh/claudemesh/broker"
	"github.com/claudemesh/claudemesh/client"
	"github.com/claudemesh/claudemesh/identity"
	"github.com/claudemesh/claudemesh/internal/testpg"
	"github.com/claudemesh/claudemesh/store/postgres"
	"github.com/claudemesh/claudemesh/wire"
)

// benchTimeout bounds one benchmark run, however many DMs it sends.
const benchTimeout = 10 * time.Minute

// benchBroker starts a broker on a SQLite store with the given
// synchronous mode.
func benchBroker(b *testing.B, synchronous string) *testBroker {
	b.Helper()
	st := openStore(b, filepath.Join(b.TempDir(), "broker.db"), synchronous)
	return serveStore(b, st, broker.Config{Logger: slog.New(slog.DiscardHandler)})
}

// benchClient connects a client that hands every DM's id to onDM.
func benchClient(b *testing.B, tb *testBroker, key *identity.Key, onDM func(id string)) *client.Session {
	b.Helper()
	c, err := client.Dial(client.Config{
		Endpoint:   tb.endpoint(),
		Key:        key,
		Name:       "bench",
		OnDM:       func(dm wire.DM) { onDM(dm.ID) },
		MinBackoff: 10 * time.Millisecond,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	if err := c.WaitConnected(waitCtx(b)); err != nil {
		b.Fatal(err)
	}
	return c
}

// waitDrained waits until the broker holds no unacked DM for key.
func waitDrained(b *testing.B, tb *testBroker, key *identity.Key) {
	b.Helper()
	eventually(b, "every DM is acked", func() bool {
		return len(pending(b, tb.st, key, time.Now())) == 0
	})
}

// BenchmarkDMPath measures one DM's whole path, one at a time: the sender's
// Send returns once the broker stored it, the broker pushes it, the
// recipient acks it. The box is sealed once, outside the loop; every DM has
// its own id. The acks of the last DMs are waited for before the timer
// stops.
func BenchmarkDMPath(b *testing.B) {
	for _, mode := range []string{"FULL", "NORMAL"} {
		b.Run(mode, func(b *testing.B) {
			tb := benchBroker(b, mode)
			dmPath(b, tb, tb)
		})
	}
}

// BenchmarkDMPathParallel has 8 senders, each with one DM in flight at a
// time, write to one recipient that acks in batches: the store commits
// concurrent DMs together. The box is sealed once, outside the loop.
func BenchmarkDMPathParallel(b *testing.B) {
	for _, mode := range []string{"FULL", "NORMAL"} {
		b.Run(fmt.Sprintf("%s/senders=%d", mode, parallelSenders), func(b *testing.B) {
			tb := benchBroker(b, mode)
			dmPathParallel(b, tb, tb)
		})
	}
}

// BenchmarkStores runs both DM paths on the embedded SQLite store (FULL),
// on PostgreSQL with one broker, and on PostgreSQL with two brokers — the
// senders on one, the recipient on the other, so that every DM crosses
// nodes — to compare them in one run. It needs PostgreSQL
// (CLAUDEMESH_TEST_POSTGRES).
func BenchmarkStores(b *testing.B) {
	setups := []struct {
		name    string
		brokers func(b *testing.B) (send, recv *testBroker)
	}{
		{"sqlite", func(b *testing.B) (*testBroker, *testBroker) {
			tb := benchBroker(b, "FULL")
			return tb, tb
		}},
		{"postgres/1node", func(b *testing.B) (*testBroker, *testBroker) {
			tb := pgBroker(b, testpg.URL(b), "a")
			return tb, tb
		}},
		{"postgres/2nodes", func(b *testing.B) (*testBroker, *testBroker) {
			url := testpg.URL(b)
			return pgBroker(b, url, "a"), pgBroker(b, url, "b")
		}},
	}
	for _, st := range setups {
		b.Run(st.name+"/one-at-a-time", func(b *testing.B) {
			send, recv := st.brokers(b)
			dmPath(b, send, recv)
		})
		b.Run(fmt.Sprintf("%s/senders=%d", st.name, parallelSenders), func(b *testing.B) {
			send, recv := st.brokers(b)
			dmPathParallel(b, send, recv)
		})
	}
}

// pgBroker starts node of a cluster on the PostgreSQL database at url.
func pgBroker(b *testing.B, url, node string) *testBroker {
	b.Helper()
	ps, err := postgres.Open(b.Context(), url, postgres.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ps.Close() })
	return serveStore(b, ps, broker.Config{Logger: slog.New(slog.DiscardHandler), Cluster: ps, Node: node})
}

// dmPath sends DMs one at a time from a client of send to a client of recv.
func dmPath(b *testing.B, send, recv *testBroker) {
	aliceKey, bobKey := newKey(b, testMesh), newKey(b, testMesh)
	got := make(chan string, 1)
	alice := benchClient(b, send, aliceKey, func(string) {})
	bob := benchClient(b, recv, bobKey, func(id string) { got <- id })
	nonce, box := seal(b, "benchmark payload of a typical short DM", aliceKey, bobKey)
	ids := make([]string, b.N)
	for i := range ids {
		ids[i] = uuid.NewString()
	}
	ctx, cancel := context.WithTimeout(b.Context(), benchTimeout)
	defer cancel()

	b.ReportAllocs()
	b.ResetTimer()
	for _, id := range ids {
		if _, err := alice.Send(ctx, id, bobKey.Public, nonce, box); err != nil {
			b.Fatal(err)
		}
		select {
		case dm := <-got:
			if dm != id {
				b.Fatalf("received %s, want %s", dm, id)
			}
		case <-ctx.Done():
			b.Fatalf("DM %s not received: %v", id, ctx.Err())
		}
		if err := bob.Ack([]string{id}); err != nil {
			b.Fatal(err)
		}
	}
	waitDrained(b, recv, bobKey)
	b.StopTimer()
}

// parallelSenders is how many senders dmPathParallel runs.
const parallelSenders = 8

// dmPathParallel has parallelSenders clients of send, each with one DM in
// flight at a time, write to one client of recv that acks in batches.
func dmPathParallel(b *testing.B, send, recv *testBroker) {
	bobKey := newKey(b, testMesh)
	got := make(chan string, b.N)
	bob := benchClient(b, recv, bobKey, func(id string) { got <- id })
	type sender struct {
		c     *client.Session
		nonce [wire.NonceSize]byte
		box   []byte
	}
	var ss []sender
	for range parallelSenders {
		k := newKey(b, testMesh)
		nonce, box := seal(b, "benchmark payload of a typical short DM", k, bobKey)
		ss = append(ss, sender{benchClient(b, send, k, func(string) {}), nonce, box})
	}
	ctx, cancel := context.WithTimeout(b.Context(), benchTimeout)
	defer cancel()

	b.ReportAllocs()
	b.ResetTimer()
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		errs = make(chan error, parallelSenders)
	)
	for _, s := range ss {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if _, err := s.c.Send(ctx, uuid.NewString(), bobKey.Public, s.nonce, s.box); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	// Ack what has arrived, in batches, until every DM has.
	for received := 0; received < b.N; {
		batch := []string{}
		select {
		case id := <-got:
			batch = append(batch, id)
		case err := <-errs:
			b.Fatal(err)
		case <-ctx.Done():
			b.Fatalf("%d of %d DMs received: %v", received, b.N, ctx.Err())
		}
	more:
		for len(batch) < wire.MaxAckIDs {
			select {
			case id := <-got:
				batch = append(batch, id)
			default:
				break more
			}
		}
		received += len(batch)
		if err := bob.Ack(batch); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	waitDrained(b, recv, bobKey)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "DMs/s")
}

// BenchmarkDMPingPong has two sessions answer each other: each acks the
// DM it received and sends the next one back, as sessions in a
// conversation do. One op is one DM.
func BenchmarkDMPingPong(b *testing.B) {
	for _, mode := range []string{"FULL", "NORMAL"} {
		b.Run(mode, func(b *testing.B) {
			tb := benchBroker(b, mode)
			keys := []*identity.Key{newKey(b, testMesh), newKey(b, testMesh)}
			got := []chan string{make(chan string, 1), make(chan string, 1)}
			peers := []*client.Session{
				benchClient(b, tb, keys[0], func(id string) { got[0] <- id }),
				benchClient(b, tb, keys[1], func(id string) { got[1] <- id }),
			}
			nonce, box := seal(b, "benchmark payload of a typical short DM", keys[0], keys[1])
			ids := make([]string, b.N)
			for i := range ids {
				ids[i] = uuid.NewString()
			}
			ctx, cancel := context.WithTimeout(b.Context(), benchTimeout)
			defer cancel()

			b.ReportAllocs()
			b.ResetTimer()
			var last string // the DM the sender of the next one received
			for i, id := range ids {
				from, to := i%2, 1-i%2
				if last != "" {
					if err := peers[from].Ack([]string{last}); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := peers[from].Send(ctx, id, keys[to].Public, nonce, box); err != nil {
					b.Fatal(err)
				}
				select {
				case last = <-got[to]:
					if last != id {
						b.Fatalf("received %s, want %s", last, id)
					}
				case <-ctx.Done():
					b.Fatalf("DM %s not received: %v", id, ctx.Err())
				}
			}
			if err := peers[b.N%2].Ack([]string{last}); err != nil {
				b.Fatal(err)
			}
			waitDrained(b, tb, keys[0])
			waitDrained(b, tb, keys[1])
			b.StopTimer()
		})
	}
}

// BenchmarkIdleSessions measures the memory an idle session connection
// holds: b.N sessions say hello and wait. The clients (small buffers,
// pooled write buffers) live in the same process; their share is the same
// whatever the broker does.
func BenchmarkIdleSessions(b *testing.B) {
	tb := benchBroker(b, "NORMAL")
	d := &websocket.Dialer{ReadBufferSize: 256, WriteBufferSize: 256, WriteBufferPool: &sync.Pool{}}
	keys := make([]*identity.Key, b.N)
	for i := range keys {
		keys[i] = newKey(b, testMesh)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	conns := make([]*rawConn, b.N)
	for i, k := range keys {
		conns[i] = tb.join(b, k, d)
	}
	b.StopTimer()
	// Every session's pump has read its empty queue once it answers.
	for _, c := range conns {
		c.write(b, wire.PeersRequest{Req: 1})
		for c.frame(b).Type() != wire.TypePeerList {
		}
	}
	// Each collection halves the stacks that use under a quarter of
	// theirs: a while idle, as a broker's sessions mostly are.
	for range 8 {
		runtime.GC()
	}
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapInuse-before.HeapInuse)/float64(b.N), "heap-B/conn")
	b.ReportMetric(float64(after.StackInuse-before.StackInuse)/float64(b.N), "stack-B/conn")
	runtime.KeepAlive(conns)
}
