// Package sqlite is the embedded store.Store: one SQLite database file in WAL
// mode, written through the pure-Go modernc.org/sqlite driver.
//
// # Durability
//
// Every write (Enqueue, Receipt, Ack, Expire, UpsertSession, ForgetSession)
// returns only after the transaction that holds it has committed. What
// "committed" survives depends on Config.Synchronous:
//
//   - FULL (the default) syncs the WAL on every commit: an acknowledged DM
//     survives a crash of the process, of the operating system and a power
//     loss.
//   - NORMAL syncs only at checkpoints: an acknowledged DM survives a crash of
//     the broker process, but the last commits before an operating-system
//     crash or a power loss may be lost. Commits are several times cheaper.
//
// # Group commit
//
// A single writer goroutine owns the one write connection. Each write is
// handed to it as an operation; the writer takes the first waiting operation
// plus every other one already queued (up to Config.BatchMax), runs them in
// one transaction, commits once and then answers each caller. Under load the
// cost of a sync is thus shared by a whole batch. An operation's own outcome
// (such as store.ErrConflict, or any error its statements return) does not
// affect the others in its batch: each runs under a savepoint of its own. A
// failure to commit fails every operation of the batch.
//
// A caller's context bounds how long it waits, not what happens: once an
// operation was queued it may still commit after the caller gave up.
//
// Reads (Pending, Status, Session, Sessions) use a separate pool of read-only
// connections and do not wait for the writer.
//
// # Checkpoints
//
// With NORMAL, a checkpointer goroutine, on a connection of its own, copies
// the WAL into the database file (a passive checkpoint, which waits for no
// one) after commits, at most every checkpointEvery. The writer never
// checkpoints, so no commit waits for the database file's sync: SQLite's
// own automatic checkpoint would run inside the commit that crosses 1000
// pages. With FULL, where every commit syncs the WAL, that automatic
// checkpoint stays.
package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/claudemesh/claudemesh/store"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Config configures a Store. The zero value is valid and selects the
// defaults.
type Config struct {
	// Logger receives operational messages; nil discards them.
	Logger *slog.Logger
	// Synchronous is "FULL" (default; durable across power loss) or
	// "NORMAL" (durable across a crash of the process only). See the package
	// documentation.
	Synchronous string
	// BatchMax is the largest number of writes committed in one
	// transaction; 0 means 256.
	BatchMax int
	// OnCommit, when set, is told of every batch committed (or failed).
	OnCommit store.CommitObserver
	// Linger is how long receipts and acks may wait for a DM to share its
	// commit; 0 means 2 ms.
	Linger time.Duration
}

// Store is a store.Store backed by one SQLite database file.
type Store struct {
	log      *slog.Logger
	w        *sql.DB              // one connection, used by the writer goroutine only
	r        *sql.DB              // read-only pool
	ws       map[string]*sql.Stmt // the writer's prepared statements (stmts.go); read-only after Open
	rs       map[string]*sql.Stmt // the read pool's prepared statements; read-only after Open
	bound    map[string]*sql.Stmt // ws bound to the transaction being committed; commit's alone
	batchMax int
	onCommit store.CommitObserver
	linger   time.Duration

	ops  chan op       // writes waiting for the writer
	quit chan struct{} // closed by Close: no new writes
	done chan struct{} // closed when the writer has returned

	cp     *sql.DB       // the checkpointer's connection
	wrote  chan struct{} // the writer committed; capacity 1
	cpDone chan struct{} // closed when the checkpointer has returned

	closeOnce sync.Once
}

var _ store.Store = (*Store)(nil)

// op is one write. apply runs inside the batch transaction; it reports the
// operation's own outcome through variables it captured and returns an error
// only for a database failure, which fails the whole batch. done receives the
// batch's outcome once it has committed or failed.
type op struct {
	apply func(ctx context.Context, tx *sql.Tx) error
	done  chan error
	// lazy: the writer may hold it up to Config.Linger for a write that is
	// not lazy, to share its commit. Acks and receipts are: a DM stored
	// just after an ack then waits for no commit of the ack's own, and the
	// ack, which its client does not wait for, is recorded that much later
	// at most.
	lazy bool
}

// Open opens the database at path, creating it and its directory if needed,
// and brings its schema up to date. Close the Store when done.
func Open(ctx context.Context, path string, cfg Config) (*Store, error) {
	s, err := open(ctx, path, cfg)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return s, nil
}

