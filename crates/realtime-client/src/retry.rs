//! When a failed call is tried again, and how long to wait first.
//!
//! Every retried POST or DELETE carries the `Idempotency-Key` of its first attempt, so a
//! retry after a lost answer replays the stored response instead of acting twice.

use std::time::Duration;

use realtime_types::ErrorCode;

/// How failed calls are retried: network failures, 5xx, 429 and 409
/// `IDEMPOTENCY_KEY_IN_USE`, with exponential backoff and full jitter, honouring
/// `Retry-After` (up to `max_delay`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt; 0 disables retrying.
    pub max_retries: u32,
    /// The delay before the first retry (before jitter).
    pub initial_delay: Duration,
    /// The longest delay between two attempts, `Retry-After` included.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { max_retries: 3, initial_delay: Duration::from_millis(200), max_delay: Duration::from_secs(10) }
    }
}

impl RetryPolicy {
    /// Never retry.
    pub const NONE: RetryPolicy =
        RetryPolicy { max_retries: 0, initial_delay: Duration::ZERO, max_delay: Duration::ZERO };

    /// The wait before retry number `retry` (0-based): the server's `Retry-After` when it
    /// sent one, otherwise a random delay up to `initial_delay * 2^retry`; never more than
    /// `max_delay`.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(retry_after) = retry_after {
            return retry_after.min(self.max_delay);
        }
        backoff(self.initial_delay, self.max_delay, retry)
    }
}

/// Exponential backoff with jitter: a random delay between half and all of
/// `initial * 2^attempt`, capped at `max`.
pub(crate) fn backoff(initial: Duration, max: Duration, attempt: u32) -> Duration {
    let ceiling = initial.saturating_mul(2u32.saturating_pow(attempt.min(16))).min(max);
    // Jitter keeps many clients that failed together from retrying together; the floor of
    // half the ceiling keeps the delay from collapsing to nothing.
    let half = ceiling / 2;
    let spread = u64::try_from((ceiling - half).as_micros()).unwrap_or(u64::MAX);
    half + Duration::from_micros(if spread == 0 { 0 } else { rand::random_range(0..=spread) })
}

/// Whether an answer with this status and error code is worth another attempt.
pub(crate) fn is_retryable_status(status: u16, code: Option<ErrorCode>) -> bool {
    match status {
        429 => true,
        409 => code == Some(ErrorCode::IdempotencyKeyInUse),
        // 501 (not implemented) and 505 will not change by waiting.
        501 | 505 => false,
        // The command already reached the user's devices and nobody answered in time;
        // sending it again would only wait again.
        504 if code == Some(ErrorCode::CommandTimeout) => false,
        500..=599 => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_grows_exponentially_and_stays_under_the_ceiling() {
        let policy = RetryPolicy {
            max_retries: 10,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        for retry in 0..10 {
            let delay = policy.delay(retry, None);
            let ceiling = (Duration::from_millis(100) * 2u32.pow(retry)).min(Duration::from_secs(1));
            assert!(delay <= ceiling, "retry {retry}: {delay:?} > {ceiling:?}");
            assert!(delay >= ceiling / 2, "retry {retry}: {delay:?} < half of {ceiling:?}");
        }
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_maximum_delay() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.delay(0, Some(Duration::from_secs(2))), Duration::from_secs(2));
        assert_eq!(policy.delay(0, Some(Duration::from_secs(600))), policy.max_delay);
    }

    #[test]
    fn only_transient_statuses_are_retried() {
        assert!(is_retryable_status(503, Some(ErrorCode::Unavailable)));
        assert!(is_retryable_status(500, Some(ErrorCode::Internal)));
        assert!(is_retryable_status(502, None));
        assert!(is_retryable_status(429, Some(ErrorCode::RateLimited)));
        assert!(is_retryable_status(409, Some(ErrorCode::IdempotencyKeyInUse)));
        assert!(!is_retryable_status(409, Some(ErrorCode::Conflict)));
        assert!(!is_retryable_status(402, Some(ErrorCode::InsufficientCredit)));
        assert!(!is_retryable_status(422, Some(ErrorCode::IdempotencyKeyReused)));
        assert!(!is_retryable_status(501, None));
        assert!(!is_retryable_status(504, Some(ErrorCode::CommandTimeout)));
        assert!(is_retryable_status(504, None));
    }
}
