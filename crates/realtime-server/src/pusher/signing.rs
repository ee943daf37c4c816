//! Pusher's signatures, as pure functions: HTTP API requests (auth_version 1.0) and
//! channel authorizations. Every comparison of a presented signature runs in constant
//! time, and every string to sign is built from what was received, byte for byte.

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::secret::Secret;

/// Why a signed HTTP API request was refused (all are 401s).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestRefused {
    /// A signing parameter is missing.
    #[error("missing {0}: sign the request with the app key and secret")]
    Missing(&'static str),
    /// `auth_key` is not the app's key.
    #[error("auth_key is not the key of this app")]
    WrongKey,
    /// `auth_version` is not 1.0.
    #[error("unsupported auth_version {0:?}: use 1.0")]
    Version(String),
    /// `auth_timestamp` is not within the allowed skew of the server's clock.
    #[error("timestamp expired: {given} is not within {skew} s of the server time {now}")]
    Timestamp {
        /// The timestamp sent.
        given: String,
        /// The server's clock.
        now: i64,
        /// The allowed difference.
        skew: i64,
    },
    /// `body_md5` does not match the body.
    #[error("body_md5 does not match the body")]
    BodyMd5,
    /// The signature is not the expected one.
    #[error("invalid signature: expected HMAC SHA256 hex digest of {to_sign:?}")]
    Signature {
        /// The string that was expected to be signed (it holds no secret).
        to_sign: String,
    },
}

/// A signed HTTP API request as received.
#[derive(Debug)]
pub struct SignedRequest<'a> {
    /// `GET` or `POST`.
    pub method: &'a str,
    /// The path, e.g. `/apps/123456/events`.
    pub path: &'a str,
    /// The query parameters, decoded.
    pub query: &'a [(String, String)],
    /// The raw body.
    pub body: &'a [u8],
}

fn hmac_hex(secret: &Secret, message: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes keys of any length");
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn equal(expected: &str, presented: &str) -> bool {
    expected.as_bytes().ct_eq(presented.as_bytes()).into()
}

/// `X-Pusher-Signature` of a webhook: hex HMAC-SHA256 of the exact body with the app's
/// secret.
pub fn webhook_signature(secret: &Secret, body: &str) -> String {
    hmac_hex(secret, body)
}

/// The lowercase hex MD5 of a body.
pub fn body_md5(body: &[u8]) -> String {
    hex::encode(Md5::digest(body))
}

/// The string a request signature covers: `METHOD\nPATH\nk=v&k=v` with every parameter
/// but `auth_signature`, keys lowercased and sorted, values not escaped.
pub fn string_to_sign(method: &str, path: &str, query: &[(String, String)]) -> String {
    let mut params: Vec<(String, &str)> = query
        .iter()
        .map(|(key, value)| (key.to_ascii_lowercase(), value.as_str()))
        .filter(|(key, _)| key != "auth_signature")
        .collect();
    params.sort();
    let query: Vec<String> = params.iter().map(|(key, value)| format!("{key}={value}")).collect();
    format!("{}\n{path}\n{}", method.to_ascii_uppercase(), query.join("&"))
}

/// The signature of a request (for clients and tests).
pub fn sign_request(secret: &Secret, method: &str, path: &str, query: &[(String, String)]) -> String {
    hmac_hex(secret, &string_to_sign(method, path, query))
}

/// Checks a request's signature, key, version, timestamp (against `now`, Unix seconds)
/// and body digest.
pub fn verify_request(key: &str, secret: &Secret, request: &SignedRequest<'_>, now: i64) -> Result<(), RequestRefused> {
    let param = |name: &'static str| {
        request.query.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    };
    let presented_key = param("auth_key").ok_or(RequestRefused::Missing("auth_key"))?;
    let timestamp = param("auth_timestamp").ok_or(RequestRefused::Missing("auth_timestamp"))?;
    let version = param("auth_version").ok_or(RequestRefused::Missing("auth_version"))?;
    let signature = param("auth_signature").ok_or(RequestRefused::Missing("auth_signature"))?;
    if !equal(key, presented_key) {
        return Err(RequestRefused::WrongKey);
    }
    if version != "1.0" {
        return Err(RequestRefused::Version(version.to_owned()));
    }
    let skew = realtime_types::pusher::TIMESTAMP_SKEW_SECONDS;
    let within = |given: i64| given.checked_sub(now).is_some_and(|apart| apart.unsigned_abs() <= skew.unsigned_abs());
    if !timestamp.parse::<i64>().is_ok_and(within) {
        return Err(RequestRefused::Timestamp { given: timestamp.to_owned(), now, skew });
    }
    match (request.body.is_empty(), param("body_md5")) {
        (_, Some(md5)) if !equal(&body_md5(request.body), md5) => return Err(RequestRefused::BodyMd5),
        (false, None) => return Err(RequestRefused::Missing("body_md5")),
        _ => {}
    }
    let to_sign = string_to_sign(request.method, request.path, request.query);
    if !equal(&hmac_hex(secret, &to_sign), signature) {
        return Err(RequestRefused::Signature { to_sign });
    }
    Ok(())
}

