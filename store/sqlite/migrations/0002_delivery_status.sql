-- What the recipient reported about each DM, so that its sender can ask where
-- it stands. Times are unix nanoseconds; 0 means never. received_at and
-- pushed_at hold the first receipt of each state; read_at the time of the
-- ack, which with cleared = 1 dismissed the DM unread.
--
-- Rows now outlive expires_at: Expire drops the payload (nonce, box) of a DM
-- never acked at expires_at, so it counts as expired and is never pending
-- again, and deletes rows only a retention period after expires_at.
ALTER TABLE messages ADD COLUMN received_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN pushed_at   INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN read_at     INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN cleared     INTEGER NOT NULL DEFAULT 0;
