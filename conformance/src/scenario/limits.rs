//! The request rate limit: a target that documents its limit in a `RateLimit-Policy`
//! response header (draft-ietf-httpapi-ratelimit-headers: `"name";q=<quota>;w=<window
//! seconds>`) answers 429 `RATE_LIMITED` with `Retry-After` once driven past it, and serves
//! again after waiting that long. The drive is bounded in requests and time; it runs last,
//! with the second account's key when there is one, so no other check meets the limit.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream;

use crate::context::Ctx;
use crate::http::{Request, Response};
use crate::report::Kind;

const KIND: Kind = Kind::Limits;

const LIMITED: &str = "limits/driven past its documented rate limit, the target answers 429 with Retry-After";
const EVERY_OPERATION: &str = "limits/every operation answers 429 RATE_LIMITED while the account is over its budget";
const RECOVERS: &str = "limits/after Retry-After the target serves the account again";

/// The most requests the drive sends.
const MAX_REQUESTS: usize = 6000;
/// The longest the drive lasts.
const MAX_DRIVE: Duration = Duration::from_secs(20);
/// Requests in flight at once.
const CONCURRENCY: usize = 16;
/// Requests in a wave of the every-operation check (a fifth of them the operation's).
const WAVE: usize = 40;
/// The longest `Retry-After` the harness waits out.
const MAX_RETRY_AFTER: u64 = 10;

/// A documented limit: `quota` requests per `window` seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Policy {
    pub(crate) quota: u64,
    pub(crate) window: u64,
}

/// Parses the first policy of a `RateLimit-Policy` header, e.g. `"account";q=100;w=1`.
pub(crate) fn parse_policy(header: &str) -> Option<Policy> {
    let first = header.split(',').next()?;
    let mut quota = None;
    let mut window = Some(1);
    for parameter in first.split(';').skip(1) {
        let (name, value) = parameter.trim().split_once('=')?;
        match name.trim() {
            "q" => quota = value.trim().parse().ok(),
            "w" => window = value.trim().parse().ok(),
            _ => {}
        }
    }
    Some(Policy { quota: quota?, window: window.filter(|w| *w > 0)? })
}

pub(crate) async fn run(ctx: &Ctx) {
    let key = ctx.config.zero_credit_api_key.clone().unwrap_or_else(|| ctx.funded_key().to_owned());
    let request = Request::new("GET", ctx.path("account.get", &[])).bearer(&key);
    let started = Instant::now();
    let first = match ctx.call("account.get", &request).await {
        Ok(response) => response,
        Err(err) => {
            ctx.record(LIMITED, KIND, started, Err(format!("account.get before the drive: {err}")));
            ctx.skip(EVERY_OPERATION, KIND, "account.get failed before the drive");
            ctx.skip(RECOVERS, KIND, "account.get failed before the drive");
            return;
        }
    };
    let Some(policy) = first.header("ratelimit-policy").and_then(parse_policy) else {
        let reason = "the target documents no rate limit (no RateLimit-Policy header on account.get)";
        for id in [LIMITED, EVERY_OPERATION, RECOVERS] {
            ctx.skip(id, KIND, reason);
        }
        return;
    };
    let started = Instant::now();
    match drive(ctx, &request, policy).await {
        Drive::Limited(response) => {
            let retry_after = response.header("retry-after").and_then(|value| value.trim().parse::<u64>().ok());
            let result = check_limited(ctx, "account.get", &response, retry_after);
            let failed = result.is_err();
            ctx.record(LIMITED, KIND, started, result);
            if failed {
                ctx.skip(EVERY_OPERATION, KIND, "the 429 check failed");
            } else {
                let started = Instant::now();
                let result = every_operation(ctx, &request, &key).await;
                ctx.record(EVERY_OPERATION, KIND, started, result);
            }
            match retry_after {
                _ if failed => ctx.skip(RECOVERS, KIND, "the 429 check failed"),
                Some(seconds) if seconds <= MAX_RETRY_AFTER => {
                    let started = Instant::now();
                    tokio::time::sleep(Duration::from_secs(seconds)).await;
                    let result = ctx.expect("account.get", &request, 200, None).await.map(drop);
                    ctx.record(RECOVERS, KIND, started, result);
                }
                _ => {
                    ctx.skip(RECOVERS, KIND, &format!("Retry-After is over the {MAX_RETRY_AFTER} s the harness waits"))
                }
            }
        }
        Drive::TooSlow { sent, took } => {
            let reason = format!(
                "the harness sent {sent} requests in {took:.1?}, not faster than the documented {} per {} s",
                policy.quota, policy.window
            );
            for id in [LIMITED, EVERY_OPERATION, RECOVERS] {
                ctx.skip(id, KIND, &reason);
            }
        }
        Drive::NeverLimited { sent, took } => {
            let mismatch = format!(
                "{sent} requests in {took:.1?} under a documented limit of {} per {} s, and none was 429",
                policy.quota, policy.window
            );
            ctx.record(LIMITED, KIND, started, Err(mismatch));
            ctx.skip(EVERY_OPERATION, KIND, "the 429 check failed");
            ctx.skip(RECOVERS, KIND, "the 429 check failed");
        }
        Drive::Failed(err) => {
            ctx.record(LIMITED, KIND, started, Err(err));
            ctx.skip(EVERY_OPERATION, KIND, "the 429 check failed");
            ctx.skip(RECOVERS, KIND, "the 429 check failed");
        }
    }
}

