package history

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
	"unicode"
)

// Reply states of a message that names another (Message.ReplyStatus).
const (
	// ReplyKnown: the message it replies to was exchanged with the same
	// peer; the two are in one thread.
	ReplyKnown = "known"
	// ReplyUnknown: this session has no message of that id with that peer
	// (never seen, pruned, or another conversation's): the message starts
	// a thread of its own.
	ReplyUnknown = "unknown"
)

// Message is one DM in the history.
type Message struct {
	ID  string `json:"id"`
	Dir string `json:"dir" jsonschema:"in (received) or out (sent)"`
	// Peer is the other side: a display name, or @GROUP for a DM sent to
	// a group.
	Peer      string    `json:"peer"`
	PeerKeyID string    `json:"peer_key_id,omitempty"`
	Group     string    `json:"group,omitempty"`
	Text      string    `json:"text"`
	At        time.Time `json:"at"`
	ReplyTo   string    `json:"reply_to,omitempty" jsonschema:"the id of the message this one replies to"`
	// ReplyStatus says whether ReplyTo is a message of this conversation.
	ReplyStatus string `json:"reply_status,omitempty" jsonschema:"known (a message exchanged with the same peer: same thread) or unknown (not one this session can match: the message starts a thread of its own)"`
	Thread      string `json:"thread" jsonschema:"id of the first message of the thread; history with thread lists it"`
	Kind        string `json:"kind,omitempty" jsonschema:"ask (a question), answer (the answer to an ask) or empty for a plain DM"`
	AskID       string `json:"ask_id,omitempty"`
	Late        bool   `json:"late,omitempty" jsonschema:"an answer sent after the ask's deadline"`
}

// Ref is an id under which a peer knows a message: the message's own id
// for a DM between two sessions, each recipient's own DM id for a DM sent
// to a group.
type Ref struct {
	ID        string
	PeerKeyID string
}

// Thread returns the thread of the message that peerKeyID knows as id, and
// whether there is one: a message this session exchanged with that peer.
func (d *DB) Thread(ctx context.Context, id, peerKeyID string) (string, bool, error) {
	var thread string
	err := d.db.QueryRowContext(ctx, `SELECT m.thread FROM refs r JOIN messages m ON m.id = r.msg WHERE r.id = ? AND r.peer_key_id = ?`, id, peerKeyID).Scan(&thread)
	if err == sql.ErrNoRows {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("history: find thread: %w", err)
	}
	return thread, true, nil
}

// Known reports whether the history holds a message of this id.
func (d *DB) Known(ctx context.Context, id string) (thread string, ok bool, err error) {
	err = d.db.QueryRowContext(ctx, `SELECT thread FROM messages WHERE id = ?`, id).Scan(&thread)
	if err == sql.ErrNoRows {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("history: find message: %w", err)
	}
	return thread, true, nil
}

