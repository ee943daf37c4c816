//! Pusher's signatures, written from its documentation (not from any server's code):
//! HTTP API requests (`auth_version` 1.0), channel authorizations and webhooks.

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;

use super::App;
use crate::context::encode_segment;

/// Lowercase hex HMAC-SHA256 of `message` with `secret`.
pub(crate) fn hmac_hex(secret: &str, message: &[u8]) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

/// Lowercase hex MD5 of a body.
pub(crate) fn body_md5(body: &[u8]) -> String {
    hex::encode(Md5::digest(body))
}

/// `METHOD\nPATH\nk=v&k=v`: every parameter but `auth_signature`, keys lowercased and
/// sorted, values not escaped.
pub(crate) fn string_to_sign(method: &str, path: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<(String, &str)> = params
        .iter()
        .map(|(key, value)| (key.to_ascii_lowercase(), value.as_str()))
        .filter(|(key, _)| key != "auth_signature")
        .collect();
    sorted.sort();
    let query: Vec<String> = sorted.iter().map(|(key, value)| format!("{key}={value}")).collect();
    format!("{}\n{path}\n{}", method.to_ascii_uppercase(), query.join("&"))
}

/// The signing parameters of a request, before the signature.
pub(crate) fn auth_params(app: &App, body: &[u8], timestamp: i64) -> Vec<(String, String)> {
    let mut params = vec![
        ("auth_key".to_owned(), app.key.clone()),
        ("auth_timestamp".to_owned(), timestamp.to_string()),
        ("auth_version".to_owned(), "1.0".to_owned()),
    ];
    if !body.is_empty() {
        params.push(("body_md5".to_owned(), body_md5(body)));
    }
    params
}

/// Signs `params` (which already hold the signing parameters) and returns the query
/// string, values percent-encoded, `auth_signature` last.
pub(crate) fn signed_query(secret: &str, method: &str, path: &str, params: &[(String, String)]) -> String {
    let signature = hmac_hex(secret, string_to_sign(method, path, params).as_bytes());
    query_string(params, &signature)
}

/// A query string of `params` with `auth_signature` appended, as given (for tampering).
pub(crate) fn query_string(params: &[(String, String)], signature: &str) -> String {
    let mut parts: Vec<String> =
        params.iter().map(|(key, value)| format!("{}={}", encode_segment(key), encode_segment(value))).collect();
    parts.push(format!("auth_signature={signature}"));
    parts.join("&")
}

/// A channel authorization: `<key>:<hex HMAC-SHA256(secret, socket_id:channel[:channel_data])>`.
pub(crate) fn channel_auth(app: &App, socket_id: &str, channel: &str, channel_data: Option<&str>) -> String {
    let to_sign = match channel_data {
        Some(data) => format!("{socket_id}:{channel}:{data}"),
        None => format!("{socket_id}:{channel}"),
    };
    format!("{}:{}", app.key, hmac_hex(&app.secret, to_sign.as_bytes()))
}

/// A user authentication (`pusher:signin`): `<key>:<hex HMAC-SHA256(secret,
/// socket_id::user::user_data)>`.
pub(crate) fn user_auth(app: &App, socket_id: &str, user_data: &str) -> String {
    let to_sign = format!("{socket_id}::user::{user_data}");
    format!("{}:{}", app.key, hmac_hex(&app.secret, to_sign.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs_app() -> App {
        App {
            app_id: "3".to_owned(),
            key: "278d425bdf160c739803".to_owned(),
            secret: "7ad3773142a6692b25b8".to_owned(),
        }
    }

    #[test]
    fn request_signature_matches_the_documented_example() {
        let app = docs_app();
        let body = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
        let params = auth_params(&app, body, 1353088179);
        assert_eq!(params[3].1, "ec365a775a4cd0599faeb73354201b6f");
        let to_sign = string_to_sign("POST", "/apps/3/events", &params);
        assert_eq!(
            hmac_hex(&app.secret, to_sign.as_bytes()),
            "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c"
        );
    }

    #[test]
    fn private_channel_auth_matches_the_documented_example() {
        assert_eq!(
            channel_auth(&docs_app(), "1234.1234", "private-foobar", None),
            "278d425bdf160c739803:58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
        );
    }
}
