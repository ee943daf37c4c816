//! The kinds of server the bench drives, and what differs between them on the wire:
//! setup, the publish request, the WebSocket URL and the subscribe handshake (the Pusher
//! protocol's frames and signing are in [`crate::pusher`]).

use std::sync::LazyLock;

use anyhow::{Context, bail};
use clap::ValueEnum;
use memchr::memmem::Finder;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::pusher::PusherApp;

/// The one channel every fan-out run uses.
pub const CHANNEL: &str = "bench";

/// A server the load generator can drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// Our reference server: admin account, channel, tokens, the realtime WS protocol.
    Realtime,
    /// The bare fan-out server of this crate (`realtime-bench baseline`).
    Baseline,
    /// nginx with the nchan module: `POST /pub?id=`, WebSocket `/sub?id=`.
    Nchan,
    /// Our reference server through its Pusher face: signed `POST /apps/{id}/events`,
    /// protocol 7 at `/app/{key}`.
    Pusher,
    /// sockudo, a Pusher-compatible server, spoken to as [`TargetKind::Pusher`] is.
    Sockudo,
}

impl TargetKind {
    pub fn label(self) -> &'static str {
        match self {
            TargetKind::Realtime => "realtime",
            TargetKind::Baseline => "bare baseline",
            TargetKind::Nchan => "nchan",
            TargetKind::Pusher => "realtime (Pusher protocol)",
            TargetKind::Sockudo => "sockudo",
        }
    }

    /// Whether the target speaks Pusher's protocol 7 and HTTP API.
    pub fn is_pusher(self) -> bool {
        match self {
            TargetKind::Pusher | TargetKind::Sockudo => true,
            TargetKind::Realtime | TargetKind::Baseline | TargetKind::Nchan => false,
        }
    }

    /// Whether the target is our server (whichever face): the "ours" of the ratios.
    pub fn is_ours(self) -> bool {
        match self {
            TargetKind::Realtime | TargetKind::Pusher => true,
            TargetKind::Baseline | TargetKind::Nchan | TargetKind::Sockudo => false,
        }
    }
}

/// How to reach a target once it is set up.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub kind: TargetKind,
    pub publish_url: String,
    /// `Authorization: Bearer` value of publishes (the API key), when the target wants one.
    pub api_key: Option<String>,
    /// WebSocket URLs to spread the subscribers over (one per token for ours).
    pub ws_urls: Vec<String>,
    /// The app whose secret signs the publishes (Pusher-protocol targets).
    pub pusher: Option<PusherApp>,
}

/// Where the target is and who may set it up.
#[derive(Debug, Clone)]
pub struct Endpoints<'a> {
    /// Base URL of publishes and setup calls, `http://127.0.0.1:PORT`.
    pub base_url: &'a str,
    /// Base URL the subscribers connect to (another node in the multi-node scenario).
    pub sub_base_url: &'a str,
    /// The admin secret of our server (creates the bench account).
    pub admin_secret: Option<&'a str>,
    /// The app of the Pusher-protocol targets (the others ignore it).
    pub pusher: Option<&'a PusherApp>,
}

/// Creates what a run needs (for ours: an account, the channel and the tokens).
pub async fn prepare(
    kind: TargetKind,
    at: &Endpoints<'_>,
    subscribers: usize,
    subs_per_token: usize,
    http: &reqwest::Client,
) -> anyhow::Result<Prepared> {
    let ws_base = ws_base(at.sub_base_url)?;
    match kind {
        TargetKind::Baseline => Ok(Prepared {
            kind,
            publish_url: format!("{}/pub", at.base_url),
            api_key: None,
            ws_urls: vec![format!("{ws_base}/sub")],
            pusher: None,
        }),
        TargetKind::Nchan => Ok(Prepared {
            kind,
            publish_url: format!("{}/pub?id={CHANNEL}", at.base_url),
            api_key: None,
            ws_urls: vec![format!("{ws_base}/sub?id={CHANNEL}")],
            pusher: None,
        }),
        TargetKind::Realtime => prepare_realtime(at, subscribers, subs_per_token, http).await,
        // The app exists from the server's start: nothing to create.
        TargetKind::Pusher | TargetKind::Sockudo => {
            let app = at.pusher.context("the Pusher-protocol targets need the app's credentials")?;
            Ok(Prepared {
                kind,
                publish_url: format!("{}{}", at.base_url, app.events_path()),
                api_key: None,
                ws_urls: vec![format!("{ws_base}{}", app.socket_path())],
                pusher: Some(app.clone()),
            })
        }
    }
}

async fn prepare_realtime(
    at: &Endpoints<'_>,
    subscribers: usize,
    subs_per_token: usize,
    http: &reqwest::Client,
) -> anyhow::Result<Prepared> {
    let secret = at.admin_secret.context("--admin-secret is needed for the realtime target")?;
    let api_key = create_account(http, at.base_url, secret).await?;

    let create = http
        .post(format!("{}/v1/realtime/channel/create", at.base_url))
        .bearer_auth(&api_key)
        .json(&json!({ "name": CHANNEL }))
        .send()
        .await
        .context("creating the bench channel")?;
    // A channel left by an earlier run on the same store is fine.
    if !create.status().is_success() && create.status() != reqwest::StatusCode::CONFLICT {
        bail!("channel/create answered {}: {}", create.status(), create.text().await.unwrap_or_default());
    }

    let tokens = subscribers.div_ceil(subs_per_token.max(1)).max(1);
    let mut ws_urls = Vec::with_capacity(tokens);
    for k in 0..tokens {
        let claims = json!({ "client_id": format!("bench-{k}"), "channels": [CHANNEL], "ttl_seconds": 86_400 });
        let url = token_url(http, at.sub_base_url, &api_key, &claims).await.context("issuing a subscriber token")?;
        ws_urls.push(url);
    }
    Ok(Prepared {
        kind: TargetKind::Realtime,
        publish_url: format!("{}/v1/realtime/publish", at.base_url),
        api_key: Some(api_key),
        ws_urls,
        pusher: None,
    })
}

