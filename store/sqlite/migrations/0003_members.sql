-- Meshes with members. A mesh listed here admits only sessions that one of
-- its members attests. invites keeps a SHA-256 hash of each code, never the
-- code. sessions.member_key is the member that first vouched for the
-- session key: no other member may present it. Times are unix nanoseconds.
CREATE TABLE meshes (
    name       TEXT    PRIMARY KEY,
    created_at INTEGER NOT NULL
) STRICT;

CREATE TABLE members (
    mesh      TEXT    NOT NULL REFERENCES meshes (name),
    key       BLOB    NOT NULL,
    name      TEXT    NOT NULL,
    role      TEXT    NOT NULL,
    joined_at INTEGER NOT NULL,
    PRIMARY KEY (mesh, key),
    UNIQUE (mesh, name)
) STRICT, WITHOUT ROWID;

CREATE TABLE invites (
    hash       BLOB    PRIMARY KEY,
    mesh       TEXT    NOT NULL REFERENCES meshes (name),
    created_by BLOB    NOT NULL,
    uses_left  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked    INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

ALTER TABLE sessions ADD COLUMN member_key BLOB;
