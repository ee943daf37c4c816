-- A channel's stream: each message gets the next offset of its channel, in the order the
-- store accepts it. The channel id is the stream's epoch.
ALTER TABLE channels ADD COLUMN last_offset BIGINT NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN stream_offset BIGINT NOT NULL DEFAULT 0;
CREATE INDEX messages_by_offset ON messages (account_id, channel, stream_offset);
