//! The Pusher side of the load generator: the app the bench signs for, signed HTTP API
//! triggers (auth_version 1.0) and the protocol-7 frames a subscriber reads.
//!
//! The server's own signing code lives in `realtime-server` (which the bench does not
//! link), so the string to sign is built here again from Pusher's documentation; the test
//! below holds it to Pusher's published example, and every run against our server checks
//! it once more (a wrong signature is a 401, and a failed publish fails the row).

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;

use crate::target;

/// The app every Pusher-protocol server under test is started with.
pub const APP_ID: &str = "123456";
pub const KEY: &str = "bench-key";
/// A throwaway secret: the servers that know it listen on loopback for one run.
pub const SECRET: &str = "bench-secret-loopback-only";

/// The event name of the bench's triggers.
pub const EVENT: &str = "bench-event";

/// The Pusher app the load generator connects to and signs triggers for.
#[derive(Debug, Clone, clap::Args)]
pub struct PusherApp {
    /// App id of the Pusher-protocol targets.
    #[arg(long = "pusher-app-id", default_value = APP_ID)]
    pub app_id: String,
    /// App key of the Pusher-protocol targets.
    #[arg(long = "pusher-key", default_value = KEY)]
    pub key: String,
    /// App secret of the Pusher-protocol targets.
    #[arg(long = "pusher-secret", env = "REALTIME_BENCH_PUSHER_SECRET", hide_env_values = true, default_value = SECRET)]
    pub secret: String,
}

impl Default for PusherApp {
    fn default() -> Self {
        PusherApp { app_id: APP_ID.to_owned(), key: KEY.to_owned(), secret: SECRET.to_owned() }
    }
}

impl PusherApp {
    /// The path of the trigger endpoint.
    pub fn events_path(&self) -> String {
        format!("/apps/{}/events", self.app_id)
    }

    /// The subscriber's path and query, as pusher-js 8 sends them.
    pub fn socket_path(&self) -> String {
        format!("/app/{}?protocol=7&client=bench&version=8.0.0", self.key)
    }

    /// The signed query string of a `POST` of `body` to `path` at `timestamp` (Unix seconds).
    pub fn signed_query(&self, path: &str, body: &[u8], timestamp: u64) -> String {
        let params = [
            ("auth_key", self.key.clone()),
            ("auth_timestamp", timestamp.to_string()),
            ("auth_version", "1.0".to_owned()),
            ("body_md5", hex::encode(Md5::digest(body))),
        ];
        // The keys above are already lowercase and sorted, as the string to sign wants them.
        let query: Vec<String> = params.iter().map(|(key, value)| format!("{key}={value}")).collect();
        let query = query.join("&");
        let mut mac = Hmac::<Sha256>::new_from_slice(self.secret.as_bytes()).expect("HMAC takes keys of any length");
        mac.update(format!("POST\n{path}\n{query}").as_bytes());
        format!("{query}&auth_signature={}", hex::encode(mac.finalize().into_bytes()))
    }
}

/// Seconds since the Unix epoch (the servers allow a few minutes of skew).
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// The trigger of publish `seq`: one event on the bench channel whose data (a string, as
/// Pusher's are) carries the sequence number and the scheduled send time.
pub fn trigger_body(seq: u64, sent_ns: u64, pad: &str) -> String {
    let data = format!("{{\"bench_seq\":{seq},\"bench_t\":{sent_ns},\"pad\":\"{pad}\"}}");
    serde_json::json!({ "name": EVENT, "channel": target::CHANNEL, "data": data }).to_string()
}

pub fn subscribe_frame() -> String {
    serde_json::json!({ "event": "pusher:subscribe", "data": { "channel": target::CHANNEL } }).to_string()
}

pub const PING: &str = r#"{"event":"pusher:ping","data":{}}"#;
pub const PONG: &str = r#"{"event":"pusher:pong","data":{}}"#;

