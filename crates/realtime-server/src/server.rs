//! Starting and stopping a node: open the store, pick the broker, bind, serve, and shut
//! down gracefully (stop accepting, close sockets with 4200, finish in-flight requests).

use std::sync::Arc;

use anyhow::Context;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::{self, HeaderName};
use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::serve::ListenerExt;
use realtime_api::{Idempotency, SharedApi, operations};
use realtime_types::limits::BODY_MAX_BYTES;
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::broker::Broker;
use crate::broker::memory::MemoryBroker;
use crate::broker::redis::RedisBroker;
use crate::config::{Config, CorsConfig};
use crate::hub::Hub;
use crate::service::Service;
use crate::tokens::TokenKeys;
use crate::{admin, checkout, console, gateway, pusher, store};

/// The whole HTTP face of a node.
pub fn app(service: Arc<Service>) -> Router {
    let api: SharedApi = service.clone();
    let timeout = Duration::from_secs(service.config.request_timeout_seconds);
    let cors = cors(&service.config.cors);
    // Rendered once: the document is the same for the life of the process.
    let document = bytes::Bytes::from(realtime_api::openapi_json());
    let retention = Duration::from_secs(u64::from(service.config.idempotency_ttl_hours) * 3600);
    // A publish writes nothing durable before its seal, and seals every success.
    let idempotency = Idempotency::new(service.store.clone(), retention)
        .claiming_at_seal(&[operations::PUBLISH.id, operations::PUBLISH_BATCH.id]);
    let observed = service.clone();
    let rate_limit_policy = rate_limit_policy(&service.config.rate_limit);
    let mut app = realtime_api::router(api, idempotency)
        .merge(gateway::router(service.clone()))
        .merge(pusher::router(service.clone()))
        .merge(admin::router(service.clone()))
        .merge(checkout::router(service.clone()))
        .merge(crate::docs::router())
        .merge(console::router(service.clone()))
        .merge(
            Router::new()
                .route("/healthz", get(|| async { "ok" }))
                .route("/readyz", get(ready))
                .route("/metrics", get(metrics_text))
                .route("/openapi.json", get(move || async move { ([("content-type", "application/json")], document) }))
                .with_state(service),
        )
        .layer(DefaultBodyLimit::max(BODY_MAX_BYTES))
        .layer(axum::middleware::from_fn(move |request: axum::extract::Request, next: axum::middleware::Next| {
            let (service, policy) = (observed.clone(), rate_limit_policy.clone());
            async move { around_each_request(&service, policy.as_ref(), timeout, request, next).await }
        }));
    // Outside the timeout, so that a page can read a 503 too, not just a failed fetch.
    if let Some(cors) = cors {
        app = app.layer(cors);
    }
    app.layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(|request: &axum::http::Request<_>| {
            let request_id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
            // `account_id` is filled in once the API key is known (`Service::authenticate`).
            tracing::info_span!(
                "request",
                method = %request.method(),
                path = %request.uri().path(),
                request_id,
                account_id = tracing::field::Empty,
            )
        }))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// The account request budget as a `RateLimit-Policy` header value
/// (draft-ietf-httpapi-ratelimit-headers): `burst` requests at once, refilled at
/// `requests_per_second`, is a quota of `burst` per `burst / requests_per_second` seconds.
fn rate_limit_policy(config: &crate::config::RateLimitConfig) -> Option<axum::http::HeaderValue> {
    let rate = config.requests_per_second;
    if rate == 0 {
        return None;
    }
    // As in `service::rate_limiter`: no burst means one second's worth.
    let burst = if config.burst == 0 { rate } else { config.burst };
    let window = burst.div_ceil(rate);
    axum::http::HeaderValue::from_str(&format!("\"account\";q={burst};w={window}")).ok()
}

