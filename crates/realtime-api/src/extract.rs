//! Request extractors whose every rejection is a problem+json [`ApiError`].

use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::{HeaderMap, StatusCode, header, request::Parts};
use bytes::Bytes;
use realtime_types::limits::JSON_MAX_DEPTH;
use realtime_types::{FieldError, Validate};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::idempotency::Fingerprint;
use crate::routes::App;
use crate::{ApiError, ApiKey, Caller, IdempotencyKey};

/// The prefix every API key starts with.
pub const API_KEY_PREFIX: &str = "ifr_pk_";

/// The authenticated caller, from `Authorization: Bearer <api key>`.
pub struct Authenticated(pub Caller);

impl FromRequestParts<App> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Self, ApiError> {
        let key = bearer_api_key(&parts.headers)?;
        app.api.authenticate(&key).await.map(Authenticated)
    }
}

/// Reads and shape-checks the bearer API key, without looking it up.
pub fn bearer_api_key(headers: &HeaderMap) -> Result<ApiKey, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::unauthenticated("send your API key as `Authorization: Bearer <key>`"));
    };
    let value = value.to_str().map_err(|_| ApiError::unauthenticated("the Authorization header is not text"))?;
    let Some((scheme, key)) = value.split_once(' ') else {
        return Err(ApiError::unauthenticated("the Authorization header must be `Bearer <key>`"));
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::unauthenticated("the Authorization scheme must be Bearer"));
    }
    let key = key.trim();
    let well_formed = key.starts_with(API_KEY_PREFIX)
        && key.len() <= 128
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !well_formed {
        return Err(ApiError::unauthenticated("the API key is malformed; keys look like ifr_pk_proj_…"));
    }
    Ok(ApiKey::new(key))
}

/// The `Idempotency-Key` header. Both the IETF draft's quoted form (`"abc"`) and
/// Stripe's bare form (`abc`) are accepted and mean the same key.
pub struct IdempotencyHeader(pub Option<IdempotencyKey>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyHeader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(IdempotencyHeader(None));
        };
        let text = value.to_str().map_err(|_| ApiError::bad_request("the Idempotency-Key header is not ASCII text"))?;
        let unquoted = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(text);
        IdempotencyKey::parse(unquoted)
            .map(|key| IdempotencyHeader(Some(key)))
            .map_err(|detail| ApiError::bad_request(format!("the Idempotency-Key header {detail}")))
    }
}

/// Merges the header key with the documented `idempotency_key` body field: either one
/// alone is the key; both equal is that key; both different is a 400.
pub fn merge_idempotency_keys(
    header: Option<IdempotencyKey>,
    body: Option<&str>,
) -> Result<Option<IdempotencyKey>, ApiError> {
    let body = body
        .map(IdempotencyKey::parse)
        .transpose()
        .map_err(|detail| ApiError::invalid(vec![FieldError::new("/idempotency_key", detail)]))?;
    match (header, body) {
        (Some(header), Some(body)) if header != body => Err(ApiError::bad_request(
            "the Idempotency-Key header and the idempotency_key field differ; send one, or the same in both",
        )),
        (header, body) => Ok(header.or(body)),
    }
}

/// A state-changing request: its body, its idempotency key (the header and the
/// documented `idempotency_key` field merged) and its fingerprint.
pub struct Keyed<T> {
    /// The validated request.
    pub request: T,
    /// The key, when the caller sent one.
    pub key: Option<IdempotencyKey>,
    /// What identifies the request apart from its key.
    pub fingerprint: Fingerprint,
}

impl<T: Serialize> Keyed<T> {
    /// A request without a body field for the key (a `DELETE`): `request` is what the
    /// path names.
    pub fn new(request: T, key: Option<IdempotencyKey>) -> Self {
        Keyed { fingerprint: Fingerprint::of(&request), request, key }
    }
}

impl<S: Send + Sync, T: DeserializeOwned + Validate + Serialize> FromRequest<S> for Keyed<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let (mut parts, body) = request.into_parts();
        let IdempotencyHeader(header) = IdempotencyHeader::from_request_parts(&mut parts, state).await?;
        let ValidJson(request) = ValidJson::<T>::from_request(Request::from_parts(parts, body), state).await?;
        let value = serde_json::to_value(&request).map_err(ApiError::internal)?;
        let body_key = value.get("idempotency_key").and_then(|key| key.as_str());
        let key = merge_idempotency_keys(header, body_key)?;
        Ok(Keyed { fingerprint: Fingerprint::of(&value), request, key })
    }
}

