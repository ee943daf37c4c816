//! The WebSocket gateway: `GET /v1/realtime/ws?token=…`.
//!
//! One task per connection runs the two halves of its split socket side by side: a
//! writer that drains the connection's queue and watches close requests, the token's
//! expiry, shutdown and kill, and a reader that handles the client's frames one at a time
//! and keeps the heartbeat. So a client frame waiting on the store or the broker never
//! holds up the frames going out; whichever half ends first decides how the socket
//! closes. No task is spawned per message or per subscriber.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use futures_util::future::Either;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{Sink, SinkExt, StreamExt};
use realtime_types::ws::{ClientFrame, CloseCode, ServerFrame, UnsubscribeReason};
use realtime_types::{Capability, ErrorCode, PublishRequest, SenderType, UserCommandSendRequest, Validate};
use serde::Deserialize;
use tokio::time::Instant;

use crate::broker::{leave, leave_all};
use crate::hub::{Closing, Connection, StopReading, UserKey, encode};
use crate::service::{Service, frame_error};
use crate::tokens::{Claims, TokenError};

/// Bytes the server reads from a socket at a time; small, because idle sockets are the
/// common case and each one keeps its buffer (a larger frame grows it as it arrives).
const READ_BUFFER: usize = 512;
/// Bytes of outgoing frames buffered before they are written; a burst of queued frames
/// goes out in one write, and an idle socket never grows this buffer.
const WRITE_BUFFER: usize = 8 * 1024;
/// Most queued frames sent in one write.
const WRITE_BATCH: usize = 64;
/// Largest frame a client may send.
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;
/// Longest the server waits to send its last frames to a socket that may never drain.
mod subscribe;
mod user;

use self::subscribe::subscribe;
use self::user::{ack, redeliver, respond, send_user_command, send_user_message};

const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest the server waits to say goodbye (the code, then the closing handshake): long
/// enough for a client that was slow to read, such as a slow consumer cut with 4100, to
/// drain what the kernel holds and get its code; bounded, for one that never reads.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(5);

/// The gateway's route.
pub fn router(service: Arc<Service>) -> Router {
    Router::new().route("/v1/realtime/ws", get(upgrade)).with_state(service)
}

#[derive(Deserialize)]
struct ConnectParams {
    token: Option<String>,
}

/// Why a connection is refused right after the handshake.
enum Refusal {
    Close(CloseCode, &'static str),
}

/// Verifies the token's signature, audience and expiry (no I/O).
fn authorize(service: &Service, token: Option<String>) -> Result<Claims, Refusal> {
    let Some(token) = token else {
        return Err(Refusal::Close(CloseCode::TokenInvalid, "connect with ?token=<token> or a Bearer header"));
    };
    service.tokens.verify(&token).map_err(|error| match error {
        TokenError::Expired => Refusal::Close(CloseCode::TokenExpired, "the token expired"),
        TokenError::Invalid => Refusal::Close(CloseCode::TokenInvalid, "the token is not valid"),
    })
}

/// Decides whether a registered connection may stay: its token is not revoked and the
/// token holds no more connections than allowed. It runs once the connection is in the
/// hub, so a revocation or another connect racing it cannot slip through.
async fn admit(service: &Service, claims: &Claims) -> Option<(CloseCode, &'static str)> {
    match service.store.is_revoked(&claims.jti).await {
        Ok(false) => {}
        Ok(true) => return Some((CloseCode::TokenRevoked, "the token was revoked")),
        Err(error) => {
            tracing::warn!(%error, "revocation check failed");
            return Some((CloseCode::TryAgainLater, "the server cannot check the token now; retry later"));
        }
    }
    if service.hub.connections_of_token(&claims.jti) > service.config.gateway.max_connections_per_token {
        return Some((CloseCode::ConnectionLimit, "the token has too many live connections"));
    }
    // The user's frames must reach this node before it reads what waits for the user and
    // tells the client it is connected: a message sent in between is then either read or
    // received.
    if let Some(user_id) = &claims.uid
        && let Err(error) = service.broker.open_user_route(&UserKey::new(&claims.acc, user_id)).await
    {
        tracing::warn!(%error, "a user's route did not open");
        return Some((CloseCode::TryAgainLater, "the server cannot route this user's messages now; retry later"));
    }
    None
}

async fn upgrade(
    State(service): State<Arc<Service>>,
    Query(params): Query<ConnectParams>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    // Refused before the upgrade, as an HTTP 403: a page of another site has no socket to
    // receive a close code on, and no close code of the protocol means "wrong origin".
    // Programs send no `Origin`, and could send any, so only browsers are checked.
    if let Some(origin) = headers.get(axum::http::header::ORIGIN)
        && !origin.to_str().is_ok_and(|origin| service.config.gateway.allowed_origins.allows(origin))
    {
        let refusal = realtime_api::ApiError::forbidden("this page's origin may not open sockets on this server");
        return axum::response::IntoResponse::into_response(refusal);
    }
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::to_owned);
    let authorization = authorize(&service, params.token.or(bearer));
    upgrade
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |mut socket| {
            let sockets = service.sockets.clone();
            // Split here rather than in the task: what a task's future takes in stays in it
            // for the socket's whole life. So do the claims, hence boxed.
            let task = match authorization {
                Ok(claims) => {
                    let (sink, stream) = socket.split();
                    Either::Left(run(sink, stream, service, Box::new(claims)))
                }
                Err(Refusal::Close(code, reason)) => {
                    Either::Right(async move { refuse(&mut socket, code, reason).await })
                }
            };
            sockets.track_future(task)
        })
}

