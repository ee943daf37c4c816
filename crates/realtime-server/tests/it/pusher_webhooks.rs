//! Pusher webhooks, received by a real HTTP receiver on a loopback port and checked with
//! the Python `pusher` package's `validate_webhook` (installed by `.ci/run`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use chrono::Utc;
use realtime_client::pusher_webhook::{WebhookEvent, verify};
use realtime_server::testing::ADMIN_SECRET;

use crate::pusher_cluster::Pair;
use crate::pusher_support::{App, PusherSocket};
use crate::support::Env;
use crate::vendors::python;

/// One webhook as received.
#[derive(Debug)]
struct Hook {
    key: String,
    signature: String,
    body: String,
}

impl Hook {
    fn events(&self) -> Vec<Value> {
        let body: Value = serde_json::from_str(&self.body).unwrap();
        body["events"].as_array().unwrap().clone()
    }
}

/// An HTTP receiver that answers 500 to the first `failures` requests, then 200.
struct Receiver {
    url: String,
    addr: std::net::SocketAddr,
    hooks: mpsc::UnboundedReceiver<Hook>,
    failures: Arc<AtomicU32>,
}

#[derive(Clone)]
struct Sink {
    hooks: mpsc::UnboundedSender<Hook>,
    failures: Arc<AtomicU32>,
}

async fn receive(State(sink): State<Sink>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let hook = Hook {
        key: header("x-pusher-key"),
        signature: header("x-pusher-signature"),
        body: String::from_utf8(body.to_vec()).unwrap(),
    };
    let failed = sink.failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    let _ = sink.hooks.send(hook);
    if failed { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::OK }
}

impl Receiver {
    async fn start(failures: u32) -> Receiver {
        let (sender, hooks) = mpsc::unbounded_channel();
        let failures = Arc::new(AtomicU32::new(failures));
        let sink = Sink { hooks: sender, failures: failures.clone() };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let url = format!("http://{addr}/hooks");
        let app = Router::new().route("/hooks", post(receive)).with_state(sink);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, addr, hooks, failures }
    }

    /// The next webhook within `within`.
    async fn next(&mut self, within: Duration) -> Option<Hook> {
        tokio::time::timeout(within, self.hooks.recv()).await.ok().flatten()
    }

    /// The next webhook's single event, which must come within 10 s.
    async fn event(&mut self) -> (Hook, Value) {
        let hook = self.next(Duration::from_secs(10)).await.expect("a webhook within 10 s");
        let events = hook.events();
        assert_eq!(events.len(), 1, "one event per webhook, as Pusher sends without batching: {events:?}");
        let event = events[0].clone();
        (hook, event)
    }

    /// The names of the events received until none comes for `quiet`.
    async fn names_until_quiet(&mut self, quiet: Duration) -> Vec<String> {
        let mut names = Vec::new();
        while let Some(hook) = self.next(quiet).await {
            names.extend(hook.events().iter().map(|e| e["name"].as_str().unwrap().to_owned()));
        }
        names
    }
}

/// A new account with an app whose webhooks go to `url`.
async fn app_with_webhooks(env: &Env, url: &str) -> App {
    let api_key = env.server.create_account(10_000_000).await.unwrap();
    let account = env.send_as(&api_key, "GET", "/v1/account", None, &[]).await.ok();
    create_app(&env.server.base_url(), account["account_id"].as_str().unwrap(), url).await
}

/// An app of `account_id` with webhooks to `url`, through the admin API of `base_url`.
async fn create_app(base_url: &str, account_id: &str, url: &str) -> App {
    create_app_with(base_url, json!({"account_id": account_id, "webhook_url": url})).await
}

/// An app as `request` asks, through the admin API of `base_url`.
async fn create_app_with(base_url: &str, request: Value) -> App {
    let url = request["webhook_url"].clone();
    let created: Value = reqwest::Client::new()
        .post(format!("{base_url}/admin/v1/pusher/apps"))
        .bearer_auth(ADMIN_SECRET)
        .json(&request)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(created["webhook_url"], url);
    assert_eq!(created["batch_webhooks"], request["batch_webhooks"].as_bool().unwrap_or(false));
    App {
        app_id: created["app_id"].as_u64().unwrap().to_string(),
        key: created["key"].as_str().unwrap().into(),
        secret: created["secret"].as_str().unwrap().into(),
    }
}

async fn member(env: &Env, app: &App, channel: &str, user_id: &str) -> PusherSocket {
    member_of(&env.server.base_url(), app, channel, user_id).await
}

