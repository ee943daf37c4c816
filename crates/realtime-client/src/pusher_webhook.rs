//! Checking a Pusher webhook (from the reference server or from Pusher itself) before
//! trusting it: the `X-Pusher-Key` is the app's, the `X-Pusher-Signature` is the hex
//! HMAC-SHA256 of the exact body with the app's secret (compared in constant time), and
//! the body's `time_ms` is within five minutes of now, as Pusher's own libraries check.
//!
//! ```
//! use realtime_client::pusher_webhook::{WebhookEvent, verify};
//!
//! # fn handle(key: Option<&str>, signature: Option<&str>, body: &[u8]) {
//! match verify("app-key", "app-secret", key, signature, body, chrono::Utc::now()) {
//!     Ok(webhook) => for event in webhook.events {
//!         if let WebhookEvent::ChannelVacated { channel } = event { println!("{channel} is empty") }
//!     },
//!     Err(refused) => eprintln!("ignored: {refused}"),
//! }
//! # }
//! ```

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

/// How far a webhook's `time_ms` may be from now.
pub const MAX_SKEW_MS: i64 = 300_000;

/// A webhook that passed [`verify`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Webhook {
    /// When the server created it (kept across retries), in milliseconds since the epoch.
    pub time_ms: i64,
    /// Its events (one unless batching is on).
    pub events: Vec<WebhookEvent>,
}

/// One event of a webhook.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum WebhookEvent {
    /// The channel got its first subscriber.
    ChannelOccupied {
        /// The channel.
        channel: String,
    },
    /// The channel lost its last subscriber (3 s after, unless one came back).
    ChannelVacated {
        /// The channel.
        channel: String,
    },
    /// A user's first connection joined the presence channel.
    MemberAdded {
        /// The channel.
        channel: String,
        /// The user.
        user_id: String,
    },
    /// A user's last connection left the presence channel (3 s after, unless it came back).
    MemberRemoved {
        /// The channel.
        channel: String,
        /// The user.
        user_id: String,
    },
    /// A client event was sent on a private or presence channel.
    ClientEvent {
        /// The channel.
        channel: String,
        /// The event name (`client-…`).
        event: String,
        /// Its data, as the client sent it.
        data: String,
        /// The sender's socket.
        socket_id: String,
        /// The sender, on presence channels.
        #[serde(default)]
        user_id: Option<String>,
    },
    /// A cache channel was subscribed to with nothing cached.
    CacheMiss {
        /// The channel.
        channel: String,
    },
    /// The channel's number of subscriptions changed (when the app counts them).
    SubscriptionCount {
        /// The channel.
        channel: String,
        /// How many subscriptions it has now.
        subscription_count: u64,
    },
    /// An event this client does not know yet.
    #[serde(other)]
    Other,
}

/// Why a webhook was not trusted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WebhookRefused {
    /// `X-Pusher-Key` is missing or another app's.
    #[error("the X-Pusher-Key header is missing or not this app's key")]
    WrongKey,
    /// `X-Pusher-Signature` is missing or does not sign this body with this secret.
    #[error("the X-Pusher-Signature header is missing or does not match the body")]
    BadSignature,
    /// The body is not a webhook.
    #[error("the body is not a Pusher webhook: {0}")]
    Malformed(String),
    /// `time_ms` is more than five minutes from now (a replay, or a clock far off).
    #[error("the webhook was created {skew_ms} ms from now, more than 5 minutes")]
    Stale {
        /// How far from now, in milliseconds.
        skew_ms: i64,
    },
}

/// Checks a webhook's headers and exact body against the app's `key` and `secret`.
pub fn verify(
    key: &str,
    secret: &str,
    header_key: Option<&str>,
    header_signature: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Webhook, WebhookRefused> {
    if header_key != Some(key) {
        return Err(WebhookRefused::WrongKey);
    }
    let signature =
        header_signature.and_then(|signature| hex::decode(signature).ok()).ok_or(WebhookRefused::BadSignature)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&signature).map_err(|_| WebhookRefused::BadSignature)?;
    let webhook: Webhook =
        serde_json::from_slice(body).map_err(|error| WebhookRefused::Malformed(error.to_string()))?;
    let skew_ms = (now.timestamp_millis() - webhook.time_ms).abs();
    if skew_ms > MAX_SKEW_MS {
        return Err(WebhookRefused::Stale { skew_ms });
    }
    Ok(webhook)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn signed(secret: &str, body: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    const BODY: &str = r#"{"time_ms":1700000000000,"events":[{"name":"member_added","channel":"presence-room","user_id":"u1"},{"name":"subscription_count","channel":"c","subscription_count":3},{"name":"a_later_event","channel":"c"}]}"#;

    fn now() -> DateTime<Utc> {
        Utc.timestamp_millis_opt(1_700_000_100_000).unwrap()
    }

    #[test]
    fn a_signed_fresh_webhook_is_read_and_unknown_events_are_kept_as_other() {
        let signature = signed("secret", BODY);
        let webhook = verify("key", "secret", Some("key"), Some(&signature), BODY.as_bytes(), now()).unwrap();
        assert_eq!(
            webhook.events,
            [
                WebhookEvent::MemberAdded { channel: "presence-room".into(), user_id: "u1".into() },
                WebhookEvent::SubscriptionCount { channel: "c".into(), subscription_count: 3 },
                WebhookEvent::Other
            ]
        );
    }

    #[test]
    fn another_key_secret_body_or_time_is_refused() {
        let signature = signed("secret", BODY);
        let check = |key: Option<&str>, signature: Option<&str>, body: &str, now: DateTime<Utc>| {
            verify("key", "secret", key, signature, body.as_bytes(), now)
        };
        assert_eq!(check(Some("other"), Some(&signature), BODY, now()), Err(WebhookRefused::WrongKey));
        assert_eq!(check(None, Some(&signature), BODY, now()), Err(WebhookRefused::WrongKey));
        assert_eq!(check(Some("key"), None, BODY, now()), Err(WebhookRefused::BadSignature));
        assert_eq!(
            check(Some("key"), Some(&signed("other-secret", BODY)), BODY, now()),
            Err(WebhookRefused::BadSignature)
        );
        let tampered = BODY.replace("u1", "u2");
        assert_eq!(check(Some("key"), Some(&signature), &tampered, now()), Err(WebhookRefused::BadSignature));
        assert_eq!(check(Some("key"), Some("not hex"), BODY, now()), Err(WebhookRefused::BadSignature));
        let late = now() + chrono::Duration::minutes(5);
        assert_eq!(check(Some("key"), Some(&signature), BODY, late), Err(WebhookRefused::Stale { skew_ms: 400_000 }));
    }
}
