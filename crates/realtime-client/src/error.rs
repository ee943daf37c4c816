//! [`ClientError`]: what a call through the client can fail with.

use std::time::Duration;

use realtime_types::{ErrorCode, Problem};

/// A failed call. Exactly one of: the server answered with a problem, the request never
/// got an answer, or the answer was not what the contract says.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an RFC 9457 problem (`application/problem+json`).
    #[error("{} ({}): {}", problem.title, problem.code, problem.detail.as_deref().unwrap_or("no detail"))]
    Api {
        /// The HTTP status of the response (the problem's `status` says the same).
        status: u16,
        /// The problem body: `code` to branch on, `detail` and `errors` for people.
        problem: Box<Problem>,
        /// The `Retry-After` header, when the server sent one.
        retry_after: Option<Duration>,
    },
    /// The request got no HTTP answer: connection refused or reset, timeout, DNS.
    #[error("{operation}: no answer from {url}")]
    Transport {
        /// The operationId that was called.
        operation: &'static str,
        /// The URL that was called.
        url: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered, but not with the documented body for that status.
    #[error("{operation}: unexpected HTTP {status} response from {url}: {excerpt}")]
    Decode {
        /// The operationId that was called.
        operation: &'static str,
        /// The URL that was called.
        url: String,
        /// The HTTP status of the response.
        status: u16,
        /// The start of the body, for people.
        excerpt: String,
        /// Why it did not parse.
        #[source]
        source: serde_json::Error,
    },
    /// The client was configured with something unusable (for example a base URL that is
    /// not an absolute http(s) URL).
    #[error("invalid client configuration: {0}")]
    Config(String),
}

impl ClientError {
    /// The problem's error code, for [`ClientError::Api`].
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Api { problem, .. } => Some(problem.code),
            ClientError::Transport { .. } | ClientError::Decode { .. } | ClientError::Config(_) => None,
        }
    }

    /// The problem body, for [`ClientError::Api`].
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            ClientError::Api { problem, .. } => Some(problem),
            ClientError::Transport { .. } | ClientError::Decode { .. } | ClientError::Config(_) => None,
        }
    }

    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } | ClientError::Decode { status, .. } => Some(*status),
            ClientError::Transport { .. } | ClientError::Config(_) => None,
        }
    }
}

/// Turns a client failure into the server-side error type, so a [`crate::Client`] can stand
/// behind [`realtime_api::router`] (a proxy): problems pass through with their code,
/// and failures to reach the upstream become `UNAVAILABLE`.
impl From<ClientError> for realtime_api::ApiError {
    fn from(error: ClientError) -> Self {
        use realtime_api::ApiError;
        match error {
            ClientError::Api { problem, retry_after, .. } => {
                let mut api_error = ApiError::from_problem(*problem);
                if let Some(retry_after) = retry_after {
                    api_error = api_error.with_retry_after(u32::try_from(retry_after.as_secs()).unwrap_or(u32::MAX));
                }
                api_error
            }
            ClientError::Transport { .. } => ApiError::unavailable(&error),
            ClientError::Decode { .. } | ClientError::Config(_) => ApiError::internal(&error),
        }
    }
}
