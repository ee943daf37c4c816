//! The bare fan-out server: one broadcast, no auth, no metering, no persistence.
//!
//! It is the practical limit of the stack our gateway is built on (tokio, hyper through
//! axum, and tokio-tungstenite through axum's WebSocket), so the bench reports our
//! server's figures as a fraction of it. `POST /noop` is the do-nothing handler the
//! publish scenario compares the REST publish with.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::SinkExt;
use tokio::net::TcpListener;
use tokio::sync::broadcast;

/// How many messages a subscriber may fall behind before it is dropped.
const BROADCAST_CAPACITY: usize = 8192;

/// Subscribers send next to nothing, and tungstenite zero-fills its whole read buffer on
/// the first read, so the 128 KiB default would be most of a connection's memory.
const READ_BUFFER_BYTES: usize = 2048;

/// Routes: `GET /sub` (WebSocket), `POST /pub` (body sent as a text frame to every
/// subscriber), `POST /noop`, `GET /connections` (live subscribers, as a number: the
/// storm scenario watches it fall to zero).
pub fn app() -> Router {
    let (tx, _) = broadcast::channel::<Utf8Bytes>(BROADCAST_CAPACITY);
    Router::new()
        .route("/sub", get(subscribe))
        .route("/pub", post(publish))
        .route("/noop", post(noop))
        .route("/connections", get(connections))
        .route("/health", get(|| async { "ok" }))
        .with_state(tx)
}

/// Serves [`app`] on `listener` until the process ends.
pub async fn serve(listener: TcpListener) -> std::io::Result<()> {
    axum::serve(listener, app()).await
}

async fn subscribe(ws: WebSocketUpgrade, State(tx): State<broadcast::Sender<Utf8Bytes>>) -> Response {
    // Subscribing before the 101 is sent means a publish that follows the handshake is
    // never missed.
    let rx = tx.subscribe();
    ws.read_buffer_size(READ_BUFFER_BYTES).on_upgrade(move |socket| forward(socket, rx))
}

async fn forward(mut socket: WebSocket, mut rx: broadcast::Receiver<Utf8Bytes>) {
    loop {
        tokio::select! {
            next = rx.recv() => {
                let Ok(first) = next else { return };
                if socket.feed(Message::Text(first)).await.is_err() {
                    return;
                }
                // Everything already queued goes out in the same write.
                while let Ok(more) = rx.try_recv() {
                    if socket.feed(Message::Text(more)).await.is_err() {
                        return;
                    }
                }
                if socket.flush().await.is_err() {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

async fn publish(State(tx): State<broadcast::Sender<Utf8Bytes>>, body: Bytes) -> Response {
    let Ok(text) = Utf8Bytes::try_from(body) else {
        return (StatusCode::BAD_REQUEST, "body is not UTF-8").into_response();
    };
    let delivered = tx.send(text).unwrap_or(0);
    json(format!("{{\"delivered\":{delivered}}}"))
}

/// Each subscriber holds one receiver until its socket task ends.
async fn connections(State(tx): State<broadcast::Sender<Utf8Bytes>>) -> String {
    tx.receiver_count().to_string()
}

async fn noop(_body: Bytes) -> Response {
    json("{}".to_owned())
}

fn json(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}
