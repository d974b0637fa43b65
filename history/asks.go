package history

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Ask is one ask as one side keeps it: for an ask this session made (Out),
// one Ask per recipient; for an ask made of this session (In), one Ask
// whose peer is the asker.
type Ask struct {
	ID        string
	Dir       string
	PeerKeyID string
	Peer      string // display name
	// PeerKey is the peer's public key (hex): where a reply goes.
	PeerKey string
	// MsgID is the DM id under which the ask travelled to this recipient
	// (the recipient's own id for a group ask).
	MsgID    string
	Group    string
	Question string
	Created  time.Time
	Deadline time.Time
	// Away: the recipient was away when asked (Out).
	Away       bool
	Answered   bool
	Answer     string
	AnswerID   string
	AnsweredAt time.Time
	Late       bool
	// Seen: the asks tool has listed the ask since its deadline passed,
	// so the prompt hook no longer mentions it.
	Seen bool
}

// AddAsk records asks (one per recipient); an ask already recorded is left
// as it is.
func (d *DB) AddAsk(ctx context.Context, asks ...Ask) error {
	tx, err := d.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("history: add ask: %w", err)
	}
	defer tx.Rollback()
	for _, a := range asks {
		if err == nil {
			_, err = tx.ExecContext(ctx, `INSERT OR IGNORE INTO asks(id, dir, peer_key_id, peer, peer_key, msg_id, grp, question, created, deadline, away)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				a.ID, a.Dir, a.PeerKeyID, a.Peer, a.PeerKey, a.MsgID, a.Group, a.Question, nanos(a.Created), nanos(a.Deadline), a.Away)
		}
	}
	if err == nil {
		err = tx.Commit()
	}
	if err != nil {
		return fmt.Errorf("history: add ask: %w", err)
	}
	return nil
}

// SetAnswer records the first answer to ask id (direction dir) from or to
// peerKeyID: its text, the DM that carried it, when, and whether it was
// late. It returns the ask as it is now, whether an ask was found, and
// whether this answer was the first.
func (d *DB) SetAnswer(ctx context.Context, id, dir, peerKeyID, answer, answerID string, at time.Time, late bool) (a Ask, found, first bool, err error) {
	res, err := d.db.ExecContext(ctx, `UPDATE asks SET answer = ?, answer_id = ?, answered_at = ?, late = ? WHERE id = ? AND dir = ? AND peer_key_id = ? AND answer IS NULL`,
		answer, answerID, nanos(at), late, id, dir, peerKeyID)
	if err != nil {
		return Ask{}, false, false, fmt.Errorf("history: record answer: %w", err)
	}
	n, _ := res.RowsAffected()
	asks, err := d.queryAsks(ctx, `WHERE id = ? AND dir = ? AND peer_key_id = ?`, id, dir, peerKeyID)
	if err != nil || len(asks) == 0 {
		return Ask{}, false, false, err
	}
	return asks[0], true, n > 0, nil
}

// AskOf returns ask id in direction dir: one row per peer.
func (d *DB) AskOf(ctx context.Context, id, dir string) ([]Ask, error) {
	return d.queryAsks(ctx, `WHERE id = ? AND dir = ? ORDER BY peer`, id, dir)
}

// Asks returns the asks that are open — some answer missing and the
// deadline not passed — or that expired with an answer missing and have
// not been seen since, oldest first.
func (d *DB) Asks(ctx context.Context) ([]Ask, error) {
	return d.queryAsks(ctx, `WHERE id IN (SELECT id FROM asks WHERE answer IS NULL AND (deadline > ? OR seen = 0)) ORDER BY created, id, peer`, nanos(d.now()))
}

// MarkSeen records that the asks whose deadline has passed were listed.
func (d *DB) MarkSeen(ctx context.Context) error {
	if _, err := d.db.ExecContext(ctx, `UPDATE asks SET seen = 1 WHERE deadline <= ?`, nanos(d.now())); err != nil {
		return fmt.Errorf("history: mark asks seen: %w", err)
	}
	return nil
}

func (d *DB) queryAsks(ctx context.Context, where string, args ...any) ([]Ask, error) {
	rows, err := d.db.QueryContext(ctx, `SELECT id, dir, peer_key_id, peer, peer_key, msg_id, grp, question, created, deadline, away, answer, answer_id, answered_at, late, seen FROM asks `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("history: asks: %w", err)
	}
	defer rows.Close()
	var out []Ask
	for rows.Next() {
		var a Ask
		var created, deadline, answeredAt int64
		var answer sql.NullString
		if err := rows.Scan(&a.ID, &a.Dir, &a.PeerKeyID, &a.Peer, &a.PeerKey, &a.MsgID, &a.Group, &a.Question, &created, &deadline, &a.Away, &answer, &a.AnswerID, &answeredAt, &a.Late, &a.Seen); err != nil {
			return nil, fmt.Errorf("history: asks: %w", err)
		}
		a.Created, a.Deadline, a.AnsweredAt = unixTime(created), unixTime(deadline), unixTime(answeredAt)
		a.Answered, a.Answer = answer.Valid, answer.String
		out = append(out, a)
	}
	return out, rows.Err()
}

// DeleteAsk forgets ask id in direction dir (an ask that could not be
// sent).
func (d *DB) DeleteAsk(ctx context.Context, id, dir string) error {
	if _, err := d.db.ExecContext(ctx, `DELETE FROM asks WHERE id = ? AND dir = ?`, id, dir); err != nil {
		return fmt.Errorf("history: delete ask: %w", err)
	}
	return nil
}
