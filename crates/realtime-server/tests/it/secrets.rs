//! Secrets never appear in `Debug` output: every type that carries one is printed with
//! `{:?}` and `{:#?}` and searched for it.

use std::fmt::Debug;

use chrono::{TimeZone, Utc};
use realtime_api::ApiKey;
use realtime_server::Config;
use realtime_server::pusher::apps::{CreatedApp, NewApp};
use realtime_server::secret::Secret;
use realtime_server::store::AppRow;
use realtime_types::{AblyTokenRequest, Capability, RealtimeToken, TokenRevokeRequest, VendorToken};
use serde_json::json;

/// The secret planted in every value; no `Debug` output may contain it.
const SECRET: &str = "hunter2";

/// Asserts that neither `Debug` form of `value` shows [`SECRET`], and that both still show
/// `visible`, so that an impl printing nothing at all would not pass.
#[track_caller]
fn assert_hides_the_secret(value: &impl Debug, visible: &str) {
    for printed in [format!("{value:?}"), format!("{value:#?}")] {
        assert!(!printed.contains(SECRET), "the secret is printed: {printed}");
        assert!(printed.contains(visible), "`{visible}` is missing from: {printed}");
    }
}

fn ably_token_request() -> AblyTokenRequest {
    AblyTokenRequest {
        key_name: "app.key".into(),
        ttl: 3_600_000,
        capability: r#"{"room-42":["subscribe"]}"#.into(),
        client_id: "user_42".into(),
        timestamp: 1_700_000_000_000,
        nonce: "0123456789abcdef".into(),
        mac: SECRET.into(),
    }
}

fn config() -> Config {
    let long_secret = format!("{SECRET}-{SECRET}-{SECRET}-{SECRET}-{SECRET}");
    Config::with(json!({
        "store": format!("postgres://u:{SECRET}@127.0.0.1/db"),
        "broker": format!("redis://:{SECRET}@127.0.0.1:6379"),
        "admin_secret": long_secret,
        "token_secret": long_secret,
        "vendors": {
            "ably_key": format!("app.key:{SECRET}"),
            "pusher": { "app_id": "1", "key": "public-pusher-key", "secret": SECRET },
            "liveblocks": { "project_id": "project-7", "secret": SECRET },
        },
    }))
    .expect("a valid config")
}

#[test]
fn no_type_that_carries_a_secret_prints_it_in_debug() {
    let expires_at = Utc.with_ymd_and_hms(2026, 11, 22, 13, 0, 0).unwrap();

    assert_hides_the_secret(&VendorToken::Realtime { token: SECRET.into(), expires_at }, "2026-11-22T13:00:00Z");
    assert_hides_the_secret(
        &VendorToken::Pusher {
            token: format!("public-pusher-key:{SECRET}"),
            auth: format!("public-pusher-key:{SECRET}"),
            channel: "presence-room-42".into(),
            channel_data: Some(r#"{"user_id":"user_42"}"#.into()),
        },
        "presence-room-42",
    );
    assert_hides_the_secret(
        &VendorToken::Ably {
            token: serde_json::to_string(&ably_token_request()).unwrap(),
            token_request: ably_token_request(),
        },
        "app.key",
    );
    assert_hides_the_secret(&VendorToken::Liveblocks { token: SECRET.into(), expires_at }, "Liveblocks");
    assert_hides_the_secret(&ably_token_request(), "0123456789abcdef");
    assert_hides_the_secret(
        &TokenRevokeRequest { token_or_jti: SECRET.into(), idempotency_key: Some("revoke-1".into()) },
        "revoke-1",
    );
    assert_hides_the_secret(
        &RealtimeToken {
            token: SECRET.into(),
            client_id: "user_42".into(),
            user_id: None,
            jti: "01JD2Q7W3M5X8Y9Z0A1B2C3D4E".into(),
            expires_at,
            endpoint: "ws://127.0.0.1:8080/v1/realtime/ws".into(),
            channels: None,
            capabilities: vec![Capability::Subscribe],
        },
        "01JD2Q7W3M5X8Y9Z0A1B2C3D4E",
    );
    assert_hides_the_secret(&Secret::new(SECRET), "Secret");
    assert_hides_the_secret(&ApiKey::new(SECRET), "ApiKey");

    let config = config();
    assert_hides_the_secret(&config, "postgres://u:<redacted>@127.0.0.1/db");
    assert_hides_the_secret(&config, "redis://:<redacted>@127.0.0.1:6379");
    assert_hides_the_secret(&config, "public-pusher-key");
    assert_hides_the_secret(&config, "project-7");

    let app = AppRow {
        app_id: 123456,
        account_id: "acct_1".into(),
        key: "key1".into(),
        secret: Secret::new(SECRET),
        created_at: expires_at,
        webhook_url: Some("http://127.0.0.1:9/hooks".into()),
    };
    assert_hides_the_secret(&app, "key1");
    let new_app = NewApp {
        account_id: "acct_1".into(),
        app_id: Some(123456),
        key: Some("key1".into()),
        secret: Some(SECRET.into()),
        webhook_url: None,
    };
    assert_hides_the_secret(&new_app, "key1");
    let created = CreatedApp {
        account_id: "acct_1".into(),
        app_id: 123456,
        key: "key1".into(),
        secret: SECRET.into(),
        webhook_url: None,
    };
    assert_hides_the_secret(&created, "key1");
}

#[test]
fn config_debug_hides_passwords_wherever_a_url_may_carry_them() {
    let cases = [
        (
            format!("postgres://u:{SECRET}@db.internal:5432/realtime"),
            "postgres://u:<redacted>@db.internal:5432/realtime",
        ),
        (format!("postgres://u:a?b#{SECRET}@db.internal/realtime"), "postgres://u:<redacted>@db.internal/realtime"),
        (
            format!("postgres://db.internal/realtime?user=u&password={SECRET}"),
            "postgres://db.internal/realtime?<redacted>",
        ),
        (format!("redis://{SECRET}@cache.internal:6379"), "redis://<redacted>@cache.internal:6379"),
        ("sqlite://realtime.db".to_owned(), "sqlite://realtime.db"),
    ];
    for (store, shown) in cases {
        let config = Config::with(json!({ "store": store })).expect("a valid config");
        assert_hides_the_secret(&config, shown);
    }
    let memory = Config::with(json!({ "broker": "memory" })).expect("a valid config");
    assert_hides_the_secret(&memory, r#"broker: "memory""#);
}
