-- The shared store of several nodes. Money is integer micro-USD; times are timestamptz.

CREATE TABLE accounts (
    account_id TEXT PRIMARY KEY,
    key_hash   BYTEA NOT NULL UNIQUE,
    balance    BIGINT NOT NULL CHECK (balance >= 0),
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE channels (
    account_id        TEXT NOT NULL REFERENCES accounts(account_id),
    name              TEXT NOT NULL,
    channel_id        TEXT NOT NULL UNIQUE,
    channel_type      TEXT NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL,
    last_published_at TIMESTAMPTZ,
    PRIMARY KEY (account_id, name)
);

CREATE TABLE messages (
    account_id   TEXT NOT NULL,
    channel      TEXT NOT NULL,
    message_id   TEXT NOT NULL,
    event        TEXT NOT NULL,
    data         TEXT NOT NULL,
    published_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (account_id, channel, message_id)
);

CREATE TABLE tokens (
    jti        TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    revoked    BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE checkouts (
    checkout_id TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL,
    amount      BIGINT NOT NULL CHECK (amount > 0),
    completed   BOOLEAN NOT NULL DEFAULT FALSE,
    expires_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE idempotency (
    account_id  TEXT NOT NULL,
    operation   TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    response    TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    lease_until TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (account_id, operation, key)
);

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
