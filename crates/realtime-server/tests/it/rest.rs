//! The REST capabilities on embedded defaults: credit, idempotency, tenancy, limits and
//! restart safety.

use std::collections::BTreeSet;

use serde_json::json;

use crate::support::{Answer, Env, Ws};

const PUBLISH: &str = "/v1/realtime/publish";

#[tokio::test]
async fn restart_keeps_channels_balances_revocations_and_idempotency_records() {
    let env = Env::start().await;
    env.create_channel("room-42", "presence").await;
    let token = env.token("user_42", &["room-42"], &["subscribe"]).await;
    env.post("/v1/realtime/token/revoke", json!({"token_or_jti": token["jti"]})).await.ok();
    let first = env
        .send_as(
            &env.key,
            "POST",
            PUBLISH,
            Some(json!({"channel": "room-42", "event": "e", "data": 1})),
            &[("idempotency-key", "restart-1")],
        )
        .await
        .ok();
    let balance = env.balance(&env.key).await;

    let env = env.restart().await;

    let channel = env.get("/v1/realtime/channel/get/room-42").await.ok();
    assert_eq!(channel["type"], "presence");
    assert_eq!(env.balance(&env.key).await, balance);
    let replay = env
        .send_as(
            &env.key,
            "POST",
            PUBLISH,
            Some(json!({"channel": "room-42", "event": "e", "data": 1})),
            &[("idempotency-key", "restart-1")],
        )
        .await;
    assert_eq!(replay.headers.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(replay.ok()["message_id"], first["message_id"]);
    assert_eq!(env.balance(&env.key).await, balance, "a replay is not charged");
    let mut token = token;
    token["endpoint"] = json!(env.url("/v1/realtime/ws").replace("http://", "ws://"));
    let mut revoked = Ws::open(&token).await;
    assert_eq!(revoked.ending().await, crate::support::Ending::Closed(4003));
}

#[tokio::test]
async fn twenty_concurrent_requests_with_one_key_have_one_effect_and_one_charge() {
    let env = Env::start().await;
    env.create_channel("room", "public").await;
    let before = env.balance(&env.key).await;
    let requests = (0..20).map(|_| {
        env.send_as(
            &env.key,
            "POST",
            "/v1/realtime/channel/create",
            Some(json!({"name": "concurrent"})),
            &[("idempotency-key", "same-key")],
        )
    });
    let (fresh, ids) = tally(futures_util::future::join_all(requests).await, "channel_id");
    assert_eq!(fresh, 1, "exactly one request ran");
    assert_eq!(ids.len(), 1, "every 200 names the same channel");
    assert_eq!(before - env.balance(&env.key).await, 1000, "one channel.create was charged");
}

#[tokio::test]
async fn twenty_concurrent_publishes_with_one_key_publish_once_and_every_answer_names_it() {
    // A publish claims its key with its effect: duplicates find the first one's record.
    let env = Env::start().await;
    env.create_channel("room", "public").await;
    let before = env.balance(&env.key).await;
    let body = json!({"channel": "room", "event": "e", "data": 1});
    let requests =
        (0..20).map(|_| env.send_as(&env.key, "POST", PUBLISH, Some(body.clone()), &[("idempotency-key", "one")]));
    let (fresh, ids) = tally(futures_util::future::join_all(requests).await, "message_id");
    assert_eq!((fresh, ids.len()), (1, 1), "one publish ran, and every 200 names its message");
    let history = env.get("/v1/realtime/channel/history/room").await.ok();
    assert_eq!(history["messages"].as_array().unwrap().len(), 1, "one message: {history}");
    assert_eq!(before - env.balance(&env.key).await, 10, "one publish was charged");
}

/// Of answers to requests sharing one key (each a 200 or a 409 in use): how many ran
/// (200 not replayed), and the distinct values of `field` the 200s name.
fn tally(answers: Vec<Answer>, field: &str) -> (usize, BTreeSet<String>) {
    let mut ids = BTreeSet::new();
    let mut fresh = 0;
    for answer in &answers {
        match answer.status.as_u16() {
            200 => {
                ids.insert(answer.body[field].to_string());
                fresh += usize::from(answer.headers.get("idempotent-replayed").is_none());
            }
            409 => answer.problem(409, "IDEMPOTENCY_KEY_IN_USE"),
            other => panic!("unexpected {other}: {}", answer.body),
        }
    }
    (fresh, ids)
}

#[tokio::test]
async fn a_replay_on_the_same_node_reports_what_the_first_answer_did() {
    // The final answer (the fan-out's count) is stored before the first answer is sent,
    // so a retry never gets the count sealed before the fan-out.
    let env = Env::start().await;
    env.create_channel("room", "public").await;
    let _reader = env.subscriber("reader", "room", &["subscribe"]).await;
    let body = json!({"channel": "room", "event": "e", "data": 1});
    for n in 0..20 {
        let key = [("idempotency-key", format!("replayed-{n}"))];
        let key = [(key[0].0, key[0].1.as_str())];
        let first = env.send_as(&env.key, "POST", PUBLISH, Some(body.clone()), &key).await.ok();
        let replay = env.send_as(&env.key, "POST", PUBLISH, Some(body.clone()), &key).await;
        assert_eq!(replay.headers.get("idempotent-replayed").unwrap(), "true");
        assert_eq!((first["delivered"].clone(), replay.ok()), (json!(1), first), "replay {n}");
    }
}

#[tokio::test]
async fn same_key_with_another_request_is_refused() {
    let env = Env::start().await;
    env.create_channel("room", "public").await;
    let key = [("idempotency-key", "k")];
    env.send_as(&env.key, "POST", PUBLISH, Some(json!({"channel": "room", "event": "e", "data": 1})), &key).await.ok();
    let other =
        env.send_as(&env.key, "POST", PUBLISH, Some(json!({"channel": "room", "event": "e", "data": 2})), &key).await;
    other.problem(422, "IDEMPOTENCY_KEY_REUSED");
    // The body field names the same key as the header.
    let body_field =
        env.post(PUBLISH, json!({"channel": "room", "event": "e", "data": 1, "idempotency_key": "k"})).await;
    assert_eq!(body_field.headers.get("idempotent-replayed").unwrap(), "true");
}

#[tokio::test]
async fn publish_without_credit_is_refused_and_nothing_happens_until_a_top_up() {
    let env = Env::start().await;
    let broke = env.server.create_account(0).await.unwrap();
    let created = env.send_as(&broke, "POST", "/v1/realtime/channel/create", Some(json!({"name": "room"})), &[]).await;
    created.problem(402, "INSUFFICIENT_CREDIT");
    assert!(created.body["topup_url"].as_str().unwrap().ends_with("/checkout"), "the dev checkout's page");
    let missing = env.send_as(&broke, "GET", "/v1/realtime/channel/get/room", None, &[]).await;
    missing.problem(404, "NOT_FOUND");

    let checkout = env.send_as(&broke, "POST", "/v1/account/topup", Some(json!({"amount": 1_000_000})), &[]).await.ok();
    let complete = format!("{}/complete", checkout["checkout_url"].as_str().unwrap());
    let first = env.http.post(&complete).send().await.unwrap().json::<serde_json::Value>().await.unwrap();
    let second = env.http.post(&complete).send().await.unwrap().json::<serde_json::Value>().await.unwrap();
    assert_eq!((first["credited"].clone(), second["credited"].clone()), (json!(true), json!(false)));
    assert_eq!(env.balance(&broke).await, 1_000_000, "credited exactly once");

    env.send_as(&broke, "POST", "/v1/realtime/channel/create", Some(json!({"name": "room"})), &[]).await.ok();
    assert_eq!(env.balance(&broke).await, 1_000_000 - 1000);
}

#[tokio::test]
async fn the_checkout_page_pays_from_a_browser_form_and_then_shows_the_paid_state() {
    let env = Env::start().await;
    let broke = env.server.create_account(0).await.unwrap();
    let checkout = env.send_as(&broke, "POST", "/v1/account/topup", Some(json!({"amount": 2_500_000})), &[]).await.ok();
    let page_url = checkout["checkout_url"].as_str().unwrap().to_owned();
    let page = env.http.get(&page_url).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("data-state=pending") && page.contains("$2.50") && page.contains("<form"), "{page}");

    // What a browser submitting the form sends and follows.
    let paid = env
        .http
        .post(format!("{page_url}/complete"))
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .unwrap();
    assert_eq!(paid.url().as_str(), page_url, "sent back to the page");
    let paid = paid.text().await.unwrap();
    assert!(paid.contains("data-state=paid") && paid.contains("$2.50") && !paid.contains("<form"), "{paid}");
    assert_eq!(env.balance(&broke).await, 2_500_000);
}

