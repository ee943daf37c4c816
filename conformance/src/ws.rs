//! A small WebSocket client for the live checks: every wait is bounded by a deadline.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::journal::{self, WsEvent};

/// What the socket delivered next.
#[derive(Debug)]
pub(crate) enum Event {
    /// A JSON text frame.
    Frame(Value),
    /// The connection ended; `code` is the close code when a close frame came.
    Closed { code: Option<u16>, reason: String },
}

/// How a connection attempt ended.
pub(crate) enum Handshake {
    /// The upgrade succeeded.
    Open(Box<Socket>),
    /// The server answered the upgrade with this HTTP status.
    Rejected(u16),
}

/// One client connection.
pub(crate) struct Socket {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    closed: bool,
    /// The socket's number in the run's journal.
    number: u32,
    /// Every frame received, in order (for the event-type check).
    pub(crate) received: Vec<Value>,
}

impl Socket {
    /// Connects to `endpoint` with `?token=`.
    pub(crate) async fn handshake(endpoint: &str, token: &str, bound: Duration) -> Result<Handshake, String> {
        let separator = if endpoint.contains('?') { '&' } else { '?' };
        let url = format!("{endpoint}{separator}token={}", crate::context::encode_segment(token));
        Socket::open(&url, endpoint, bound).await
    }

    /// Connects to `url` as it is; `endpoint` is how errors name it.
    pub(crate) async fn open(url: &str, endpoint: &str, bound: Duration) -> Result<Handshake, String> {
        Socket::open_with(url, endpoint, bound, None).await
    }

    /// Connects with `?token=` over a TCP socket whose receive buffer is `bytes` long: a
    /// client that stops reading fills it, and then the server's queue, at once.
    pub(crate) async fn handshake_small(
        endpoint: &str,
        token: &str,
        bound: Duration,
        bytes: u32,
    ) -> Result<Handshake, String> {
        let separator = if endpoint.contains('?') { '&' } else { '?' };
        let url = format!("{endpoint}{separator}token={}", crate::context::encode_segment(token));
        Socket::open_with(&url, endpoint, bound, Some(bytes)).await
    }

