//! Every operation of the contract, called through the client against the reference server.

use realtime_api::RealtimeApi;
use realtime_client::{Client, ClientError, IdempotencyKey, RetryPolicy};
use realtime_types::*;

use crate::support::{Harness, create_channel, publish_request};

/// The client implements the server's trait, so it has a method for every operation.
#[test]
fn the_client_implements_the_api_trait() {
    fn implements<T: RealtimeApi>() {}
    implements::<Client>();
}

#[tokio::test]
async fn token_issue_returns_a_token_for_the_gateway() {
    let harness = Harness::start().await;
    let token = harness
        .client()
        .token_issue(TokenIssueRequest {
            client_id: Some("user_42".into()),
            channels: Some(vec!["room-42".into()]),
            capabilities: Some(vec![Capability::Subscribe, Capability::Presence]),
            ttl_seconds: Some(600),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(token.client_id, "user_42");
    assert!(token.endpoint.starts_with("ws://"), "{}", token.endpoint);
    assert_eq!(token.capabilities, vec![Capability::Subscribe, Capability::Presence]);
    assert!(token.expires_at > chrono::Utc::now());
}

#[tokio::test]
async fn token_revoke_revokes_by_jti() {
    let harness = Harness::start().await;
    let client = harness.client();
    let token = client.token_issue(TokenIssueRequest::default()).await.unwrap();
    let revoked = client
        .token_revoke(TokenRevokeRequest { token_or_jti: token.jti.clone(), idempotency_key: None })
        .await
        .unwrap();
    assert!(revoked.revoked);
    assert_eq!(revoked.jti, token.jti);
}

#[tokio::test]
async fn channel_create_creates_once_and_then_returns_the_existing_channel() {
    let harness = Harness::start().await;
    let client = harness.client();
    let request = ChannelCreateRequest {
        name: "room-42".into(),
        channel_type: Some(ChannelType::Presence),
        idempotency_key: None,
    };
    let first = client.channel_create(request.clone()).await.unwrap();
    assert!(first.created);
    assert_eq!(first.channel_type, ChannelType::Presence);
    let second = client.channel_create(request).await.unwrap();
    assert!(!second.created);
    assert_eq!(second.channel_id, first.channel_id);
}

#[tokio::test]
async fn channel_get_returns_the_channel_and_404_for_an_unknown_one() {
    let harness = Harness::start().await;
    let client = harness.client();
    create_channel(&client, "room-42", ChannelType::Public).await;
    let channel = client.channel_get("room-42").await.unwrap();
    assert_eq!(channel.name, "room-42");
    assert_eq!(channel.subscriber_count, 0);
    let error = client.channel_get("never-created").await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::NotFound));
    assert_eq!(error.status(), Some(404));
}

#[tokio::test]
async fn channel_names_with_reserved_characters_reach_the_right_channel() {
    let harness = Harness::start().await;
    let client = harness.client();
    create_channel(&client, "a;b=c@d,e.f", ChannelType::Public).await;
    assert_eq!(client.channel_get("a;b=c@d,e.f").await.unwrap().name, "a;b=c@d,e.f");
    assert_eq!(client.presence_get("a;b=c@d,e.f").await.unwrap().channel, "a;b=c@d,e.f");
}

#[tokio::test]
async fn channel_list_pages_through_every_channel() {
    let harness = Harness::start().await;
    let client = harness.client();
    for index in 0..5 {
        create_channel(&client, &format!("room-{index}"), ChannelType::Public).await;
    }
    let page = client.channel_list(ChannelListQuery { cursor: None, limit: Some(2) }).await.unwrap();
    assert_eq!(page.channels.len(), 2);
    assert!(page.next_cursor.is_some());
    let all = client.channel_list_all(10).await.unwrap();
    let names: Vec<_> = all.iter().map(|channel| channel.name.as_str()).collect();
    assert_eq!(names, ["room-0", "room-1", "room-2", "room-3", "room-4"]);
}

