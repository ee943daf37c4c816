//! RFC 9457 problem details and the closed set of error codes.

use serde::{Deserialize, Serialize};

/// The stable, closed set of error codes. Clients branch on `code`, never on `title` or
/// `detail`. Each code has exactly one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// 400: the body is not JSON, or the request contradicts itself.
    BadRequest,
    /// 422: the body is JSON but breaks the schema or a documented limit (a REST body nests
    /// at most 32 levels of arrays and objects).
    ValidationError,
    /// 401: no API key, a malformed one, or an unknown one.
    Unauthenticated,
    /// 403: the credentials are valid but do not allow this.
    Forbidden,
    /// 404: the resource does not exist in this account.
    NotFound,
    /// 405: the path exists but not with this method.
    MethodNotAllowed,
    /// 409: the request conflicts with the resource's current state.
    Conflict,
    /// 422: the idempotency key was used before with a different request.
    IdempotencyKeyReused,
    /// 409: a request with this idempotency key is still being processed.
    IdempotencyKeyInUse,
    /// 413: the body or the `data` payload is larger than allowed.
    PayloadTooLarge,
    /// 415: the body is not `application/json`.
    UnsupportedMediaType,
    /// 402: the account's balance does not cover the price of the operation.
    InsufficientCredit,
    /// 429: too many requests; retry after the `Retry-After` header.
    RateLimited,
    /// 500: an unexpected failure; the detail is in the server's log, never here.
    Internal,
    /// 503: a backing engine (store or broker) is unreachable; retry later.
    Unavailable,
    /// 409: the user has no live connection to take a command.
    UserOffline,
    /// 409: the user has too many unacknowledged reliable messages.
    BacklogFull,
    /// 504: no client answered the command within the wait.
    CommandTimeout,
}

impl ErrorCode {
    /// Every code, in declaration order.
    pub const ALL: [ErrorCode; 18] = [
        ErrorCode::BadRequest,
        ErrorCode::ValidationError,
        ErrorCode::Unauthenticated,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::Conflict,
        ErrorCode::IdempotencyKeyReused,
        ErrorCode::IdempotencyKeyInUse,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::InsufficientCredit,
        ErrorCode::RateLimited,
        ErrorCode::Internal,
        ErrorCode::Unavailable,
        ErrorCode::UserOffline,
        ErrorCode::BacklogFull,
        ErrorCode::CommandTimeout,
    ];

    /// The HTTP status that always goes with this code.
    pub const fn status(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::ValidationError => 422,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Conflict => 409,
            ErrorCode::IdempotencyKeyReused => 422,
            ErrorCode::IdempotencyKeyInUse => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::InsufficientCredit => 402,
            ErrorCode::RateLimited => 429,
            ErrorCode::Internal => 500,
            ErrorCode::Unavailable => 503,
            ErrorCode::UserOffline => 409,
            ErrorCode::BacklogFull => 409,
            ErrorCode::CommandTimeout => 504,
        }
    }

    /// The fixed, human-readable title of this kind of problem.
    pub const fn title(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "Bad request",
            ErrorCode::ValidationError => "The request is not valid",
            ErrorCode::Unauthenticated => "Authentication required",
            ErrorCode::Forbidden => "Not allowed",
            ErrorCode::NotFound => "Not found",
            ErrorCode::MethodNotAllowed => "Method not allowed",
            ErrorCode::Conflict => "Conflict",
            ErrorCode::IdempotencyKeyReused => "Idempotency key reused with a different request",
            ErrorCode::IdempotencyKeyInUse => "Idempotency key in use",
            ErrorCode::PayloadTooLarge => "Payload too large",
            ErrorCode::UnsupportedMediaType => "Unsupported media type",
            ErrorCode::InsufficientCredit => "Insufficient credit",
            ErrorCode::RateLimited => "Too many requests",
            ErrorCode::Internal => "Internal error",
            ErrorCode::Unavailable => "Service unavailable",
            ErrorCode::UserOffline => "The user is offline",
            ErrorCode::BacklogFull => "The user's backlog is full",
            ErrorCode::CommandTimeout => "The command was not answered in time",
        }
    }

    /// The wire spelling, e.g. `INSUFFICIENT_CREDIT`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "BAD_REQUEST",
            ErrorCode::ValidationError => "VALIDATION_ERROR",
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::IdempotencyKeyReused => "IDEMPOTENCY_KEY_REUSED",
            ErrorCode::IdempotencyKeyInUse => "IDEMPOTENCY_KEY_IN_USE",
            ErrorCode::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            ErrorCode::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            ErrorCode::InsufficientCredit => "INSUFFICIENT_CREDIT",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::Internal => "INTERNAL",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::UserOffline => "USER_OFFLINE",
            ErrorCode::BacklogFull => "BACKLOG_FULL",
            ErrorCode::CommandTimeout => "COMMAND_TIMEOUT",
        }
    }

    /// The problem `type` URI of this code.
    pub fn type_uri(self) -> String {
        format!("urn:realtime:problem:{}", self.as_str().to_ascii_lowercase().replace('_', "-"))
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One offending value of a rejected request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldError {
    /// JSON Pointer (RFC 6901) to the offending value in the request body, or
    /// `/<name>` for a path or query parameter.
    #[cfg_attr(feature = "openapi", schema(example = "/messages/3/channel"))]
    pub pointer: String,
    /// What is wrong with it and what is allowed.
    #[cfg_attr(feature = "openapi", schema(example = "must be at most 164 bytes"))]
    pub detail: String,
}

impl FieldError {
    /// A field error at `pointer`.
    pub fn new(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        FieldError { pointer: pointer.into(), detail: detail.into() }
    }
}

/// An RFC 9457 problem details body (`application/problem+json`), sent with every error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({
    "type": "urn:realtime:problem:insufficient-credit",
    "title": "Insufficient credit",
    "status": 402,
    "code": "INSUFFICIENT_CREDIT",
    "detail": "publish costs 10 micro-USD; the balance is 0",
    "request_id": "01JD2Q7W3M5X8Y9Z0A1B2C3D4E",
    "topup_url": "/v1/account/topup",
    "balance": 0,
    "required": 10
})))]
pub struct Problem {
    /// A URI naming the kind of problem; one per `code`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// A short summary of the kind of problem; fixed per `code`.
    pub title: String,
    /// The HTTP status of this response.
    #[cfg_attr(feature = "openapi", schema(minimum = 400, maximum = 599))]
    pub status: u16,
    /// The stable error code to branch on.
    pub code: ErrorCode,
    /// What went wrong in this occurrence, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The id of the request, as in the `X-Request-Id` response header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The offending values, for `VALIDATION_ERROR` and `PAYLOAD_TOO_LARGE`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// For `INSUFFICIENT_CREDIT`: where to add credit (`POST` it an amount).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topup_url: Option<String>,
    /// For `INSUFFICIENT_CREDIT`: the balance, in micro-USD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance: Option<i64>,
    /// For `INSUFFICIENT_CREDIT`: the price of the refused operation, in micro-USD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<i64>,
}

impl Problem {
    /// A problem of kind `code` with a detail for people.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Problem {
            type_uri: code.type_uri(),
            title: code.title().to_owned(),
            status: code.status(),
            code,
            detail: Some(detail.into()),
            request_id: None,
            errors: Vec::new(),
            topup_url: None,
            balance: None,
            required: None,
        }
    }
}
