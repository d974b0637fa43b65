package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// The statements of a DM's path, which run for every DM, and of a hello, which
// runs for every connection, are prepared once
// when the store opens instead of parsed on every call: those of the
// writer on its one connection, those of the reads on the read pool (which
// prepares them again on each connection it opens, and keeps its
// connections idle rather than closing them).

// Statements the writer runs for every DM.
const (
	qSavepoint  = `SAVEPOINT op`
	qRollbackTo = `ROLLBACK TO op`
	qRelease    = `RELEASE op`

	qInsertMessage = `INSERT INTO messages
		(id, mesh, from_key, from_name, from_session, to_key, sender, nonce, box, box_len, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`
	qExistingMessage = `SELECT mesh, from_key, to_key, nonce, box, acked, expires_at FROM messages WHERE id = ?`
	qAck             = `UPDATE messages SET acked = 1, nonce = NULL, box = NULL,
			read_at = max(?, created_at), cleared = ?
		WHERE id = ? AND mesh = ? AND to_key = ? AND acked = 0`
	qReceiptReceived = `UPDATE messages SET received_at = max(?, created_at)
		WHERE id = ? AND mesh = ? AND to_key = ? AND acked = 0 AND received_at = 0`
	qReceiptPushed = `UPDATE messages SET pushed_at = max(?, created_at)
		WHERE id = ? AND mesh = ? AND to_key = ? AND acked = 0 AND pushed_at = 0`
)

// Statements the writer runs for every hello.
const (
	qSessionIDTaken = `SELECT 1 FROM sessions WHERE mesh = ? AND session_id = ? AND key <> ?`
	qUpsertSession  = `INSERT INTO sessions
		(mesh, key, session_id, name, project_dir, first_seen, last_seen, member_key, kind) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (mesh, key) DO UPDATE SET session_id = excluded.session_id, name = excluded.name,
			project_dir = excluded.project_dir, last_seen = excluded.last_seen,
			member_key = coalesce(sessions.member_key, excluded.member_key), kind = excluded.kind`
)

// Statements of the reads a DM or a hello makes.
const (
	qMeshExists = `SELECT count(*) FROM meshes WHERE name = ?`
	qMember     = `SELECT ` + memberColumns + ` FROM members WHERE mesh = ? AND key = ?`
	qPendingSeq = `SELECT seq FROM messages WHERE id = ? AND mesh = ? AND to_key = ?`
	// A message Expire dropped the payload of is expired whatever now says.
	qPending = `SELECT id, mesh, from_key, from_name, from_session, to_key, nonce, box,
			created_at, expires_at, received_at, pushed_at
		FROM messages WHERE mesh = ? AND to_key = ? AND acked = 0 AND seq > ? AND expires_at > ? AND box IS NOT NULL
		ORDER BY seq LIMIT ?`
	qQueueStats = `SELECT count(*), coalesce(sum(box_len), 0) FROM messages
		WHERE mesh = ? AND to_key = ? AND acked = 0 AND expires_at > ?`
	qQueueStatsSender = qQueueStats + ` AND sender = ?`
	qSession          = `SELECT ` + sessionColumns + ` FROM sessions WHERE mesh = ? AND key = ?`
)

var (
	writerStmts = []string{qSavepoint, qRollbackTo, qRelease, qInsertMessage, qExistingMessage, qAck, qReceiptReceived, qReceiptPushed,
		qSessionIDTaken, qUpsertSession}
	readStmts = []string{qPendingSeq, qPending, qQueueStats, qQueueStatsSender, qSession, qMeshExists, qMember}
)

// prepare prepares queries on db.
func prepare(ctx context.Context, db *sql.DB, queries []string) (map[string]*sql.Stmt, error) {
	stmts := make(map[string]*sql.Stmt, len(queries))
	for _, q := range queries {
		st, err := db.PrepareContext(ctx, q)
		if err != nil {
			closeStmts(stmts)
			return nil, fmt.Errorf("prepare %q: %w", q, err)
		}
		stmts[q] = st
	}
	return stmts, nil
}

func closeStmts(stmts map[string]*sql.Stmt) error {
	var errs []error
	for _, st := range stmts {
		errs = append(errs, st.Close())
	}
	return errors.Join(errs...)
}

// txStmt returns the writer's prepared statement q bound to tx, the
// transaction of the batch being committed; each statement is bound once
// per batch. Only the goroutine running commit calls it.
func (s *Store) txStmt(ctx context.Context, tx *sql.Tx, q string) *sql.Stmt {
	if st, ok := s.bound[q]; ok {
		return st
	}
	st := tx.StmtContext(ctx, s.ws[q])
	s.bound[q] = st
	return st
}
