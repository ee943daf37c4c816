//! The retry policy: transient failures are retried with the first attempt's
//! idempotency key, so a retried write acts once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use realtime_client::{Client, ClientError, RetryPolicy};
use realtime_types::{ChannelType, ErrorCode};

use crate::proxy::{FirstRequest, Proxy};
use crate::support::{Harness, create_channel, publish_request};

fn fast_retries() -> RetryPolicy {
    RetryPolicy { max_retries: 3, initial_delay: Duration::from_millis(10), max_delay: Duration::from_secs(2) }
}

fn client_via(proxy: &Proxy, harness: &Harness) -> Client {
    Client::builder(&proxy.base_url).api_key(harness.server.api_key()).retry(fast_retries()).build().unwrap()
}

#[tokio::test]
async fn a_503_is_retried_with_the_same_idempotency_key() {
    let harness = Harness::start().await;
    create_channel(&harness.client(), "room-42", ChannelType::Public).await;
    let proxy = Proxy::start(harness.server.base_url(), FirstRequest::Unavailable).await;
    let published = client_via(&proxy, &harness)
        .publish_with(None, publish_request("room-42", "message", serde_json::json!(1)))
        .await
        .unwrap();
    assert!(!published.replayed, "the first attempt never reached the server");
    let seen = proxy.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let key = seen[0].idempotency_key.clone().expect("the client sends an Idempotency-Key");
    assert_eq!(key.len(), 26, "a ULID: {key}");
    assert_eq!(seen[1].idempotency_key.as_deref(), Some(key.as_str()));
}

#[tokio::test]
async fn a_lost_answer_is_retried_and_replayed_so_the_write_happens_once() {
    let harness = Harness::start().await;
    let direct = harness.client();
    create_channel(&direct, "room-42", ChannelType::Public).await;
    let balance = direct.account_get().await.unwrap().balance;
    let proxy = Proxy::start(harness.server.base_url(), FirstRequest::LoseAnswer).await;
    let reply = client_via(&proxy, &harness)
        .publish_with(None, publish_request("room-42", "message", serde_json::json!(1)))
        .await
        .unwrap();
    assert!(reply.replayed, "the second attempt replays the first one's stored answer");
    let seen = proxy.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].idempotency_key, seen[1].idempotency_key);
    let price_of_one_publish = balance - direct.account_get().await.unwrap().balance;
    let publish_again = direct.publish(publish_request("room-42", "message", serde_json::json!(2))).await.unwrap();
    assert!(!publish_again.message_id.is_empty());
    let after_second = direct.account_get().await.unwrap().balance;
    assert_eq!(balance - after_second, 2 * price_of_one_publish, "the retried publish was charged once");
}

#[tokio::test]
async fn a_429_waits_for_retry_after_before_retrying() {
    let harness = Harness::start().await;
    let proxy = Proxy::start(harness.server.base_url(), FirstRequest::RateLimited).await;
    let started = Instant::now();
    client_via(&proxy, &harness).event_types().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(950), "waited only {:?}", started.elapsed());
    assert_eq!(proxy.seen().len(), 2);
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let harness = Harness::start().await;
    let proxy = Proxy::start(harness.server.base_url(), FirstRequest::PassThrough).await;
    let error = client_via(&proxy, &harness)
        .publish(publish_request("never-created", "message", serde_json::json!(1)))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::NotFound));
    assert_eq!(proxy.seen().len(), 1);
}

#[tokio::test]
async fn retries_stop_after_the_policy_maximum() {
    let harness = Harness::start().await;
    let url = harness.server.base_url();
    harness.server.stop().await.unwrap();
    let policy =
        RetryPolicy { max_retries: 2, initial_delay: Duration::from_millis(1), max_delay: Duration::from_millis(5) };
    let client = Client::builder(url).api_key("ifr_pk_proj_x").retry(policy).build().unwrap();
    let error = client.account_get().await.unwrap_err();
    assert!(matches!(error, ClientError::Transport { .. }), "{error:?}");
}

/// A `Client` implements the API trait, so it can stand behind the contract's own router:
/// a proxy built from nothing but the route table and the client.
#[tokio::test]
async fn a_client_can_back_the_contract_router() {
    let harness = Harness::start().await;
    create_channel(&harness.client(), "room-42", ChannelType::Public).await;
    let idempotency = realtime_api::Idempotency::new(
        Arc::new(realtime_api::idempotency::memory::MemoryIdempotencyStore::default()),
        Duration::from_secs(3600),
    );
    let app = realtime_api::router(Arc::new(harness.client()), idempotency);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let front = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let through = Client::new(front, harness.server.api_key()).unwrap();
    let published = through.publish(publish_request("room-42", "message", serde_json::json!("hi"))).await.unwrap();
    assert_eq!(published.channel, "room-42");
    let missing = through.channel_get("never-created").await.unwrap_err();
    assert_eq!(missing.code(), Some(ErrorCode::NotFound));
}
