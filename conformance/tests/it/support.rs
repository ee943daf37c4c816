//! A reference server per test, and a proxy in front of it that alters traffic.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::FromRequestParts;
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use realtime_conformance::{Config, Report};
use realtime_server::testing::TestServer;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message as UpstreamMessage;

/// A request as the proxy saw it.
#[derive(Debug, Clone)]
pub(crate) struct ProxyRequest {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl ProxyRequest {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub(crate) fn set_header(&mut self, name: &str, value: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value.to_owned()));
    }
}

/// A response on its way back to the harness.
#[derive(Debug, Clone)]
pub(crate) struct ProxyResponse {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl ProxyResponse {
    pub(crate) fn json(status: u16, content_type: &str, body: &serde_json::Value) -> ProxyResponse {
        ProxyResponse {
            status,
            headers: vec![("content-type".to_owned(), content_type.to_owned())],
            body: body.to_string().into_bytes(),
        }
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub(crate) fn body_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    pub(crate) fn set_body_json(&mut self, body: &serde_json::Value) {
        self.body = body.to_string().into_bytes();
    }
}

type Before = dyn Fn(&mut ProxyRequest) -> Option<ProxyResponse> + Send + Sync;
type After = dyn Fn(&ProxyRequest, &mut ProxyResponse) + Send + Sync;
type Echo = dyn Fn(&str) -> Option<String> + Send + Sync;
type Frames = dyn Fn(&str) -> Option<String> + Send + Sync;
type Close = dyn Fn(u16) -> u16 + Send + Sync;
type Stop = dyn Fn() -> Option<u16> + Send + Sync;

/// How a broken target differs from the reference server: `before` may rewrite a request
/// or answer it itself; `after` may rewrite the answer; `echo` may answer a client's
/// WebSocket text frame with a frame of its own (the client's frame still goes upstream);
/// `frames` may rewrite (or, with `None`, drop) the server's text frames; `close` may
/// change the server's close codes; `stop`, polled every 50 ms, may close every socket with
/// a code of its own (a stop of the target, as the proxy plays it).
pub(crate) struct Tamper {
    pub(crate) before: Box<Before>,
    pub(crate) after: Box<After>,
    pub(crate) echo: Box<Echo>,
    pub(crate) frames: Box<Frames>,
    pub(crate) close: Box<Close>,
    pub(crate) stop: Box<Stop>,
}

impl Default for Tamper {
    fn default() -> Tamper {
        Tamper {
            before: Box::new(|_| None),
            after: Box::new(|_, _| {}),
            echo: Box::new(|_| None),
            frames: Box::new(|frame| Some(frame.to_owned())),
            close: Box::new(|code| code),
            stop: Box::new(|| None),
        }
    }
}

impl Tamper {
    pub(crate) fn after(after: impl Fn(&ProxyRequest, &mut ProxyResponse) + Send + Sync + 'static) -> Tamper {
        Tamper { after: Box::new(after), ..Tamper::default() }
    }

    pub(crate) fn before(
        before: impl Fn(&mut ProxyRequest) -> Option<ProxyResponse> + Send + Sync + 'static,
    ) -> Tamper {
        Tamper { before: Box::new(before), ..Tamper::default() }
    }

    pub(crate) fn echo(echo: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Tamper {
        Tamper { echo: Box::new(echo), ..Tamper::default() }
    }
}

struct ProxyState {
    upstream: String,
    /// `host:port` of the upstream and of the proxy: addresses in answers (a token's
    /// `endpoint`, a `topup_url`) are rewritten so that the client comes back through it.
    upstream_authority: String,
    proxy_authority: String,
    client: reqwest::Client,
    tamper: Tamper,
}

/// The reference server, its keys, and (when asked) a tampering proxy in front of it.
pub(crate) struct Target {
    pub(crate) server: TestServer,
    pub(crate) funded_key: String,
    pub(crate) zero_key: String,
    pub(crate) base_url: String,
    _dir: tempfile::TempDir,
}

impl Target {
    /// The reference server, reached directly.
    pub(crate) async fn reference() -> Target {
        let dir = tempfile::tempdir().expect("temp dir");
        // A short heartbeat timeout so the 4201 check waits 20 s, and a budget the harness
        // can drive past on loopback (the rate-limit checks).
        let overrides = serde_json::json!({
            "gateway": {"heartbeat_interval_seconds": 8, "heartbeat_timeout_seconds": 20},
            "rate_limit": {"requests_per_second": 200, "burst": 400},
        });
        let server = TestServer::start_with(dir.path(), overrides).await.expect("the reference server starts");
        let funded_key = server.create_account(2_000_000).await.expect("funded account");
        let zero_key = server.create_account(0).await.expect("zero-credit account");
        let base_url = server.base_url();
        Target { server, funded_key, zero_key, base_url, _dir: dir }
    }

