//! [`Config`]: read once at start (defaults, then a TOML file, then `REALTIME_*`
//! environment variables) and passed down; nothing reads the environment afterwards.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::{Figment, Provider};
use realtime_types::Vendor;
use serde::{Deserialize, Serialize};

use crate::secret::Secret;

mod keys;

pub use keys::{KeyDoc, help_table, key_docs, markdown_table};

/// Everything the server needs to know at start. Its `Debug` hides the secrets, including
/// passwords in the `store` and `broker` URLs.
#[derive(Clone, Deserialize)]
pub struct Config {
    /// Where to listen (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// The URL clients use to reach this node (for `endpoint` and `checkout_url`);
    /// defaults to `http://<listen address>`.
    pub public_url: Option<String>,
    /// `sqlite://<file>` (embedded default) or `postgres://…`.
    pub store: String,
    /// `memory` (embedded default, one node) or `redis://…` (several nodes).
    pub broker: String,
    /// Prefix of every Redis key and pub/sub channel of the Redis broker, so several
    /// deployments (or test runs) can share one Redis.
    pub redis_prefix: String,
    /// With the Redis broker: a node that stops heartbeating (crashed, cut off) loses
    /// its presence members and subscriber counts after this many seconds.
    pub node_expiry_seconds: u32,
    /// With the Redis broker: which nodes hear a channel's frames. `channel` (the
    /// default): only nodes holding a subscriber of it; `broadcast`: every node (the
    /// behaviour before routing, kept to measure against).
    pub redis_routing: RedisRouting,
    /// Guards the admin API (`/admin/v1/…`); the admin API is off when unset.
    pub admin_secret: Option<Secret>,
    /// Serves the dev checkout (`/checkout/{id}` and its unauthenticated `complete`), which
    /// credits accounts without payment: for development and tests only. Unset, it is on
    /// only when `listen` is a loopback address (see [`LOOPBACK_ONLY`]).
    pub dev_checkout: bool,
    /// Serves the debug console at `/console`: a page where someone with an API key sees
    /// the account's channels and a live stream of its events. Unset, it is on only when
    /// `listen` is a loopback address (see [`LOOPBACK_ONLY`]).
    pub console: bool,
    /// Signs client tokens; generated and persisted in the store on first start when unset.
    pub token_secret: Option<Secret>,
    /// Credit of the dev account created on first start, in micro-USD.
    pub dev_account_credit: i64,
    /// How long idempotency keys are kept, in hours.
    pub idempotency_ttl_hours: u32,
    /// How many recent messages are kept per channel.
    pub history_per_channel: u32,
    /// How long messages are kept, in seconds.
    pub history_max_age_seconds: u64,
    /// Which logs to write, as a `tracing` filter (e.g. `info,realtime_server=debug`).
    pub log: String,
    /// `text` for people, `json` for log collectors.
    pub log_format: LogFormat,
    /// Seconds a request may take before it is answered with 503.
    pub request_timeout_seconds: u64,
    /// The price table.
    pub prices: Prices,
    /// Requests per account and node.
    pub rate_limit: RateLimitConfig,
    /// Which web pages may call the HTTP API from a browser (CORS).
    pub cors: CorsConfig,
    /// The WebSocket gateway.
    pub gateway: GatewayConfig,
    /// Vendor credentials for `realtime.auth.sign`.
    pub vendors: VendorsConfig,
    /// The Pusher-compatible face (`/apps/{app_id}/…` and `/app/{key}`).
    pub pusher: PusherFaceConfig,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Destructured so that a new field needs a decision here: print it, or hide it.
        let Config {
            listen,
            public_url,
            store,
            broker,
            redis_prefix,
            node_expiry_seconds,
            redis_routing,
            admin_secret,
            dev_checkout,
            console,
            token_secret,
            dev_account_credit,
            idempotency_ttl_hours,
            history_per_channel,
            history_max_age_seconds,
            log,
            log_format,
            request_timeout_seconds,
            prices,
            rate_limit,
            cors,
            gateway,
            vendors,
            pusher,
        } = self;
        f.debug_struct("Config")
            .field("listen", listen)
            .field("public_url", public_url)
            .field("store", &redact_url(store))
            .field("broker", &redact_url(broker))
            .field("redis_prefix", redis_prefix)
            .field("node_expiry_seconds", node_expiry_seconds)
            .field("redis_routing", redis_routing)
            .field("admin_secret", admin_secret)
            .field("dev_checkout", dev_checkout)
            .field("console", console)
            .field("token_secret", token_secret)
            .field("dev_account_credit", dev_account_credit)
            .field("idempotency_ttl_hours", idempotency_ttl_hours)
            .field("history_per_channel", history_per_channel)
            .field("history_max_age_seconds", history_max_age_seconds)
            .field("log", log)
            .field("log_format", log_format)
            .field("request_timeout_seconds", request_timeout_seconds)
            .field("prices", prices)
            .field("rate_limit", rate_limit)
            .field("cors", cors)
            .field("gateway", gateway)
            .field("vendors", vendors)
            .field("pusher", pusher)
            .finish()
    }
}