/// A channel authorization: `<key>:<hex HMAC-SHA256(secret, socket_id:channel[:channel_data])>`.
pub fn channel_auth(key: &str, secret: &Secret, socket_id: &str, channel: &str, channel_data: Option<&str>) -> String {
    let to_sign = match channel_data {
        Some(data) => format!("{socket_id}:{channel}:{data}"),
        None => format!("{socket_id}:{channel}"),
    };
    format!("{key}:{}", hmac_hex(secret, &to_sign))
}

/// Whether `auth` authorizes `socket_id` on `channel`, with `channel_data` exactly as
/// received.
pub fn verify_channel_auth(
    key: &str,
    secret: &Secret,
    socket_id: &str,
    channel: &str,
    channel_data: Option<&str>,
    auth: &str,
) -> bool {
    equal(&channel_auth(key, secret, socket_id, channel, channel_data), auth)
}

/// A user authentication (`pusher:signin`): `<key>:<hex HMAC-SHA256(secret,
/// socket_id::user::user_data)>`.
pub fn user_auth(key: &str, secret: &Secret, socket_id: &str, user_data: &str) -> String {
    format!("{key}:{}", hmac_hex(secret, &format!("{socket_id}::user::{user_data}")))
}

/// Whether `auth` signs in `socket_id` with `user_data` exactly as received.
pub fn verify_user_auth(key: &str, secret: &Secret, socket_id: &str, user_data: &str, auth: &str) -> bool {
    equal(&user_auth(key, secret, socket_id, user_data), auth)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "278d425bdf160c739803";

    fn secret() -> Secret {
        Secret::new("7ad3773142a6692b25b8")
    }

    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// The worked example of Pusher's HTTP API documentation.
    #[test]
    fn request_signature_matches_the_documented_example() {
        let body = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
        assert_eq!(body_md5(body), "ec365a775a4cd0599faeb73354201b6f");
        let mut params = query(&[
            ("auth_key", KEY),
            ("auth_timestamp", "1353088179"),
            ("auth_version", "1.0"),
            ("body_md5", "ec365a775a4cd0599faeb73354201b6f"),
        ]);
        let signature = sign_request(&secret(), "POST", "/apps/3/events", &params);
        assert_eq!(signature, "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c");
        params.insert(0, ("auth_signature".into(), signature));
        let request = SignedRequest { method: "POST", path: "/apps/3/events", query: &params, body };
        assert_eq!(verify_request(KEY, &secret(), &request, 1353088179 + 600), Ok(()));
        assert!(matches!(
            verify_request(KEY, &secret(), &request, 1353088179 + 601),
            Err(RequestRefused::Timestamp { .. })
        ));
        let tampered = SignedRequest { body: b"{}", ..request };
        assert_eq!(verify_request(KEY, &secret(), &tampered, 1353088179), Err(RequestRefused::BodyMd5));
    }

    #[test]
    fn an_absurd_timestamp_is_refused_not_overflowed() {
        let params = query(&[
            ("auth_key", KEY),
            ("auth_timestamp", "-9223372036854775808"),
            ("auth_version", "1.0"),
            ("auth_signature", "x"),
        ]);
        let request = SignedRequest { method: "GET", path: "/apps/3/channels", query: &params, body: b"" };
        assert!(matches!(verify_request(KEY, &secret(), &request, 1353088179), Err(RequestRefused::Timestamp { .. })));
    }

    /// The documented vectors of private channels and user sign-in.
    #[test]
    fn channel_and_user_signatures_match_the_documented_vectors() {
        assert_eq!(
            channel_auth(KEY, &secret(), "1234.1234", "private-foobar", None),
            "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
        );
        let user = "278d425bdf160c739803:4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba";
        assert!(verify_user_auth(KEY, &secret(), "1234.1234", r#"{"id":"12345"}"#, user));
        assert!(!verify_user_auth(KEY, &secret(), "1234.1235", r#"{"id":"12345"}"#, user));
    }

    #[test]
    fn presence_signatures_cover_channel_data_byte_for_byte() {
        let spaced = r#"{"user_id": "u1"}"#;
        let auth = channel_auth(KEY, &secret(), "1.2", "presence-a", Some(spaced));
        assert!(verify_channel_auth(KEY, &secret(), "1.2", "presence-a", Some(spaced), &auth));
        assert!(!verify_channel_auth(KEY, &secret(), "1.2", "presence-a", Some(r#"{"user_id":"u1"}"#), &auth));
    }
}