/// Each documented operation, sent alongside a wave that keeps the account over its budget,
/// must answer 429 `RATE_LIMITED` with `Retry-After` (the limit comes before anything else).
async fn every_operation(ctx: &Ctx, drain: &Request, key: &str) -> Result<(), String> {
    let mut missed = Vec::new();
    for operation in ctx.spec.operations() {
        let params: Vec<String> = operation.path.matches('{').map(|_| ctx.name("limited")).collect();
        let params: Vec<&str> = params.iter().map(String::as_str).collect();
        let mut request = Request::new(&operation.method, ctx.path(&operation.id, &params)).bearer(key);
        if operation.method != "GET" {
            request = request.json(&serde_json::json!({}));
        }
        // Copies of the operation's request go out among a wave that empties the budget:
        // some copies must meet the limit.
        let mut last = None;
        for _ in 0..10 {
            // Every fifth request is a copy, so that copies meet the refill no more than drains.
            let is_copy = |n: usize| n % 5 == 4;
            let requests = (0..WAVE).map(|n| if is_copy(n) { &request } else { drain });
            let answers: Vec<Result<Response, String>> =
                stream::iter(requests).map(|r| ctx.target.send(r)).buffered(WAVE).collect().await;
            let mut copies = answers.into_iter().enumerate().filter(|(n, _)| is_copy(*n)).map(|(_, answer)| answer);
            let limited = copies.find_map(|answer| answer.ok().filter(|answer| answer.status == 429));
            if limited.is_some() {
                last = limited;
                break;
            }
        }
        let Some(answer) = last else {
            missed.push(format!("{} was never answered 429", operation.id));
            continue;
        };
        check_limited(ctx, &operation.id, &answer, answer.header("retry-after").and_then(|v| v.trim().parse().ok()))?;
    }
    match missed.is_empty() {
        true => Ok(()),
        false => Err(format!("over the budget, expected 429 from every operation: {}", missed.join(", "))),
    }
}

enum Drive {
    Limited(Response),
    TooSlow { sent: usize, took: Duration },
    NeverLimited { sent: usize, took: Duration },
    Failed(String),
}

/// Sends `request` in waves until a 429, the request bound or the time bound.
async fn drive(ctx: &Ctx, request: &Request, policy: Policy) -> Drive {
    let started = Instant::now();
    let mut sent = 0;
    while sent < MAX_REQUESTS && started.elapsed() < MAX_DRIVE {
        let wave = stream::iter(0..CONCURRENCY * 4)
            .map(|_| ctx.target.send(request))
            .buffer_unordered(CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        sent += wave.len();
        for response in wave {
            match response {
                Ok(response) if response.status == 429 => return Drive::Limited(response),
                Ok(response) if response.status == 200 => {}
                Ok(response) => {
                    return Drive::Failed(format!("account.get answered {} while driving the rate", response.status));
                }
                Err(err) => return Drive::Failed(err),
            }
        }
    }
    let took = started.elapsed();
    // Past the limit means more than the quota plus what refills while sending.
    let allowed = policy.quota as f64 * (1.0 + took.as_secs_f64() / policy.window as f64);
    if (sent as f64) < allowed * 1.2 { Drive::TooSlow { sent, took } } else { Drive::NeverLimited { sent, took } }
}

fn check_limited(ctx: &Ctx, operation: &str, response: &Response, retry_after: Option<u64>) -> Result<(), String> {
    crate::context::expect_status(operation, response, 429, Some("RATE_LIMITED"))?;
    ctx.conforms(operation, response)?;
    match retry_after {
        Some(seconds) if seconds >= 1 => Ok(()),
        _ => Err(format!(
            "the 429 has Retry-After {:?}, expected a whole number of seconds of at least 1",
            response.header("retry-after")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::{Policy, parse_policy};

    #[test]
    fn the_first_policy_of_the_header_is_read() {
        assert_eq!(parse_policy(r#""account";q=100;w=2"#), Some(Policy { quota: 100, window: 2 }));
        assert_eq!(parse_policy(r#""a";q=5, "b";q=100;w=60"#), Some(Policy { quota: 5, window: 1 }));
        assert_eq!(parse_policy(r#""account";w=2"#), None);
        assert_eq!(parse_policy("nonsense"), None);
    }
}
