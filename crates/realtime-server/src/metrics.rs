//! [`Metrics`]: what a node counts, served in the Prometheus text format at `/metrics`.
//!
//! One registry per node, passed down like the configuration (no global recorder). Labels
//! are bounded: an operation is a route template, a status a number, a close code one of
//! the protocol's; never a channel, an account or a key.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The labels of an HTTP request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route template (`/v1/realtime/publish`, `/v1/realtime/channel/get/{channel}`),
    /// or `unmatched`.
    pub route: String,
    /// The method: one of the HTTP methods [`method_label`] knows, or `other`.
    pub method: &'static str,
    /// The response status.
    pub status: u16,
}

/// The labels of a route's latency.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route template.
    pub route: String,
}

/// The labels of a broker or store call's latency.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// The call: a method of the trait (`publish`, `join`, … for the broker;
    /// `record_messages`, `channel`, … for the store).
    pub call: &'static str,
}

/// The labels of frames a node could not deliver.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabels {
    /// Why: `slow_consumer` (refused by a full queue, or queued or held for a recovery
    /// when the socket was cut for not reading), `closed` (queued when the socket closed
    /// for another reason), `gap_skipped` (messages the hub gave up waiting for, lost on
    /// their way from another publisher, once per subscriber), `console_behind` (events a
    /// console viewer fell behind by).
    pub reason: &'static str,
}

/// The labels of a closed socket.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CloseLabels {
    /// The close code (4001-4299), or 1000 when the client closed, 1006 when it vanished.
    pub code: u16,
}

/// Every metric of a node.
pub struct Metrics {
    registry: Registry,
    /// Live WebSocket connections on this node (set when scraped).
    pub connections: Gauge,
    /// Channel subscriptions of live connections on this node (set when scraped).
    pub subscriptions: Gauge,
    /// Messages accepted for publishing (REST, batch and socket publishes).
    pub messages_published: Counter,
    /// Frames handed to subscribers' queues by publishes of this node (on every node).
    pub frames_delivered: Counter,
    /// Sockets closed, by close code.
    pub socket_closes: Family<CloseLabels, Counter>,
    /// HTTP requests, by route, method and status.
    pub requests: Family<RequestLabels, Counter>,
    /// HTTP request latency, by route.
    pub request_seconds: Family<RouteLabels, Histogram>,
    /// Answers replayed from an idempotency key.
    pub idempotent_replays: Counter,
    /// Operations refused because the balance does not cover them (402
    /// `INSUFFICIENT_CREDIT` over REST, an `error` frame to a socket publish, Pusher's 403).
    pub insufficient_credit: Counter,
    /// Micro-USD charged for operations of this node.
    pub credit_charged: Counter<u64, AtomicU64>,
    /// Broker call latency, by call.
    pub broker_seconds: Family<CallLabels, Histogram>,
    /// Store call latency, by call.
    pub store_seconds: Family<CallLabels, Histogram>,
    /// Frames this node could not deliver, by reason.
    pub frames_dropped: Family<DropLabels, Counter>,
    /// Pusher webhooks a receiver accepted (2xx).
    pub webhooks_delivered: Counter,
    /// Pusher webhook attempts that failed (to be retried or given up).
    pub webhooks_failed: Counter,
    /// Pusher webhooks dropped after Pusher's five-minute window.
    pub webhooks_given_up: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("realtime");
        let connections = Gauge::default();
        registry.register("connections", "Live WebSocket connections on this node", connections.clone());
        let subscriptions = Gauge::default();
        registry.register("subscriptions", "Channel subscriptions of this node's connections", subscriptions.clone());
        let messages_published = Counter::default();
        registry.register("messages_published", "Messages accepted for publishing", messages_published.clone());
        let frames_delivered = Counter::default();
        registry.register(
            "frames_delivered",
            "Frames handed to subscribers by this node's publishes",
            frames_delivered.clone(),
        );
        let socket_closes = Family::<CloseLabels, Counter>::default();
        registry.register("socket_closes", "Sockets closed, by close code", socket_closes.clone());
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests, by route, method and status", requests.clone());
        let request_seconds = Family::<RouteLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.0005, 2.0, 14))) as fn() -> Histogram,
        );
        registry.register("http_request_duration_seconds", "HTTP request latency, by route", request_seconds.clone());
        let idempotent_replays = Counter::default();
        registry.register("idempotent_replays", "Answers replayed from an idempotency key", idempotent_replays.clone());
        let insufficient_credit = Counter::default();
        registry.register(
            "insufficient_credit",
            "Operations refused because the balance does not cover them (REST 402, socket publishes, Pusher 403)",
            insufficient_credit.clone(),
        );
        let credit_charged = Counter::<u64, AtomicU64>::default();
        registry.register("credit_charged_micro_usd", "Micro-USD charged by this node", credit_charged.clone());
        let broker_seconds = Family::<CallLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.0001, 2.0, 16))) as fn() -> Histogram,
        );
        registry.register("broker_call_duration_seconds", "Broker call latency, by call", broker_seconds.clone());
        let store_seconds = Family::<CallLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.0001, 2.0, 16))) as fn() -> Histogram,
        );
        registry.register("store_call_duration_seconds", "Store call latency, by call", store_seconds.clone());
        let frames_dropped = Family::<DropLabels, Counter>::default();
        registry.register("frames_dropped", "Frames this node could not deliver, by reason", frames_dropped.clone());
        let webhooks_delivered = Counter::default();
        registry.register("webhooks_delivered", "Pusher webhooks a receiver accepted", webhooks_delivered.clone());
        let webhooks_failed = Counter::default();
        registry.register("webhooks_failed", "Pusher webhook attempts that failed", webhooks_failed.clone());
        let webhooks_given_up = Counter::default();
        registry.register(
            "webhooks_given_up",
            "Pusher webhooks dropped after the five-minute window",
            webhooks_given_up.clone(),
        );
        Metrics {
            registry,
            connections,
            subscriptions,
            messages_published,
            frames_delivered,
            socket_closes,
            requests,
            request_seconds,
            idempotent_replays,
            insufficient_credit,
            credit_charged,
            broker_seconds,
            store_seconds,
            frames_dropped,
            webhooks_delivered,
            webhooks_failed,
            webhooks_given_up,
        }
    }
}

