//! [`ApiError`]: every failure an operation can report. (With the `router` feature,
//! `response.rs` is the one place where it becomes an `application/problem+json` response.)

use realtime_types::{ErrorCode, FieldError, Problem, Rejection};

/// The problem+json media type.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Every failure an operation can report. It carries only what the client may see;
/// internal causes are logged where they are turned into [`ErrorCode::Internal`] or
/// [`ErrorCode::Unavailable`], never sent.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    problem: Box<Problem>,
    retry_after_seconds: Option<u32>,
}

impl ApiError {
    /// A problem of kind `code` with a detail for people.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        ApiError { problem: Box::new(Problem::new(code, detail)), retry_after_seconds: None }
    }

    /// An error that answers with exactly `problem` (for proxies and clients that relay a
    /// problem they received). The status follows the code, as everywhere.
    pub fn from_problem(problem: Problem) -> Self {
        let mut problem = problem;
        problem.status = problem.code.status();
        problem.type_uri = problem.code.type_uri();
        ApiError { problem: Box::new(problem), retry_after_seconds: None }
    }

    /// 401 `UNAUTHENTICATED`.
    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthenticated, detail)
    }

    /// 404 `NOT_FOUND`.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, detail)
    }

    /// 403 `FORBIDDEN`.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, detail)
    }

    /// 409 `CONFLICT`.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, detail)
    }

    /// 400 `BAD_REQUEST`.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, detail)
    }

    /// 422 `VALIDATION_ERROR` for the given values.
    pub fn invalid(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [only] => format!("{} {}", only.pointer, only.detail),
            many => format!("{} values are not valid", many.len()),
        };
        let mut error = Self::new(ErrorCode::ValidationError, detail);
        error.problem.errors = errors;
        error
    }

    /// 402 `INSUFFICIENT_CREDIT`, with the balance, the price and where to top up.
    pub fn insufficient_credit(operation: &str, balance: i64, required: i64, topup_url: impl Into<String>) -> Self {
        let mut error = Self::new(
            ErrorCode::InsufficientCredit,
            format!("{operation} costs {required} micro-USD; the balance is {balance}"),
        );
        error.problem.balance = Some(balance);
        error.problem.required = Some(required);
        error.problem.topup_url = Some(topup_url.into());
        error
    }

    /// 500 `INTERNAL`: logs `cause` and tells the client nothing more.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::new(ErrorCode::Internal, "an unexpected error occurred; it has been logged")
    }

    /// 503 `UNAVAILABLE`: logs `cause` and asks the client to retry later.
    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        tracing::warn!(%cause, "backing engine unavailable");
        let mut error = Self::new(ErrorCode::Unavailable, "a backing service is unavailable; retry later");
        error.retry_after_seconds = Some(1);
        error
    }

    /// Adds an offending value.
    pub fn with_field(mut self, error: FieldError) -> Self {
        self.problem.errors.push(error);
        self
    }

    /// Sets `Retry-After` on the response.
    pub fn with_retry_after(mut self, seconds: u32) -> Self {
        self.retry_after_seconds = Some(seconds);
        self
    }

    /// The error code.
    pub fn code(&self) -> ErrorCode {
        self.problem.code
    }

    /// The problem body that will be sent.
    pub fn problem(&self) -> &Problem {
        &self.problem
    }

    /// The `Retry-After` seconds to send, if any.
    pub fn retry_after_seconds(&self) -> Option<u32> {
        self.retry_after_seconds
    }
}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> Self {
        match rejection {
            Rejection::Invalid(errors) => ApiError::invalid(errors),
            Rejection::TooLarge(error) => {
                let mut api_error =
                    ApiError::new(ErrorCode::PayloadTooLarge, format!("{} {}", error.pointer, error.detail));
                api_error.problem.errors = vec![error];
                api_error
            }
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.problem.code, self.problem.detail.as_deref().unwrap_or(""))
    }
}

impl std::error::Error for ApiError {}