/// `url` with its password replaced by `<redacted>`, for `Debug`: `postgres://user:pw@host/db`
/// becomes `postgres://user:<redacted>@host/db`. A user name without a password is hidden
/// too, since some services take the secret there, and so is the whole query, since
/// drivers accept `?password=`. Anything that is not a URL (`memory`) is kept as it is.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // The user info is everything before the last `@` ahead of the first `/`: a password
    // may hold an unescaped `?`, `#` or `@`, and no part of it may reach the output.
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let (userinfo, host) = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => (format!("{user}:<redacted>@"), host),
            None => ("<redacted>@".to_owned(), host),
        },
        None => (String::new(), authority),
    };
    let location = format!("{host}{path}");
    match location.find(['?', '#']) {
        Some(at) => format!("{scheme}://{userinfo}{}?<redacted>", &location[..at]),
        None => format!("{scheme}://{userinfo}{location}"),
    }
}

/// How logs are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One readable line per event.
    Text,
    /// One JSON object per event, with the span fields (method, path, request id).
    Json,
}

/// Prices of billable operations, in micro-USD (1 USD = 1,000,000).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Prices {
    /// `realtime.token.issue`.
    pub token_issue: i64,
    /// `realtime.channel.create`, when a channel is created.
    pub channel_create: i64,
    /// Each message of `realtime.publish`, `realtime.publish.batch` or a client publish.
    pub publish: i64,
    /// `realtime.auth.sign`.
    pub auth_sign: i64,
    /// `realtime.user.message.send` (realtime or reliable).
    pub user_message: i64,
    /// `realtime.user.command.send`.
    pub user_command: i64,
}

/// A per-account request budget on each node (GCRA: a steady rate plus a burst).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct RateLimitConfig {
    /// Sustained requests per second; 0 turns the limit off.
    pub requests_per_second: u32,
    /// Requests allowed at once above the steady rate.
    pub burst: u32,
}

/// The WebSocket gateway's knobs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GatewayConfig {
    /// How often clients should send a frame.
    pub heartbeat_interval_seconds: u32,
    /// Silence after which a connection is dropped (close 4201).
    pub heartbeat_timeout_seconds: u32,
    /// Frames queued per connection before it is cut as a slow consumer (close 4100).
    pub outbound_queue: usize,
    /// Live connections one token may hold (close 4006 beyond).
    pub max_connections_per_token: usize,
    /// The web pages whose scripts may open sockets, by their `Origin` (any by default).
    /// A handshake from another origin is refused with 403 before it is upgraded; a
    /// handshake without an `Origin` header (a program, not a browser) is not checked.
    pub allowed_origins: Origins,
}

/// Cross-origin resource sharing for the HTTP API.
///
/// Browsers send no cookies and the API takes no cookies (every call carries a Bearer
/// key), so allowing an origin lets its pages call the API with a key they hold, nothing
/// more. Most browser apps need none: their own backend holds the key and issues tokens,
/// and the page only opens a socket, which CORS does not govern.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CorsConfig {
    /// The origins whose pages may call the API; none by default, when the server sends
    /// no CORS headers and browsers refuse cross-origin calls.
    pub allowed_origins: Origins,
    /// How long a browser may reuse a preflight answer, in seconds.
    pub max_age_seconds: u32,
}