/// A protocol-7 frame from the server, as far as the bench cares.
#[derive(Debug, PartialEq, Eq)]
pub enum Inbound {
    /// `pusher:connection_established`, with its `activity_timeout` (seconds).
    Established {
        activity_timeout: u64,
    },
    /// `pusher_internal:subscription_succeeded`.
    Subscribed,
    /// A bench event: its sequence number and scheduled send time.
    Bench {
        seq: u64,
        sent_ns: u64,
    },
    /// `pusher:ping`, which wants a `pusher:pong`.
    Ping,
    /// `pusher:error` or `pusher:subscription_error`, with its data.
    Error(String),
    Other,
}

#[derive(Deserialize)]
struct Envelope {
    event: String,
    #[serde(default)]
    data: Value,
}

/// Reads one frame: `{"event":…, "channel":…, "data":"<string>"}`.
pub fn inbound(frame: &[u8]) -> Inbound {
    let Ok(envelope) = serde_json::from_slice::<Envelope>(frame) else {
        return Inbound::Error(format!("not a Pusher frame: {}", String::from_utf8_lossy(frame)));
    };
    match envelope.event.as_str() {
        EVENT => match envelope.data.as_str().and_then(|data| target::bench_fields(data.as_bytes())) {
            Some((seq, sent_ns)) => Inbound::Bench { seq, sent_ns },
            None => Inbound::Error(format!("a bench event without its fields: {}", envelope.data)),
        },
        "pusher:connection_established" => {
            // Its data is a JSON document in a string.
            let data: Value = envelope.data.as_str().and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default();
            Inbound::Established { activity_timeout: data["activity_timeout"].as_u64().unwrap_or(120).max(1) }
        }
        "pusher_internal:subscription_succeeded" => Inbound::Subscribed,
        "pusher:ping" => Inbound::Ping,
        "pusher:error" | "pusher:subscription_error" => {
            Inbound::Error(format!("{}: {}", envelope.event, envelope.data))
        }
        _ => Inbound::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of Pusher's HTTP API reference ("Generating authentication
    /// signatures"): its key, secret, timestamp, body and signature.
    #[test]
    fn trigger_signature_matches_pushers_published_example() {
        let app = PusherApp {
            app_id: "3".to_owned(),
            key: "278d425bdf160c739803".to_owned(),
            secret: "7ad3773142a6692b25b8".to_owned(),
        };
        let body = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
        assert_eq!(
            app.signed_query(&app.events_path(), body, 1_353_088_179),
            "auth_key=278d425bdf160c739803&auth_timestamp=1353088179&auth_version=1.0\
             &body_md5=ec365a775a4cd0599faeb73354201b6f\
             &auth_signature=da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
        );
    }

    #[test]
    fn a_triggered_event_gives_back_the_fields_of_its_trigger() {
        let trigger: Value = serde_json::from_str(&trigger_body(7, 123_456, "xx")).unwrap();
        let frame = serde_json::json!({ "event": EVENT, "channel": "bench", "data": trigger["data"] }).to_string();
        assert_eq!(inbound(frame.as_bytes()), Inbound::Bench { seq: 7, sent_ns: 123_456 });
    }

    #[test]
    fn handshake_frames_are_recognised() {
        let established =
            br#"{"event":"pusher:connection_established","data":"{\"socket_id\":\"1.2\",\"activity_timeout\":30}"}"#;
        assert_eq!(inbound(established), Inbound::Established { activity_timeout: 30 });
        assert_eq!(
            inbound(br#"{"event":"pusher_internal:subscription_succeeded","channel":"bench","data":"{}"}"#),
            Inbound::Subscribed
        );
        assert_eq!(inbound(br#"{"event":"pusher:ping","data":{}}"#), Inbound::Ping);
        assert!(matches!(
            inbound(br#"{"event":"pusher:error","data":{"code":4001,"message":"no app"}}"#),
            Inbound::Error(_)
        ));
    }
}