#[tokio::test]
async fn a_top_up_past_the_maximum_balance_is_refused_and_the_balance_stays_readable() {
    let env = Env::start().await;
    let max = realtime_server::service::MAX_BALANCE;
    let admin = format!("Bearer {}", env.server.admin_secret());
    let too_much = env.http.post(env.url("/admin/v1/accounts")).header("authorization", &admin);
    let refused = too_much.json(&json!({"balance": max + 1})).send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 422);
    let rich = env.server.create_account(max - 1).await.unwrap();
    let checkout = env.send_as(&rich, "POST", "/v1/account/topup", Some(json!({"amount": 1_000_000})), &[]).await.ok();
    let complete = format!("{}/complete", checkout["checkout_url"].as_str().unwrap());
    let over = env.http.post(&complete).send().await.unwrap();
    assert_eq!(over.status().as_u16(), 409);
    assert_eq!(over.json::<serde_json::Value>().await.unwrap()["code"], "CONFLICT");
    assert_eq!(env.balance(&rich).await, max - 1, "nothing was credited, and the balance reads");
}

#[tokio::test]
async fn a_refused_publish_is_neither_stored_nor_delivered() {
    let env = Env::start().await;
    let key = env.server.create_account(1000 + 100).await.unwrap();
    let create = env.send_as(&key, "POST", "/v1/realtime/channel/create", Some(json!({"name": "room"})), &[]).await;
    create.ok();
    let token = env.send_as(
        &key,
        "POST",
        "/v1/realtime/token/issue",
        Some(json!({"client_id": "c", "channels": ["room"]})),
        &[],
    );
    let token = token.await.ok();
    let mut subscriber = Ws::connect(&token).await;
    subscriber.send(json!({"type": "subscribe", "channel": "room"})).await;
    subscriber.expect("subscribed").await;
    let publish = env.send_as(&key, "POST", PUBLISH, Some(json!({"channel": "room", "event": "e", "data": 1})), &[]);
    publish.await.problem(402, "INSUFFICIENT_CREDIT");
    subscriber.expect_silence().await;
    let channel = env.send_as(&key, "GET", "/v1/realtime/channel/get/room", None, &[]).await.ok();
    assert!(channel.get("last_published_at").is_none(), "nothing was recorded: {channel}");
}

