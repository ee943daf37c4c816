//! A flaky HTTP proxy in front of the reference server, recording what it sees.

use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// How the proxy misbehaves on the first request; later requests pass through.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FirstRequest {
    /// Answer 503 without forwarding.
    Unavailable,
    /// Forward it, then lose the answer and send 503 instead.
    LoseAnswer,
    /// Answer 429 with `Retry-After: 1` without forwarding.
    RateLimited,
    /// Forward it like the others.
    PassThrough,
}

/// One request the proxy received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) idempotency_key: Option<String>,
}

#[derive(Clone)]
struct Shared {
    upstream: String,
    first: FirstRequest,
    seen: Arc<Mutex<Vec<Seen>>>,
    http: reqwest::Client,
}

/// A running proxy.
pub(crate) struct Proxy {
    pub(crate) base_url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Proxy {
    pub(crate) async fn start(upstream: String, first: FirstRequest) -> Proxy {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared { upstream, first, seen: seen.clone(), http: reqwest::Client::new() };
        let app = axum::Router::new().fallback(forward).with_state(shared);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Proxy { base_url, seen }
    }

    /// The requests received so far.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn unavailable() -> Response {
    let problem = realtime_types::Problem::new(realtime_types::ErrorCode::Unavailable, "the proxy is flaky");
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, serde_json::to_vec(&problem).unwrap()).into_response();
    response.headers_mut().insert("content-type", HeaderValue::from_static("application/problem+json"));
    response
}

async fn forward(State(shared): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let path = parts.uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
    let attempt = {
        let mut seen = shared.seen.lock().unwrap();
        seen.push(Seen {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            idempotency_key: header("idempotency-key"),
        });
        seen.len()
    };
    if attempt == 1 {
        match shared.first {
            FirstRequest::Unavailable => return unavailable(),
            FirstRequest::RateLimited => {
                let problem = realtime_types::Problem::new(realtime_types::ErrorCode::RateLimited, "slow down");
                let mut response =
                    (StatusCode::TOO_MANY_REQUESTS, serde_json::to_vec(&problem).unwrap()).into_response();
                response.headers_mut().insert("retry-after", HeaderValue::from_static("1"));
                return response;
            }
            FirstRequest::LoseAnswer | FirstRequest::PassThrough => {}
        }
    }
    let body: Bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let method = reqwest::Method::from_bytes(parts.method.as_str().as_bytes()).unwrap();
    let mut upstream = shared.http.request(method, format!("{}{path}", shared.upstream)).body(body.to_vec());
    for name in ["authorization", "idempotency-key", "content-type", "accept"] {
        if let Some(value) = header(name) {
            upstream = upstream.header(name, value);
        }
    }
    let answer = upstream.send().await.unwrap();
    if attempt == 1 && matches!(shared.first, FirstRequest::LoseAnswer) {
        return unavailable();
    }
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
    let mut builder = Response::builder().status(status);
    for name in ["content-type", "idempotent-replayed", "retry-after"] {
        if let Some(value) = answer.headers().get(name) {
            builder = builder.header(name, value.as_bytes());
        }
    }
    builder.body(Body::from(answer.bytes().await.unwrap())).unwrap()
}