/// A list of web origins (`https://app.example.com`, `http://localhost:3000`), or `*` for
/// any. Origins are compared as browsers send them: scheme, host and port, no path, no
/// trailing slash, case-insensitively.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Origins(Vec<String>);

impl Origins {
    /// The `*` entry.
    pub const ANY: &str = "*";

    /// Whether `*` is in the list.
    pub fn allows_any(&self) -> bool {
        self.0.iter().any(|origin| origin == Self::ANY)
    }

    /// Whether a page of `origin` (an `Origin` header's value) is allowed.
    pub fn allows(&self, origin: &str) -> bool {
        self.0.iter().any(|allowed| allowed == Self::ANY || allowed.eq_ignore_ascii_case(origin))
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The origins, as written.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// The first entry that is neither `*` nor a bare `scheme://host[:port]` origin.
    fn malformed(&self) -> Option<&str> {
        self.iter().find(|origin| *origin != Self::ANY && !is_origin(origin))
    }
}

/// `http(s)://host[:port]` with nothing after it: what a browser puts in `Origin`.
fn is_origin(origin: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https")
        && !authority.is_empty()
        && !authority.contains(['/', '?', '#', '@', ' '])
        && origin.bytes().all(|byte| byte.is_ascii_graphic())
}

/// Credentials of the vendors `realtime.auth.sign` can sign for.
#[derive(Debug, Clone, Deserialize)]
pub struct VendorsConfig {
    /// The vendor used when a request names none.
    pub default: Vendor,
    /// Pusher app credentials.
    pub pusher: PusherConfig,
    /// Ably API key (`<appId>.<keyId>:<secret>`).
    pub ably_key: Secret,
    /// Liveblocks signing secret and project id.
    pub liveblocks: LiveblocksConfig,
}

/// Pusher app credentials.
#[derive(Debug, Clone, Deserialize)]
pub struct PusherConfig {
    /// The app id (numeric, as Pusher's libraries want it; written as a string or a number).
    #[serde(deserialize_with = "string_or_number")]
    pub app_id: String,
    /// The app key (public).
    pub key: String,
    /// The app secret.
    pub secret: Secret,
}

/// The Pusher-compatible face's knobs (Pusher's own values by default).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PusherFaceConfig {
    /// Seconds of silence after which either side pings (`activity_timeout` of
    /// `pusher:connection_established`).
    pub activity_timeout_seconds: u32,
    /// Seconds the server waits for any frame after its `pusher:ping` before it closes
    /// the socket with 4201.
    pub pong_timeout_seconds: u32,
    /// Client events a socket may send per second; beyond, they are refused with 4301.
    pub client_events_per_second: u32,
    /// Pusher's subscription counting (an app setting on Pusher; for every app here): the
    /// subscribers of every channel but presence ones hear `pusher_internal:subscription_count`
    /// when their number changes, and webhook apps get the `subscription_count` webhook.
    pub subscription_count: bool,
}

/// Which nodes the Redis broker sends a channel's frames to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RedisRouting {
    /// Only the nodes holding a subscriber of the channel.
    Channel,
    /// Every node.
    Broadcast,
}

/// Liveblocks signing settings.
#[derive(Debug, Clone, Deserialize)]
pub struct LiveblocksConfig {
    /// The project id (`pid` claim).
    pub project_id: String,
    /// The HS256 key that signs access tokens.
    pub secret: Secret,
}

/// The defaults, as a TOML document; what each key means is in `config/keys.rs`.
pub const DEFAULTS: &str = r#"
listen = "127.0.0.1:8080"
store = "sqlite://realtime.db"
broker = "memory"
redis_prefix = "realtime"
node_expiry_seconds = 10
# Which nodes hear a channel's frames: "channel" (only those holding a subscriber of it) or
# "broadcast" (every node).
redis_routing = "channel"
dev_account_credit = 2000000
idempotency_ttl_hours = 24
history_per_channel = 1000
history_max_age_seconds = 86400
request_timeout_seconds = 30
log = "info,tower_http=warn"
log_format = "text"

[prices]
token_issue = 100
channel_create = 1000
publish = 10
auth_sign = 100
user_message = 10
user_command = 100

[rate_limit]
requests_per_second = 2000
burst = 4000