/// What every request goes through, in one middleware (each layer of its own cost the REST
/// publish 1.5 µs): the request timeout (a 503 past it); the count of the request by its
/// route template (never its concrete path: bounded labels), and its log line at `info`
/// with what an operator needs and nothing secret; the account request budget advertised
/// on `/v1/` answers.
async fn around_each_request(
    service: &Service,
    rate_limit_policy: Option<&axum::http::HeaderValue>,
    timeout: Duration,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let api = request.uri().path().starts_with("/v1/");
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let method = request.method().to_string();
    // Kept until the answer is known: a 402 is shown on the account's console, whose key
    // is then looked up by its hash in the cache of keys authenticated lately.
    let authorization = request.headers().get(header::AUTHORIZATION).cloned();
    let started = std::time::Instant::now();
    let mut response = match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            realtime_api::ApiError::unavailable(format!("the request took longer than {timeout:?}")).into_response()
        }
    };
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    if status == 402
        && let Some(account_id) = authorization
            .as_ref()
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .and_then(|key| service.known_account(key))
    {
        service.refused_for_credit(&account_id, &format!("{method} {route}"));
    }
    let replayed = response.headers().contains_key("idempotent-replayed");
    service.metrics.request(&route, &method, status, elapsed.as_secs_f64(), replayed);
    if route != "/metrics" && route != "/healthz" && route != "/readyz" {
        tracing::info!(%method, %route, status, latency_ms = elapsed.as_secs_f64() * 1000.0, replayed, "request");
    }
    if let (true, Some(policy)) = (api, rate_limit_policy) {
        response.headers_mut().insert("ratelimit-policy", policy.clone());
    }
    response
}

/// `GET /metrics`: every metric of this node, in the Prometheus (OpenMetrics) text format.
async fn metrics_text(State(service): State<Arc<Service>>) -> impl IntoResponse {
    let metrics = &service.metrics;
    metrics.connections.set(i64::try_from(service.hub.connection_count()).unwrap_or(i64::MAX));
    let subscriptions: u64 = service.hub.subscriber_counts().values().map(|count| u64::from(*count)).sum();
    metrics.subscriptions.set(i64::try_from(subscriptions).unwrap_or(i64::MAX));
    ([("content-type", "application/openmetrics-text; version=1.0.0; charset=utf-8")], metrics.encode())
}

/// The CORS layer the configuration asks for; none when it allows no origin, so a
/// server that was not told about browsers sends no CORS headers at all.
///
/// Calls carry a Bearer key, never cookies, so credentials mode stays off and a
/// preflight allows exactly the headers the contract reads: the key, the JSON body's
/// type, the idempotency key and a request id. Pages may read the headers the contract
/// answers with beyond the safelisted ones: the replay flag, `Retry-After` and the
/// request id.
fn cors(config: &CorsConfig) -> Option<CorsLayer> {
    if config.allowed_origins.is_empty() {
        return None;
    }
    let origins = if config.allowed_origins.allows_any() {
        AllowOrigin::any()
    } else {
        let allowed = config.allowed_origins.clone();
        AllowOrigin::predicate(move |origin, _| origin.to_str().is_ok_and(|origin| allowed.allows(origin)))
    };
    Some(
        CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("idempotency-key"),
                HeaderName::from_static("x-request-id"),
            ])
            .expose_headers([
                HeaderName::from_static("idempotent-replayed"),
                header::RETRY_AFTER,
                HeaderName::from_static("x-request-id"),
            ])
            .max_age(Duration::from_secs(u64::from(config.max_age_seconds))),
    )
}

async fn ready(State(service): State<Arc<Service>>) -> impl IntoResponse {
    let store = service.store.ping().await.map_err(|e| e.to_string());
    let broker = service.broker.ping().await.map_err(|e| e.to_string());
    let status = if store.is_ok() && broker.is_ok() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let describe = |result: Result<(), String>| match result {
        Ok(()) => "ok".to_owned(),
        Err(error) => format!("unavailable: {error}"),
    };
    (status, axum::Json(serde_json::json!({ "store": describe(store), "broker": describe(broker) })))
}

