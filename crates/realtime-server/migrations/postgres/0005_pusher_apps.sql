-- Pusher apps: the credentials of the Pusher-compatible face. An app belongs to an
-- account, whose channels, credit and presence it uses. The secret is kept as it is:
-- request signatures are checked with it.
CREATE TABLE pusher_apps (
    app_id     BIGINT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(account_id),
    app_key    TEXT NOT NULL UNIQUE,
    secret     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX pusher_apps_by_account ON pusher_apps (account_id, created_at);