[cors]
# Origins whose pages may call the HTTP API, e.g. ["https://app.example.com"]; ["*"] for any.
# None by default: browsers then refuse cross-origin calls (a page's socket needs no CORS).
allowed_origins = []
max_age_seconds = 600

[gateway]
heartbeat_interval_seconds = 25
heartbeat_timeout_seconds = 60
outbound_queue = 256
max_connections_per_token = 10
# Origins whose pages may open sockets; a handshake from any other is refused with 403.
# Programs, which send no Origin header, are not checked.
allowed_origins = ["*"]

[vendors]
default = "realtime"
ably_key = "dev-app.dev-key:dev-ably-secret"

[vendors.pusher]
app_id = "1"
key = "dev-pusher-key"
secret = "dev-pusher-secret"

[vendors.liveblocks]
project_id = "localdev"
secret = "dev-liveblocks-secret"

[pusher]
activity_timeout_seconds = 120
pong_timeout_seconds = 30
client_events_per_second = 10
subscription_count = false
"#;

/// Pages for development that a server serves, when its settings do not say, only while
/// it listens on a loopback address (as the defaults do), where nobody but this machine
/// reaches them: the debug console and the dev checkout, which credits without payment.
/// A deployed server listens on a reachable address and has them off unless its settings
/// turn them on.
pub const LOOPBACK_ONLY: &[&str] = &["console", "dev_checkout"];

/// Sets each of [`LOOPBACK_ONLY`] that no source sets: on for a loopback `listen`.
fn loopback_defaults(figment: Figment) -> anyhow::Result<Figment> {
    let listen: SocketAddr = figment.extract_inner("listen")?;
    Ok(LOOPBACK_ONLY
        .iter()
        .fold(figment, |figment, key| figment.join(Serialized::default(key, listen.ip().is_loopback()))))
}

/// `REALTIME_*` variables of the client tools (the CLI, the bench), which the server
/// leaves alone.
const CLIENT_VARIABLES: &[&str] = &["url", "api_key", "cli_config", "bench_admin_secret"];

/// Every key the server knows, dotted (`gateway.outbound_queue`): those of [`DEFAULTS`]
/// and those it leaves unset.
pub fn known_keys() -> Vec<String> {
    let mut keys: Vec<String> = keys::UNSET.iter().map(|(key, _)| (*key).to_owned()).collect();
    let defaults = Figment::from(Toml::string(DEFAULTS)).data().expect("the defaults are TOML");
    for dict in defaults.values() {
        given_keys("", dict, &mut keys);
    }
    keys
}

fn given_keys(prefix: &str, dict: &figment::value::Dict, keys: &mut Vec<String>) {
    for (name, value) in dict {
        let key = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
        match value {
            figment::value::Value::Dict(_, inner) => given_keys(&key, inner, keys),
            _ => keys.push(key),
        }
    }
}

/// Refuses keys the server does not know, from the file or from `REALTIME_*` variables,
/// naming where each came from and the nearest known key.
fn check_keys(figment: &Figment) -> anyhow::Result<()> {
    let known = known_keys();
    let mut given = Vec::new();
    for dict in figment.data()?.values() {
        given_keys("", dict, &mut given);
    }
    let unknown: Vec<String> = given
        .iter()
        .filter(|key| !known.iter().any(|known| known == *key))
        .map(|key| {
            let source = figment.find_metadata(key).map_or_else(String::new, |meta| format!(" (from {})", meta.name));
            let nearest = known.iter().min_by_key(|known| strsim::levenshtein(known, key)).cloned().unwrap_or_default();
            format!("`{key}`{source}: did you mean `{nearest}`?")
        })
        .collect();
    anyhow::ensure!(unknown.is_empty(), "unknown settings: {}", unknown.join("; "));
    Ok(())
}

