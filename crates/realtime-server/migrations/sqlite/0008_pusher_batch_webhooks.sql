-- Batched webhooks, a per-app setting of Pusher's: the events of one app due together go
-- in one request (off when an app has no settings row).
ALTER TABLE pusher_app_settings ADD COLUMN batch_webhooks INTEGER NOT NULL DEFAULT 0;
