package postgres

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/claudemesh/claudemesh/store"
)

// Enqueue commits in groups. Enqueue hands its DM to one of
// enqueueWorkers committers. A committer takes the first DM waiting and
// every other one already waiting (up to enqueueBatch) and stores them all
// in one pipelined round trip that is one transaction: a statement per DM
// that numbers it in its recipient's queue and inserts it. Under load the
// cost of a commit, a round trip and the server's flush of its log, is
// shared by the whole batch. A batch numbers its recipients' queues in key
// order, as EnqueueGroup does, so that the batches of several committers
// and nodes never wait for each other in a cycle. A statement that fails
// aborts its whole transaction: the batch's DMs are then stored again one
// by one, so that one bad DM fails only itself.
const (
	enqueueWorkers = 4
	enqueueBatch   = 128
)

// enqueueOp is a DM handed to a committer, which answers on done.
type enqueueOp struct {
	m    store.Message
	done chan enqueued // capacity 1
}

type enqueued struct {
	res store.EnqueueResult
	err error
}

// insertQueued numbers a DM in its recipient's queue and inserts it;
// nothing is inserted when its id is stored already (the number is then
// skipped, which the queue's order does not mind).
const insertQueued = `WITH q AS (
		INSERT INTO queues (mesh, to_key, last_seq) VALUES ($1, $2, 1)
		ON CONFLICT (mesh, to_key) DO UPDATE SET last_seq = queues.last_seq + 1 RETURNING last_seq)
	INSERT INTO messages
		(mesh, to_key, seq, id, from_key, from_name, from_session, sender, nonce, box, box_len, created_at, expires_at)
	SELECT $1, $2, q.last_seq, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 FROM q
	ON CONFLICT (id) DO NOTHING`

func insertArgs(m store.Message) []any {
	return []any{m.Mesh, m.To, m.ID, m.From, m.FromName, m.FromSession, m.SenderKey(), m.Nonce, m.Box, len(m.Box),
		m.CreatedAt, m.ExpiresAt}
}

// queueOrder orders DMs by the queue they are numbered in.
func queueOrder(a, b store.Message) int {
	return cmp.Or(bytes.Compare(a.To, b.To), cmp.Compare(a.Mesh, b.Mesh))
}

// Enqueue implements store.Store. An acknowledged or expired message keeps
// no payload, so a resent ID matching one by mesh, sender and recipient
// reports store.AlreadyAcked or store.AlreadyExpired whatever its nonce and
// box. A resend after the stored ExpiresAt (judged by m.CreatedAt) reports
// store.AlreadyExpired even before Expire dropped the payload. A caller's
// context bounds how long it waits, not what happens: a DM handed to a
// committer may still be stored after the caller gave up.
func (s *Store) Enqueue(ctx context.Context, m store.Message) (store.EnqueueResult, error) {
	if err := m.Check(); err != nil {
		return 0, fmt.Errorf("enqueue: %w", err)
	}
	op := enqueueOp{m: m, done: make(chan enqueued, 1)}
	var d enqueued
	select {
	case s.enqueues <- op:
		select {
		case d = <-op.done:
		case <-ctx.Done():
			d.err = ctx.Err()
		}
	case <-s.quit:
		d.err = store.ErrClosed
	case <-ctx.Done():
		d.err = ctx.Err()
	}
	if d.err != nil {
		return 0, s.wrap("enqueue "+m.ID, d.err)
	}
	return d.res, nil
}

// commitEnqueues is a committer: it stores the DMs Enqueue hands it, in
// batches, until the store closes. enqueues is unbuffered, so every DM
// handed over is answered.
func (s *Store) commitEnqueues() {
	defer s.committers.Done()
	batch := make([]enqueueOp, 0, enqueueBatch)
	for {
		select {
		case op := <-s.enqueues:
			batch = append(batch[:0], op)
		case <-s.quit:
			return
		}
	more:
		for len(batch) < enqueueBatch {
			select {
			case op := <-s.enqueues:
				batch = append(batch, op)
			default:
				break more
			}
		}
		s.storeBatch(batch)
		clear(batch)
	}
}

// storeBatch stores batch in one transaction and answers each DM.
func (s *Store) storeBatch(batch []enqueueOp) {
	// Not a caller's context: a DM is stored with its batch or fails with
	// it, whoever still waits.
	ctx, cancel := context.WithTimeout(context.Background(), 2*s.statementTimeout)
	defer cancel()
	slices.SortStableFunc(batch, func(a, b enqueueOp) int { return queueOrder(a.m, b.m) })
	start := time.Now()
	stored, err := s.insertBatch(ctx, batch)
	if err != nil {
		s.log.Debug("enqueue batch failed; storing its DMs one by one", "dms", len(batch), "err", err)
		for _, op := range batch {
			var d enqueued
			d.err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
				d.res, err = enqueueIn(ctx, tx, op.m)
				return err
			})
			op.done <- d
		}
		return
	}
	if s.onCommit != nil {
		s.onCommit(len(batch), time.Since(start))
	}
	for i, op := range batch {
		d := enqueued{res: store.Stored}
		if !stored[i] {
			d.res, d.err = existing(ctx, s.pool, op.m)
		}
		op.done <- d
	}
}

// insertBatch runs insertQueued for each DM of batch in one pipelined
// implicit transaction; stored[i] reports that batch[i] was inserted.
func (s *Store) insertBatch(ctx context.Context, batch []enqueueOp) (stored []bool, err error) {
	var b pgx.Batch
	for _, op := range batch {
		b.Queue(insertQueued, insertArgs(op.m)...)
	}
	res := s.pool.SendBatch(ctx, &b)
	stored = make([]bool, len(batch))
	for i := range batch {
		tag, err := res.Exec()
		if err != nil {
			res.Close()
			return nil, err
		}
		stored[i] = tag.RowsAffected() == 1
	}
	return stored, res.Close()
}

// querier is what enqueueIn and existing need of a transaction or the
// pool.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// enqueueIn stores m through q as Enqueue does.
func enqueueIn(ctx context.Context, q querier, m store.Message) (store.EnqueueResult, error) {
	tag, err := q.Exec(ctx, insertQueued, insertArgs(m)...)
	if err != nil {
		return 0, fmt.Errorf("insert: %w", err)
	}
	if tag.RowsAffected() == 1 {
		return store.Stored, nil
	}
	return existing(ctx, q, m)
}