func open(ctx context.Context, path string, cfg Config) (*Store, error) {
	mode := strings.ToUpper(cmp.Or(cfg.Synchronous, "FULL"))
	if mode != "FULL" && mode != "NORMAL" {
		return nil, fmt.Errorf("synchronous %q: want FULL or NORMAL", cfg.Synchronous)
	}
	if cfg.BatchMax < 0 {
		return nil, fmt.Errorf("negative batch size %d", cfg.BatchMax)
	}
	if path == "" {
		return nil, errors.New("empty path")
	}
	path, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	// Create the file before SQLite does so that it is never readable by
	// others, and tighten an existing one.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	f.Close()
	if err := os.Chmod(path, 0o600); err != nil {
		return nil, err
	}

	s := &Store{
		log:      cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler)),
		batchMax: cmp.Or(cfg.BatchMax, 256),
		linger:   cmp.Or(cfg.Linger, 2*time.Millisecond),
		onCommit: cfg.OnCommit,
		bound:    make(map[string]*sql.Stmt, len(writerStmts)),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
		wrote:    make(chan struct{}, 1),
		cpDone:   make(chan struct{}),
	}
	s.ops = make(chan op, s.batchMax)

	s.w, err = sql.Open("sqlite", dsn(path, url.Values{
		"_pragma": {"busy_timeout(5000)", "journal_mode(WAL)", "synchronous(" + mode + ")", "foreign_keys(1)",
			fmt.Sprintf("wal_autocheckpoint(%d)", autoCheckpoint[mode])},
		"_txlock": {"immediate"},
	}))
	if err != nil {
		return nil, err
	}
	s.w.SetMaxOpenConns(1)
	if err := migrate(ctx, s.w, s.log); err != nil {
		s.w.Close()
		return nil, err
	}
	// SQLite gives the -wal and -shm files the mode of the database file;
	// make sure of it for files left by an earlier version.
	for _, suffix := range []string{"-wal", "-shm"} {
		if err := os.Chmod(path+suffix, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.w.Close()
			return nil, err
		}
	}

	s.r, err = sql.Open("sqlite", dsn(path, url.Values{
		"_pragma": {"busy_timeout(5000)", "query_only(1)"},
	}))
	if err != nil {
		s.w.Close()
		return nil, err
	}
	readers := max(4, runtime.GOMAXPROCS(0))
	s.r.SetMaxOpenConns(readers)
	s.r.SetMaxIdleConns(readers) // keep connections and their prepared statements
	s.cp, err = sql.Open("sqlite", dsn(path, url.Values{
		"_pragma": {"busy_timeout(5000)", "synchronous(" + mode + ")"},
	}))
	if err != nil {
		s.w.Close()
		s.r.Close()
		return nil, err
	}
	s.cp.SetMaxOpenConns(1)
	if s.ws, err = prepare(ctx, s.w, writerStmts); err == nil {
		if s.rs, err = prepare(ctx, s.r, readStmts); err != nil {
			closeStmts(s.ws)
		}
	}
	if err != nil {
		s.w.Close()
		s.r.Close()
		s.cp.Close()
		return nil, err
	}

	go s.writeLoop()
	if autoCheckpoint[mode] == 0 {
		go s.checkpointLoop()
	} else {
		close(s.cpDone)
	}
	s.log.Info("store opened", "path", path, "synchronous", mode)
	return s, nil
}

// dsn builds a driver data source name for the database file at the absolute
// path.
func dsn(path string, q url.Values) string {
	u := url.URL{Scheme: "file", OmitHost: true, Path: filepath.ToSlash(path), RawQuery: q.Encode()}
	return u.String()
}

// Close stops accepting writes, lets the writer commit those already queued,
// waits for it and closes the database. Calls made after Close return an error
// wrapping store.ErrClosed. Close is idempotent; only the first call reports
// an error.
func (s *Store) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.quit)
		<-s.done
		<-s.cpDone
		if err = errors.Join(closeStmts(s.ws), closeStmts(s.rs), s.cp.Close(), s.w.Close(), s.r.Close()); err != nil {
			err = fmt.Errorf("close store: %w", err)
		}
	})
	return err
}

func (s *Store) closed() bool {
	select {
	case <-s.quit:
		return true
	default:
		return false
	}
}