// Add records m, known to the peers under refs. A message already recorded
// (the same id, delivered again) is left as it is. With no history kept
// (a negative retention) it records nothing.
func (d *DB) Add(ctx context.Context, m Message, refs []Ref) error {
	if d.retention < 0 {
		return nil
	}
	if m.Thread == "" {
		m.Thread = m.ID
	}
	if d.now().Sub(time.Unix(0, d.pruned.Load())) > pruneEvery {
		if err := d.Prune(ctx); err != nil {
			return err
		}
	}
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("history: add message: %w", err)
	}
	defer tx.Rollback()
	_, err = tx.ExecContext(ctx, `INSERT OR IGNORE INTO messages(id, dir, peer, peer_key_id, grp, text, at, reply_to, reply_status, thread, kind, ask_id, late)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		m.ID, m.Dir, m.Peer, m.PeerKeyID, m.Group, m.Text, nanos(m.At), m.ReplyTo, m.ReplyStatus, m.Thread, m.Kind, m.AskID, m.Late)
	for _, r := range refs {
		if err != nil {
			break
		}
		_, err = tx.ExecContext(ctx, `INSERT OR IGNORE INTO refs(id, peer_key_id, msg) VALUES (?, ?, ?)`, r.ID, r.PeerKeyID, m.ID)
	}
	if err == nil {
		err = tx.Commit()
	}
	if err != nil {
		return fmt.Errorf("history: add message: %w", err)
	}
	return nil
}

// Query selects messages; its zero value selects the newest.
type Query struct {
	// With is a peer: its display name (case-insensitive), key id, or
	// @GROUP.
	With string
	// Text is searched for: every word must occur (full-text, prefix of a
	// word allowed with a trailing *).
	Text   string
	Thread string
	Limit  int
}

// How many messages Find returns: by default, and at most.
const (
	DefaultLimit = 20
	MaxLimit     = 200
)

// Find returns the messages q selects, newest first.
func (d *DB) Find(ctx context.Context, q Query) ([]Message, error) {
	switch {
	case q.Limit <= 0:
		q.Limit = DefaultLimit
	case q.Limit > MaxLimit:
		q.Limit = MaxLimit
	}
	var where []string
	var args []any
	from := "messages m"
	if t := ftsQuery(q.Text); t != "" {
		from = "messages m JOIN messages_fts f ON f.rowid = m.n"
		where = append(where, "messages_fts MATCH ?")
		args = append(args, t)
	}
	if w := strings.TrimSpace(q.With); w != "" {
		if g, ok := strings.CutPrefix(w, "@"); ok && g != "" {
			where = append(where, "(m.grp = ? OR lower(m.peer) = lower(?))")
			args = append(args, g, g)
		} else {
			where = append(where, "(lower(m.peer) = lower(?) OR m.peer_key_id = ?)")
			args = append(args, w, strings.ToLower(w))
		}
	}
	if q.Thread != "" {
		where = append(where, "m.thread = ?")
		args = append(args, q.Thread)
	}
	stmt := "SELECT m.id, m.dir, m.peer, m.peer_key_id, m.grp, m.text, m.at, m.reply_to, m.reply_status, m.thread, m.kind, m.ask_id, m.late FROM " + from
	if len(where) > 0 {
		stmt += " WHERE " + strings.Join(where, " AND ")
	}
	stmt += " ORDER BY m.at DESC, m.n DESC LIMIT ?"
	args = append(args, q.Limit)
	rows, err := d.db.QueryContext(ctx, stmt, args...)
	if err != nil {
		return nil, fmt.Errorf("history: search: %w", err)
	}
	defer rows.Close()
	out := []Message{}
	for rows.Next() {
		var m Message
		var at int64
		if err := rows.Scan(&m.ID, &m.Dir, &m.Peer, &m.PeerKeyID, &m.Group, &m.Text, &at, &m.ReplyTo, &m.ReplyStatus, &m.Thread, &m.Kind, &m.AskID, &m.Late); err != nil {
			return nil, fmt.Errorf("history: search: %w", err)
		}
		m.At = unixTime(at)
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("history: search: %w", err)
	}
	return out, nil
}

// ftsQuery turns words into an FTS5 query in which each word is a quoted
// string, so that nothing in them is FTS5 syntax; a trailing * makes a
// word a prefix.
func ftsQuery(text string) string {
	var terms []string
	for _, w := range strings.Fields(text) {
		prefix := strings.HasSuffix(w, "*")
		w = strings.TrimRight(w, "*")
		if !strings.ContainsFunc(w, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }) {
			continue // no word in it: it would match nothing
		}
		t := `"` + strings.ReplaceAll(w, `"`, `""`) + `"`
		if prefix {
			t += "*"
		}
		terms = append(terms, t)
	}
	return strings.Join(terms, " AND ")
}

// Keeps reports whether messages are kept (the retention is not off).
func (d *DB) Keeps() bool { return d.retention >= 0 }

// PeerRef returns the id under which peerKeyID knows this session's
// message msgID (its own DM id of a group DM), and the message's thread.
func (d *DB) PeerRef(ctx context.Context, msgID, peerKeyID string) (ref, thread string, ok bool, err error) {
	err = d.db.QueryRowContext(ctx, `SELECT r.id, m.thread FROM refs r JOIN messages m ON m.id = r.msg WHERE r.msg = ? AND r.peer_key_id = ?`, msgID, peerKeyID).Scan(&ref, &thread)
	if err == sql.ErrNoRows {
		return "", "", false, nil
	}
	if err != nil {
		return "", "", false, fmt.Errorf("history: find message: %w", err)
	}
	return ref, thread, true, nil
}
