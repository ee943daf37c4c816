//! The debug console: its event stream over real HTTP shows an account's publishes,
//! subscribes, presence, revocations and 402s, those of another node too, and nothing of
//! other accounts; it is absent when turned off, and by default on a server listening on a
//! reachable (not loopback) address; and its page, driven in Debian's headless Chromium, logs in and shows
//! a publish made through the REST API while it is open (saving `target/console.png`).

use serde_json::{Value, json};

use realtime_server::hub::tap::Activity;
use realtime_server::{Config, RunningServer};

use crate::browser::Page;
use crate::engines::{PgDatabase, RedisPrefix};
use crate::support::{Env, PROMPTLY, Ws};

/// A reader of `GET /console/events`.
struct Console {
    response: reqwest::Response,
    buffer: String,
}

impl Console {
    /// Opens the stream as `key` and waits for its `ready` event.
    async fn open(env: &Env, key: &str) -> Console {
        Self::open_at(&env.http, &env.server.base_url(), key).await
    }

    /// Opens the stream of the node at `base_url`.
    async fn open_at(http: &reqwest::Client, base_url: &str, key: &str) -> Console {
        let response = http.get(format!("{base_url}/console/events")).bearer_auth(key).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
        let mut console = Console { response, buffer: String::new() };
        let (name, data) = console.next().await.expect("a ready event");
        assert_eq!(name, "ready", "{data}");
        console
    }

    /// The next event (name, JSON data), skipping keep-alive comments; `None` when none
    /// comes promptly.
    async fn next(&mut self) -> Option<(String, Value)> {
        let deadline = tokio::time::Instant::now() + PROMPTLY;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = "message".to_owned();
                let mut data = Vec::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        name = value.trim().to_owned();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push(value.strip_prefix(' ').unwrap_or(value).to_owned());
                    }
                }
                if !data.is_empty() {
                    return Some((name, serde_json::from_str(&data.join("\n")).unwrap()));
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk()).await.ok()?.unwrap()?;
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// Reads until an event `matches`; panics when none does promptly.
    async fn expect(&mut self, what: &str, matches: impl Fn(&str, &Value) -> bool) -> Value {
        let mut seen = Vec::new();
        while let Some((name, data)) = self.next().await {
            if matches(&name, &data) {
                return data;
            }
            seen.push(format!("{name} {data}"));
        }
        panic!("no {what} on the console; saw {seen:#?}");
    }
}

fn is_activity<'a>(kind: &'a str) -> impl Fn(&str, &Value) -> bool + 'a {
    move |name, data| name == "activity" && data["kind"] == kind
}

#[tokio::test]
async fn the_console_stream_shows_publishes_subscribes_presence_revocations_and_402s() {
    let env = Env::start().await;
    env.create_channel("room", "public").await;
    env.create_channel("lobby", "presence").await;
    let mut console = Console::open(&env, &env.key).await;

    let mut alice = env.subscriber("alice", "room", &["subscribe"]).await;
    let subscribed = console.expect("a subscribe", is_activity("subscribed")).await;
    assert_eq!((subscribed["channel"].as_str(), subscribed["client_id"].as_str()), (Some("room"), Some("alice")));

    env.post("/v1/realtime/publish", json!({"channel": "room", "event": "greet", "data": {"n": 1}})).await.ok();
    let message = console.expect("the publish", |name, data| name == "frame" && data["type"] == "message").await;
    assert_eq!((message["channel"].as_str(), message["event"].as_str()), (Some("room"), Some("greet")));
    assert_eq!(message["data"], json!({"n": 1}), "the frame as subscribers get it");
    alice.expect("message").await;

    let _bob = env.subscriber("bob", "lobby", &["subscribe", "presence"]).await;
    let join = console.expect("a presence join", |name, data| name == "frame" && data["type"] == "presence.join").await;
    assert_eq!((join["channel"].as_str(), join["member"]["client_id"].as_str()), (Some("lobby"), Some("bob")));

    alice.close().await;
    let closed = console.expect("a disconnect", is_activity("disconnected")).await;
    assert_eq!((closed["client_id"].as_str(), closed["code"].as_u64()), (Some("alice"), Some(1000)));

    let token = env.token("carol", &["room"], &["subscribe"]).await;
    env.post("/v1/realtime/token/revoke", json!({"token_or_jti": token["jti"]})).await.ok();
    let revoked = console.expect("a revocation", is_activity("token_revoked")).await;
    assert_eq!(revoked["jti"], token["jti"]);

    // An account that cannot pay: its console shows the refusal.
    let poor = env.server.create_account(0).await.unwrap();
    let mut poor_console = Console::open(&env, &poor).await;
    let refused = env.send_as(&poor, "POST", "/v1/realtime/channel/create", Some(json!({"name": "x"})), &[]).await;
    refused.problem(402, "INSUFFICIENT_CREDIT");
    let shown = poor_console.expect("a 402", is_activity("insufficient_credit")).await;
    assert_eq!(shown["operation"], "POST /v1/realtime/channel/create");
}

