//! One socket's reading and writing: a client frame waiting on the domain never holds up
//! the frames going out, and the close handshake is answered.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use sqlx::{Connection, Executor, SqliteConnection};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::support::{Env, PROMPTLY, Ws};

/// How long the test holds the store's write lock; well under the server's 10 s busy
/// timeout, so the publish waits rather than fails.
const LOCK_HELD: Duration = Duration::from_secs(3);

#[tokio::test]
async fn a_client_publish_waiting_on_a_slow_store_does_not_delay_that_sockets_deliveries() {
    const JOINERS: usize = 10;
    // A queue smaller than the joins: a socket that stopped writing would be cut with 4100.
    let env = Env::start_with(json!({"gateway": {"outbound_queue": 4}})).await;
    env.create_channel("lobby", "presence").await;
    env.create_channel("room", "public").await;
    // Issuing tokens writes to the store, so every token is issued before it is locked.
    let publisher_token = env.token("publisher", &["lobby", "room"], &["subscribe", "presence", "publish"]).await;
    let mut joiner_tokens = Vec::new();
    for n in 0..JOINERS {
        joiner_tokens.push(env.token(&format!("joiner-{n}"), &["lobby"], &["subscribe", "presence"]).await);
    }
    let mut publisher = Ws::connect(&publisher_token).await;
    publisher.send(json!({"type": "subscribe", "channel": "lobby"})).await;
    publisher.expect("subscribed").await;

    // Another connection to the server's SQLite file holds the write lock, so the
    // server's publish waits on it (reads, and presence in the memory broker, do not).
    let url = format!("sqlite://{}", env.dir.path().join("realtime.db").display());
    let mut lock = SqliteConnection::connect(&url).await.unwrap();
    lock.execute("BEGIN IMMEDIATE").await.unwrap();
    let locked_at = Instant::now();
    publisher.send(json!({"type": "publish", "channel": "room", "event": "e", "data": 1, "request_id": "slow"})).await;

    let mut joiners = Vec::new();
    for token in &joiner_tokens {
        let mut joiner = Ws::connect(token).await;
        joiner.send(json!({"type": "subscribe", "channel": "lobby"})).await;
        joiner.expect("subscribed").await;
        joiners.push(joiner);
    }
    let mut joined = Vec::new();
    while joined.len() < JOINERS {
        let frame = publisher
            .next(PROMPTLY)
            .await
            .unwrap_or_else(|| panic!("only {} of {JOINERS} joins arrived", joined.len()));
        assert_eq!(frame["type"], "presence.join", "a join before anything else: {frame}");
        joined.push(frame["member"]["client_id"].as_str().unwrap().to_owned());
    }
    joined.sort();
    let mut expected: Vec<_> = (0..JOINERS).map(|n| format!("joiner-{n}")).collect();
    expected.sort();
    assert_eq!(joined, expected);
    // The publish is still waiting on the store: nothing more comes in the meantime.
    publisher.expect_silence().await;

    tokio::time::sleep_until(locked_at + LOCK_HELD).await;
    lock.execute("ROLLBACK").await.unwrap();
    let published = publisher.expect("published").await;
    assert_eq!(published["request_id"], "slow");
    // The socket stayed open: it still answers.
    publisher.send(json!({"type": "ping"})).await;
    publisher.expect("pong").await;
}

#[tokio::test]
async fn a_client_that_closes_cleanly_sees_its_own_close_code() {
    let env = Env::start().await;
    let token = env.token("leaver", &[], &["subscribe"]).await;
    let url = format!("{}?token={}", token["endpoint"].as_str().unwrap(), token["token"].as_str().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let connected = ws.next().await.unwrap().unwrap();
    assert!(connected.to_text().unwrap().contains(r#""type":"connected""#), "{connected:?}");

    ws.send(Message::Close(Some(CloseFrame { code: CloseCode::Normal, reason: "bye".into() }))).await.unwrap();
    let mut answer = None;
    let ended = tokio::time::timeout(PROMPTLY, async {
        while let Some(read) = ws.next().await {
            match read {
                Ok(Message::Close(frame)) => answer = Some(frame.map(|frame| u16::from(frame.code))),
                Ok(_) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    })
    .await
    .expect("the server ended the connection in time");
    assert!(ended.is_ok(), "the connection ended cleanly: {ended:?}");
    assert_eq!(answer, Some(Some(1000)), "the server answered the close frame with the client's code");
}

#[tokio::test]
async fn a_graceful_stop_closes_with_4200_a_socket_that_keeps_sending_and_reads_late() {
    const SOCKETS: usize = 10;
    let env = Env::start().await;
    let stopping = tokio_util::sync::CancellationToken::new();
    let mut clients = Vec::new();
    for n in 0..SOCKETS {
        let token = env.token(&format!("chatty-{n}"), &[], &["subscribe"]).await;
        let url = format!("{}?token={}", token["endpoint"].as_str().unwrap(), token["token"].as_str().unwrap());
        let (ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
        let (mut sink, mut stream) = ws.split();
        let sending = tokio::spawn(async move {
            let ping = Message::Text(json!({"type": "ping"}).to_string().into());
            while sink.send(ping.clone()).await.is_ok() {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        let stopping = stopping.clone();
        let ending = tokio::spawn(async move {
            // Busy elsewhere when the goodbye comes: the close frame waits in this side's
            // buffer while pings keep going out. A server that drops the socket with
            // frames unread resets it, and a reset discards the buffered close frame.
            stopping.cancelled().await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            while let Some(read) = stream.next().await {
                match read {
                    Ok(Message::Close(frame)) => return frame.map(|frame| u16::from(frame.code)),
                    Ok(_) => {}
                    Err(_) => return None,
                }
            }
            None
        });
        clients.push((sending, ending));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    stopping.cancel();
    env.server.stop().await.unwrap();
    for (sending, ending) in clients {
        let code = tokio::time::timeout(PROMPTLY, ending).await.expect("the socket ended in time").unwrap();
        assert_eq!(code, Some(4200), "each client read the server's close frame");
        sending.abort();
    }
}
