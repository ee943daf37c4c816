-- User-addressed messages: each user's reliable messages form a stream with one ack
-- cursor; commands wait for their first response.
CREATE TABLE user_streams (
    account_id TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    last_seq   INTEGER NOT NULL DEFAULT 0,
    acked_seq  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, user_id)
);

CREATE TABLE user_messages (
    account_id     TEXT NOT NULL,
    user_id        TEXT NOT NULL,
    seq            INTEGER NOT NULL,
    message_id     TEXT NOT NULL UNIQUE,
    payload        TEXT NOT NULL,
    sender_type    TEXT NOT NULL,
    sender_id      TEXT,
    sent_at        TEXT NOT NULL,
    delivery_count INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, user_id, seq)
);

CREATE TABLE commands (
    command_id   TEXT PRIMARY KEY,
    account_id   TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    command_type TEXT NOT NULL,
    data         TEXT NOT NULL,
    sender_type  TEXT NOT NULL,
    sender_id    TEXT,
    response     TEXT,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL
);
