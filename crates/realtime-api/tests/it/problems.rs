//! Every way the router refuses a request is an RFC 9457 problem with a stable code.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;

use crate::double::{KEY, router};

async fn send(request: Request<Body>) -> (StatusCode, String, Value) {
    let response = router().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type =
        response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, content_type, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn publish() -> axum::http::request::Builder {
    Request::post("/v1/realtime/publish").header("authorization", format!("Bearer {KEY}"))
}

fn json(builder: axum::http::request::Builder, body: &str) -> Request<Body> {
    builder.header("content-type", "application/json").body(Body::from(body.to_owned())).unwrap()
}

#[tokio::test]
async fn missing_malformed_and_unknown_keys_are_401_problems() {
    for authorization in [None, Some("Bearer nope"), Some("Basic abc"), Some("Bearer ifr_pk_proj_unknown")] {
        let mut builder = Request::get("/v1/realtime/event/types");
        if let Some(value) = authorization {
            builder = builder.header("authorization", value);
        }
        let (status, content_type, body) = send(builder.body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{authorization:?}");
        assert_eq!(content_type, "application/problem+json");
        assert_eq!(body["code"], "UNAUTHENTICATED");
        assert_eq!(body["status"], 401);
    }
}

#[tokio::test]
async fn a_body_that_is_not_json_is_a_400_problem() {
    let (status, content_type, body) = send(json(publish(), "{\"channel\": ")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(body["code"], "BAD_REQUEST");
}

#[tokio::test]
async fn a_body_without_json_content_type_is_a_415_problem() {
    let request = publish().header("content-type", "text/plain").body(Body::from("{}")).unwrap();
    let (status, _, body) = send(request).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(body["code"], "UNSUPPORTED_MEDIA_TYPE");
}

#[tokio::test]
async fn a_wrongly_typed_field_is_a_422_problem_pointing_at_it() {
    let (status, _, body) = send(json(publish(), r#"{"channel": 42, "event": "e", "data": 1}"#)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["code"], "VALIDATION_ERROR");
    assert_eq!(body["errors"][0]["pointer"], "/channel");
}

#[tokio::test]
async fn a_missing_field_is_a_422_problem() {
    let (status, _, body) = send(json(publish(), r#"{"channel": "c", "event": "e"}"#)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["code"], "VALIDATION_ERROR");
}

#[tokio::test]
async fn an_unknown_field_is_a_422_problem() {
    let (status, _, body) = send(json(publish(), r#"{"channel": "c", "event": "e", "data": 1, "chanel": "x"}"#)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["code"], "VALIDATION_ERROR");
}

#[tokio::test]
async fn a_limit_broken_by_one_byte_is_a_422_and_the_limit_itself_passes() {
    let name = "c".repeat(realtime_types::limits::CHANNEL_NAME_MAX_LEN);
    let ok = format!(r#"{{"channel": "{name}", "event": "e", "data": 1}}"#);
    assert_eq!(send(json(publish(), &ok)).await.0, StatusCode::OK);
    let too_long = format!(r#"{{"channel": "{name}x", "event": "e", "data": 1}}"#);
    let (status, _, body) = send(json(publish(), &too_long)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["errors"][0]["pointer"], "/channel");
}

#[tokio::test]
async fn oversized_data_is_a_413_problem() {
    let data = "x".repeat(realtime_types::limits::DATA_MAX_BYTES);
    let body = format!(r#"{{"channel": "c", "event": "e", "data": "{data}"}}"#);
    let (status, _, problem) = send(json(publish(), &body)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(problem["code"], "PAYLOAD_TOO_LARGE");
}

#[tokio::test]
async fn different_idempotency_keys_in_header_and_body_are_a_400() {
    let request = json(
        publish().header("idempotency-key", "a"),
        r#"{"channel": "c", "event": "e", "data": 1, "idempotency_key": "b"}"#,
    );
    let (status, _, body) = send(request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "BAD_REQUEST");
}

#[tokio::test]
async fn quoted_and_bare_idempotency_keys_name_the_same_key() {
    let quoted = json(publish().header("idempotency-key", "\"k1\""), r#"{"channel": "c", "event": "e", "data": 1}"#);
    let bare = json(publish(), r#"{"channel": "c", "event": "e", "data": 1, "idempotency_key": "k1"}"#);
    let router = router();
    let first = router.clone().oneshot(quoted).await.unwrap();
    let second = router.oneshot(bare).await.unwrap();
    assert_eq!(first.headers().get("idempotent-replayed"), None);
    assert_eq!(second.headers().get("idempotent-replayed").unwrap(), "true");
}

#[tokio::test]
async fn unknown_paths_and_methods_are_problems() {
    let (status, content_type, body) = send(Request::get("/v1/nothing").body(Body::empty()).unwrap()).await;
    assert_eq!((status, content_type.as_str()), (StatusCode::NOT_FOUND, "application/problem+json"));
    assert_eq!(body["code"], "NOT_FOUND");
    let (status, _, body) = send(Request::put("/v1/realtime/publish").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["code"], "METHOD_NOT_ALLOWED");
}

#[tokio::test]
async fn a_query_out_of_range_is_a_422_problem() {
    let request = Request::get("/v1/realtime/channel/list?limit=101")
        .header("authorization", format!("Bearer {KEY}"))
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = send(request).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["code"], "VALIDATION_ERROR");
}