#[tokio::test]
async fn channel_delete_deletes_and_the_channel_is_gone() {
    let harness = Harness::start().await;
    let client = harness.client();
    create_channel(&client, "room-42", ChannelType::Public).await;
    let deleted = client.channel_delete("room-42").await.unwrap();
    assert!(deleted.deleted);
    assert_eq!(deleted.status, DeleteStatus::Deleted);
    assert_eq!(client.channel_get("room-42").await.unwrap_err().code(), Some(ErrorCode::NotFound));
}

#[tokio::test]
async fn publish_returns_the_message_id() {
    let harness = Harness::start().await;
    let client = harness.client();
    create_channel(&client, "room-42", ChannelType::Public).await;
    let published =
        client.publish(publish_request("room-42", "message", serde_json::json!({"text": "hi"}))).await.unwrap();
    assert_eq!(published.channel, "room-42");
    assert_eq!(published.event, "message");
    assert_eq!(published.delivered, 0);
    assert!(!published.message_id.is_empty());
}

#[tokio::test]
async fn publish_with_the_same_key_is_replayed_not_repeated() {
    let harness = Harness::start().await;
    let client = harness.client();
    create_channel(&client, "room-42", ChannelType::Public).await;
    let balance = client.account_get().await.unwrap().balance;
    let key = IdempotencyKey::parse("publish-once").unwrap();
    let request = publish_request("room-42", "message", serde_json::json!(1));
    let first = client.publish_with(Some(key.clone()), request.clone()).await.unwrap();
    let second = client.publish_with(Some(key.clone()), request).await.unwrap();
    assert!(!first.replayed);
    assert!(second.replayed);
    assert_eq!(first.body.message_id, second.body.message_id);
    let charged_once = client.account_get().await.unwrap().balance;
    let third = client.publish_with(None, publish_request("room-42", "message", serde_json::json!(2))).await.unwrap();
    assert!(!third.replayed);
    assert!(charged_once < balance);
    let reused = client.publish_with(Some(key), publish_request("room-42", "other", serde_json::json!(1))).await;
    assert_eq!(reused.unwrap_err().code(), Some(ErrorCode::IdempotencyKeyReused));
}

#[tokio::test]
async fn publish_batch_publishes_every_message_in_order() {
    let harness = Harness::start().await;
    let client = harness.client();
    create_channel(&client, "room-42", ChannelType::Public).await;
    let messages = (0..3)
        .map(|n| BatchMessage { channel: "room-42".into(), event: format!("e{n}"), data: serde_json::json!(n) })
        .collect();
    let batch = client.publish_batch(PublishBatchRequest { messages, idempotency_key: None }).await.unwrap();
    assert_eq!(batch.published, 3);
    let events: Vec<_> = batch.messages.iter().map(|m| m.event.as_str()).collect();
    assert_eq!(events, ["e0", "e1", "e2"]);
}

#[tokio::test]
async fn an_empty_batch_is_a_validation_problem_with_field_errors() {
    let harness = Harness::start().await;
    let error = harness
        .client()
        .publish_batch(PublishBatchRequest { messages: vec![], idempotency_key: None })
        .await
        .unwrap_err();
    let ClientError::Api { status, problem, .. } = &error else { panic!("expected a problem, got {error:?}") };
    assert_eq!(*status, 422);
    assert_eq!(problem.code, ErrorCode::ValidationError);
    assert!(problem.errors.iter().any(|field| field.pointer.starts_with("/messages")), "{problem:?}");
}

#[tokio::test]
async fn presence_get_lists_no_members_of_an_idle_channel() {
    let harness = Harness::start().await;
    let client = harness.client();
    create_channel(&client, "room-42", ChannelType::Presence).await;
    let presence = client.presence_get("room-42").await.unwrap();
    assert_eq!(presence.channel, "room-42");
    assert!(presence.members.is_empty());
    assert_eq!(presence.count, 0);
}