impl Config {
    /// Reads the defaults, then `file` (or `realtime.toml` in the working directory when
    /// it exists), then `REALTIME_*` variables (`__` separates sections:
    /// `REALTIME_GATEWAY__OUTBOUND_QUEUE=64`).
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        let mut figment = Figment::new().merge(Toml::string(DEFAULTS));
        let file = match file {
            Some(path) => {
                anyhow::ensure!(path.is_file(), "config file {} does not exist or is not a file", path.display());
                Some(path)
            }
            None => Some(Path::new("realtime.toml")).filter(|path| path.is_file()),
        };
        if let Some(path) = file {
            let toml = Toml::file(path);
            toml.data().with_context(|| format!("config file {} cannot be read as TOML", path.display()))?;
            figment = figment.merge(toml);
        }
        figment = figment.merge(Env::prefixed("REALTIME_").split("__").ignore(CLIENT_VARIABLES));
        check_keys(&figment)?;
        let config: Config = loopback_defaults(figment)?.extract()?;
        config.validate()?;
        Ok(config)
    }

    /// The defaults with `overrides` applied (for tests and embedding).
    pub fn with(overrides: impl Serialize) -> anyhow::Result<Config> {
        let figment = Figment::new().merge(Toml::string(DEFAULTS)).merge(Serialized::defaults(overrides));
        let config: Config = loopback_defaults(figment)?.extract()?;
        config.validate()?;
        Ok(config)
    }

    /// Refuses settings the server cannot run with, naming the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        let gateway = &self.gateway;
        let checks = [
            (gateway.heartbeat_interval_seconds == 0, "gateway.heartbeat_interval_seconds must be at least 1"),
            (gateway.heartbeat_timeout_seconds == 0, "gateway.heartbeat_timeout_seconds must be at least 1"),
            (
                gateway.heartbeat_timeout_seconds < gateway.heartbeat_interval_seconds,
                "gateway.heartbeat_timeout_seconds must not be below gateway.heartbeat_interval_seconds",
            ),
            (gateway.outbound_queue == 0, "gateway.outbound_queue must be at least 1"),
            (self.pusher.activity_timeout_seconds == 0, "pusher.activity_timeout_seconds must be at least 1"),
            (self.pusher.pong_timeout_seconds == 0, "pusher.pong_timeout_seconds must be at least 1"),
            (gateway.max_connections_per_token == 0, "gateway.max_connections_per_token must be at least 1"),
            (self.request_timeout_seconds == 0, "request_timeout_seconds must be at least 1"),
            (
                self.request_timeout_seconds <= u64::from(realtime_types::limits::COMMAND_MAX_WAIT_SECONDS),
                "request_timeout_seconds must exceed the longest command wait (25 s)",
            ),
            (self.idempotency_ttl_hours == 0, "idempotency_ttl_hours must be at least 1"),
            (self.history_per_channel == 0, "history_per_channel must be at least 1"),
            (self.history_max_age_seconds == 0, "history_max_age_seconds must be at least 1"),
            (self.dev_account_credit < 0, "dev_account_credit must not be negative"),
            (
                [
                    self.prices.token_issue,
                    self.prices.channel_create,
                    self.prices.publish,
                    self.prices.auth_sign,
                    self.prices.user_message,
                    self.prices.user_command,
                ]
                .iter()
                .any(|price| *price < 0),
                "prices must not be negative",
            ),
            (
                self.token_secret.as_ref().is_some_and(|secret| secret.expose().len() < 32),
                "token_secret must be at least 32 characters",
            ),
        ];
        if let Some((_, message)) = checks.iter().find(|(broken, _)| *broken) {
            anyhow::bail!("invalid configuration: {message}");
        }
        if let Err(error) = tracing_subscriber::EnvFilter::try_new(&self.log) {
            anyhow::bail!(
                "invalid configuration: log = {:?} is not a tracing filter ({error}); write for example \"info\" or \"info,realtime_server=debug\"",
                self.log
            );
        }
        for (key, origins) in [
            ("cors.allowed_origins", &self.cors.allowed_origins),
            ("gateway.allowed_origins", &gateway.allowed_origins),
        ] {
            if let Some(origin) = origins.malformed() {
                anyhow::bail!(
                    "invalid configuration: {key} holds {origin:?}; write origins as scheme://host[:port] (no path, no trailing slash), or \"*\" for any"
                );
            }
        }
        Ok(())
    }
}

/// A setting read as text whether it was written as a string or as a number: the
/// environment gives `REALTIME_VENDORS__PUSHER__APP_ID=123456` as a number.
fn string_or_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        String(String),
        Number(u64),
    }
    Ok(match Text::deserialize(deserializer)? {
        Text::String(text) => text,
        Text::Number(number) => number.to_string(),
    })
}