/// Creates an account with a balance no bench run exhausts on our server at `base_url`
/// and returns its API key.
pub async fn create_account(http: &reqwest::Client, base_url: &str, admin_secret: &str) -> anyhow::Result<String> {
    let account = post_json(
        http,
        &format!("{base_url}/admin/v1/accounts"),
        admin_secret,
        &json!({ "balance": 1_000_000_000_000u64 }),
    )
    .await
    .context("creating the bench account")?;
    Ok(account["api_key"].as_str().context("no api_key in the account response")?.to_owned())
}

/// Issues a token with `claims` on the node at `base_url` and returns the WebSocket URL
/// that connects with it to that node.
pub async fn token_url(
    http: &reqwest::Client,
    base_url: &str,
    api_key: &str,
    claims: &Value,
) -> anyhow::Result<String> {
    let issued = post_json(http, &format!("{base_url}/v1/realtime/token/issue"), api_key, claims).await?;
    let token = issued["token"].as_str().context("no token in token/issue")?;
    let endpoint = issued["endpoint"].as_str().context("no endpoint in token/issue")?;
    let url = rebase_endpoint(endpoint, &ws_base(base_url)?);
    let sep = if url.contains('?') { '&' } else { '?' };
    Ok(format!("{url}{sep}token={token}"))
}

async fn post_json(http: &reqwest::Client, url: &str, bearer: &str, body: &Value) -> anyhow::Result<Value> {
    let response = http.post(url).bearer_auth(bearer).json(body).send().await?;
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        bail!("POST {url} answered {status}: {text}");
    }
    Ok(serde_json::from_str(&text)?)
}

/// `http://host:port` -> `ws://host:port`.
fn ws_base(http_base: &str) -> anyhow::Result<String> {
    let rest = http_base.strip_prefix("http://").context("only http:// base URLs are benched (loopback)")?;
    Ok(format!("ws://{}", rest.trim_end_matches('/')))
}

/// The token's endpoint with its scheme and authority replaced by the node the
/// subscribers must use, so a server that advertises another public address, or the
/// other node of a pair, is still reached on loopback.
fn rebase_endpoint(endpoint: &str, ws_base: &str) -> String {
    let path = match endpoint.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("", |i| &rest[i..]),
        None => endpoint,
    };
    format!("{ws_base}{path}")
}

/// The JSON body of publish `seq`, sent at `sent_ns` on the load generator's clock.
pub fn publish_body(kind: TargetKind, seq: u64, sent_ns: u64, pad: &str) -> String {
    let data = format!("{{\"bench_seq\":{seq},\"bench_t\":{sent_ns},\"pad\":\"{pad}\"}}");
    match kind {
        TargetKind::Realtime => format!("{{\"channel\":\"{CHANNEL}\",\"event\":\"e\",\"data\":{data}}}"),
        TargetKind::Baseline | TargetKind::Nchan => data,
        TargetKind::Pusher | TargetKind::Sockudo => crate::pusher::trigger_body(seq, sent_ns, pad),
    }
}

/// The sequence number and send time carried by a received frame, if it is a bench message.
/// A byte search, not a JSON parse: every target puts the publish's data in the frame
/// verbatim (ours inside its envelope), and the load generator must stay cheap.
pub fn bench_fields(frame: &[u8]) -> Option<(u64, u64)> {
    static SEQ: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"bench_seq\":"));
    static SENT: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"bench_t\":"));
    Some((number_after(frame, &SEQ)?, number_after(frame, &SENT)?))
}

fn number_after(frame: &[u8], key: &Finder<'_>) -> Option<u64> {
    let start = key.find(frame)? + key.needle().len();
    let digits = frame[start..].iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&frame[start..start + digits]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_fields_are_found_inside_our_envelope() {
        let body = publish_body(TargetKind::Baseline, 7, 123_456, "xx");
        let frame = format!(
            "{{\"type\":\"message\",\"channel\":\"bench\",\"message_id\":\"01J\",\"event\":\"e\",\"data\":{body},\"published_at\":\"2026-01-01T00:00:00Z\"}}"
        );
        assert_eq!(bench_fields(frame.as_bytes()), Some((7, 123_456)));
        assert_eq!(bench_fields(body.as_bytes()), Some((7, 123_456)));
        assert_eq!(bench_fields(b"{\"type\":\"pong\"}"), None);
    }

    #[test]
    fn endpoint_is_rebased_onto_the_subscriber_node() {
        assert_eq!(
            rebase_endpoint("ws://localhost:8080/v1/realtime/ws", "ws://127.0.0.1:9"),
            "ws://127.0.0.1:9/v1/realtime/ws"
        );
        assert_eq!(rebase_endpoint("/v1/realtime/ws", "ws://127.0.0.1:9"), "ws://127.0.0.1:9/v1/realtime/ws");
    }
}
