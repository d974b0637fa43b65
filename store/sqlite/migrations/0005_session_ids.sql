-- A session UUID belongs, in its mesh, to the key that first registered it:
-- nobody else may present it (see store.ErrSessionTaken). Where earlier
-- versions let a second key take a UUID, the first registration keeps it
-- and the later ones lose their claim.
UPDATE sessions SET session_id = '' WHERE session_id <> '' AND EXISTS (
    SELECT 1 FROM sessions o WHERE o.mesh = sessions.mesh AND o.session_id = sessions.session_id
        AND (o.first_seen < sessions.first_seen OR (o.first_seen = sessions.first_seen AND o.key < sessions.key)));
CREATE UNIQUE INDEX sessions_session_id ON sessions (mesh, session_id) WHERE session_id <> '';

-- Who answers for each DM: the member that vouched for its sender in a mesh
-- with members, else the sender's session key. What one sender may leave
-- waiting for one recipient is capped by it.
ALTER TABLE messages ADD COLUMN sender BLOB NOT NULL DEFAULT x'';
UPDATE messages SET sender = coalesce(
    (SELECT s.member_key FROM sessions s WHERE s.mesh = messages.mesh AND s.key = messages.from_key), from_key);
CREATE INDEX messages_sender_queue ON messages (mesh, to_key, sender, expires_at, box_len) WHERE acked = 0;