/// A running node.
pub struct RunningServer {
    /// The bound address.
    pub addr: std::net::SocketAddr,
    /// The shared core.
    pub service: Arc<Service>,
    /// The API key of the dev account, when this start created it.
    pub dev_api_key: Option<String>,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// Opens the store, creates the dev account on first start, binds and starts serving.
    pub async fn start(config: Config) -> anyhow::Result<RunningServer> {
        let store = store::open(&config.store)
            .await
            .with_context(|| format!("opening the store {}", crate::config::redact_url(&config.store)))?;
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let store: Arc<dyn store::Store> = store::timed::Timed::new(store, metrics.clone());
        if config.broker == "memory" {
            // One node: no request of this store can be running, so every key whose
            // request died with the last process is free at once (its effect, had it
            // committed, would have sealed an answer).
            let released = store.release_all_leases().await?;
            if released > 0 {
                tracing::info!(released, "idempotency keys of requests that died with the last process released");
            }
        }
        let secret = Service::token_secret(&config, store.as_ref()).await?;
        let listener = listen(config.listen).with_context(|| format!("listening on {}", config.listen))?;
        let addr = listener.local_addr()?;
        let public_url =
            config.public_url.clone().unwrap_or_else(|| format!("http://{addr}")).trim_end_matches('/').to_owned();
        let hub = Arc::new(Hub::default());
        let kill = CancellationToken::new();
        let broker: Arc<dyn Broker> = match config.broker.as_str() {
            "memory" => MemoryBroker::new(hub.clone()),
            url if url.starts_with("redis://") => {
                RedisBroker::connect(&config, hub.clone(), store.clone(), &kill).await?
            }
            other => anyhow::bail!(
                "unsupported broker {:?}: use \"memory\" or redis://<host>:<port>",
                crate::config::redact_url(other)
            ),
        };
        let broker: Arc<dyn Broker> = crate::broker::timed::Timed::new(broker, metrics.clone());
        let config_rate_limit = config.rate_limit;
        let service = Arc::new(Service {
            tokens: TokenKeys::new(&secret),
            config,
            store,
            broker,
            hub,
            public_url,
            shutdown: CancellationToken::new(),
            kill,
            sockets: tokio_util::task::TaskTracker::new(),
            rate_limiter: crate::service::rate_limiter(&config_rate_limit),
            known_keys: Default::default(),
            metrics,
        });
        // The setting is the guard: of several nodes starting on one empty store, exactly
        // one creates the dev account.
        let marker = crate::service::new_id("start");
        let first_start =
            service.store.is_empty().await? && service.store.init_setting("dev_account", &marker).await? == marker;
        let dev_api_key = if first_start {
            let (account_id, api_key) = service.create_account(service.config.dev_account_credit).await?;
            create_dev_pusher_app(&service, account_id).await;
            Some(api_key)
        } else {
            None
        };
        tokio::spawn(crate::service::end_connections_on_stop(service.clone()));
        tokio::spawn(purge_periodically(service.clone()));
        tokio::spawn(skip_gaps_periodically(service.clone()));
        pusher::webhooks::spawn(service.clone());
        pusher::counts::spawn(service.clone());
        let app = app(service.clone());
        let shutdown = service.shutdown.clone();
        // Frames are small and often follow one another: without TCP_NODELAY the second of
        // two waits for the first's delayed acknowledgement (about 40 ms on Linux).
        let listener = listener.tap_io(|stream| {
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%error, "TCP_NODELAY not set on a connection");
            }
        });
        // Served as a make-service, which readies the routes once and gives each accepted
        // connection a reference to them. Served as a bare `Router`, axum rebuilds the whole
        // route table for every connection (`Router::with_state` on a clone): a few hundred
        // allocations each, which in `cargo xtask bench storm` took about a third of the
        // node's CPU while 10,000 sockets connected, and held up new connects during a mass
        // disconnect, when the allocator is busiest.
        let app = app.into_make_service();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await
        });
        Ok(RunningServer { addr, service, dev_api_key, task })
    }

    /// The base URL of the node.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops gracefully: no new connections, sockets closed with 4200, in-flight requests
    /// finished (bounded by 10 seconds), and every socket's goodbye sent before it returns.
    pub async fn stop(self) -> anyhow::Result<()> {
        // Every socket is then closed with 4200 (`service::end_connections_on_stop`).
        self.service.shutdown.cancel();
        let sockets = &self.service.sockets;
        sockets.close();
        let stopped = async { tokio::join!(self.task, sockets.wait()).0 };
        match tokio::time::timeout(Duration::from_secs(10), stopped).await {
            Ok(joined) => joined??,
            Err(_) => {
                tracing::warn!(sockets = sockets.len(), "in-flight requests or sockets did not finish within 10 s")
            }
        }
        Ok(())
    }

    /// Stops at once, as a crash would: sockets are dropped without a close frame.
    pub fn kill(self) {
        self.service.kill.cancel();
        self.task.abort();
    }

    /// Serves until Ctrl-C or SIGTERM, then stops gracefully.
    pub async fn run_until_signal(self) -> anyhow::Result<()> {
        shutdown_signal().await;
        tracing::info!("shutting down");
        self.stop().await
    }
}

