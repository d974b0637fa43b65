-- What speaks for each session key: '' for a Claude Code session, 'human'
-- for a person at a terminal. Rows of earlier versions are sessions; a
-- lease carries the kind of the hello that claimed it.
ALTER TABLE sessions ADD COLUMN kind text NOT NULL DEFAULT '';
ALTER TABLE presence ADD COLUMN kind text NOT NULL DEFAULT '';
