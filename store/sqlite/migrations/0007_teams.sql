-- Groups: a session key belongs to any number of named groups of its mesh,
-- until it leaves or the session is forgotten.
CREATE TABLE group_members (
    mesh      TEXT    NOT NULL,
    grp       TEXT    NOT NULL,
    key       BLOB    NOT NULL,
    joined_at INTEGER NOT NULL,
    PRIMARY KEY (mesh, grp, key)
) STRICT, WITHOUT ROWID;
CREATE INDEX group_members_key ON group_members (mesh, key);

-- The DMs of a group send: one row per recipient in messages, and here the
-- send they belong to, kept as long as the DM is (same expires_at).
CREATE TABLE group_dms (
    id         TEXT    PRIMARY KEY,
    send_id    TEXT    NOT NULL,
    grp        TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX group_dms_send ON group_dms (send_id);
CREATE INDEX group_dms_expires ON group_dms (expires_at);

-- What each session says about itself.
CREATE TABLE session_status (
    mesh           TEXT    NOT NULL,
    key            BLOB    NOT NULL,
    summary        TEXT    NOT NULL,
    availability   TEXT    NOT NULL,
    activity       TEXT    NOT NULL,
    activity_since INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (mesh, key)
) STRICT, WITHOUT ROWID;