#[tokio::test]
async fn auth_sign_signs_for_pusher_and_for_this_server() {
    let harness = Harness::start().await;
    let client = harness.client();
    let pusher = client
        .auth_sign(AuthSignRequest {
            client_id: "user_42".into(),
            channels: vec!["private-room".into()],
            capabilities: None,
            vendor: Some(Vendor::Pusher),
            ttl_seconds: None,
            socket_id: Some("1234.5678".into()),
            channel_data: None,
            idempotency_key: None,
        })
        .await
        .unwrap();
    let VendorToken::Pusher { token, channel, .. } = pusher else { panic!("expected a Pusher token, got {pusher:?}") };
    assert_eq!(channel, "private-room");
    assert!(token.contains(':'), "{token}");
    let own = client
        .auth_sign(AuthSignRequest {
            client_id: "user_42".into(),
            channels: vec!["room-42".into()],
            capabilities: None,
            vendor: Some(Vendor::Realtime),
            ttl_seconds: Some(60),
            socket_id: None,
            channel_data: None,
            idempotency_key: None,
        })
        .await
        .unwrap();
    assert_eq!(own.vendor(), Vendor::Realtime);
}

#[tokio::test]
async fn event_types_are_exactly_the_server_frames() {
    let harness = Harness::start().await;
    let types = harness.client().event_types().await.unwrap();
    assert_eq!(types.types, EventType::ALL.to_vec());
}

#[tokio::test]
async fn user_disconnect_of_an_unknown_client_disconnects_nothing() {
    let harness = Harness::start().await;
    let disconnected = harness
        .client()
        .user_disconnect(UserDisconnectRequest { client_id: "nobody".into(), channel: None, idempotency_key: None })
        .await
        .unwrap();
    assert_eq!(disconnected.disconnected, 0);
}

#[tokio::test]
async fn account_get_shows_the_balance() {
    let harness = Harness::start().await;
    let account = harness.client().account_get().await.unwrap();
    assert!(account.balance > 0);
    assert_eq!(account.currency, "USD");
}

#[tokio::test]
async fn account_topup_credits_once_the_checkout_completes() {
    let harness = Harness::start().await;
    let client = harness.client();
    let before = client.account_get().await.unwrap().balance;
    let checkout = client.account_topup(TopupRequest { amount: 5_000_000, idempotency_key: None }).await.unwrap();
    assert_eq!(checkout.status, CheckoutStatus::Pending);
    let complete = format!("{}/checkout/{}/complete", harness.server.base_url(), checkout.checkout_id);
    let http = reqwest::Client::new();
    for _ in 0..2 {
        assert!(http.post(&complete).send().await.unwrap().status().is_success());
    }
    assert_eq!(client.account_get().await.unwrap().balance, before + 5_000_000);
}

#[tokio::test]
async fn an_account_without_credit_gets_402_with_where_to_top_up() {
    let harness = Harness::start().await;
    let broke_key = harness.server.create_account(0).await.unwrap();
    let broke = Client::builder(harness.server.base_url()).api_key(broke_key).retry(RetryPolicy::NONE).build().unwrap();
    let error = broke.token_issue(TokenIssueRequest::default()).await.unwrap_err();
    let ClientError::Api { status, problem, .. } = &error else { panic!("expected a problem, got {error:?}") };
    assert_eq!(*status, 402);
    assert_eq!(problem.code, ErrorCode::InsufficientCredit);
    assert!(problem.topup_url.is_some());
    assert_eq!(problem.balance, Some(0));
}

#[tokio::test]
async fn an_unknown_api_key_is_unauthenticated() {
    let harness = Harness::start().await;
    let stranger = Client::new(harness.server.base_url(), "ifr_pk_proj_doesnotexist").unwrap();
    let error = stranger.account_get().await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::Unauthenticated));
    assert!(error.to_string().contains("UNAUTHENTICATED"), "{error}");
}

#[tokio::test]
async fn a_server_that_is_not_there_is_a_transport_error() {
    let harness = Harness::start().await;
    let url = harness.server.base_url();
    harness.server.stop().await.unwrap();
    let client = Client::builder(url).api_key("ifr_pk_proj_x").retry(RetryPolicy::NONE).build().unwrap();
    let error = client.event_types().await.unwrap_err();
    assert!(matches!(error, ClientError::Transport { operation: "realtime.event.types", .. }), "{error:?}");
}
