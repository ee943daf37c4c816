-- Per-app settings of the Pusher face: subscription counting, which a Pusher app turns on
-- in its settings (off when an app has no row here). Deleted with the app.
CREATE TABLE pusher_app_settings (
    app_id             INTEGER PRIMARY KEY REFERENCES pusher_apps(app_id) ON DELETE CASCADE,
    subscription_count INTEGER NOT NULL DEFAULT 0
);