#[tokio::test]
async fn one_account_cannot_see_or_touch_another_accounts_channel() {
    let env = Env::start().await;
    env.create_channel("private-room", "private").await;
    let other = env.server.create_account(2_000_000).await.unwrap();
    let calls = [
        ("GET", "/v1/realtime/channel/get/private-room", None),
        ("GET", "/v1/realtime/presence/get/private-room", None),
        ("DELETE", "/v1/realtime/channel/delete/private-room", None),
        ("POST", PUBLISH, Some(json!({"channel": "private-room", "event": "e", "data": 1}))),
    ];
    for (method, path, body) in calls {
        env.send_as(&other, method, path, body, &[]).await.problem(404, "NOT_FOUND");
    }
    let listed = env.send_as(&other, "GET", "/v1/realtime/channel/list", None, &[]).await.ok();
    assert_eq!(listed["channels"], json!([]));
    env.get("/v1/realtime/channel/get/private-room").await.ok();
}

#[tokio::test]
async fn channels_are_created_once_and_a_different_type_conflicts() {
    let env = Env::start().await;
    let first = env.post("/v1/realtime/channel/create", json!({"name": "room", "type": "presence"})).await.ok();
    let again = env.post("/v1/realtime/channel/create", json!({"name": "room", "type": "presence"})).await.ok();
    assert_eq!((first["created"].clone(), again["created"].clone()), (json!(true), json!(false)));
    assert_eq!(first["channel_id"], again["channel_id"]);
    env.post("/v1/realtime/channel/create", json!({"name": "room", "type": "public"})).await.problem(409, "CONFLICT");
}

