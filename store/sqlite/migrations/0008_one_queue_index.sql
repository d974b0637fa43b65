-- One index serves both a recipient's queue in order (Pending) and its
-- count and bytes (QueueStats): the count reads expires_at and box_len from
-- the index as before, and every insert and ack updates one index fewer.
DROP INDEX messages_queue;
DROP INDEX messages_pending;
CREATE INDEX messages_pending ON messages (mesh, to_key, seq, expires_at, box_len) WHERE acked = 0;
