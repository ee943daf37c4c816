//! Vendor-native channel authorizations for `realtime.auth.sign`: the exact string
//! formats of Pusher, Ably and Liveblocks (see `shared/reference/realtime-anchors.md`).

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use realtime_types::{AblyTokenRequest, Capability};
use sha2::Sha256;

use crate::config::{LiveblocksConfig, PusherConfig};
use crate::secret::{Secret, random_bytes};

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// Pusher's channel authorization: `<key>:<hex HMAC-SHA256(secret, socket_id:channel[:channel_data])>`.
pub fn pusher_auth(pusher: &PusherConfig, socket_id: &str, channel: &str, channel_data: Option<&str>) -> String {
    let mut to_sign = format!("{socket_id}:{channel}");
    if let Some(data) = channel_data {
        to_sign.push(':');
        to_sign.push_str(data);
    }
    let signature = hex::encode(hmac_sha256(pusher.secret.expose().as_bytes(), to_sign.as_bytes()));
    format!("{}:{signature}", pusher.key)
}

/// Ably's capability JSON in canonical form: channels and operations sorted, no spaces.
pub fn ably_capability(channels: &[String], capabilities: &[Capability]) -> String {
    let mut operations: Vec<&str> = capabilities
        .iter()
        .filter_map(|capability| match capability {
            Capability::Subscribe => Some("subscribe"),
            Capability::Publish => Some("publish"),
            Capability::Presence => Some("presence"),
            // Ably has no user-addressed messages.
            Capability::Message => None,
        })
        .collect();
    operations.sort_unstable();
    operations.dedup();
    let map: BTreeMap<&str, &Vec<&str>> = channels.iter().map(|c| (c.as_str(), &operations)).collect();
    serde_json::to_string(&map).expect("a capability map serialises")
}

/// An Ably TokenRequest signed with `key` (`<appId>.<keyId>:<secret>`).
pub fn ably_token_request(
    key: &Secret,
    client_id: &str,
    capability: String,
    ttl_seconds: u32,
    now: DateTime<Utc>,
) -> Result<AblyTokenRequest, String> {
    let (key_name, key_secret) =
        key.expose().split_once(':').ok_or("the configured Ably key is not <appId>.<keyId>:<secret>")?;
    let ttl = u64::from(ttl_seconds) * 1000;
    let timestamp = now.timestamp_millis();
    let nonce = hex::encode(random_bytes::<16>());
    let to_sign = format!("{key_name}\n{ttl}\n{capability}\n{client_id}\n{timestamp}\n{nonce}\n");
    let mac = STANDARD.encode(hmac_sha256(key_secret.as_bytes(), to_sign.as_bytes()));
    Ok(AblyTokenRequest {
        key_name: key_name.to_owned(),
        ttl,
        capability,
        client_id: client_id.to_owned(),
        timestamp,
        nonce,
        mac,
    })
}

/// A Liveblocks access token (`k: "acc"`, `perms` per room), signed HS256.
pub fn liveblocks_token(
    liveblocks: &LiveblocksConfig,
    client_id: &str,
    channels: &[String],
    capabilities: &[Capability],
    now: DateTime<Utc>,
    ttl_seconds: u32,
) -> String {
    let mut permissions = Vec::new();
    if capabilities.contains(&Capability::Publish) {
        permissions.push("room:write");
    } else {
        permissions.push("room:read");
    }
    if capabilities.contains(&Capability::Presence) {
        permissions.push("room:presence:write");
    }
    let perms: BTreeMap<&str, &Vec<&str>> = channels.iter().map(|c| (c.as_str(), &permissions)).collect();
    let claims = serde_json::json!({
        "k": "acc",
        "pid": liveblocks.project_id,
        "uid": client_id,
        "perms": perms,
        "iat": now.timestamp(),
        "exp": now.timestamp() + i64::from(ttl_seconds),
        "jti": ulid::Ulid::generate().to_string(),
    });
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    let key = jsonwebtoken::EncodingKey::from_secret(liveblocks.secret.expose().as_bytes());
    jsonwebtoken::encode(&header, &claims, &key).expect("HS256 signing cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented Pusher test vector (key 278d425bdf160c739803).
    #[test]
    fn pusher_private_channel_signature_matches_the_documented_vector() {
        let pusher = PusherConfig {
            app_id: "3".into(),
            key: "278d425bdf160c739803".into(),
            secret: Secret::new("7ad3773142a6692b25b8"),
        };
        assert_eq!(
            pusher_auth(&pusher, "1234.1234", "private-foobar", None),
            "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
        );
    }

    #[test]
    fn ably_capability_is_canonical() {
        let channels = vec!["b".to_owned(), "a".to_owned()];
        let capability = ably_capability(&channels, &[Capability::Subscribe, Capability::Publish]);
        assert_eq!(capability, r#"{"a":["publish","subscribe"],"b":["publish","subscribe"]}"#);
    }
}
