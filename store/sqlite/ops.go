package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"
)

// Ping implements store.Pinger: the read pool answers a query and the
// writer still runs.
func (s *Store) Ping(ctx context.Context) error {
	select {
	case <-s.done:
		return s.readErr("ping", errors.New("writer stopped"))
	default:
	}
	var one int
	if err := s.r.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return s.readErr("ping", err)
	}
	return nil
}

// QueueTotals implements store.Totals.
func (s *Store) QueueTotals(ctx context.Context, now time.Time) (int, int64, error) {
	var n int
	var size int64
	err := s.r.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(box_len), 0) FROM messages
		WHERE acked = 0 AND expires_at > ?`, nanos(now)).Scan(&n, &size)
	if err != nil {
		return 0, 0, s.readErr("queue totals", err)
	}
	return n, size, nil
}

// Backup writes a consistent copy of the database at path into the new
// file to (VACUUM INTO), while a broker may be writing to it: the copy is
// one snapshot of committed data, made on a connection of its own, which
// holds up no writer. The copy is written beside to, synced, given mode
// 0600 and only then linked into place; a file already at to is not
// replaced.
func Backup(ctx context.Context, path, to string) error {
	if err := backup(ctx, path, to); err != nil {
		return fmt.Errorf("back up %s: %w", path, err)
	}
	return nil
}

func backup(ctx context.Context, path, to string) error {
	path, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	if _, err := os.Stat(path); err != nil {
		return err
	}
	if _, err := os.Lstat(to); err == nil {
		return fmt.Errorf("%s exists", to)
	}
	dir := filepath.Dir(to)
	tmp, err := os.CreateTemp(dir, ".backup-*.db")
	if err != nil {
		return err
	}
	tmpName := tmp.Name()
	tmp.Close()
	// VACUUM INTO wants a file that does not exist, or is empty.
	defer os.Remove(tmpName)
	db, err := sql.Open("sqlite", dsn(path, url.Values{"_pragma": {"busy_timeout(5000)"}}))
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, tmpName); err != nil {
		return err
	}
	f, err := os.OpenFile(tmpName, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = errors.Join(f.Chmod(0o600), f.Sync(), f.Close())
	if err != nil {
		return err
	}
	if err := os.Link(tmpName, to); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
