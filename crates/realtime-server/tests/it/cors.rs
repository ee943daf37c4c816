//! The server side of a browser app: CORS on the HTTP API (off unless origins are
//! configured) and the `Origin` allow-list of the WebSocket handshake.

use realtime_server::Config;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::{Answer, Env};

const APP: &str = "http://app.example:3000";
const OTHER: &str = "https://elsewhere.example";

async fn with_cors(origins: Value) -> Env {
    Env::start_with(json!({"cors": {"allowed_origins": origins}})).await
}

/// A CORS preflight for a keyed JSON `POST`, as a browser sends it before `fetch`.
async fn preflight(env: &Env, origin: &str, path: &str) -> Answer {
    let response = env
        .http
        .request(reqwest::Method::OPTIONS, env.url(path))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization,content-type,idempotency-key")
        .send()
        .await
        .unwrap();
    Answer { status: response.status(), headers: response.headers().clone(), body: Value::Null }
}

fn header<'a>(answer: &'a Answer, name: &str) -> Option<&'a str> {
    answer.headers.get(name).map(|value| value.to_str().unwrap())
}

/// The comma-separated values of a header, lowercased.
fn listed(answer: &Answer, name: &str) -> Vec<String> {
    header(answer, name)
        .unwrap_or_default()
        .split(',')
        .map(|value| value.trim().to_ascii_lowercase())
        .filter(|value| !value.is_empty())
        .collect()
}

#[tokio::test]
async fn the_api_sends_no_cors_headers_unless_origins_are_configured() {
    let env = Env::start().await;
    let answer = preflight(&env, APP, "/v1/realtime/publish").await;
    assert_eq!(header(&answer, "access-control-allow-origin"), None);
    let answer = env.send_as(&env.key, "GET", "/v1/account", None, &[("origin", APP)]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(header(&answer, "access-control-allow-origin"), None);
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_allows_keyed_json_calls() {
    let env = with_cors(json!([APP])).await;
    let answer = preflight(&env, APP, "/v1/realtime/publish").await;
    assert!(answer.status.is_success(), "{:?}", answer.status);
    assert_eq!(header(&answer, "access-control-allow-origin"), Some(APP));
    for method in ["get", "post", "delete"] {
        assert!(listed(&answer, "access-control-allow-methods").contains(&method.to_owned()));
    }
    for name in ["authorization", "content-type", "idempotency-key"] {
        assert!(listed(&answer, "access-control-allow-headers").contains(&name.to_owned()), "{name}");
    }
    assert_eq!(header(&answer, "access-control-max-age"), Some("600"));
    assert_eq!(header(&answer, "access-control-allow-credentials"), None, "the API takes no cookies");
}

#[tokio::test]
async fn answers_to_an_allowed_origin_carry_cors_headers_problems_included() {
    let env = with_cors(json!([APP, "http://localhost:5173"])).await;
    env.create_channel("room-1", "public").await;
    let body = json!({"channel": "room-1", "event": "e", "data": 1});
    let headers = [("origin", APP), ("idempotency-key", "k-1")];
    env.send_as(&env.key, "POST", "/v1/realtime/publish", Some(body.clone()), &headers).await.ok();
    let replay = env.send_as(&env.key, "POST", "/v1/realtime/publish", Some(body), &headers).await;
    assert_eq!(header(&replay, "access-control-allow-origin"), Some(APP));
    let exposed = listed(&replay, "access-control-expose-headers");
    for name in ["idempotent-replayed", "retry-after", "x-request-id"] {
        assert!(exposed.contains(&name.to_owned()), "{name} is not exposed: {exposed:?}");
    }
    assert!(listed(&replay, "vary").contains(&"origin".to_owned()));

    let missing = env
        .send_as(
            &env.key,
            "POST",
            "/v1/realtime/publish",
            Some(json!({"channel": "nope", "event": "e", "data": 1})),
            &[("origin", "HTTP://LOCALHOST:5173")],
        )
        .await;
    missing.problem(404, "NOT_FOUND");
    assert_eq!(header(&missing, "access-control-allow-origin"), Some("HTTP://LOCALHOST:5173"));
}

#[tokio::test]
async fn other_origins_get_no_cors_headers() {
    let env = with_cors(json!([APP])).await;
    let answer = preflight(&env, OTHER, "/v1/realtime/publish").await;
    assert_eq!(header(&answer, "access-control-allow-origin"), None);
    let answer = env.send_as(&env.key, "GET", "/v1/account", None, &[("origin", OTHER)]).await;
    assert_eq!(header(&answer, "access-control-allow-origin"), None);
}

#[tokio::test]
async fn a_wildcard_allows_every_origin() {
    let env = with_cors(json!(["*"])).await;
    let answer = preflight(&env, OTHER, "/v1/realtime/channel/create").await;
    assert_eq!(header(&answer, "access-control-allow-origin"), Some("*"));
}

#[tokio::test]
async fn origins_that_are_not_bare_origins_are_refused_at_start() {
    for bad in ["http://app.example/", "app.example", "http://app.example/path", "ftp://app.example"] {
        let error = Config::with(json!({"cors": {"allowed_origins": [bad]}})).unwrap_err().to_string();
        assert!(error.contains("cors.allowed_origins") && error.contains(bad), "{error}");
    }
    let error = Config::with(json!({"gateway": {"allowed_origins": ["*", "https://a.example/"]}})).unwrap_err();
    assert!(error.to_string().contains("gateway.allowed_origins"), "{error}");
    Config::with(json!({"cors": {"allowed_origins": ["https://a.example", "http://127.0.0.1:8080", "*"]}})).unwrap();
}

/// Opens a socket with `origin` (if any); the handshake's HTTP status when it is refused.
async fn handshake(env: &Env, origin: Option<&str>) -> Result<(), u16> {
    let token = env.token("page", &[], &["subscribe"]).await;
    let url = format!("{}?token={}", token["endpoint"].as_str().unwrap(), token["token"].as_str().unwrap());
    let mut request = url.into_client_request().unwrap();
    if let Some(origin) = origin {
        request.headers_mut().insert("origin", origin.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((mut socket, _)) => {
            use futures_util::StreamExt;
            let first = socket.next().await.unwrap().unwrap();
            assert!(first.to_text().unwrap().contains("\"connected\""), "{first}");
            Ok(())
        }
        Err(tungstenite::Error::Http(response)) => {
            let body: Value = serde_json::from_slice(response.body().as_deref().unwrap_or_default()).unwrap();
            assert_eq!(body["code"], "FORBIDDEN", "{body}");
            Err(response.status().as_u16())
        }
        Err(other) => panic!("handshake failed: {other}"),
    }
}

#[tokio::test]
async fn sockets_from_pages_of_unlisted_origins_are_refused_with_403() {
    let env = Env::start_with(json!({"gateway": {"allowed_origins": [APP]}})).await;
    assert_eq!(handshake(&env, Some(APP)).await, Ok(()));
    assert_eq!(handshake(&env, Some(OTHER)).await, Err(403));
    assert_eq!(handshake(&env, Some("null")).await, Err(403), "a sandboxed page or a file:// page");
    assert_eq!(handshake(&env, None).await, Ok(()), "programs send no Origin and are not checked");
}

#[tokio::test]
async fn sockets_from_every_origin_are_accepted_by_default() {
    let env = Env::start().await;
    assert_eq!(handshake(&env, Some(OTHER)).await, Ok(()));
    assert_eq!(handshake(&env, None).await, Ok(()));
}