async fn refuse(socket: &mut (impl Sink<Message> + Unpin), code: CloseCode, reason: &str) {
    let frame = encode(&ServerFrame::Disconnecting { code, reason: reason.to_owned() });
    let _ = socket.send(Message::Text(frame)).await;
    let _ = socket.send(Message::Close(Some(CloseFrame { code: code.code(), reason: Utf8Bytes::from(reason) }))).await;
}

/// How a connection ended.
enum End {
    /// Close with this code, after a `disconnecting` frame.
    Close(CloseCode, String),
    /// The client sent a close frame: answer it (tungstenite has queued the echo of its
    /// code) and send nothing else.
    ClosedByClient,
    /// The peer went away, or the node was killed: nothing to send.
    Gone,
}

async fn run(
    mut sink: SplitSink<WebSocket, Message>,
    mut stream: SplitStream<WebSocket>,
    service: Arc<Service>,
    claims: Box<Claims>,
) {
    let gateway = &service.config.gateway;
    let connection = Arc::new(Connection::new(
        claims.acc.clone(),
        claims.sub.clone(),
        claims.uid.clone(),
        claims.jti.clone(),
        gateway.outbound_queue,
    ));
    service.register(&connection);
    // The steps before and after the connection's life are boxed: the state of a task is
    // as large as its largest step, and an idle socket should carry only what its life
    // needs.
    if let Some((code, reason)) = Box::pin(admit(&service, &claims)).await {
        service.hub.disconnect(&connection);
        return Box::pin(refuse(&mut sink, code, reason)).await;
    }
    tracing::info!(
        connection_id = connection.id,
        account_id = %claims.acc,
        client_id = %claims.sub,
        protocol = "native",
        "connection opened"
    );
    let opened = std::time::Instant::now();

    let connected = encode(&ServerFrame::Connected {
        connection_id: connection.id.to_string(),
        client_id: claims.sub.clone(),
        user_id: claims.uid.clone(),
        expires_at: claims.expires_at(),
        heartbeat_interval_seconds: gateway.heartbeat_interval_seconds,
        heartbeat_timeout_seconds: gateway.heartbeat_timeout_seconds,
    });
    let heartbeat_timeout = Duration::from_secs(u64::from(gateway.heartbeat_timeout_seconds));
    let expires_in = (claims.expires_at() - chrono::Utc::now()).to_std().unwrap_or_default();

    let end = if sink.send(Message::Text(connected)).await.is_err() {
        End::Gone
    } else {
        let finish = StopReading::default();
        let mut writer = pin!(write(&mut sink, &connection, expires_in));
        let mut reader = pin!(read(&mut stream, &service, &connection, &claims, heartbeat_timeout, &finish));
        let (end, reader_ended) = tokio::select! {
            biased;
            end = &mut writer => (end, false),
            end = &mut reader => (end, true),
        };
        // A handler cut off mid-way could leave a charged message undelivered or a
        // presence count behind, so the frame being handled is finished first; the reader
        // then stops without reading another. A killed node drops everything, as a crash.
        if !reader_ended && !service.kill.is_cancelled() {
            finish.stop();
            // A reader waiting for room in the queue (a replay) must stop waiting: the
            // writer that would have made room is gone.
            match &end {
                End::Close(code, reason) => connection.close(*code, reason),
                End::ClosedByClient | End::Gone => connection.close(CloseCode::TryAgainLater, "the connection ended"),
            }
            reader.await;
        }
        end
    };

    service.hub.disconnect(&connection);
    Box::pin(leave_all(service.broker.as_ref(), &connection)).await;
    let (code, reason) = match &end {
        End::Close(code, reason) => (code.code(), reason.as_str()),
        End::ClosedByClient => (1000, "closed by the client"),
        End::Gone => (1006, "the connection was lost"),
    };
    service.connection_closed(&connection, code, reason, opened.elapsed());
    match end {
        End::Close(code, reason) => {
            let frame = encode(&ServerFrame::Disconnecting { code, reason: reason.clone() });
            let goodbye = async {
                sink.send(Message::Text(frame)).await?;
                sink.send(Message::Close(Some(CloseFrame { code: code.code(), reason: Utf8Bytes::from(reason) })))
                    .await?;
                // The closing handshake: the socket is dropped once the client answers, so
                // nothing it sent meanwhile is left unread (the kernel would answer that
                // with a reset, and the client would see 1006 instead of the code).
                while let Some(Ok(message)) = stream.next().await {
                    if matches!(message, Message::Close(_)) {
                        break;
                    }
                }
                Ok::<_, axum::Error>(())
            };
            // A slow consumer's socket may never drain; do not wait on it for long.
            let _ = Box::pin(tokio::time::timeout(GOODBYE_TIMEOUT, goodbye)).await;
        }
        End::ClosedByClient => {
            // Flushes the queued echo of the client's close frame, or the client sees 1006.
            let _ = Box::pin(tokio::time::timeout(CLOSE_TIMEOUT, sink.close())).await;
        }
        End::Gone => {}
    }
}