/// Gives the dev account the Pusher app of `vendors.pusher`, so that Pusher libraries
/// configured with those credentials work against a fresh server (and `auth.sign`
/// signs for it).
async fn create_dev_pusher_app(service: &Service, account_id: String) {
    let configured = &service.config.vendors.pusher;
    let Ok(app_id) = configured.app_id.parse::<u64>() else {
        tracing::warn!(app_id = %configured.app_id, "vendors.pusher.app_id is not numeric; no dev Pusher app created");
        return;
    };
    let request = pusher::apps::NewApp {
        account_id,
        app_id: Some(app_id),
        key: Some(configured.key.clone()),
        secret: Some(configured.secret.expose().to_owned()),
        webhook_url: None,
    };
    if let Err(error) = pusher::apps::create(service, request).await {
        tracing::warn!(?error, "the dev Pusher app was not created");
    }
}

/// How often expired idempotency records, tokens and checkouts are deleted.
const PURGE_EVERY: Duration = Duration::from_secs(600);

async fn purge_periodically(service: Arc<Service>) {
    let mut every = tokio::time::interval(PURGE_EVERY);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = service.shutdown.cancelled() => return,
            _ = service.kill.cancelled() => return,
        }
        let now = chrono::Utc::now();
        let cutoffs = store::Cutoffs {
            idempotency: now - chrono::Duration::hours(i64::from(service.config.idempotency_ttl_hours)),
            expired: now,
            messages: now
                - chrono::Duration::seconds(i64::try_from(service.config.history_max_age_seconds).unwrap_or(i64::MAX)),
            user_messages: now - chrono::Duration::days(realtime_types::limits::USER_MESSAGE_RETENTION_DAYS),
        };
        match service.store.purge(&cutoffs).await {
            Ok(deleted) => tracing::debug!(deleted, "purged expired records"),
            Err(error) => tracing::warn!(%error, "purge failed; will retry"),
        }
    }
}

/// How often the hub gives up on messages lost on their way (see `Hub::deliver`).
const GAP_CHECK_EVERY: Duration = Duration::from_millis(100);
/// How long a message waits for an earlier one still on its way from another publisher.
/// A gap normally closes within microseconds; one that lasts is a message whose publisher
/// was cut off between its commit and its fan-out, and the wait bounds how long the
/// channel's later messages are held for it.
const GAP_WAIT: Duration = Duration::from_secs(3);

async fn skip_gaps_periodically(service: Arc<Service>) {
    let mut every = tokio::time::interval(GAP_CHECK_EVERY);
    loop {
        tokio::select! {
            _ = every.tick() => {
                let lost = service.hub.skip_gaps_older_than(GAP_WAIT);
                service.metrics.frames_dropped("gap_skipped", lost);
            }
            _ = service.shutdown.cancelled() => return,
            _ = service.kill.cancelled() => return,
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

/// How many connections the kernel queues for the server to accept (capped by
/// `net.core.somaxconn`, 4096 on current Linux). Tokio's default of 1,024 overflowed when
/// 10,000 clients connected at once (`cargo xtask bench storm`): every dropped connect
/// waits a second or more for its SYN retry.
const LISTEN_BACKLOG: u32 = 4096;

/// A listening socket on `address`, with [`LISTEN_BACKLOG`].
fn listen(address: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}