/// A publish skips encoding its frames when nobody would receive them; a console viewer
/// counts as someone.
#[tokio::test]
async fn a_publish_to_a_channel_without_subscribers_still_reaches_the_console() {
    let env = Env::start().await;
    env.create_channel("quiet", "public").await;
    let unheard = env.post("/v1/realtime/publish", json!({"channel": "quiet", "event": "e", "data": 1})).await.ok();
    assert_eq!(unheard["delivered"], 0);
    let mut console = Console::open(&env, &env.key).await;
    let published =
        env.post("/v1/realtime/publish", json!({"channel": "quiet", "event": "seen", "data": 2})).await.ok();
    assert_eq!(published["delivered"], 0, "a console is no subscriber");
    let message = console.expect("the publish", |name, data| name == "frame" && data["type"] == "message").await;
    assert_eq!((message["event"].as_str(), message["offset"].as_u64()), (Some("seen"), Some(2)));
}

#[tokio::test]
async fn another_accounts_events_never_reach_a_console() {
    let env = Env::start().await;
    let other = env.server.create_account(2_000_000).await.unwrap();
    let mut console = Console::open(&env, &other).await;

    env.create_channel("room", "public").await;
    let _alice = env.subscriber("alice", "room", &["subscribe"]).await;
    env.post("/v1/realtime/publish", json!({"channel": "room", "event": "secret", "data": {}})).await.ok();
    let poor = env.server.create_account(0).await.unwrap();
    env.send_as(&poor, "POST", "/v1/realtime/channel/create", Some(json!({"name": "x"})), &[])
        .await
        .problem(402, "INSUFFICIENT_CREDIT");
    // The other account's own publish is the first thing its console shows.
    env.send_as(&other, "POST", "/v1/realtime/channel/create", Some(json!({"name": "mine"})), &[]).await.ok();
    let own = json!({"channel": "mine", "event": "own", "data": {}});
    env.send_as(&other, "POST", "/v1/realtime/publish", Some(own), &[]).await.ok();
    let (name, data) = console.next().await.expect("the account's own publish");
    assert_eq!((name.as_str(), data["event"].as_str()), ("frame", Some("own")), "{data}");
}

/// Every node applies every event the broker carries, so a console on node B shows
/// what node A publishes and the presence of A's sockets.
#[tokio::test]
async fn a_console_on_one_node_shows_publishes_and_presence_of_the_other() {
    let database = PgDatabase::create().await;
    let redis = RedisPrefix::create().await;
    let config = || {
        let settings =
            json!({"listen": "127.0.0.1:0", "store": database.url, "broker": redis.url, "redis_prefix": redis.prefix});
        Config::with(settings).unwrap()
    };
    let a = RunningServer::start(config()).await.unwrap();
    let b = RunningServer::start(config()).await.unwrap();
    let key = a.dev_api_key.clone().unwrap();
    let http = reqwest::Client::new();
    let on_a = |path: &str| http.post(format!("{}{path}", a.base_url())).bearer_auth(&key);
    let mut console = Console::open_at(&http, &b.base_url(), &key).await;

    for (name, kind) in [("room", "public"), ("lobby", "presence")] {
        on_a("/v1/realtime/channel/create").json(&json!({"name": name, "type": kind})).send().await.unwrap();
    }
    let grant = json!({"client_id": "dana", "channels": ["lobby"], "capabilities": ["subscribe", "presence"]});
    let token: Value = on_a("/v1/realtime/token/issue").json(&grant).send().await.unwrap().json().await.unwrap();
    let mut dana = Ws::connect(&token).await;
    dana.send(json!({"type": "subscribe", "channel": "lobby"})).await;
    dana.expect("subscribed").await;
    let join =
        console.expect("A's presence join", |name, data| name == "frame" && data["type"] == "presence.join").await;
    assert_eq!(join["member"]["client_id"], "dana");

    let message = json!({"channel": "room", "event": "from-a", "data": {}});
    assert!(on_a("/v1/realtime/publish").json(&message).send().await.unwrap().status().is_success());
    let published = console.expect("A's publish", |name, data| name == "frame" && data["type"] == "message").await;
    assert_eq!(published["event"], "from-a");
    a.kill();
    b.kill();
}

