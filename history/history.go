// Package history is a session's local record of its conversations: the
// DMs it sent and received (text, peer, time, thread) and the asks it made
// and was asked, in one SQLite file beside the session's key
// ($CLAUDEMESH_HOME/sessions/<mesh>/<uuid>.history.db, mode 0600). The MCP
// server writes it as DMs come and go; the history tool searches it (FTS5)
// so that a session can find what was said after its context was compacted
// or in an earlier run.
//
// A file belongs to one key: it records the key id it was made for, and a
// file found under another key (the session's key files were deleted and
// a new key made) is deleted, so deleting a session's key deletes its
// history too.
//
// Threads are local: a message that replies to another joins its thread
// only when the message it names was exchanged with the same peer (Ref), so
// a peer cannot attach its DM to a conversation it had no part in.
//
// The package uses database/sql and the SQLite driver alone: the MCP
// server links it without the broker or its store.
package history

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" driver
)

// DefaultRetention is how long messages are kept when Config.Retention is
// zero.
const DefaultRetention = 90 * 24 * time.Hour

// askKeep is how long an ask is kept after its deadline when no message
// history is kept, so that a late answer is still recognised.
const askKeep = 7 * 24 * time.Hour

// Directions of a message or ask.
const (
	In  = "in"  // received
	Out = "out" // sent
)

// Config configures a DB. The zero value keeps messages DefaultRetention.
type Config struct {
	// Retention is how long a message is kept; 0 means DefaultRetention,
	// a negative value keeps no message (asks are still kept until a
	// while after their deadline).
	Retention time.Duration
	Now       func() time.Time
}

// DB is one session's history. It is safe for concurrent use.
type DB struct {
	db        *sql.DB
	retention time.Duration
	now       func() time.Time
	// pruned is when Prune last ran (UnixNano): Add prunes again once
	// pruneEvery has passed.
	pruned atomic.Int64
}

// pruneEvery is how often a long-lived history is pruned as it is written.
const pruneEvery = time.Hour

// FileFor returns the history file of the session whose key is in keyFile
// (as identity.Keystore.Path gives it): beside it, under the same name.
func FileFor(keyFile string) string {
	return strings.TrimSuffix(keyFile, ".json") + ".history.db"
}

// ErrNotFile reports a history path that is something other than a regular
// file (a symbolic link, a directory, a device).
var ErrNotFile = errors.New("not a regular file")

