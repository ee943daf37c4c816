//! Every setting with its default and a one-line meaning: what `realtime-server --help`
//! prints and what the README's table holds (tests keep both equal to this list).

use figment::Figment;
use figment::providers::{Format, Toml};

use super::DEFAULTS;

/// What each key means, in the order `--help` and the README list them. A test holds it
/// to the keys the server knows: a new key needs its line here.
const MEANINGS: &[(&str, &str)] = &[
    ("listen", "address and port to bind (`127.0.0.1:0` picks a free port)"),
    ("public_url", "the URL clients reach this node at, used in `endpoint` and `checkout_url`"),
    ("store", "`sqlite://<file>` (embedded, one node) or `postgres://…` (several nodes)"),
    ("broker", "`memory` (one node) or `redis://…` (several nodes)"),
    ("admin_secret", "Bearer secret of the admin API (`/admin/v1/…`: create accounts and their Pusher apps)"),
    ("token_secret", "HS256 key that signs client tokens, at least 32 characters; the same on every node"),
    ("console", "serves the debug console at `/console` (an account's channels and live events)"),
    ("dev_checkout", "serves the dev checkout, which credits accounts without payment"),
    ("dev_account_credit", "credit of the dev account created on first start, in micro-USD"),
    ("log", "which logs to write, as a `tracing` filter (`info,realtime_server=debug`); a bad one is refused"),
    ("log_format", "`text` for people, `json` (one object per line, no colours) for log collectors"),
    ("request_timeout_seconds", "seconds a request may take before it is answered with 503"),
    ("idempotency_ttl_hours", "hours an idempotency key and its answer are kept"),
    ("history_per_channel", "messages kept per channel for history and recovery"),
    ("history_max_age_seconds", "seconds a message is kept for history and recovery"),
    ("redis_prefix", "Redis broker: prefix of every key and pub/sub channel, so deployments can share a Redis"),
    ("node_expiry_seconds", "Redis broker: a node silent this long loses its presence members and counts"),
    ("redis_routing", "Redis broker: `channel` (only nodes holding a subscriber hear it) or `broadcast`"),
    ("prices.token_issue", "micro-USD per `token.issue`"),
    ("prices.channel_create", "micro-USD per channel created"),
    ("prices.publish", "micro-USD per message published (REST, batch, socket or Pusher)"),
    ("prices.auth_sign", "micro-USD per `auth.sign`"),
    ("prices.user_message", "micro-USD per user message (realtime or reliable)"),
    ("prices.user_command", "micro-USD per user command"),
    (
        "rate_limit.requests_per_second",
        "sustained requests per second of an account on a node (0: no limit); beyond, 429",
    ),
    ("rate_limit.burst", "requests an account may make at once above the steady rate"),
    ("cors.allowed_origins", "origins whose pages may call the HTTP API (`[\"*\"]`: any; none: no CORS headers)"),
    ("cors.max_age_seconds", "seconds a browser may reuse a CORS preflight answer"),
    ("gateway.heartbeat_interval_seconds", "how often clients should send a frame"),
    ("gateway.heartbeat_timeout_seconds", "silence after which a socket is closed with 4201"),
    ("gateway.outbound_queue", "frames queued per socket before it is cut as a slow consumer (4100)"),
    ("gateway.max_connections_per_token", "live sockets one token may hold (4006 beyond)"),
    ("gateway.allowed_origins", "origins whose pages may open sockets (others get 403; programs are not checked)"),
    ("vendors.default", "the vendor `auth.sign` signs for when a request names none"),
    ("vendors.ably_key", "the Ably API key (`<app>.<key>:<secret>`) `auth.sign` signs with"),
    ("vendors.pusher.app_id", "id of the dev account's Pusher app (made on first start; `auth.sign` signs with it)"),
    ("vendors.pusher.key", "key of that Pusher app"),
    ("vendors.pusher.secret", "secret of that Pusher app"),
    ("vendors.liveblocks.project_id", "the Liveblocks project id (`pid` claim) `auth.sign` signs for"),
    ("vendors.liveblocks.secret", "the Liveblocks key `auth.sign` signs with"),
    ("pusher.activity_timeout_seconds", "Pusher protocol: seconds of silence after which either side pings"),
    ("pusher.pong_timeout_seconds", "Pusher protocol: seconds a socket has to answer the server's ping (4201 after)"),
    ("pusher.client_events_per_second", "client events a Pusher socket may send per second (4301 beyond)"),
    (
        "pusher.subscription_count",
        "Pusher's subscription counting for every app (`pusher_internal:subscription_count`)",
    ),
];

/// The keys [`DEFAULTS`] leaves unset, and what happens while they stay unset.
pub(super) const UNSET: &[(&str, &str)] = &[
    ("public_url", "http://<listen address>"),
    ("admin_secret", "unset: no admin API"),
    ("token_secret", "generated on first start, kept in the store"),
    ("console", "true on a loopback listen address, else false"),
    ("dev_checkout", "true on a loopback listen address, else false"),
];

/// One setting as it is documented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDoc {
    /// The dotted key (`gateway.outbound_queue`).
    pub key: &'static str,
    /// The default as TOML writes it, or what happens while the key is unset.
    pub default: String,
    /// What it is for, in one line.
    pub meaning: &'static str,
}

/// Every setting, in the order of [`MEANINGS`].
pub fn key_docs() -> Vec<KeyDoc> {
    let defaults = Figment::from(Toml::string(DEFAULTS));
    MEANINGS
        .iter()
        .map(|(key, meaning)| {
            let default = match UNSET.iter().find(|(unset, _)| unset == key) {
                Some((_, when_unset)) => (*when_unset).to_owned(),
                None => defaults
                    .find_value(key)
                    .ok()
                    .and_then(|value| serde_json::to_string(&value).ok())
                    .unwrap_or_else(|| "(no default)".to_owned()),
            };
            KeyDoc { key, default, meaning }
        })
        .collect()
}

/// The settings as aligned columns (key, default, meaning), for `--help`.
pub fn help_table() -> String {
    let docs = key_docs();
    let key_width = docs.iter().map(|doc| doc.key.len()).max().unwrap_or(0);
    let default_width = docs.iter().map(|doc| doc.default.chars().count()).max().unwrap_or(0);
    let mut text = format!("{:key_width$}  {:default_width$}  MEANING\n", "KEY", "DEFAULT");
    for doc in docs {
        text.push_str(&format!("{:key_width$}  {:default_width$}  {}\n", doc.key, doc.default, doc.meaning));
    }
    text
}

/// The settings as a Markdown table, for the README.
pub fn markdown_table() -> String {
    let mut text = "| key | default | meaning |\n|---|---|---|\n".to_owned();
    for doc in key_docs() {
        text.push_str(&format!("| `{}` | `{}` | {} |\n", doc.key, doc.default, doc.meaning));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_key_has_one_meaning_and_every_meaning_a_known_key() {
        let mut known = super::super::known_keys();
        known.sort();
        let mut documented: Vec<String> = MEANINGS.iter().map(|(key, _)| (*key).to_owned()).collect();
        documented.sort();
        assert_eq!(documented, known);
    }

    #[test]
    fn every_key_has_a_default_or_says_what_unset_means() {
        for doc in key_docs() {
            assert!(doc.default != "(no default)" && !doc.meaning.is_empty(), "{doc:?}");
        }
    }
}
