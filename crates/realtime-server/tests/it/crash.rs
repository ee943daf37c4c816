//! `kill -9` during a storm of keyed requests: the real binary is killed while requests
//! are in flight, started again on the same SQLite file, and every key is retried.
//! Nothing the server answered is lost, no effect or charge happens twice, and no retry
//! waits on the lease of a request that died with the process. And the opposite end: a
//! graceful stop (SIGTERM) of the real binary says goodbye to every socket before the
//! process exits.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::{server_binary, spawn_server};
use serde_json::{Value, json};
use tokio::process::Child;

/// Kill rounds: each kills the node mid-storm, restarts it and retries every key so far.
const ROUNDS: usize = 3;
/// Concurrent clients in the storm.
const WORKERS: usize = 8;
/// The most keyed requests a worker sends in one round (the kill usually comes first).
const REQUESTS_PER_WORKER: usize = 200;
/// The dev account's starting credit (the default).
const CREDIT: i64 = 2_000_000;

/// A node of the real binary.
struct Node {
    child: Child,
    base: String,
    /// The dev account's key, printed on the first start only.
    dev_key: Option<String>,
}

/// Starts a node on the SQLite file in `dir`; on the `first` start it waits for the dev
/// account's key too.
async fn start(dir: &Path, first: bool) -> Node {
    let mut command = server_binary(dir);
    command.env("REALTIME_HISTORY_PER_CHANNEL", "100000").env("REALTIME_RATE_LIMIT__REQUESTS_PER_SECOND", "0");
    let (child, base, dev_key) = spawn_server(command, first).await;
    Node { child, base, dev_key }
}

/// One keyed request of the storm.
#[derive(Clone, Debug)]
struct Keyed {
    key: String,
    path: &'static str,
    body: Value,
    price: i64,
}

fn request(round: usize, worker: usize, n: usize) -> Keyed {
    let key = format!("r{round}-w{worker}-n{n}");
    match n % 4 {
        0 => Keyed { path: "/v1/realtime/channel/create", body: json!({"name": format!("c-{key}")}), price: 1000, key },
        1 => Keyed {
            path: "/v1/realtime/token/issue",
            body: json!({"client_id": format!("u-{key}"), "channels": ["storm"]}),
            price: 100,
            key,
        },
        _ => Keyed {
            path: "/v1/realtime/publish",
            body: json!({"channel": "storm", "event": "e", "data": {"key": key}}),
            price: 10,
            key,
        },
    }
}

/// What a request got: its status, whether it was replayed, and its body.
type Answer = (u16, bool, Value);

async fn send(http: &reqwest::Client, base: &str, api_key: &str, keyed: &Keyed) -> reqwest::Result<Answer> {
    let response = http
        .post(format!("{base}{}", keyed.path))
        .bearer_auth(api_key)
        .header("idempotency-key", &keyed.key)
        .json(&keyed.body)
        .send()
        .await?;
    let status = response.status().as_u16();
    let replayed = response.headers().get("idempotent-replayed").is_some_and(|v| v == "true");
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    Ok((status, replayed, body))
}

