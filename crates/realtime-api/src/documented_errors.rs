//! The error responses each kind of operation declares in the document.
//!
//! Every status a handler can return must be listed for its operation; these sets are
//! attached to the `#[utoipa::path]` of each handler so that the lists cannot drift per
//! operation.

#![allow(dead_code)]

use realtime_types::Problem;
use utoipa::IntoResponses;

/// Errors of every authenticated `POST` with a JSON body.
#[derive(IntoResponses)]
pub(crate) enum WriteErrors {
    /// `BAD_REQUEST`: the body is not JSON, the `Idempotency-Key` header is not 1-255
    /// visible ASCII characters, or it and the `idempotency_key` field differ.
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(Problem),
    /// `UNAUTHENTICATED`: no API key, a malformed one, or an unknown one.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthenticated(Problem),
    /// `IDEMPOTENCY_KEY_IN_USE`: a request with this idempotency key is still running
    /// (retry it), or `CONFLICT` where the operation says so.
    #[response(status = 409, content_type = "application/problem+json")]
    Conflict(Problem),
    /// `PAYLOAD_TOO_LARGE`: the body is over 2 MiB, or a `data` over 10240 bytes.
    #[response(status = 413, content_type = "application/problem+json")]
    TooLarge(Problem),
    /// `UNSUPPORTED_MEDIA_TYPE`: the body is not `application/json`.
    #[response(status = 415, content_type = "application/problem+json")]
    UnsupportedMediaType(Problem),
    /// `VALIDATION_ERROR` (with `errors[].pointer`; the pointer is `""` when the body nests
    /// deeper than 32 levels), or `IDEMPOTENCY_KEY_REUSED` when the key was used before
    /// with a different request.
    #[response(status = 422, content_type = "application/problem+json")]
    Unprocessable(Problem),
    /// `RATE_LIMITED`: retry after `Retry-After` seconds.
    #[response(status = 429, content_type = "application/problem+json")]
    RateLimited(Problem),
    /// `INTERNAL`: logged on the server; nothing happened that the response does not say.
    #[response(status = 500, content_type = "application/problem+json")]
    Internal(Problem),
    /// `UNAVAILABLE`: the store or broker is unreachable; retry after `Retry-After`.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem),
}

/// Errors of every authenticated `GET`.
#[derive(IntoResponses)]
pub(crate) enum ReadErrors {
    /// `UNAUTHENTICATED`: no API key, a malformed one, or an unknown one.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthenticated(Problem),
    /// `RATE_LIMITED`: retry after `Retry-After` seconds.
    #[response(status = 429, content_type = "application/problem+json")]
    RateLimited(Problem),
    /// `INTERNAL`: logged on the server.
    #[response(status = 500, content_type = "application/problem+json")]
    Internal(Problem),
    /// `UNAVAILABLE`: the store or broker is unreachable; retry after `Retry-After`.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem),
}

/// Errors of `DELETE` (no body; the key comes from the header).
#[derive(IntoResponses)]
pub(crate) enum DeleteErrors {
    /// `BAD_REQUEST`: the `Idempotency-Key` header is not 1-255 visible ASCII characters.
    #[response(status = 400, content_type = "application/problem+json")]
    BadRequest(Problem),
    /// `UNAUTHENTICATED`: no API key, a malformed one, or an unknown one.
    #[response(status = 401, content_type = "application/problem+json")]
    Unauthenticated(Problem),
    /// `NOT_FOUND`: no such channel in this account.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
    /// `IDEMPOTENCY_KEY_IN_USE`: a request with this key is still running.
    #[response(status = 409, content_type = "application/problem+json")]
    Conflict(Problem),
    /// `IDEMPOTENCY_KEY_REUSED`: the key was used before with a different request.
    #[response(status = 422, content_type = "application/problem+json")]
    Unprocessable(Problem),
    /// `RATE_LIMITED`: retry after `Retry-After` seconds.
    #[response(status = 429, content_type = "application/problem+json")]
    RateLimited(Problem),
    /// `INTERNAL`: logged on the server.
    #[response(status = 500, content_type = "application/problem+json")]
    Internal(Problem),
    /// `UNAVAILABLE`: the store or broker is unreachable.
    #[response(status = 503, content_type = "application/problem+json")]
    Unavailable(Problem),
}

/// `NOT_FOUND` for operations on a named channel.
#[derive(IntoResponses)]
pub(crate) enum ChannelNotFound {
    /// `NOT_FOUND`: no such channel in this account (never created, or deleted).
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
}

/// `NOT_FOUND` for a revocation of an unknown token.
#[derive(IntoResponses)]
pub(crate) enum TokenNotFound {
    /// `NOT_FOUND`: the jti was never issued by this account, or the token is not ours.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
}

/// `INSUFFICIENT_CREDIT` for billable operations.
#[derive(IntoResponses)]
pub(crate) enum Billable {
    /// `INSUFFICIENT_CREDIT`: the balance does not cover the price; nothing happened.
    /// `topup_url` says where to add credit; retry after topping up.
    #[response(status = 402, content_type = "application/problem+json")]
    InsufficientCredit(Problem),
}

/// `VALIDATION_ERROR` for a bad query string.
#[derive(IntoResponses)]
pub(crate) enum BadQuery {
    /// `VALIDATION_ERROR`: a query parameter is out of range, or a cursor is not of the
    /// documented form.
    #[response(status = 422, content_type = "application/problem+json")]
    Unprocessable(Problem),
}

/// `COMMAND_TIMEOUT` for commands that wait for their response.
#[derive(IntoResponses)]
pub(crate) enum CommandTimeout {
    /// `COMMAND_TIMEOUT`: no client answered within the wait; the command may still be
    /// answered until it expires (read it with `realtime.user.command.get`).
    #[response(status = 504, content_type = "application/problem+json")]
    Timeout(Problem),
}

/// `NOT_FOUND` for an unknown command.
#[derive(IntoResponses)]
pub(crate) enum CommandNotFound {
    /// `NOT_FOUND`: no command with this id was sent by this account.
    #[response(status = 404, content_type = "application/problem+json")]
    NotFound(Problem),
}