/// A viewer's events wait in a bounded channel; one that falls behind it is told how
/// many it lost, and the node never waited for it.
#[tokio::test]
async fn a_console_that_falls_behind_is_told_how_many_events_it_skipped() {
    let env = Env::start().await;
    let mut console = Console::open(&env, &env.key).await;
    let account_id = env.get("/v1/account").await.ok()["account_id"].as_str().unwrap().to_owned();
    // The test and the node share one thread: the stream cannot send anything while this
    // loop runs, as if its viewer did not read.
    let taps = &env.server.server().service.hub.taps;
    for n in 0..5000 {
        taps.activity(&account_id, || Activity::ChannelDeleted { channel: format!("c{n}") });
    }
    let (name, skipped) = console.next().await.expect("the news of the loss");
    assert_eq!(name, "skipped");
    let skipped = skipped.as_u64().unwrap();
    assert!(skipped >= 5000 - 1024, "{skipped}");
    let (_, first_kept) = console.next().await.unwrap();
    assert_eq!(first_kept["channel"], format!("c{skipped}"), "then the newest events, in order");
    let metrics = env.http.get(env.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(&format!("realtime_frames_dropped_total{{reason=\"console_behind\"}} {skipped}\n")));
}

#[tokio::test]
async fn a_node_stops_promptly_with_a_console_open() {
    let env = Env::start().await;
    let mut console = Console::open(&env, &env.key).await;
    let started = std::time::Instant::now();
    env.server.stop().await.unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "stopped in {:?}", started.elapsed());
    assert!(console.next().await.is_none(), "the stream ended");
}

#[tokio::test]
async fn the_console_needs_a_valid_api_key() {
    let env = Env::start().await;
    let anonymous = env.http.get(env.url("/console/events")).send().await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let wrong = env.http.get(env.url("/console/events")).bearer_auth("ifr_pk_proj_nope").send().await.unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
}

#[tokio::test]
async fn the_console_is_absent_when_turned_off() {
    let env = Env::start_with(json!({"console": false})).await;
    for path in ["/console", "/console/events"] {
        let answer = env.http.get(env.url(path)).bearer_auth(&env.key).send().await.unwrap();
        assert_eq!(answer.status().as_u16(), 404, "{path}");
    }
}

#[tokio::test]
async fn a_server_on_a_reachable_address_serves_neither_console_nor_dev_checkout_unless_told() {
    let dir = tempfile::tempdir().unwrap();
    let deployed =
        realtime_server::testing::TestServer::start_with(dir.path(), json!({"listen": "0.0.0.0:0"})).await.unwrap();
    let base = format!("http://127.0.0.1:{}", deployed.server().addr.port());
    let http = reqwest::Client::new();
    for path in ["/console", "/checkout"] {
        let answer = http.get(format!("{base}{path}")).header("accept", "text/html").send().await.unwrap();
        assert_eq!(answer.status().as_u16(), 404, "{path}");
    }
    deployed.stop().await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let told = json!({"listen": "0.0.0.0:0", "console": true});
    let deployed = realtime_server::testing::TestServer::start_with(dir.path(), told).await.unwrap();
    let base = format!("http://127.0.0.1:{}", deployed.server().addr.port());
    assert_eq!(http.get(format!("{base}/console")).send().await.unwrap().status().as_u16(), 200);
    let checkout = http.get(format!("{base}/checkout")).header("accept", "text/html").send().await.unwrap();
    assert_eq!(checkout.status().as_u16(), 404, "the dev checkout stays off");
    deployed.stop().await.unwrap();
}

#[tokio::test]
async fn the_console_page_is_self_contained_and_holds_no_secret() {
    let env = Env::start().await;
    let answer = env.http.get(env.url("/console")).send().await.unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    let page = answer.text().await.unwrap();
    assert!(page.contains("<script>") && page.contains("/console/events"), "the page and its script");
    assert!(!page.contains("https://") && !page.contains("src="), "nothing fetched from elsewhere");
    assert!(!page.contains(&env.key) && !page.contains("ifr_pk_"), "no key in the page");
}

/// Drives the real page in Debian's Chromium over the DevTools protocol: the page stays
/// open while the test publishes, which a one-shot `--dump-dom` cannot wait for. The key
/// is typed into the login form, as a person would, so it appears in no URL and on no
/// command line.
#[tokio::test]
async fn headless_chromium_shows_a_rest_publish_on_the_console_page() {
    let env = Env::start().await;
    env.create_channel("room-42", "public").await;
    let mut page = Page::open(&env.url("/console")).await;
    let login = format!(
        "document.getElementById('key').value = {}; document.getElementById('login').requestSubmit(); true",
        json!(env.key)
    );
    page.eval(&login).await;
    page.until("the stream went live", "document.getElementById('status').dataset.state === 'live'").await;
    page.until("the channel is listed", "document.getElementById('channels').textContent.includes('room-42')").await;

    env.post("/v1/realtime/publish", json!({"channel": "room-42", "event": "from-the-test", "data": {"n": 42}}))
        .await
        .ok();
    page.until(
        "the publish appeared",
        "[...document.querySelectorAll('#events li[data-kind=publish]')].some(li => li.textContent.includes('from-the-test'))",
    )
    .await;
    assert_eq!(page.eval("location.href.includes('ifr_pk_')").await, json!(false), "the key is in no URL");

    page.screenshot("console.png").await;
}
