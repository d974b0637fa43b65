-- Broker nodes and the presence they share. A node heartbeats into nodes;
-- presence holds one lease per session key: the node and connection
-- holding it and the epoch of its claim, drawn from presence_epoch so that
-- epochs only grow, even across a lease deleted and claimed again.
CREATE TABLE nodes (
    name         text        PRIMARY KEY,
    heartbeat_at timestamptz NOT NULL
);

CREATE SEQUENCE presence_epoch;

CREATE TABLE presence (
    mesh        text        NOT NULL,
    key         bytea       NOT NULL,
    node        text        NOT NULL,
    conn        bigint      NOT NULL,
    epoch       bigint      NOT NULL,
    instance    text        NOT NULL,
    session_id  text        NOT NULL,
    name        text        NOT NULL,
    project_dir text        NOT NULL,
    member_key  bytea,
    since       timestamptz NOT NULL,
    dropped_at  timestamptz,
    PRIMARY KEY (mesh, key)
);
CREATE INDEX presence_node ON presence (node);
CREATE INDEX presence_member ON presence (mesh, member_key);
