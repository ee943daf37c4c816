//! `realtime account create`: the reference server's admin API, which is not part of the
//! public contract (so it is not in the typed client).

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::output::Output;
use crate::settings::Settings;

/// The admin API's path for creating accounts.
const ACCOUNTS_PATH: &str = "/admin/v1/accounts";

#[derive(Serialize)]
struct NewAccount {
    balance: i64,
}

#[derive(Serialize, Deserialize)]
struct CreatedAccount {
    account_id: String,
    api_key: String,
    balance: i64,
}

pub(crate) async fn create_account(settings: &Settings, out: Output, balance: i64) -> anyhow::Result<()> {
    let Some(secret) = &settings.admin_secret else {
        anyhow::bail!("account create needs the server's admin secret: --admin-secret or REALTIME_ADMIN_SECRET");
    };
    let url = format!("{}{ACCOUNTS_PATH}", settings.url.trim_end_matches('/'));
    let http = reqwest::Client::builder().timeout(settings.timeout).build()?;
    let response = http
        .post(&url)
        .bearer_auth(secret)
        .json(&NewAccount { balance })
        .send()
        .await
        .with_context(|| format!("no answer from {url}"))?;
    let status = response.status();
    let bytes = response.bytes().await.with_context(|| format!("reading the answer of {url}"))?;
    if !status.is_success() {
        if let Ok(problem) = serde_json::from_slice::<realtime_types::Problem>(&bytes) {
            return Err(realtime_client::ClientError::Api {
                status: status.as_u16(),
                problem: Box::new(problem),
                retry_after: None,
            }
            .into());
        }
        anyhow::bail!("{url} answered HTTP {status}: {}", String::from_utf8_lossy(&bytes));
    }
    let account: CreatedAccount =
        serde_json::from_slice(&bytes).with_context(|| format!("unexpected answer from {url}"))?;
    out.object(&account)?;
    if !out.json {
        eprintln!("the key is shown only now; use it with: export REALTIME_API_KEY={}", account.api_key);
    }
    Ok(())
}