// Open opens (creating it, mode 0600) the history file at path for the key
// keyID; "" opens a history kept in memory, for a session with an
// ephemeral key. A file made for another key is deleted first. A path that
// is a symbolic link or not a regular file is refused, never followed.
func Open(ctx context.Context, path, keyID string, cfg Config) (*DB, error) {
	if cfg.Retention == 0 {
		cfg.Retention = DefaultRetention
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	d := &DB{retention: cfg.Retention, now: cfg.Now}
	dsn := "file::memory:"
	if path != "" {
		if err := create(path); err != nil {
			return nil, fmt.Errorf("open history %s: %w", path, err)
		}
		dsn = "file:" + (&url.URL{Path: path}).EscapedPath() + "?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=busy_timeout(5000)&_txlock=immediate"
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open history %s: %w", path, err)
	}
	if path == "" {
		db.SetMaxOpenConns(1) // one connection is one in-memory database
	}
	d.db = db
	owner, err := d.migrate(ctx, keyID)
	if err == nil && owner != keyID && path != "" {
		// The key this history was made for is gone: so is its history.
		db.Close()
		if err := Remove(path); err != nil {
			return nil, fmt.Errorf("remove the history of a deleted key: %w", err)
		}
		return Open(ctx, path, keyID, cfg)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open history %s: %w", path, err)
	}
	if err := d.Prune(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return d, nil
}

// create makes path a regular file of mode 0600 unless it is one already.
func create(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case err == nil && !fi.Mode().IsRegular():
		return fmt.Errorf("%w (%s)", ErrNotFile, fi.Mode().Type())
	case err == nil:
		if fi.Mode().Perm() != 0o600 {
			return os.Chmod(path, 0o600)
		}
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Remove deletes the history file at path with its journal files; a file
// that does not exist is no error.
func Remove(path string) error {
	var errs []error
	for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

const schema = `
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
	n INTEGER PRIMARY KEY,
	id TEXT NOT NULL UNIQUE,
	dir TEXT NOT NULL,
	peer TEXT NOT NULL,
	peer_key_id TEXT NOT NULL,
	grp TEXT NOT NULL DEFAULT '',
	text TEXT NOT NULL,
	at INTEGER NOT NULL,
	reply_to TEXT NOT NULL DEFAULT '',
	reply_status TEXT NOT NULL DEFAULT '',
	thread TEXT NOT NULL,
	kind TEXT NOT NULL DEFAULT '',
	ask_id TEXT NOT NULL DEFAULT '',
	late INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS messages_at ON messages(at);
CREATE INDEX IF NOT EXISTS messages_thread ON messages(thread);
CREATE INDEX IF NOT EXISTS messages_peer ON messages(peer_key_id);
CREATE TABLE IF NOT EXISTS refs (
	id TEXT NOT NULL,
	peer_key_id TEXT NOT NULL,
	msg TEXT NOT NULL,
	PRIMARY KEY (id, peer_key_id)
);
CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5(text, peer, content='messages', content_rowid='n');
CREATE TRIGGER IF NOT EXISTS messages_ai AFTER INSERT ON messages BEGIN
	INSERT INTO messages_fts(rowid, text, peer) VALUES (new.n, new.text, new.peer);
END;
CREATE TRIGGER IF NOT EXISTS messages_ad AFTER DELETE ON messages BEGIN
	INSERT INTO messages_fts(messages_fts, rowid, text, peer) VALUES ('delete', old.n, old.text, old.peer);
END;
CREATE TABLE IF NOT EXISTS asks (
	id TEXT NOT NULL,
	dir TEXT NOT NULL,
	peer_key_id TEXT NOT NULL,
	peer TEXT NOT NULL,
	peer_key TEXT NOT NULL DEFAULT '',
	msg_id TEXT NOT NULL DEFAULT '',
	grp TEXT NOT NULL DEFAULT '',
	question TEXT NOT NULL,
	created INTEGER NOT NULL,
	deadline INTEGER NOT NULL,
	away INTEGER NOT NULL DEFAULT 0,
	answer TEXT,
	answer_id TEXT NOT NULL DEFAULT '',
	answered_at INTEGER NOT NULL DEFAULT 0,
	late INTEGER NOT NULL DEFAULT 0,
	seen INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (id, dir, peer_key_id)
);
CREATE INDEX IF NOT EXISTS asks_deadline ON asks(deadline);
`

// migrate creates the schema and returns the key id the file was made for
// (recording keyID in a new file).
func (d *DB) migrate(ctx context.Context, keyID string) (string, error) {
	if _, err := d.db.ExecContext(ctx, schema); err != nil {
		return "", err
	}
	if _, err := d.db.ExecContext(ctx, `INSERT OR IGNORE INTO meta(k, v) VALUES ('key_id', ?)`, keyID); err != nil {
		return "", err
	}
	var owner string
	err := d.db.QueryRowContext(ctx, `SELECT v FROM meta WHERE k = 'key_id'`).Scan(&owner)
	return owner, err
}

// Close closes the database.
func (d *DB) Close() error { return d.db.Close() }

// Prune deletes the messages older than the retention, and the asks whose
// deadline passed longer ago than that (or than a week, without history).
func (d *DB) Prune(ctx context.Context) error {
	now := d.now()
	d.pruned.Store(now.UnixNano())
	msgCut := now.Add(-d.retention)
	askCut := msgCut
	if d.retention < 0 {
		msgCut, askCut = now.Add(time.Hour), now.Add(-askKeep)
	}
	_, err := d.db.ExecContext(ctx, `DELETE FROM messages WHERE at < ?`, msgCut.UnixNano())
	if err == nil {
		_, err = d.db.ExecContext(ctx, `DELETE FROM refs WHERE msg NOT IN (SELECT id FROM messages)`)
	}
	if err == nil {
		_, err = d.db.ExecContext(ctx, `DELETE FROM asks WHERE deadline < ?`, askCut.UnixNano())
	}
	if err != nil {
		return fmt.Errorf("prune history: %w", err)
	}
	return nil
}

func unixTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