/// The writing half of a connection: sends queued frames, and ends the connection when
/// it is asked to close (the server shutting down and the node killed ask too) or the
/// token expires.
async fn write(sink: &mut SplitSink<WebSocket, Message>, connection: &Connection, expires_in: Duration) -> End {
    let expiry = tokio::time::sleep(expires_in);
    tokio::pin!(expiry);
    loop {
        tokio::select! {
            // Polled first: a close request wins over a flood of frames. The wait is the
            // connection's alone and costs no shared lock: a wait on a token every socket
            // shares (the node's shutdown) would take that token's lock on every frame of
            // every socket.
            biased;
            next = connection.next_frame() => {
                let frame = match next {
                    Ok(frame) => frame,
                    Err(closing) => return End::from(closing),
                };
                // Frames queued meanwhile go out in the same write (one syscall for a
                // burst). A client that stops reading blocks the write; a close request
                // (slow consumer, revocation) must still win.
                let write = async {
                    sink.feed(Message::Text(frame)).await?;
                    for _ in 0..WRITE_BATCH {
                        let Some(frame) = connection.queued_frame() else { break };
                        sink.feed(Message::Text(frame)).await?;
                    }
                    sink.flush().await
                };
                tokio::select! {
                    biased;
                    sent = write => if sent.is_err() { return End::Gone },
                    closing = connection.writer_closed() => return End::from(closing),
                }
            }
            _ = &mut expiry => return End::Close(CloseCode::TokenExpired, "the token expired".into()),
        }
    }
}

impl From<Closing> for End {
    fn from(closing: Closing) -> End {
        match closing {
            Closing::With(code, reason) => End::Close(code, reason),
            Closing::Vanish => End::Gone,
        }
    }
}

/// The reading half of a connection: handles the client's frames one at a time, in order,
/// and ends the connection on a protocol error, a close frame or a silence longer than
/// the heartbeat timeout. Once `finish` is stopped it stops before reading again.
async fn read(
    stream: &mut SplitStream<WebSocket>,
    service: &Arc<Service>,
    connection: &Arc<Connection>,
    claims: &Claims,
    heartbeat_timeout: Duration,
    finish: &StopReading,
) -> End {
    let finished = finish.stopped();
    tokio::pin!(finished);
    // Silence is measured only while waiting on the socket: a frame that arrived while a
    // slow handler ran counts when it is read.
    let silence = tokio::time::sleep(heartbeat_timeout);
    tokio::pin!(silence);
    Box::pin(redeliver(service, connection, claims)).await;
    loop {
        silence.as_mut().reset(Instant::now() + heartbeat_timeout);
        let incoming = tokio::select! {
            biased;
            _ = &mut finished => return End::Gone,
            incoming = stream.next() => incoming,
            _ = &mut silence => {
                return End::Close(CloseCode::HeartbeatTimeout, "no frame within the heartbeat timeout".into());
            }
        };
        match incoming {
            Some(Ok(Message::Text(text))) => {
                // Boxed: handling a frame needs a large future for a moment, and an idle
                // socket should not carry its space.
                if let Some(end) = Box::pin(handle_frame(service, connection, claims, &text)).await {
                    return end;
                }
            }
            Some(Ok(Message::Binary(_))) => {
                return End::Close(CloseCode::ProtocolError, "frames must be JSON text".into());
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(Message::Close(_))) => return End::ClosedByClient,
            Some(Err(error)) if peer_vanished(&error) => return End::Gone,
            Some(Err(error)) => {
                tracing::debug!(%error, "socket read failed");
                return End::Close(CloseCode::ProtocolError, "the frame could not be read (too large?)".into());
            }
            None => return End::Gone,
        }
    }
}