impl Metrics {
    /// Counts an HTTP request; `replayed` when its answer came from an idempotency key.
    pub fn request(&self, route: &str, method: &str, status: u16, seconds: f64, replayed: bool) {
        let route = route.to_owned();
        let method = method_label(method);
        self.requests.get_or_create(&RequestLabels { route: route.clone(), method, status }).inc();
        self.request_seconds.get_or_create(&RouteLabels { route }).observe(seconds);
        if replayed {
            self.idempotent_replays.inc();
        }
    }

    /// Records how long a broker call took.
    pub fn broker_call(&self, call: &'static str, started: std::time::Instant) {
        self.broker_seconds.get_or_create(&CallLabels { call }).observe(started.elapsed().as_secs_f64());
    }

    /// Records how long a store call took.
    pub fn store_call(&self, call: &'static str, started: std::time::Instant) {
        self.store_seconds.get_or_create(&CallLabels { call }).observe(started.elapsed().as_secs_f64());
    }

    /// Counts frames that were not delivered.
    pub fn frames_dropped(&self, reason: &'static str, count: u64) {
        if count > 0 {
            self.frames_dropped.get_or_create(&DropLabels { reason }).inc_by(count);
        }
    }

    /// Counts a closed socket.
    pub fn socket_closed(&self, code: u16) {
        self.socket_closes.get_or_create(&CloseLabels { code }).inc();
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a String");
        text
    }
}

/// A request's method as a label: the methods HTTP defines, or `other` for any a client
/// makes up, so a client cannot grow the label set.
pub fn method_label(method: &str) -> &'static str {
    const KNOWN: &[&str] = &["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"];
    KNOWN.iter().find(|known| **known == method).copied().unwrap_or("other")
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}