/// A JSON body, parsed and validated against the documented limits.
///
/// Not JSON: 415 (wrong media type) or 400 (bad syntax). JSON of the wrong shape: 422
/// with a pointer to the offending value. Too large: 413.
pub struct ValidJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Validate> FromRequest<S> for ValidJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .is_some_and(|media| {
                let media = media.trim().to_ascii_lowercase();
                media == "application/json" || (media.starts_with("application/") && media.ends_with("+json"))
            });
        if !is_json {
            return Err(ApiError::new(
                realtime_types::ErrorCode::UnsupportedMediaType,
                "send the body as JSON with `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    realtime_types::ErrorCode::PayloadTooLarge,
                    format!("the body is larger than {} bytes", realtime_types::limits::BODY_MAX_BYTES),
                )
            } else {
                ApiError::bad_request("the body could not be read")
            }
        })?;
        let value = parse_json::<T>(&bytes)?;
        value.validate()?;
        Ok(ValidJson(value))
    }
}

/// Parses JSON into `T`: a syntax error is a 400, a shape error a 422 with a pointer, and
/// a body nested deeper than [`JSON_MAX_DEPTH`] a 422 before it is parsed at all.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if nesting_depth(bytes) > JSON_MAX_DEPTH {
        return Err(ApiError::invalid(vec![FieldError::new(
            "",
            format!("nests arrays and objects more than {JSON_MAX_DEPTH} levels deep"),
        )]));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(&mut deserializer) {
        Ok(value) => {
            deserializer
                .end()
                .map_err(|error| ApiError::bad_request(format!("the body is not valid JSON: {error}")))?;
            Ok(value)
        }
        Err(error) => {
            let pointer = json_pointer(error.path());
            let inner = error.into_inner();
            if inner.is_syntax() || inner.is_eof() || inner.is_io() {
                Err(ApiError::bad_request(format!("the body is not valid JSON: {inner}")))
            } else {
                Err(ApiError::invalid(vec![FieldError::new(pointer, strip_position(&inner.to_string()))]))
            }
        }
    }
}

/// How deeply the arrays and objects of a JSON text nest, found without parsing it (brackets
/// inside strings do not count). serde_json's own limit (128) is a syntax error, a 400;
/// the contract's lower limit is a documented 422 and keeps a deep body from being parsed.
fn nesting_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for &byte in bytes {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Turns serde's `messages[0].channel` path into the JSON Pointer `/messages/0/channel`.
fn json_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut pointer = String::new();
    for segment in path.iter() {
        pointer.push('/');
        match segment {
            Segment::Seq { index } => pointer.push_str(&index.to_string()),
            Segment::Map { key } => pointer.push_str(&key.replace('~', "~0").replace('/', "~1")),
            Segment::Enum { variant } => pointer.push_str(variant),
            Segment::Unknown => pointer.push('?'),
        }
    }
    if pointer == "/?" { String::new() } else { pointer }
}

/// Drops serde's " at line 1 column 17" suffix, which means nothing to an API client.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

/// Query parameters, parsed and validated; a bad value is a 422.
pub struct ValidQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Validate> FromRequestParts<S> for ValidQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(value) = Query::<T>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::invalid(vec![FieldError::new("/query", rejection.body_text())]))?;
        value.validate()?;
        Ok(ValidQuery(value))
    }
}

/// A channel name from the path. A segment that is not a valid UTF-8 name names no
/// channel: 404 `NOT_FOUND`, as for any channel that does not exist.
pub struct ChannelPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ChannelPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(channel)| ChannelPath(channel))
            .map_err(|_| ApiError::not_found("no channel has this name"))
    }
}

/// An id from the path (`{command_id}`). A segment that is not UTF-8 names nothing: 404.
pub struct IdPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(id)| IdPath(id))
            .map_err(|_| ApiError::not_found("nothing has this id"))
    }
}