#[tokio::test]
async fn the_list_cursor_stays_correct_while_channels_come_and_go() {
    let env = Env::start().await;
    for name in ["a", "b", "c", "d", "e"] {
        env.create_channel(name, "public").await;
    }
    let page = env.get("/v1/realtime/channel/list?limit=2").await.ok();
    let names = |page: &serde_json::Value| -> Vec<String> {
        page["channels"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(names(&page), ["a", "b"]);
    // Remove one already listed and add one before the cursor: neither shifts the next page.
    env.send_as(&env.key, "DELETE", "/v1/realtime/channel/delete/a", None, &[]).await.ok();
    env.create_channel("aa", "public").await;
    let cursor = page["next_cursor"].as_str().unwrap();
    let next = env.get(&format!("/v1/realtime/channel/list?limit=2&cursor={cursor}")).await.ok();
    assert_eq!(names(&next), ["c", "d"]);
    let path = format!("/v1/realtime/channel/list?limit=2&cursor={}", next["next_cursor"].as_str().unwrap());
    let last = env.get(&path).await.ok();
    assert_eq!(names(&last), ["e"]);
    assert!(last.get("next_cursor").is_none());
    env.get("/v1/realtime/channel/list?cursor=!!").await.problem(422, "VALIDATION_ERROR");
}

#[tokio::test]
async fn every_documented_limit_accepts_the_limit_and_refuses_one_past_it() {
    let env = Env::start().await;
    let longest = "c".repeat(164);
    env.post("/v1/realtime/channel/create", json!({"name": longest})).await.ok();
    env.post("/v1/realtime/channel/create", json!({"name": format!("{longest}c")}))
        .await
        .problem(422, "VALIDATION_ERROR");

    let event = "e".repeat(200);
    env.post(PUBLISH, json!({"channel": longest, "event": event, "data": 1})).await.ok();
    let too_long = json!({"channel": longest, "event": format!("{event}e"), "data": 1});
    env.post(PUBLISH, too_long).await.problem(422, "VALIDATION_ERROR");

    let data = "x".repeat(10 * 1024 - 2);
    env.post(PUBLISH, json!({"channel": longest, "event": "e", "data": data})).await.ok();
    let data = "x".repeat(10 * 1024 - 1);
    env.post(PUBLISH, json!({"channel": longest, "event": "e", "data": data})).await.problem(413, "PAYLOAD_TOO_LARGE");

    let message = json!({"channel": longest, "event": "e", "data": 1});
    env.post("/v1/realtime/publish/batch", json!({"messages": vec![message.clone(); 100]})).await.ok();
    let batch = env.post("/v1/realtime/publish/batch", json!({"messages": vec![message; 101]})).await;
    batch.problem(422, "VALIDATION_ERROR");

    let channels: Vec<String> = (0..100).map(|i| format!("c{i}")).collect();
    env.post("/v1/realtime/token/issue", json!({"channels": channels})).await.ok();
    let channels: Vec<String> = (0..101).map(|i| format!("c{i}")).collect();
    env.post("/v1/realtime/token/issue", json!({"channels": channels})).await.problem(422, "VALIDATION_ERROR");

    env.get("/v1/realtime/channel/list?limit=100").await.ok();
    env.get("/v1/realtime/channel/list?limit=101").await.problem(422, "VALIDATION_ERROR");

    let reserved = json!({"channel": longest, "event": "pusher:subscribe", "data": 1});
    env.post(PUBLISH, reserved).await.problem(422, "VALIDATION_ERROR");

    // Bodies: exactly 2 MiB (JSON padded with spaces) passes, one byte more does not.
    let post_raw = |body: String| {
        env.http
            .post(env.url("/v1/realtime/publish/batch"))
            .header("authorization", format!("Bearer {}", env.key))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let batch = json!({"messages": [{"channel": longest, "event": "e", "data": 1}]}).to_string();
    let padded = |len: usize| format!("{batch}{}", " ".repeat(len - batch.len()));
    assert_eq!(post_raw(padded(2 * 1024 * 1024)).await.unwrap().status().as_u16(), 200);
    let oversized = post_raw(padded(2 * 1024 * 1024 + 1)).await.unwrap();
    assert_eq!(oversized.status().as_u16(), 413);
    let problem: serde_json::Value = oversized.json().await.unwrap();
    assert_eq!(problem["code"], "PAYLOAD_TOO_LARGE");

    let client_id = "u".repeat(128);
    env.post("/v1/realtime/user/disconnect", json!({"client_id": client_id})).await.ok();
    let too_long = json!({"client_id": format!("{client_id}u")});
    env.post("/v1/realtime/user/disconnect", too_long).await.problem(422, "VALIDATION_ERROR");

    let key = "k".repeat(255);
    let disconnect = json!({"client_id": "c"});
    env.send_as(
        &env.key,
        "POST",
        "/v1/realtime/user/disconnect",
        Some(disconnect.clone()),
        &[("idempotency-key", &key)],
    )
    .await
    .ok();
    let longer = format!("{key}k");
    let refused = env
        .send_as(&env.key, "POST", "/v1/realtime/user/disconnect", Some(disconnect), &[("idempotency-key", &longer)])
        .await;
    refused.problem(400, "BAD_REQUEST");

    let channels: Vec<String> = (0..100).map(|i| format!("c{i}")).collect();
    env.post("/v1/realtime/auth/sign", json!({"client_id": "c", "channels": channels, "vendor": "ably"})).await.ok();
    let channels: Vec<String> = (0..101).map(|i| format!("c{i}")).collect();
    let sign = json!({"client_id": "c", "channels": channels, "vendor": "ably"});
    env.post("/v1/realtime/auth/sign", sign).await.problem(422, "VALIDATION_ERROR");

    for amount in [1_000_000, 1_000_000_000] {
        env.post("/v1/account/topup", json!({"amount": amount})).await.ok();
    }
    for amount in [999_999, 1_000_000_001] {
        env.post("/v1/account/topup", json!({"amount": amount})).await.problem(422, "VALIDATION_ERROR");
    }
}

#[tokio::test]
async fn token_lifetimes_are_clamped_to_the_maximum() {
    let env = Env::start().await;
    let token = env.post("/v1/realtime/token/issue", json!({"client_id": "c", "ttl_seconds": 10_000_000})).await.ok();
    let expires_at = chrono::DateTime::parse_from_rfc3339(token["expires_at"].as_str().unwrap()).unwrap();
    let lifetime = expires_at.timestamp() - chrono::Utc::now().timestamp();
    assert!((86_390..=86_400).contains(&lifetime), "lifetime {lifetime}");
    env.post("/v1/realtime/token/issue", json!({"ttl_seconds": 0})).await.problem(422, "VALIDATION_ERROR");
}

#[tokio::test]
async fn a_batch_with_one_unknown_channel_publishes_nothing_and_names_the_message() {
    let env = Env::start().await;
    env.create_channel("known", "public").await;
    let before = env.balance(&env.key).await;
    let batch = env
        .post(
            "/v1/realtime/publish/batch",
            json!({"messages": [
                {"channel": "known", "event": "e", "data": 1},
                {"channel": "unknown", "event": "e", "data": 2}
            ]}),
        )
        .await;
    batch.problem(404, "NOT_FOUND");
    assert_eq!(batch.body["errors"][0]["pointer"], "/messages/1/channel");
    assert_eq!(env.balance(&env.key).await, before);
    let channel = env.get("/v1/realtime/channel/get/known").await.ok();
    assert!(channel.get("last_published_at").is_none());
}

#[tokio::test]
async fn pusher_signatures_need_a_socket_id_and_presence_channel_data() {
    let env = Env::start().await;
    let signed = env
        .post(
            "/v1/realtime/auth/sign",
            json!({"client_id": "u1", "channels": ["private-room"], "vendor": "pusher", "socket_id": "1234.5678"}),
        )
        .await
        .ok();
    assert_eq!(signed["vendor"], "pusher");
    let token = signed["token"].as_str().unwrap();
    let (key, signature) = token.split_once(':').unwrap();
    assert_eq!(key, "dev-pusher-key");
    assert_eq!(signature.len(), 64);
    let no_socket = json!({"client_id": "u1", "channels": ["private-room"], "vendor": "pusher"});
    env.post("/v1/realtime/auth/sign", no_socket).await.problem(422, "VALIDATION_ERROR");
    let presence = json!({"client_id": "u1", "channels": ["presence-room"], "vendor": "pusher", "socket_id": "1.2"});
    env.post("/v1/realtime/auth/sign", presence).await.problem(422, "VALIDATION_ERROR");
    let ably =
        env.post("/v1/realtime/auth/sign", json!({"client_id": "u1", "channels": ["room"], "vendor": "ably"})).await;
    let ably = ably.ok();
    assert_eq!(ably["token_request"]["keyName"], "dev-app.dev-key");
    assert_eq!(ably["token_request"]["capability"], r#"{"room":["subscribe"]}"#);
    let liveblocks = json!({"client_id": "u1", "channels": ["room"], "vendor": "liveblocks"});
    assert_eq!(env.post("/v1/realtime/auth/sign", liveblocks).await.ok()["vendor"], "liveblocks");
}

#[tokio::test]
async fn seed_000_aliases_behave_like_the_documented_paths() {
    let env = Env::start().await;
    let channel = env.post("/v1/realtime/channels", json!({"name": "orders", "type": "presence"})).await.ok();
    assert_eq!(channel["name"], "orders");
    let token = env.post("/v1/realtime/token", json!({"user_id": "u_123", "channels": ["orders"], "ttl_seconds": 300}));
    assert_eq!(token.await.ok()["client_id"], "u_123");
    let presence = env.get("/v1/realtime/channels/orders/presence").await.ok();
    assert_eq!(presence["members"], json!([]));
}

#[tokio::test]
async fn problems_carry_the_request_id_of_their_response() {
    let env = Env::start().await;
    let answer = env.send_as("ifr_pk_proj_unknown", "GET", "/v1/account", None, &[]).await;
    answer.problem(401, "UNAUTHENTICATED");
    let header = answer.headers.get("x-request-id").expect("every response has a request id");
    assert_eq!(answer.body["request_id"], header.to_str().unwrap());
}

#[tokio::test]
async fn an_account_over_its_request_budget_gets_429_with_retry_after() {
    let env = Env::start_with(json!({"rate_limit": {"requests_per_second": 1, "burst": 3}})).await;
    for _ in 0..3 {
        env.get("/v1/realtime/event/types").await.ok();
    }
    let limited = env.get("/v1/realtime/event/types").await;
    limited.problem(429, "RATE_LIMITED");
    let retry_after: u64 = limited.headers.get("retry-after").unwrap().to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "retry after {retry_after} s");
    let other = env.server.create_account(0).await.unwrap();
    env.send_as(&other, "GET", "/v1/realtime/event/types", None, &[]).await.ok();
}
