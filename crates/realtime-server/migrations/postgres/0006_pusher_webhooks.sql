-- Pusher webhooks: an app may name a URL; the events for it wait in a durable outbox
-- until the URL answers 2xx or Pusher's five-minute window has passed. A removal
-- (member_removed, channel_vacated) waits 3 s and is cancelled by the matching
-- addition in that time (cancel_key), as Pusher debounces them.
ALTER TABLE pusher_apps ADD COLUMN webhook_url TEXT;

CREATE TABLE pusher_webhooks (
    webhook_id       TEXT PRIMARY KEY,
    app_id           BIGINT NOT NULL,
    body             TEXT NOT NULL,
    cancel_key       TEXT,
    created_ms       BIGINT NOT NULL,
    due_ms           BIGINT NOT NULL,
    attempts         BIGINT NOT NULL DEFAULT 0,
    claimed_until_ms BIGINT
);
CREATE INDEX pusher_webhooks_by_due ON pusher_webhooks (due_ms);
CREATE INDEX pusher_webhooks_by_cancel_key ON pusher_webhooks (app_id, cancel_key);
