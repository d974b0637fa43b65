-- What speaks for each session key: '' for a Claude Code session, 'human'
-- for a person at a terminal. Rows of earlier versions are sessions.
ALTER TABLE sessions ADD COLUMN kind TEXT NOT NULL DEFAULT '';
