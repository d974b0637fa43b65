package sqlite

import (
	"crypto/rand"
	"path/filepath"
	"testing"
	"time"

	"github.com/claudemesh/claudemesh/store"
)

// BenchmarkDMCalls measures the store calls the broker makes for one DM
// to a connected recipient: the queue's room (QueueStats), Enqueue, the
// recipient's read of its queue after the previous DM (Pending), its
// received receipt and its Ack. parallel runs recipients of their own
// concurrently, whose writes share commits.
func BenchmarkDMCalls(b *testing.B) {
	for _, mode := range []string{"FULL", "NORMAL"} {
		for _, parallel := range []bool{false, true} {
			name := mode + "/one-at-a-time"
			if parallel {
				name = mode + "/parallel"
			}
			b.Run(name, func(b *testing.B) {
				s := openAt(b, filepath.Join(b.TempDir(), "broker.db"), Config{Synchronous: mode})
				now := time.Now()
				recipient := func() func() {
					to := make([]byte, 32)
					rand.Read(to)
					var cursor string
					return func() {
						ctx := b.Context()
						if _, _, err := s.QueueStats(ctx, "team", to, nil, now); err != nil {
							b.Error(err)
							return
						}
						m := newMessage(to, now)
						if _, err := s.Enqueue(ctx, m); err != nil {
							b.Error(err)
							return
						}
						msgs, err := s.Pending(ctx, "team", to, now, cursor, 128)
						if err != nil || len(msgs) != 1 || msgs[0].ID != m.ID {
							b.Errorf("pending after %q: %d messages, err %v", cursor, len(msgs), err)
							return
						}
						cursor = m.ID
						if _, err := s.Receipt(ctx, "team", to, []string{m.ID}, store.ReceiptReceived, now); err != nil {
							b.Error(err)
						}
						if _, err := s.Ack(ctx, "team", to, []string{m.ID}, now, false); err != nil {
							b.Error(err)
						}
					}
				}
				b.ReportAllocs()
				if !parallel {
					dm := recipient()
					for b.Loop() {
						dm()
					}
					return
				}
				b.SetParallelism(4) // 4 × GOMAXPROCS recipients
				b.RunParallel(func(pb *testing.PB) {
					dm := recipient()
					for pb.Next() {
						dm()
					}
				})
			})
		}
	}
}
