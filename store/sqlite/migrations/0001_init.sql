-- Messages in insertion order: seq is the rowid, so a new row always numbers
-- above every row present. A message is pending while acked = 0 and
-- expires_at is in the future. Acknowledging it clears nonce and box but keeps
-- the row as a tombstone until expires_at, so that a resent ID is recognised
-- and never delivered twice. Times are unix nanoseconds.
CREATE TABLE messages (
    seq          INTEGER PRIMARY KEY,
    id           TEXT    NOT NULL UNIQUE,
    mesh         TEXT    NOT NULL,
    from_key     BLOB    NOT NULL,
    from_name    TEXT    NOT NULL,
    from_session TEXT    NOT NULL,
    to_key       BLOB    NOT NULL,
    nonce        BLOB,
    box          BLOB,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    acked        INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX messages_pending ON messages (mesh, to_key, seq) WHERE acked = 0;
CREATE INDEX messages_expires ON messages (expires_at);

CREATE TABLE sessions (
    mesh        TEXT    NOT NULL,
    key         BLOB    NOT NULL,
    session_id  TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    project_dir TEXT    NOT NULL,
    first_seen  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    PRIMARY KEY (mesh, key)
) STRICT, WITHOUT ROWID;

CREATE INDEX sessions_last_seen ON sessions (mesh, last_seen);
