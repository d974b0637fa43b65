-- The claudemesh broker's tables in PostgreSQL: the same data as the SQLite
-- store, shared by every broker node of a cluster.

-- Meshes with members; their invites keep only a SHA-256 of each code.
CREATE TABLE meshes (
    name       text        PRIMARY KEY,
    created_at timestamptz NOT NULL
);

CREATE TABLE members (
    mesh      text        NOT NULL REFERENCES meshes (name),
    key       bytea       NOT NULL,
    name      text        NOT NULL,
    role      text        NOT NULL,
    joined_at timestamptz NOT NULL,
    PRIMARY KEY (mesh, key),
    UNIQUE (mesh, name)
);

CREATE TABLE invites (
    hash       bytea       PRIMARY KEY,
    mesh       text        NOT NULL REFERENCES meshes (name),
    created_by bytea       NOT NULL,
    uses_left  integer     NOT NULL,
    expires_at timestamptz NOT NULL,
    revoked    boolean     NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL
);

-- Sessions seen in each mesh. A session UUID belongs to the first key that
-- registered it (sessions_session_id); member_key is the member that first
-- vouched for the key.
CREATE TABLE sessions (
    mesh        text        NOT NULL,
    key         bytea       NOT NULL,
    session_id  text        NOT NULL,
    name        text        NOT NULL,
    project_dir text        NOT NULL,
    first_seen  timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL,
    member_key  bytea,
    PRIMARY KEY (mesh, key)
);
CREATE UNIQUE INDEX sessions_session_id ON sessions (mesh, session_id) WHERE session_id <> '';
CREATE INDEX sessions_last_seen ON sessions (mesh, last_seen);

-- One row per recipient: the last sequence number given to a DM for it.
-- Enqueue takes the next number while it holds this row's lock until it
-- commits, so one recipient's DMs commit in the order of their numbers and
-- a reader that remembers the last number it saw misses nothing.
CREATE TABLE queues (
    mesh     text   NOT NULL,
    to_key   bytea  NOT NULL,
    last_seq bigint NOT NULL,
    PRIMARY KEY (mesh, to_key)
);

-- DMs. A DM is pending while NOT acked and expires_at is in the future and
-- it has a box; an ack or Expire drops nonce and box and leaves the row as a
-- tombstone so that a resent id is recognised. sender is who answers for
-- the DM (its member, else its session key). Times NULL mean "never".
CREATE TABLE messages (
    mesh         text        NOT NULL,
    to_key       bytea       NOT NULL,
    seq          bigint      NOT NULL,
    id           text        NOT NULL UNIQUE,
    from_key     bytea       NOT NULL,
    from_name    text        NOT NULL,
    from_session text        NOT NULL,
    sender       bytea       NOT NULL,
    nonce        bytea,
    box          bytea,
    box_len      integer     NOT NULL,
    created_at   timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    received_at  timestamptz,
    pushed_at    timestamptz,
    read_at      timestamptz,
    acked        boolean     NOT NULL DEFAULT false,
    cleared      boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (mesh, to_key, seq)
);
CREATE INDEX messages_pending ON messages (mesh, to_key, seq) WHERE NOT acked;
CREATE INDEX messages_sender_queue ON messages (mesh, to_key, sender) WHERE NOT acked;
CREATE INDEX messages_expires ON messages (expires_at);