    /// The reference server behind a proxy that applies `tamper` (built with the keys).
    pub(crate) async fn broken(tamper: impl FnOnce(&Target) -> Tamper) -> Target {
        let mut target = Target::reference().await;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let address = listener.local_addr().expect("proxy address");
        let upstream = target.server.base_url();
        let state = Arc::new(ProxyState {
            upstream_authority: upstream.trim_start_matches("http://").to_owned(),
            proxy_authority: address.to_string(),
            upstream,
            client: reqwest::Client::new(),
            tamper: tamper(&target),
        });
        let app = Router::new().fallback(forward).with_state(state);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        target.base_url = format!("http://{address}");
        target
    }

    /// Runs the whole harness against this target (dev checkout on, short live bound).
    pub(crate) async fn certify(&self) -> Report {
        self.certify_with(|_| {}).await
    }

    /// Like [`certify`](Self::certify), running only the checks of `kinds` (a broken
    /// target's test needs no more, and the whole run takes a minute).
    pub(crate) async fn certify_only(&self, kinds: &[realtime_conformance::Kind]) -> Report {
        self.certify_with(|config| config.only = kinds.to_vec()).await
    }

    /// Like [`certify`](Self::certify), with the configuration changed by `adjust`.
    pub(crate) async fn certify_with(&self, adjust: impl FnOnce(&mut Config)) -> Report {
        let mut config = Config::new(&self.base_url, &self.funded_key);
        config.zero_credit_api_key = Some(self.zero_key.clone());
        config.dev_checkout = true;
        config.live_bound = Duration::from_secs(2);
        adjust(&mut config);
        realtime_conformance::run(&config).await.expect("the harness runs")
    }
}

async fn forward(State(state): State<Arc<ProxyState>>, request: Request) -> Response {
    let (mut parts, body) = request.into_parts();
    if parts.headers.get("upgrade").is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"websocket")) {
        let path = parts.uri.path_and_query().map(|pq| pq.as_str().to_owned()).unwrap_or_else(|| "/".to_owned());
        let url = format!("ws://{}{path}", state.upstream.trim_start_matches("http://"));
        return match WebSocketUpgrade::from_request_parts(&mut parts, &state).await {
            Ok(upgrade) => upgrade.on_upgrade(move |socket| relay(socket, url, state)),
            Err(rejection) => rejection.into_response(),
        };
    }
    let body = to_bytes(body, 16 * 1024 * 1024).await.map(|b| b.to_vec()).unwrap_or_default();
    let mut proxied = ProxyRequest {
        method: parts.method.to_string(),
        path: parts.uri.path_and_query().map(|pq| pq.as_str().to_owned()).unwrap_or_else(|| "/".to_owned()),
        headers: parts
            .headers
            .iter()
            .filter(|(name, _)| !matches!(name.as_str(), "host" | "content-length" | "connection"))
            .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned())))
            .collect(),
        body,
    };
    let mut answer = match (state.tamper.before)(&mut proxied) {
        Some(answer) => answer,
        None => match upstream(&state, &proxied).await {
            Ok(answer) => answer,
            Err(err) => {
                return Response::builder()
                    .status(StatusCode::BAD_GATEWAY)
                    .body(Body::from(format!("proxy: {err}")))
                    .unwrap_or_default();
            }
        },
    };
    if let Ok(text) = std::str::from_utf8(&answer.body) {
        answer.body = text.replace(&state.upstream_authority, &state.proxy_authority).into_bytes();
    }
    (state.tamper.after)(&proxied, &mut answer);
    let mut response = Response::builder().status(answer.status);
    for (name, value) in &answer.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(value)) {
            response = response.header(name, value);
        }
    }
    response.body(Body::from(answer.body)).unwrap_or_default()
}

