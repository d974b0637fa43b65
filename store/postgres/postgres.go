// Package postgres is the scale-out store.Store: every broker node of a
// cluster shares one PostgreSQL database through it.
//
// # Durability
//
// Every write commits before it returns; what a commit survives is the
// server's business (synchronous_commit, replication). A write whose commit
// could not be confirmed (the server restarted, the connection dropped)
// returns an error: callers retry with the same message id, which is
// idempotent, and never report such a write as done.
//
// # Order
//
// Pending returns one recipient's DMs in commit order: Enqueue numbers each
// DM from a per-recipient row (table queues) that it keeps locked until it
// commits, so DMs for one recipient commit in the order of their numbers
// even when several nodes enqueue at once.
//
// # Migrations
//
// The schema is embedded (migrations/*.sql) and applied at Open inside a
// transaction that holds an advisory lock, so that brokers starting at the
// same moment apply each migration once.
package postgres

import (
	"cmp"
	"context"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/claudemesh/claudemesh/store"
)

// Config configures a Store. The zero value selects the defaults.
type Config struct {
	// Logger receives operational messages; nil discards them.
	Logger *slog.Logger
	// MaxConns bounds the connections the store opens. Default 16.
	MaxConns int32
	// StatementTimeout bounds every statement on the server. Default 10s.
	StatementTimeout time.Duration
	// OnCommit, when set, is told of every batch of DMs Enqueue committed.
	OnCommit store.CommitObserver
}

// Store is a store.Store on PostgreSQL.
type Store struct {
	pool             *pgxpool.Pool
	log              *slog.Logger
	statementTimeout time.Duration
	onCommit         store.CommitObserver

	enqueues   chan enqueueOp // DMs for the committers (enqueue.go); unbuffered
	quit       chan struct{}  // closed by Close
	closeOnce  sync.Once
	committers sync.WaitGroup
}

var _ store.Store = (*Store)(nil)

//go:embed migrations/*.sql
var migrations embed.FS

// migrationLock is the advisory lock key held while migrating.
const migrationLock = 0x636c6d6d // "clmm"

// Open connects to the database at url (postgres:// or postgresql://) and
// applies the migrations it has not seen.
func Open(ctx context.Context, url string, cfg Config) (*Store, error) {
	s, err := open(ctx, url, cfg)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", Redact(url), err)
	}
	return s, nil
}

func open(ctx context.Context, url string, cfg Config) (*Store, error) {
	if cfg.MaxConns < 0 || cfg.StatementTimeout < 0 {
		return nil, errors.New("negative pool size or statement timeout")
	}
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	pc.MaxConns = cmp.Or(cfg.MaxConns, 16)
	timeout := cmp.Or(cfg.StatementTimeout, 10*time.Second)
	pc.ConnConfig.RuntimeParams["statement_timeout"] = strconv.FormatInt(timeout.Milliseconds(), 10)
	pc.ConnConfig.RuntimeParams["application_name"] = cmp.Or(pc.ConnConfig.RuntimeParams["application_name"], "claudemesh")
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, err
	}
	s := &Store{
		pool:             pool,
		log:              cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler)),
		statementTimeout: timeout,
		onCommit:         cfg.OnCommit,
		enqueues:         make(chan enqueueOp),
		quit:             make(chan struct{}),
	}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	s.committers.Add(enqueueWorkers)
	for range enqueueWorkers {
		go s.commitEnqueues()
	}
	return s, nil
}

// Redact returns url without its password, for messages and logs.
func Redact(url string) string {
	cfg, err := pgconn.ParseConfig(url)
	if err != nil || cfg.Password == "" {
		return url
	}
	return strings.Replace(url, cfg.Password, "REDACTED", 1)
}

// Pool is the store's connection pool, for the broker's cluster
// coordination (presence, notifications) on the same database.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close stops the committers, once they have answered the DMs handed to
// them, and releases the pool. It is idempotent.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.quit)
		s.committers.Wait()
		s.pool.Close()
	})
	return nil
}

func (s *Store) migrate(ctx context.Context) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
			return fmt.Errorf("migrate: lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY)`); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		var current int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
			return fmt.Errorf("migrate: read schema version: %w", err)
		}
		pending, err := store.Migrations(migrations, "migrations", current)
		if err != nil {
			return err
		}
		for _, m := range pending {
			_, err := tx.Exec(ctx, m.SQL)
			if err == nil {
				_, err = tx.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, m.Version)
			}
			if err != nil {
				return fmt.Errorf("migration %s: %w", m.Name, err)
			}
			s.log.Info("applied migration", "version", m.Version, "name", m.Name)
		}
		return nil
	})
}

// wrap names a failed operation and reports a call on a closed pool as
// store.ErrClosed.
func (s *Store) wrap(op string, err error) error {
	if err != nil && strings.Contains(err.Error(), "closed pool") {
		err = store.ErrClosed
	}
	return fmt.Errorf("%s: %w", op, err)
}

// isUnique reports whether err violates the unique index or constraint
// named constraint ("" for any).
func isUnique(err error, constraint string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505" && (constraint == "" || pe.ConstraintName == constraint)
}

// at returns t in UTC, or the zero time for NULL.
func at(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// event maps the zero time (never) to NULL.
func event(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}
