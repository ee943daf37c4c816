//! Before any check: the target answers at its base URL and takes the keys it was given.
//! A run that fails here has not started (exit 2): "cannot reach" and "the key is
//! refused" are told apart from failing checks.

use crate::http::{Request, Target};
use crate::{Config, RunError};

/// The realtime profile: `GET /v1/account` answers, with the funded key and with the
/// zero-credit key when one is given.
pub(crate) async fn realtime(target: &Target, config: &Config) -> Result<(), RunError> {
    probe(target, "--api-key", &config.api_key).await?;
    if let Some(zero) = &config.zero_credit_api_key {
        probe(target, "--zero-credit-api-key", zero).await?;
    }
    Ok(())
}

async fn probe(target: &Target, credential: &'static str, key: &str) -> Result<(), RunError> {
    let request = Request::new("GET", "/v1/account").bearer(key);
    answered(target, &request, credential, "GET /v1/account").await
}

/// Sends `request` and sorts its answer: no answer is `Unreachable`, 401 and 403 refuse
/// `credential`, 404 and 405 say the base URL serves something else. Every other status
/// lets the run start; the checks judge it.
pub(crate) async fn answered(
    target: &Target,
    request: &Request,
    credential: &'static str,
    what: &str,
) -> Result<(), RunError> {
    let response = target
        .send(request)
        .await
        .map_err(|reason| RunError::Unreachable { url: target.base_url().to_owned(), reason })?;
    match response.status {
        401 | 403 => Err(RunError::KeyRefused {
            credential,
            what: what.to_owned(),
            status: response.status,
            body: String::from_utf8_lossy(&response.body).into_owned(),
        }),
        404 | 405 => Err(RunError::NotServed {
            url: target.base_url().to_owned(),
            what: what.to_owned(),
            status: response.status,
        }),
        _ => Ok(()),
    }
}