async fn upstream(state: &ProxyState, request: &ProxyRequest) -> Result<ProxyResponse, reqwest::Error> {
    let method = reqwest::Method::from_bytes(request.method.as_bytes()).unwrap_or(reqwest::Method::GET);
    let mut builder = state.client.request(method, format!("{}{}", state.upstream, request.path));
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    let response = builder.body(request.body.clone()).send().await?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "content-length" | "transfer-encoding" | "connection"))
        .filter_map(|(name, value)| Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned())))
        .collect();
    let body = response.bytes().await?.to_vec();
    Ok(ProxyResponse { status, headers, body })
}

/// The mismatch of a check that must have failed.
pub(crate) fn failure<'a>(report: &'a Report, id: &str) -> &'a str {
    let check = report.check(id).unwrap_or_else(|| panic!("no check {id:?} in the report:\n{}", report.render_table()));
    match &check.outcome {
        realtime_conformance::Outcome::Fail(mismatch) => mismatch,
        other => panic!("{id} should have failed, it is {other:?}\n{}", report.render_table()),
    }
}

/// Relays a WebSocket between the harness and the upstream server, frame by frame,
/// close codes included; `echo` may answer the client's text frames.
async fn relay(client: WebSocket, url: String, state: Arc<ProxyState>) {
    let Ok((upstream, _)) = tokio_tungstenite::connect_async(url.as_str()).await else { return };
    let (mut up_tx, mut up_rx) = upstream.split();
    let (mut client_tx, mut client_rx) = client.split();
    loop {
        tokio::select! {
            from_client = client_rx.next() => {
                let Some(Ok(message)) = from_client else {
                    let _ = up_tx.close().await;
                    return;
                };
                match message {
                    WsMessage::Text(text) => {
                        let echo = (state.tamper.echo)(text.as_str());
                        if up_tx.send(UpstreamMessage::text(text.as_str())).await.is_err() {
                            return;
                        }
                        if let Some(echo) = echo
                            && client_tx.send(WsMessage::Text(echo.into())).await.is_err()
                        {
                            return;
                        }
                    }
                    WsMessage::Close(_) => {
                        let _ = up_tx.close().await;
                        return;
                    }
                    WsMessage::Binary(bytes) => {
                        if up_tx.send(UpstreamMessage::binary(bytes.to_vec())).await.is_err() {
                            return;
                        }
                    }
                    WsMessage::Ping(_) | WsMessage::Pong(_) => {}
                }
            }
            () = tokio::time::sleep(Duration::from_millis(50)) => {
                if let Some(code) = (state.tamper.stop)() {
                    let frame = CloseFrame { code, reason: "stopping".into() };
                    let _ = client_tx.send(WsMessage::Close(Some(frame))).await;
                    let _ = up_tx.close().await;
                    return;
                }
            }
            from_upstream = up_rx.next() => {
                let Some(Ok(message)) = from_upstream else {
                    let _ = client_tx.close().await;
                    return;
                };
                let open = match message {
                    UpstreamMessage::Text(text) => match (state.tamper.frames)(text.as_str()) {
                        Some(text) => client_tx.send(WsMessage::Text(text.into())).await.is_ok(),
                        None => true,
                    },
                    UpstreamMessage::Close(frame) => {
                        let frame = frame.map(|frame| CloseFrame {
                            code: (state.tamper.close)(u16::from(frame.code)),
                            reason: frame.reason.as_str().into(),
                        });
                        let _ = client_tx.send(WsMessage::Close(frame)).await;
                        false
                    }
                    _ => true,
                };
                if !open {
                    return;
                }
            }
        }
    }
}