// readAll runs the read query on the read pool and scans each row of it
// with scan; what names the read in errors.
func readAll[T any](ctx context.Context, s *Store, what string, scan func(*sql.Rows) (T, error), query string, args ...any) ([]T, error) {
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, s.readErr(what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, s.readErr(what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, s.readErr(what, err)
	}
	return out, nil
}

// readErr wraps the error of a read; a read that failed because the store was
// closed under it reports store.ErrClosed.
func (s *Store) readErr(what string, err error) error {
	if s.closed() && !errors.Is(err, store.ErrNotFound) {
		err = store.ErrClosed
	}
	return fmt.Errorf("%s: %w", what, err)
}

// write hands apply to the writer and waits until its batch has committed.
func (s *Store) write(ctx context.Context, apply func(ctx context.Context, tx *sql.Tx) error) error {
	return s.submit(ctx, op{apply: apply})
}

// writeLazy is write for what may commit up to Config.Linger later, with
// the next write that is not lazy.
func (s *Store) writeLazy(ctx context.Context, apply func(ctx context.Context, tx *sql.Tx) error) error {
	return s.submit(ctx, op{apply: apply, lazy: true})
}

func (s *Store) submit(ctx context.Context, o op) error {
	if s.closed() {
		return store.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	o.done = make(chan error, 1)
	select {
	case s.ops <- o:
	case <-s.quit:
		return store.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-o.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		// The writer answers before it returns: no answer now means the
		// operation slipped into the queue after the writer's last look.
		select {
		case err := <-o.done:
			return err
		default:
			return store.ErrClosed
		}
	}
}

// writeLoop is the writer goroutine. It commits batches until Close, then
// commits what is still queued and returns.
func (s *Store) writeLoop() {
	defer close(s.done)
	batch := make([]op, 0, s.batchMax)
	linger := time.NewTimer(0)
	defer linger.Stop()
	for {
		batch = batch[:0]
		lazy := true // every op of the batch is lazy
		take := func(o op) {
			batch = append(batch, o)
			lazy = lazy && o.lazy
		}
		// drain takes what is queued, up to a full batch.
		drain := func() {
			for len(batch) < s.batchMax {
				select {
				case o := <-s.ops:
					take(o)
				default:
					return
				}
			}
		}
		select {
		case o := <-s.ops:
			take(o)
		case <-s.quit:
		}
		drain()
		if len(batch) == 0 {
			return // closed and nothing left
		}
		if lazy && !s.closed() {
			linger.Reset(s.linger)
		wait:
			for len(batch) < s.batchMax && lazy {
				select {
				case o := <-s.ops:
					take(o)
				case <-linger.C:
					break wait
				case <-s.quit:
					break wait
				}
			}
			linger.Stop()
			drain() // what came with the write that ended the wait
		}
		start := time.Now()
		errs := s.commit(batch)
		if s.onCommit != nil {
			s.onCommit(len(batch), time.Since(start))
		}
		for i, o := range batch {
			o.done <- errs[i]
		}
		clear(batch)
		select {
		case s.wrote <- struct{}{}:
		default:
		}
	}
}

// checkpointEvery is the least time between two checkpoints of the
// checkpointer.
const checkpointEvery = time.Second

// autoCheckpoint is the WAL size, in pages, at which a commit checkpoints,
// by synchronous mode; 0 leaves checkpoints to the checkpointer. With FULL
// every commit syncs the WAL anyway, and a checkpointer's sync of the
// database file beside it slows commits more than it spares them.
var autoCheckpoint = map[string]int{"FULL": 1000, "NORMAL": 0}

// checkpointLoop checkpoints the WAL after commits, at most every
// checkpointEvery, until the store closes. A passive checkpoint copies
// what no reader still needs and waits for nothing; SQLite starts the WAL
// over once a checkpoint has copied all of it.
func (s *Store) checkpointLoop() {
	defer close(s.cpDone)
	pause := time.NewTimer(0)
	defer pause.Stop()
	for {
		select {
		case <-s.wrote:
		case <-s.quit:
			return
		}
		var busy, frames, copied int
		err := s.cp.QueryRow("PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &copied)
		if err != nil {
			s.log.Warn("checkpoint", "err", err)
		}
		pause.Reset(checkpointEvery)
		select {
		case <-pause.C:
		case <-s.quit:
			return
		}
	}
}

// commit runs batch in one transaction and returns each operation's
// outcome. Each operation runs under a savepoint of its own: one that
// fails (a conflict, an invalid invite) is rolled back alone and the
// others commit. A failure to begin or commit fails them all.
func (s *Store) commit(batch []op) []error {
	errs := make([]error, len(batch))
	fail := func(err error) []error {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	// The writer does not inherit any caller's context: a queued operation
	// is either committed with its batch or failed with it.
	ctx := context.Background()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fail(fmt.Errorf("begin: %w", err))
	}
	// The transaction closes the statements bound to it when it ends.
	defer clear(s.bound)
	for i, o := range batch {
		if _, err := s.txStmt(ctx, tx, qSavepoint).ExecContext(ctx); err != nil {
			tx.Rollback()
			return fail(fmt.Errorf("savepoint: %w", err))
		}
		if errs[i] = o.apply(ctx, tx); errs[i] != nil {
			_, err = s.txStmt(ctx, tx, qRollbackTo).ExecContext(ctx)
		}
		if err == nil {
			_, err = s.txStmt(ctx, tx, qRelease).ExecContext(ctx)
		}
		if err != nil {
			tx.Rollback()
			return fail(fmt.Errorf("savepoint: %w", err))
		}
	}
	if err := tx.Commit(); err != nil {
		return fail(fmt.Errorf("commit: %w", err))
	}
	return errs
}

// nanos encodes t as unix nanoseconds, clamped to the int64 range; the zero
// time becomes math.MinInt64.
func nanos(t time.Time) int64 {
	switch {
	case t.Before(time.Unix(0, math.MinInt64)):
		return math.MinInt64
	case t.After(time.Unix(0, math.MaxInt64)):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// fromNanos decodes what nanos encoded, in UTC.
func fromNanos(n int64) time.Time {
	if n == math.MinInt64 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// eventNanos encodes the time of an event that may not have happened: the
// zero time (never) becomes 0.
func eventNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return nanos(t)
}

// fromEventNanos decodes what eventNanos encoded.
func fromEventNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return fromNanos(n)
}