/// Whether a read failed because the peer is gone (a TCP reset, as when a network or a
/// load balancer cuts it) rather than because of what it sent. Such a socket ends as
/// lost (1006): there is nobody left to send a close code to, and trying costs every one
/// of ten thousand sockets cut at once two failed writes and a timer.
fn peer_vanished(error: &axum::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = cause {
        if let Some(io) = error.downcast_ref::<std::io::Error>() {
            return matches!(io.kind(), ConnectionReset | ConnectionAborted | BrokenPipe);
        }
        cause = error.source();
    }
    false
}

/// Handles one client frame; `Some` ends the connection.
async fn handle_frame(
    service: &Arc<Service>,
    connection: &Arc<Connection>,
    claims: &Claims,
    text: &str,
) -> Option<End> {
    // serde reads an internally tagged enum from an array too (`["ping"]`); the protocol's
    // frames are JSON objects only.
    let parsed = match text.trim_start().starts_with('{') {
        true => serde_json::from_str::<ClientFrame>(text).map_err(|error| error.to_string()),
        false => Err("a frame is a JSON object".to_owned()),
    };
    let frame = match parsed {
        Ok(frame) => frame,
        Err(error) => {
            connection.send(encode(&frame_error(ErrorCode::BadRequest, format!("not a client frame: {error}"), None)));
            return None;
        }
    };
    let reply = match frame {
        ClientFrame::Ping {} => ServerFrame::Pong {},
        ClientFrame::Subscribe { channel, since } => match subscribe(service, connection, claims, channel, since).await
        {
            Some(refused) => refused,
            None => return None,
        },
        ClientFrame::Unsubscribe { channel } => {
            service.hub.unsubscribe(connection, &channel);
            leave(service.broker.as_ref(), connection, &channel).await;
            ServerFrame::Unsubscribed { channel, reason: UnsubscribeReason::Requested }
        }
        ClientFrame::Publish { channel, event, data, request_id } => {
            publish(service, claims, channel, event, data, request_id).await
        }
        ClientFrame::Ack { message_id } => match ack(service, claims, &message_id).await {
            Some(refused) => refused,
            None => return None,
        },
        ClientFrame::SendUserMessage { target_user_id, delivery, payload, request_id } => {
            send_user_message(service, claims, target_user_id, delivery, payload, request_id).await
        }
        ClientFrame::SendUserCommand { target_user_id, command, data, timeout, request_id } => {
            let request = UserCommandSendRequest {
                target_user_id,
                command_type: command,
                data,
                sender_type: Some(SenderType::Client),
                sender_id: Some(claims.sub.clone()),
                wait_for_response: Some(true),
                timeout,
                idempotency_key: None,
            };
            match send_user_command(service, connection, claims, request, request_id).await {
                Some(refused) => refused,
                None => return None,
            }
        }
        ClientFrame::CommandResponse { command_id, data } => match respond(service, claims, &command_id, &data).await {
            Some(refused) => refused,
            None => return None,
        },
    };
    connection.send(encode(&reply));
    None
}

async fn publish(
    service: &Arc<Service>,
    claims: &Claims,
    channel: String,
    event: String,
    data: serde_json::Value,
    request_id: Option<String>,
) -> ServerFrame {
    let refuse = |code, message: String, channel: String| ServerFrame::Error {
        code,
        message,
        channel: Some(channel),
        request_id: request_id.clone(),
    };
    if !claims.can(Capability::Publish) {
        return refuse(ErrorCode::Forbidden, "the token lacks the publish capability".into(), channel);
    }
    if !claims.allows_channel(&channel) {
        return refuse(ErrorCode::Forbidden, "the token does not allow this channel".into(), channel);
    }
    if let Err(error) = service.check_rate(&claims.acc) {
        return refuse(error.code(), error.problem().detail.clone().unwrap_or_default(), channel);
    }
    let request = PublishRequest { channel: channel.clone(), event, data, idempotency_key: None };
    if let Err(rejection) = request.validate() {
        let error = realtime_api::ApiError::from(rejection);
        return refuse(error.code(), error.problem().detail.clone().unwrap_or_default(), channel);
    }
    match service.publish_messages(&claims.acc, vec![(request.channel, request.event, request.data)]).await {
        Ok(mut published) => {
            let published = published.remove(0);
            ServerFrame::Published {
                request_id,
                message_id: published.message_id,
                epoch: published.epoch,
                offset: published.offset,
                delivered: published.delivered,
            }
        }
        Err(error) => {
            if error.code() == ErrorCode::InsufficientCredit {
                service.refused_for_credit(&claims.acc, "socket publish");
            }
            refuse(error.code(), error.problem().detail.clone().unwrap_or_default(), channel)
        }
    }
}