async fn member_of(base_url: &str, app: &App, channel: &str, user_id: &str) -> PusherSocket {
    let mut socket = PusherSocket::connect_to(base_url, &app.key).await;
    let data = json!({"user_id": user_id}).to_string();
    let auth = app.auth(&socket.socket_id.clone(), channel, Some(&data));
    socket.subscribe(channel, Some(auth), Some(&data)).await;
    socket
}

/// What the Python library makes of a webhook (`null` when it refuses it).
fn validated_by_python(app: &App, hook: &Hook) -> Value {
    const VALIDATE: &str = r#"
import json, sys, pusher
i = json.load(sys.stdin)
c = pusher.Pusher(app_id=i["app_id"], key=i["key"], secret=i["secret"])
print(json.dumps(c.validate_webhook(i["header_key"], i["signature"], i["body"])))
"#;
    let input = json!({
        "app_id": app.app_id, "key": app.key, "secret": app.secret,
        "header_key": hook.key, "signature": hook.signature, "body": hook.body,
    });
    python(VALIDATE, &input)
}

/// What the Node library's `webhook()` makes of it: its events, or `null` when invalid.
async fn validated_by_node(app: &App, hook: &Hook) -> Value {
    const VALIDATE: &str = r#"
const Pusher = require("pusher");
const i = JSON.parse(require("fs").readFileSync(0, "utf8"));
const c = new Pusher({ appId: i.app_id, key: i.key, secret: i.secret });
const w = c.webhook({
  headers: { "x-pusher-key": i.header_key, "x-pusher-signature": i.signature, "content-type": "application/json" },
  rawBody: i.body,
});
console.log(JSON.stringify(w.isValid() ? w.getEvents() : null));
"#;
    let project = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pusher-js");
    let input = json!({
        "app_id": app.app_id, "key": app.key, "secret": app.secret,
        "header_key": hook.key, "signature": hook.signature, "body": hook.body,
    });
    let mut child = tokio::process::Command::new("node")
        .args(["-e", VALIDATE])
        .current_dir(project)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("node is needed for the Pusher library checks (.ci/run installs it)");
    use tokio::io::AsyncWriteExt;
    child.stdin.take().unwrap().write_all(input.to_string().as_bytes()).await.unwrap();
    let output = child.wait_with_output().await.unwrap();
    assert!(output.status.success(), "node failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test]
async fn occupancy_members_and_client_events_arrive_signed_as_pusher_signs_them() {
    let mut receiver = Receiver::start(0).await;
    let env = Env::start().await;
    let app = app_with_webhooks(&env, &receiver.url).await;

    let mut alice = member(&env, &app, "presence-room", "alice").await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let (hook, event) = receiver.event().await;
        assert_eq!(hook.key, app.key);
        let validated = validated_by_python(&app, &hook);
        assert_eq!(validated["events"][0], event, "the Python library accepts it");
        seen.push(event);
    }
    seen.sort_by_key(|e| e["name"].as_str().unwrap().to_owned());
    assert_eq!(
        seen,
        [
            json!({"name": "channel_occupied", "channel": "presence-room"}),
            json!({"name": "member_added", "channel": "presence-room", "user_id": "alice"}),
        ]
    );

    // A second socket of the same user is no new member; a new user is.
    let _alice_again = member(&env, &app, "presence-room", "alice").await;
    let mut bob = member(&env, &app, "presence-room", "bob").await;
    let (_, event) = receiver.event().await;
    assert_eq!(event, json!({"name": "member_added", "channel": "presence-room", "user_id": "bob"}));

    alice.expect("pusher_internal:member_added").await;
    alice.send("client-typing", Some("presence-room"), json!({"typing": true})).await;
    bob.expect("client-typing").await;
    let (hook, event) = receiver.event().await;
    assert_eq!(
        event,
        json!({"name": "client_event", "channel": "presence-room", "event": "client-typing",
               "data": "{\"typing\":true}", "socket_id": alice.socket_id, "user_id": "alice"})
    );
    assert!(!validated_by_python(&app, &hook).is_null());
    assert_eq!(validated_by_node(&app, &hook).await, json!([event]), "the Node library accepts it");
    let verified =
        verify(&app.key, &app.secret, Some(&hook.key), Some(&hook.signature), hook.body.as_bytes(), Utc::now());
    assert_eq!(
        verified.expect("our verifier accepts it").events,
        [WebhookEvent::ClientEvent {
            channel: "presence-room".into(),
            event: "client-typing".into(),
            data: r#"{"typing":true}"#.into(),
            socket_id: alice.socket_id.clone(),
            user_id: Some("alice".into()),
        }]
    );

    // A wrong secret is refused by both libraries: the signature is really checked.
    let forged = App { secret: "not-the-secret".into(), ..app.clone() };
    assert!(validated_by_python(&forged, &hook).is_null());
    assert!(validated_by_node(&forged, &hook).await.is_null());
}

#[tokio::test]
async fn on_two_nodes_a_channel_is_vacated_once_and_only_when_no_node_has_a_member() {
    let mut receiver = Receiver::start(0).await;
    let pair = Pair::start().await;
    let (a, b) = (pair.a.base_url(), pair.b.base_url());
    let account_id = pair.a.service.store.app(1).await.unwrap().expect("the dev app").account_id;
    let app = create_app(&a, &account_id, &receiver.url).await;

    let on_a = member_of(&a, &app, "presence-room", "alice").await;
    let on_b = member_of(&b, &app, "presence-room", "alice").await;
    let mut names = receiver.names_until_quiet(Duration::from_secs(3)).await;
    names.sort();
    assert_eq!(names, ["channel_occupied", "member_added"], "once for the cluster");

    drop(on_a);
    assert_eq!(
        receiver.names_until_quiet(Duration::from_secs(5)).await,
        Vec::<String>::new(),
        "node b still has alice on the channel"
    );
    drop(on_b);
    let mut names = receiver.names_until_quiet(Duration::from_secs(6)).await;
    names.sort();
    assert_eq!(names, ["channel_vacated", "member_removed"], "once for the cluster");
}

#[tokio::test]
async fn the_last_socket_leaving_sends_member_removed_then_vacated_after_the_debounce() {
    let mut receiver = Receiver::start(0).await;
    let env = Env::start().await;
    let app = app_with_webhooks(&env, &receiver.url).await;
    let first = member(&env, &app, "presence-room", "alice").await;
    let second = member(&env, &app, "presence-room", "alice").await;
    let mut names = receiver.names_until_quiet(Duration::from_secs(1)).await;
    names.sort();
    assert_eq!(names, ["channel_occupied", "member_added"]);

    drop(first);
    assert!(receiver.next(Duration::from_secs(4)).await.is_none(), "the user still has a socket");
    let left = tokio::time::Instant::now();
    drop(second);
    let mut events = Vec::new();
    for _ in 0..2 {
        events.push(receiver.event().await.1);
    }
    assert!(left.elapsed() >= Duration::from_millis(2_900), "removals wait 3 s: {:?}", left.elapsed());
    events.sort_by_key(|e| e["name"].as_str().unwrap().to_owned());
    assert_eq!(
        events,
        [
            json!({"name": "channel_vacated", "channel": "presence-room"}),
            json!({"name": "member_removed", "channel": "presence-room", "user_id": "alice"}),
        ]
    );
}

#[tokio::test]
async fn a_reconnect_within_three_seconds_sends_nothing() {
    let mut receiver = Receiver::start(0).await;
    let env = Env::start().await;
    let app = app_with_webhooks(&env, &receiver.url).await;
    let socket = member(&env, &app, "presence-room", "alice").await;
    assert_eq!(receiver.names_until_quiet(Duration::from_secs(1)).await.len(), 2);

    drop(socket);
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let _back = member(&env, &app, "presence-room", "alice").await;
    assert_eq!(receiver.names_until_quiet(Duration::from_secs(5)).await, Vec::<String>::new());
}

#[tokio::test]
async fn a_refused_webhook_is_retried_with_the_same_body_until_accepted() {
    let mut receiver = Receiver::start(2).await;
    let env = Env::start().await;
    let app = app_with_webhooks(&env, &receiver.url).await;
    let mut socket = PusherSocket::connect(&env, &app.key).await;
    socket.subscribe("lobby", None, None).await;

    let started = tokio::time::Instant::now();
    let mut received = Vec::new();
    for _ in 0..3 {
        received.push(receiver.next(Duration::from_secs(10)).await.expect("an attempt").body);
    }
    assert_eq!(receiver.failures.load(Ordering::SeqCst), 0);
    assert!(received.iter().all(|body| *body == received[0]), "every attempt sends the same body: {received:?}");
    // 1 s then 2 s of backoff.
    assert!(started.elapsed() >= Duration::from_millis(2_900), "{:?}", started.elapsed());
    assert!(receiver.next(Duration::from_secs(3)).await.is_none(), "delivered once accepted");
    let metrics = env.http.get(env.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("realtime_webhooks_failed_total 2"), "{metrics}");
    assert!(metrics.contains("realtime_webhooks_delivered_total 1"), "{metrics}");
}

#[tokio::test]
async fn an_app_s_webhook_url_must_be_http_or_https() {
    let env = Env::start().await;
    let api_key = env.server.create_account(0).await.unwrap();
    let account = env.send_as(&api_key, "GET", "/v1/account", None, &[]).await.ok();
    for url in ["ftp://example.test/", "not a url", "/relative", "https://"] {
        let body = json!({"account_id": account["account_id"], "webhook_url": url});
        let answer = env.send_as(env.server.admin_secret(), "POST", "/admin/v1/pusher/apps", Some(body), &[]).await;
        assert_eq!(answer.status.as_u16(), 422, "{url}");
    }
}

#[tokio::test]
async fn a_subscriber_finding_a_cache_channel_empty_sends_one_cache_miss_webhook() {
    let mut receiver = Receiver::start(0).await;
    let env = Env::start().await;
    let app = app_with_webhooks(&env, &receiver.url).await;
    let mut first = PusherSocket::connect(&env, &app.key).await;
    first.subscribe("cache-scores", None, None).await;
    first.expect("pusher:cache_miss").await;
    // A crowd finding it empty at once is one webhook.
    let mut second = PusherSocket::connect(&env, &app.key).await;
    second.subscribe("cache-scores", None, None).await;
    second.expect("pusher:cache_miss").await;

    let mut events = Vec::new();
    while let Some(hook) = receiver.next(Duration::from_secs(2)).await {
        assert!(!validated_by_python(&app, &hook).is_null(), "the Python library accepts it");
        events.extend(hook.events());
    }
    events.retain(|event| event["name"] != "channel_occupied");
    assert_eq!(events, [json!({"name": "cache_miss", "channel": "cache-scores"})]);
    let hook_body = json!({"time_ms": Utc::now().timestamp_millis(), "events": events}).to_string();
    let parsed: realtime_client::pusher_webhook::Webhook = serde_json::from_str(&hook_body).unwrap();
    assert_eq!(parsed.events, [WebhookEvent::CacheMiss { channel: "cache-scores".into() }]);

    // A channel with a last event is no miss.
    app.trigger(&env, &["cache-full"], "score", "1-0").await.ok();
    let mut third = PusherSocket::connect(&env, &app.key).await;
    third.subscribe("cache-full", None, None).await;
    third.expect("score").await;
    let names = receiver.names_until_quiet(Duration::from_secs(2)).await;
    assert!(!names.contains(&"cache_miss".to_owned()), "{names:?}");
}

#[tokio::test]
async fn with_subscription_counting_a_changed_count_sends_the_subscription_count_webhook() {
    let mut receiver = Receiver::start(0).await;
    let env = Env::start_with(json!({"pusher": {"subscription_count": true}})).await;
    let app = app_with_webhooks(&env, &receiver.url).await;
    let mut first = PusherSocket::connect(&env, &app.key).await;
    first.subscribe("lobby", None, None).await;
    let mut second = PusherSocket::connect(&env, &app.key).await;
    second.subscribe("lobby", None, None).await;

    let mut counts = Vec::new();
    while let Some(hook) = receiver.next(Duration::from_secs(2)).await {
        for event in hook.events() {
            if event["name"] == "subscription_count" {
                assert_eq!(event["channel"], "lobby");
                assert!(!validated_by_python(&app, &hook).is_null(), "the Python library accepts it");
                let count = event["subscription_count"].as_u64().unwrap();
                let parsed: WebhookEvent = serde_json::from_value(event.clone()).unwrap();
                assert_eq!(
                    parsed,
                    WebhookEvent::SubscriptionCount { channel: "lobby".into(), subscription_count: count }
                );
                counts.push(count);
            }
        }
    }
    assert_eq!(counts.last(), Some(&2), "the last count reported is the current one: {counts:?}");
}

/// The server binary on a fresh SQLite file, with an admin secret, trusting the test
/// authority through `SSL_CERT_FILE` when one is given; its base URL.
async fn spawn_trusting(dir: &std::path::Path, trusted: Option<&std::path::Path>) -> (tokio::process::Child, String) {
    let mut command = crate::support::server_binary(dir);
    command.env("REALTIME_ADMIN_SECRET", ADMIN_SECRET).env_remove("SSL_CERT_FILE");
    if let Some(ca_file) = trusted {
        command.env("SSL_CERT_FILE", ca_file);
    }
    let (child, base_url, _) = crate::support::spawn_server(command, false).await;
    (child, base_url)
}

/// An account and an app with webhooks to `url` on a server of [`spawn_trusting`].
async fn app_on(base_url: &str, url: &str) -> App {
    let account: Value = reqwest::Client::new()
        .post(format!("{base_url}/admin/v1/accounts"))
        .bearer_auth(ADMIN_SECRET)
        .json(&json!({"balance": 1_000_000}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    create_app(base_url, account["account_id"].as_str().unwrap(), url).await
}

#[tokio::test]
async fn webhooks_go_to_an_https_url_whose_certificate_the_server_trusts_and_nowhere_else() {
    let dir = tempfile::tempdir().unwrap();
    let authority = crate::tls_support::TestAuthority::new(dir.path());
    let mut receiver = Receiver::start(0).await;
    let tls = authority.port().await;
    let https_url = format!("{}/hooks", tls.https_url());
    tls.forward_to(receiver.addr);

    // Trusting the authority (as an operator adds a private CA): delivered, signed.
    let trusting = tempfile::tempdir().unwrap();
    let (_server, base_url) = spawn_trusting(trusting.path(), Some(&authority.ca_file)).await;
    let app = app_on(&base_url, &https_url).await;
    let mut socket = PusherSocket::connect_to(&base_url, &app.key).await;
    socket.subscribe("lobby", None, None).await;
    let (hook, event) = receiver.event().await;
    assert_eq!(event, json!({"name": "channel_occupied", "channel": "lobby"}));
    assert!(!validated_by_python(&app, &hook).is_null(), "the Python library accepts it");

    // Not trusting it: the handshake fails, nothing arrives, and the failure is counted.
    let distrusting = tempfile::tempdir().unwrap();
    let (_other, other_url) = spawn_trusting(distrusting.path(), None).await;
    let app = app_on(&other_url, &https_url).await;
    let mut socket = PusherSocket::connect_to(&other_url, &app.key).await;
    socket.subscribe("lobby", None, None).await;
    assert!(receiver.next(Duration::from_secs(3)).await.is_none(), "an untrusted certificate gets nothing");
    let metrics = reqwest::get(format!("{other_url}/metrics")).await.unwrap().text().await.unwrap();
    let failed = metrics.lines().find_map(|line| line.strip_prefix("realtime_webhooks_failed_total ")).unwrap();
    assert!(failed.parse::<u64>().unwrap() >= 1, "{metrics}");
    assert!(metrics.contains("realtime_webhooks_delivered_total 0"), "{metrics}");
}

#[tokio::test]
async fn an_app_with_batched_webhooks_gets_the_events_due_together_in_one_signed_request() {
    let mut receiver = Receiver::start(0).await;
    let env = Env::start().await;
    let api_key = env.server.create_account(10_000_000).await.unwrap();
    let account = env.send_as(&api_key, "GET", "/v1/account", None, &[]).await.ok();
    let request = json!({"account_id": account["account_id"], "webhook_url": receiver.url, "batch_webhooks": true});
    let app = create_app_with(&env.server.base_url(), request).await;

    let _members = futures_util::future::join_all(
        ["alice", "bob", "carol"].map(|user| member(&env, &app, "presence-crowd", user)),
    )
    .await;
    let mut hooks = Vec::new();
    while let Some(hook) = receiver.next(Duration::from_secs(2)).await {
        hooks.push(hook);
    }
    let events: Vec<Value> = hooks.iter().flat_map(Hook::events).collect();
    let mut names: Vec<String> =
        events.iter().map(|e| format!("{} {}", e["name"], e["user_id"].as_str().unwrap_or(""))).collect();
    names.sort();
    assert_eq!(
        names,
        [r#""channel_occupied" "#, r#""member_added" alice"#, r#""member_added" bob"#, r#""member_added" carol"#],
        "every event once"
    );
    assert!(hooks.len() < events.len(), "batched: {} requests for {} events", hooks.len(), events.len());
    let batch = hooks.iter().max_by_key(|hook| hook.events().len()).unwrap();
    assert!(batch.events().len() > 1);
    assert_eq!(validated_by_python(&app, batch)["events"], json!(batch.events()), "the Python library accepts it");
    assert_eq!(validated_by_node(&app, batch).await, json!(batch.events()), "the Node library accepts it");

    // Batching off again: one event per request.
    let off = env
        .send_as(
            env.server.admin_secret(),
            "PATCH",
            &format!("/admin/v1/pusher/apps/{}", app.app_id),
            Some(json!({"batch_webhooks": false})),
            &[],
        )
        .await
        .ok();
    assert_eq!((off["batch_webhooks"].clone(), off["subscription_count"].clone()), (json!(false), json!(false)));
    let _more =
        futures_util::future::join_all(["dave", "erin"].map(|user| member(&env, &app, "presence-crowd", user))).await;
    for _ in 0..2 {
        let (_, event) = receiver.event().await;
        assert_eq!(event["name"], "member_added");
    }
}
