//! The router's idempotency, written once for every implementation: the same key and
//! request replay the first answer with no second effect; anything else is refused with
//! its own problem.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use serde_json::Value;
use tower::ServiceExt;

use crate::double::{Double, KEY, router_over};

fn publish(key: &str, body: &str) -> Request<Body> {
    Request::post("/v1/realtime/publish")
        .header("authorization", format!("Bearer {KEY}"))
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(Body::from(body.to_owned()))
        .unwrap()
}

async fn body(response: Response<Body>) -> Value {
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn replayed(response: &Response<Body>) -> bool {
    response.headers().get("idempotent-replayed").is_some_and(|v| v == "true")
}

fn double() -> (Arc<Double>, axum::Router) {
    let double = Arc::new(Double::default());
    let router = router_over(double.clone());
    (double, router)
}

#[tokio::test]
async fn the_same_key_and_request_replay_the_first_answer_without_a_second_effect() {
    let (double, router) = double();
    let first = router.clone().oneshot(publish("k", r#"{"channel": "c", "event": "e", "data": 1}"#)).await.unwrap();
    // The same request with its fields in another order is the same request.
    let again = router.oneshot(publish("k", r#"{"data": 1, "event": "e", "channel": "c"}"#)).await.unwrap();
    assert_eq!((first.status(), replayed(&first)), (StatusCode::OK, false));
    assert_eq!((again.status(), replayed(&again)), (StatusCode::OK, true));
    assert_eq!(body(first).await["message_id"], body(again).await["message_id"]);
    assert_eq!(double.publishes.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_same_key_with_another_request_is_a_422_and_runs_nothing() {
    let (double, router) = double();
    router.clone().oneshot(publish("k", r#"{"channel": "c", "event": "e", "data": 1}"#)).await.unwrap();
    let other = router.oneshot(publish("k", r#"{"channel": "c", "event": "e", "data": 2}"#)).await.unwrap();
    assert_eq!(other.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body(other).await["code"], "IDEMPOTENCY_KEY_REUSED");
    assert_eq!(double.publishes.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_same_key_while_the_first_request_runs_is_a_409_with_retry_after() {
    let (double, router) = double();
    let slow = r#"{"channel": "slow", "event": "e", "data": 1}"#;
    let first = tokio::spawn(router.clone().oneshot(publish("k", slow)));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = router.clone().oneshot(publish("k", slow)).await.unwrap();
    assert_eq!(second.status(), StatusCode::CONFLICT);
    assert_eq!(second.headers().get("retry-after").unwrap(), "1");
    assert_eq!(body(second).await["code"], "IDEMPOTENCY_KEY_IN_USE");
    assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
    let third = router.oneshot(publish("k", slow)).await.unwrap();
    assert!(replayed(&third));
    assert_eq!(double.publishes.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_failed_request_releases_its_key_so_a_retry_runs() {
    let (double, router) = double();
    let flaky = r#"{"channel": "flaky", "event": "e", "data": 1}"#;
    let failed = router.clone().oneshot(publish("k", flaky)).await.unwrap();
    assert_eq!(failed.status(), StatusCode::SERVICE_UNAVAILABLE);
    let retried = router.oneshot(publish("k", flaky)).await.unwrap();
    assert_eq!((retried.status(), replayed(&retried)), (StatusCode::OK, false));
    assert_eq!(double.publishes.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_request_cancelled_half_way_still_stores_its_answer() {
    let (double, router) = double();
    let slow = r#"{"channel": "slow", "event": "e", "data": 1}"#;
    let cancelled = tokio::time::timeout(Duration::from_millis(100), router.clone().oneshot(publish("k", slow))).await;
    assert!(cancelled.is_err(), "the client gave up before the answer");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let retried = router.oneshot(publish("k", slow)).await.unwrap();
    assert_eq!((retried.status(), replayed(&retried)), (StatusCode::OK, true));
    assert_eq!(double.publishes.load(Ordering::SeqCst), 1);
}
