package main

import (
	"context"
	"runtime/debug"
	"time"
)

// A burst of connections (a reconnect storm after a restart, a fleet of
// sessions starting) leaves the broker's heap far larger than what the
// connections then hold: every handshake's garbage, collected but kept by
// the runtime until its next collection lowers the heap's goal, which an
// idle broker reaches only by the runtime's forced collection every two
// minutes. The broker gives that memory back once the burst is over.
const (
	burstConns = 1000            // connections accepted that make a burst
	burstQuiet = 2 * time.Second // without a new connection: the burst is over
)

// giveBackAfterBursts collects the garbage and returns the free memory to
// the system once a burst of connections is over, looking every second;
// it returns when ctx ends.
func giveBackAfterBursts(ctx context.Context, accepted func() uint64) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	w := burstWatch{last: accepted(), quietSince: time.Now()}
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if w.over(accepted(), now) {
				debug.FreeOSMemory()
			}
		}
	}
}

// burstWatch follows the count of accepted connections.
type burstWatch struct {
	freed      uint64 // the count when memory was last given back
	last       uint64
	quietSince time.Time
}

// over reports, seeing n connections accepted by now, whether a burst has
// just ended: burstConns since it last said so, then none for burstQuiet.
func (w *burstWatch) over(n uint64, now time.Time) bool {
	if n != w.last {
		w.last, w.quietSince = n, now
		return false
	}
	if n-w.freed < burstConns || now.Sub(w.quietSince) < burstQuiet {
		return false
	}
	w.freed = n
	return true
}
