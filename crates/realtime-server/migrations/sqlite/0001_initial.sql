-- The embedded store. Timestamps are RFC 3339 text in UTC; money is integer micro-USD.

CREATE TABLE accounts (
    account_id TEXT PRIMARY KEY,
    key_hash   BLOB NOT NULL UNIQUE,
    balance    INTEGER NOT NULL CHECK (balance >= 0),
    created_at TEXT NOT NULL
);

CREATE TABLE channels (
    account_id        TEXT NOT NULL REFERENCES accounts(account_id),
    name              TEXT NOT NULL,
    channel_id        TEXT NOT NULL UNIQUE,
    channel_type      TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    last_published_at TEXT,
    PRIMARY KEY (account_id, name)
);

CREATE TABLE messages (
    account_id   TEXT NOT NULL,
    channel      TEXT NOT NULL,
    message_id   TEXT NOT NULL,
    event        TEXT NOT NULL,
    data         TEXT NOT NULL,
    published_at TEXT NOT NULL,
    PRIMARY KEY (account_id, channel, message_id)
);

CREATE TABLE tokens (
    jti        TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked    INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE checkouts (
    checkout_id TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL,
    amount      INTEGER NOT NULL CHECK (amount > 0),
    completed   INTEGER NOT NULL DEFAULT 0,
    expires_at  TEXT NOT NULL
);

CREATE TABLE idempotency (
    account_id  TEXT NOT NULL,
    operation   TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    response    TEXT,
    created_at  TEXT NOT NULL,
    lease_until TEXT NOT NULL,
    PRIMARY KEY (account_id, operation, key)
);

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
