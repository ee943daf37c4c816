-- A message is found by its stream position (history, recovery, trimming), never by its id
-- (a ULID the server makes): the table loses its primary key on (account, channel,
-- message id), an index that every publish and every trim wrote and nothing read. SQLite
-- drops a primary key only by building the table anew.
CREATE TABLE messages_by_position (
    account_id    TEXT NOT NULL,
    channel       TEXT NOT NULL,
    message_id    TEXT NOT NULL,
    event         TEXT NOT NULL,
    data          TEXT NOT NULL,
    published_at  TEXT NOT NULL,
    stream_offset INTEGER NOT NULL DEFAULT 0
);
INSERT INTO messages_by_position (account_id, channel, message_id, event, data, published_at, stream_offset)
    SELECT account_id, channel, message_id, event, data, published_at, stream_offset FROM messages;
DROP TABLE messages;
ALTER TABLE messages_by_position RENAME TO messages;
CREATE INDEX messages_by_offset ON messages (account_id, channel, stream_offset);
