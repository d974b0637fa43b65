package store

import (
	"context"
	"time"
)

// What an operator watches of a store. A Store may implement these besides
// Store; the broker uses them for its readiness check and its metrics and
// does without them when they are missing.

// Pinger is a Store that can say whether its database answers.
type Pinger interface {
	// Ping returns nil when the database answers a query now.
	Ping(ctx context.Context) error
}

// Totals is a Store that can count everything waiting in it.
type Totals interface {
	// QueueTotals counts the DMs waiting for any recipient at now
	// (unacked, unexpired) and the bytes of their boxes.
	QueueTotals(ctx context.Context, now time.Time) (count int, bytes int64, err error)
}

// CommitObserver is told of every commit of a store's writes: how many
// writes the transaction carried and how long the commit took, from its
// begin to the end of the commit. It is called on the committing goroutine:
// it must be quick and must not call the store.
type CommitObserver func(writes int, took time.Duration)
