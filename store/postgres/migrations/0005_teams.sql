-- Groups: a session key belongs to any number of named groups of its mesh,
-- until it leaves or the session is forgotten.
CREATE TABLE group_members (
    mesh      text        NOT NULL,
    grp       text        NOT NULL,
    key       bytea       NOT NULL,
    joined_at timestamptz NOT NULL,
    PRIMARY KEY (mesh, grp, key)
);
CREATE INDEX group_members_key ON group_members (mesh, key);

-- The DMs of a group send: one row per recipient in messages, and here the
-- send they belong to, kept as long as the DM is (same expires_at).
CREATE TABLE group_dms (
    id         text        PRIMARY KEY,
    send_id    text        NOT NULL,
    grp        text        NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX group_dms_send ON group_dms (send_id);
CREATE INDEX group_dms_expires ON group_dms (expires_at);

-- What each session says about itself.
CREATE TABLE session_status (
    mesh           text        NOT NULL,
    key            bytea       NOT NULL,
    summary        text        NOT NULL,
    availability   text        NOT NULL,
    activity       text        NOT NULL,
    activity_since timestamptz,
    updated_at     timestamptz NOT NULL,
    PRIMARY KEY (mesh, key)
);