async fn count(dir: &Path, query: &'static str) -> i64 {
    let url = format!("sqlite://{}?mode=ro", dir.join("realtime.db").display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let count: i64 = sqlx::query_scalar(query).fetch_one(&pool).await.unwrap();
    pool.close().await;
    count
}

#[tokio::test]
async fn a_kill_during_keyed_requests_loses_no_answer_and_repeats_no_effect() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let mut node = start(dir.path(), true).await;
    let api_key = node.dev_key.clone().expect("the first start prints the dev key");
    let created = send(
        &http,
        &node.base,
        &api_key,
        &Keyed {
            key: "storm".into(),
            path: "/v1/realtime/channel/create",
            body: json!({"name": "storm"}),
            price: 1000,
        },
    )
    .await
    .unwrap();
    assert_eq!(created.0, 200);
    let mut spent = 1000;
    let mut all: Vec<Keyed> = Vec::new();
    let mut answered_before_a_kill = 0;

    for round in 0..ROUNDS {
        let answers: Arc<Mutex<BTreeMap<String, Answer>>> = Arc::default();
        let sent: Arc<Mutex<Vec<Keyed>>> = Arc::default();
        let workers: Vec<_> = (0..WORKERS)
            .map(|worker| {
                let (http, base, api_key) = (http.clone(), node.base.clone(), api_key.clone());
                let (answers, sent) = (answers.clone(), sent.clone());
                tokio::spawn(async move {
                    for n in 0..REQUESTS_PER_WORKER {
                        let keyed = request(round, worker, n);
                        sent.lock().unwrap().push(keyed.clone());
                        match send(&http, &base, &api_key, &keyed).await {
                            Ok(answer) => {
                                answers.lock().unwrap().insert(keyed.key.clone(), answer);
                            }
                            Err(_) => return, // the node died under this request
                        }
                    }
                })
            })
            .collect();
        // Kill while the storm is at full speed: after some answers, never at a quiet moment.
        let storm_started = tokio::time::Instant::now();
        while answers.lock().unwrap().len() < 40 + 30 * round && storm_started.elapsed() < Duration::from_secs(20) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        node.child.start_kill().expect("SIGKILL");
        node.child.wait().await.unwrap();
        for worker in workers {
            worker.await.unwrap();
        }
        let answers = answers.lock().unwrap().clone();
        let sent = sent.lock().unwrap().clone();
        answered_before_a_kill += answers.values().filter(|(status, ..)| *status == 200).count();

        node = start(dir.path(), false).await;
        for keyed in &sent {
            let retried = send(&http, &node.base, &api_key, keyed).await.unwrap();
            assert_eq!(retried.0, 200, "retrying {} after the restart: {:?}", keyed.key, retried.2);
            if let Some((status, _, body)) = answers.get(&keyed.key) {
                assert_eq!(*status, 200, "{} was answered {status} before the kill: {body}", keyed.key);
                assert!(retried.1, "{} was answered before the kill, so its retry replays", keyed.key);
                assert_eq!(&retried.2, body, "{}: the replay is the answer given before the kill", keyed.key);
            }
            spent += keyed.price;
        }
        all.extend(sent);
    }

    let account = http
        .get(format!("{}/v1/account", node.base))
        .bearer_auth(&api_key)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(account["balance"], CREDIT - spent, "each key was charged exactly once");
    let publishes = all.iter().filter(|k| k.path == "/v1/realtime/publish").count() as i64;
    let creates = all.iter().filter(|k| k.path == "/v1/realtime/channel/create").count() as i64;
    let issues = all.iter().filter(|k| k.path == "/v1/realtime/token/issue").count() as i64;
    node.child.start_kill().unwrap();
    node.child.wait().await.unwrap();
    assert_eq!(count(dir.path(), "SELECT COUNT(*) FROM messages WHERE channel = 'storm'").await, publishes);
    assert_eq!(count(dir.path(), "SELECT COUNT(*) FROM channels").await, creates + 1);
    assert_eq!(count(dir.path(), "SELECT COUNT(*) FROM tokens").await, issues);
    assert!(answered_before_a_kill >= 40 * ROUNDS, "the storm was at full speed at each kill");
}

#[tokio::test]
async fn sigterm_closes_every_socket_with_4200_before_the_process_exits() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    const SOCKETS: usize = 30;
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let mut node = start(dir.path(), true).await;
    let api_key = node.dev_key.clone().unwrap();
    let mut endings = Vec::new();
    for n in 0..SOCKETS {
        let token: Value = http
            .post(format!("{}/v1/realtime/token/issue", node.base))
            .bearer_auth(&api_key)
            .json(&json!({"client_id": format!("socket-{n}"), "channels": []}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let url = format!("{}?token={}", token["endpoint"].as_str().unwrap(), token["token"].as_str().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let (mut sink, mut stream) = ws.split();
        endings.push(tokio::spawn(async move {
            // The client keeps talking while the server says goodbye.
            let pinging = async {
                let ping = Message::Text(json!({"type": "ping"}).to_string().into());
                while sink.send(ping.clone()).await.is_ok() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                std::future::pending::<()>().await;
            };
            let reading = async {
                while let Some(Ok(message)) = stream.next().await {
                    if let Message::Close(frame) = message {
                        return frame.map(|frame| u16::from(frame.code));
                    }
                }
                None
            };
            tokio::select! {
                () = pinging => unreachable!(),
                code = reading => code,
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pid = node.child.id().unwrap().to_string();
    let signalled = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(signalled.success());
    let exited = tokio::time::timeout(Duration::from_secs(15), node.child.wait()).await.expect("the node stopped");
    assert!(exited.unwrap().success(), "a graceful stop exits 0");
    for ending in endings {
        let code = tokio::time::timeout(Duration::from_secs(5), ending).await.expect("the socket ended").unwrap();
        assert_eq!(code, Some(4200), "every socket read the server's close frame before the process exited");
    }
}
