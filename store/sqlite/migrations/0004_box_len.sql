-- The size of each DM's box, so that the bytes waiting for a recipient are
-- summed without reading the boxes. Kept as written when the payload is
-- dropped: queue sums only count unacked, unexpired DMs.
ALTER TABLE messages ADD COLUMN box_len INTEGER NOT NULL DEFAULT 0;
UPDATE messages SET box_len = length(box) WHERE box IS NOT NULL;
CREATE INDEX messages_queue ON messages (mesh, to_key, expires_at, box_len) WHERE acked = 0;