    async fn open_with(
        url: &str,
        endpoint: &str,
        bound: Duration,
        receive_buffer: Option<u32>,
    ) -> Result<Handshake, String> {
        let number = journal::new_socket();
        journal::ws(number, WsEvent::Connect(url.to_owned()));
        let connecting = async {
            let Some(bytes) = receive_buffer else { return tokio_tungstenite::connect_async(url).await };
            let request = tungstenite::client::IntoClientRequest::into_client_request(url)?;
            let host = request.uri().host().unwrap_or("127.0.0.1").trim_matches(['[', ']']).to_owned();
            let tls = request.uri().scheme_str() == Some("wss");
            let port = request.uri().port_u16().unwrap_or(if tls { 443 } else { 80 });
            let address = tokio::net::lookup_host((host.as_str(), port)).await?.next().ok_or_else(|| {
                tungstenite::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("no address for {host}"),
                ))
            })?;
            let socket =
                if address.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
            socket.set_recv_buffer_size(bytes)?;
            let stream = socket.connect(address).await?;
            // TLS for a wss:// target, as connect_async does.
            tokio_tungstenite::client_async_tls(request, stream).await
        };
        let outcome = match tokio::time::timeout(bound, connecting).await {
            Err(_) => Err(format!("connecting to {endpoint} took longer than {bound:?}")),
            Ok(Ok((stream, _))) => {
                Ok(Handshake::Open(Box::new(Socket { stream, closed: false, number, received: Vec::new() })))
            }
            Ok(Err(tungstenite::Error::Http(response))) => Ok(Handshake::Rejected(response.status().as_u16())),
            Ok(Err(err)) => Err(format!("connecting to {endpoint}: {err}")),
        };
        match &outcome {
            Ok(Handshake::Rejected(status)) => journal::ws(number, WsEvent::Rejected(*status)),
            Err(err) => journal::ws(number, WsEvent::Closed(None, err.clone())),
            Ok(Handshake::Open(_)) => {}
        }
        outcome
    }

    /// Connects and waits for the `connected` frame.
    pub(crate) async fn connect(endpoint: &str, token: &str, bound: Duration) -> Result<(Socket, Value), String> {
        match Socket::handshake(endpoint, token, bound).await? {
            Handshake::Rejected(status) => Err(format!("the WebSocket upgrade was refused with HTTP {status}")),
            Handshake::Open(mut socket) => {
                let connected =
                    socket.expect("a `connected` frame", bound, |frame| frame["type"] == "connected").await?;
                Ok((*socket, connected))
            }
        }
    }

    /// Sends a JSON frame.
    pub(crate) async fn send(&mut self, frame: &Value) -> Result<(), String> {
        let text = frame.to_string();
        journal::ws(self.number, WsEvent::Sent(text.clone()));
        self.stream.send(Message::text(text)).await.map_err(|err| format!("sending a frame: {err}"))
    }

    /// Sends a text frame exactly as given (malformed JSON, an unknown type, an oversized frame).
    pub(crate) async fn send_text(&mut self, text: String) -> Result<(), String> {
        journal::ws(self.number, WsEvent::Sent(text.clone()));
        self.stream.send(Message::text(text)).await.map_err(|err| format!("sending a text frame: {err}"))
    }

    /// Sends a binary frame (the protocol is JSON text frames only).
    pub(crate) async fn send_binary(&mut self, bytes: Vec<u8>) -> Result<(), String> {
        journal::ws(self.number, WsEvent::SentBinary(bytes.len()));
        self.stream.send(Message::binary(bytes)).await.map_err(|err| format!("sending a binary frame: {err}"))
    }

    async fn next_until(&mut self, deadline: Instant) -> Option<Event> {
        let was_closed = self.closed;
        let event = self.receive_until(deadline).await;
        if let (Some(Event::Closed { code, reason }), false) = (&event, was_closed) {
            journal::ws(self.number, WsEvent::Closed(*code, reason.clone()));
        }
        event
    }

    async fn receive_until(&mut self, deadline: Instant) -> Option<Event> {
        if self.closed {
            return Some(Event::Closed { code: None, reason: "already closed".to_owned() });
        }
        loop {
            let message = match timeout_at(deadline, self.stream.next()).await {
                Err(_) => return None,
                Ok(None) => {
                    self.closed = true;
                    return Some(Event::Closed {
                        code: None,
                        reason: "the connection ended without a close frame".to_owned(),
                    });
                }
                Ok(Some(Err(err))) => {
                    self.closed = true;
                    return Some(Event::Closed { code: None, reason: err.to_string() });
                }
                Ok(Some(Ok(message))) => message,
            };
            match message {
                Message::Text(text) => {
                    journal::ws(self.number, WsEvent::Received(text.as_str().to_owned()));
                    let frame = serde_json::from_str::<Value>(text.as_str())
                        .unwrap_or_else(|_| json!({"type": "<not JSON>", "text": text.as_str()}));
                    self.received.push(frame.clone());
                    return Some(Event::Frame(frame));
                }
                Message::Binary(bytes) => {
                    journal::ws(self.number, WsEvent::ReceivedBinary(bytes.len()));
                    let frame = json!({"type": "<binary frame>"});
                    self.received.push(frame.clone());
                    return Some(Event::Frame(frame));
                }
                Message::Close(close) => {
                    self.closed = true;
                    let (code, reason) = match close {
                        Some(frame) => (Some(u16::from(frame.code)), frame.reason.as_str().to_owned()),
                        None => (None, String::new()),
                    };
                    return Some(Event::Closed { code, reason });
                }
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    }

    /// Waits for a frame matching `wanted`, skipping others; fails when the socket closes
    /// or `bound` passes first.
    pub(crate) async fn expect(
        &mut self,
        what: &str,
        bound: Duration,
        wanted: impl Fn(&Value) -> bool,
    ) -> Result<Value, String> {
        let deadline = Instant::now() + bound;
        let mut skipped = Vec::new();
        loop {
            match self.next_until(deadline).await {
                None => {
                    return Err(format!("no {what} within {bound:?} (other frames: [{}])", skipped.join(", ")));
                }
                Some(Event::Closed { code, reason }) => {
                    return Err(format!("the socket closed ({}) before {what}", describe_close(code, &reason)));
                }
                Some(Event::Frame(frame)) if wanted(&frame) => return Ok(frame),
                Some(Event::Frame(frame)) => skipped.push(frame_name(&frame)),
            }
        }
    }

    /// Waits for the connection to end; frames before the end are allowed.
    pub(crate) async fn expect_close(&mut self, bound: Duration) -> Result<(Option<u16>, String), String> {
        let deadline = Instant::now() + bound;
        loop {
            match self.next_until(deadline).await {
                None => return Err(format!("the socket is still open {bound:?} later")),
                Some(Event::Closed { code, reason }) => return Ok((code, reason)),
                Some(Event::Frame(_)) => {}
            }
        }
    }

    /// Sends `ping` and waits for `pong`: the socket is open and served.
    pub(crate) async fn ping(&mut self, bound: Duration) -> Result<(), String> {
        self.send(&json!({"type": "ping"})).await?;
        self.expect("a `pong` after `ping`", bound, |frame| frame["type"] == "pong").await.map(drop)
    }

    /// Closes the connection and waits (briefly) for the server's close.
    pub(crate) async fn close(mut self, bound: Duration) -> Vec<Value> {
        if !self.closed {
            let _ = self.stream.close(None).await;
            let _ = self.expect_close(bound).await;
        }
        self.received
    }
}

/// `4003 "revoked"`, or `no close code` when the connection just ended.
pub(crate) fn describe_close(code: Option<u16>, reason: &str) -> String {
    match code {
        Some(code) if reason.is_empty() => format!("close code {code}"),
        Some(code) => format!("close code {code} {reason:?}"),
        None if reason.is_empty() => "no close code".to_owned(),
        None => format!("no close code: {reason}"),
    }
}

/// How a frame is named in a mismatch: its `type` (this protocol) or `event` (Pusher's).
fn frame_name(frame: &Value) -> String {
    frame["type"].as_str().or_else(|| frame["event"].as_str()).unwrap_or("?").to_owned()
}
