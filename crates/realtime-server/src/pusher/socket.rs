//! Pusher's protocol 7: the session every transport runs ([`run`]), and its WebSocket
//! transport at `/app/{key}?protocol=7`, what pusher-js speaks first. (Its HTTP fallback
//! transports are in [`super::fallback`]; they run the same session.)
//!
//! A session is a [`Connection`] of the hub like any other, marked as a Pusher one, so the
//! fan-out hands it each frame's Pusher encoding and skips it when it is the excluded
//! socket. As in the native gateway, one task per session runs a writer (the queue, close
//! requests, shutdown) beside a reader (the client's frames, one at a time, and the
//! heartbeat), and whichever ends first decides how the session closes. However it ends,
//! it leaves the hub and every presence channel it joined.
//!
//! The heartbeat is Pusher's: after `activity_timeout` seconds without a frame from the
//! client the server sends `pusher:ping`, and closes with 4201 when nothing comes within
//! the pong timeout. Client events go through the one publish path (metered and recorded
//! like any publish) and reach every subscriber of the channel but their sender. A cache
//! channel's new subscriber gets its last event (the newest message of its stream, from
//! the store) or `pusher:cache_miss` (and its webhook).

use std::collections::HashMap;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use realtime_types::pusher::{
    CLIENT_EVENT_PREFIX, ChannelKind, ClientEvent, CloseCode, DATA_MAX_BYTES, EVENT_NAME_MAX_LEN, ServerEvent,
    WATCHLIST_MAX_IDS, data_text,
};
use realtime_types::ws::CloseCode as NativeCloseCode;
use serde_json::Value;
use tokio::time::Instant;

mod subscribe;

use self::subscribe::{refresh_app, subscribe};
use super::apps::credential_id;
use super::signing::verify_user_auth;
use super::watchlist::{self, Watchlist};
use super::{Admission, Gone, Incoming, Inlet, Outlet, admit};
use crate::broker::{leave, leave_all};
use crate::hub::lifecycle::Lifecycle;
use crate::hub::{ChannelKey, Closing, Connection, Protocol, StopReading};
use crate::secret::random_bytes;
use crate::service::{Outgoing, Service};
use crate::store::AppRow;

/// Bytes read from a socket at a time (small: idle sockets are the common case).
const READ_BUFFER: usize = 2 * 1024;
/// Bytes of outgoing frames buffered before they are written.
const WRITE_BUFFER: usize = 8 * 1024;
/// Most queued frames sent in one write.
const WRITE_BATCH: usize = 64;
/// Largest frame a client may send: a client event's 10 KB of data and its envelope.
pub const MAX_CLIENT_MESSAGE: usize = 32 * 1024;
/// Longest the server waits to send its last frames to a client that may never read them.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// The protocol's route.
pub fn router(service: Arc<Service>) -> Router {
    Router::new().route("/app/{key}", get(upgrade)).with_state(service)
}

async fn upgrade(
    State(service): State<Arc<Service>>,
    Path(key): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let admission = match admit(&service, &key, &params, &headers).await {
        Admission::Admitted(app) => Ok(app),
        Admission::Forbidden(refused) => return refused,
        Admission::Refused(code, reason) => Err((code, reason)),
    };
    upgrade
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| {
            let sockets = service.sockets.clone();
            sockets.track_future(async move {
                let (mut sink, stream) = socket.split();
                match admission {
                    Ok(app) => run(service, app, stream, sink).await,
                    Err((code, reason)) => Outlet::close(&mut sink, Some((code, reason))).await,
                }
            })
        })
}

impl Inlet for SplitStream<WebSocket> {
    async fn next(&mut self) -> Option<Incoming> {
        match StreamExt::next(self).await? {
            Ok(Message::Text(text)) => Some(Incoming::Text(text)),
            Ok(Message::Binary(_)) => Some(Incoming::Unreadable("binary frames are not supported")),
            Ok(Message::Ping(_) | Message::Pong(_)) => Some(Incoming::Heartbeat),
            Ok(Message::Close(_)) => Some(Incoming::Closed),
            Err(error) => {
                tracing::debug!(%error, "pusher socket read failed");
                Some(Incoming::Unreadable("the frame could not be read (too large?)"))
            }
        }
    }
}

impl Outlet for SplitSink<WebSocket, Message> {
    async fn feed(&mut self, frame: Utf8Bytes) -> Result<(), Gone> {
        SinkExt::feed(self, Message::Text(frame)).await.map_err(|_| Gone)
    }

    async fn flush(&mut self) -> Result<(), Gone> {
        SinkExt::flush(self).await.map_err(|_| Gone)
    }

    async fn idle(&mut self) -> Gone {
        // A socket that died is noticed by its reader.
        std::future::pending().await
    }

    async fn close(&mut self, code: Option<(CloseCode, &str)>) {
        let send = async {
            match code {
                Some((code, reason)) => {
                    let error = ServerEvent::Error { code: Some(code.code()), message: reason.to_owned() };
                    SinkExt::send(self, Message::Text(Utf8Bytes::from(error.to_json()))).await?;
                    let frame = CloseFrame { code: code.code(), reason: Utf8Bytes::from(reason) };
                    SinkExt::send(self, Message::Close(Some(frame))).await
                }
                None => SinkExt::close(self).await,
            }
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, send).await;
    }
}

/// The Pusher close code, and its reason, for a close the rest of the server asked for.
fn close_of(closing: Closing) -> End {
    let (code, reason) = match closing {
        Closing::With(code, reason) => (code, reason),
        Closing::Vanish => return End::Gone,
    };
    let code = match code {
        // A Pusher socket's only "token" is its app's credentials (see
        // `apps::credential_id`): revoked when the app is deleted.
        NativeCloseCode::TokenRevoked => {
            return End::Close(CloseCode::AppDoesNotExist, "the app was deleted".into());
        }
        // Cut by the server (user.disconnect, terminate_connections): pusher-js does not
        // reconnect on its own after a 40xx.
        NativeCloseCode::TokenInvalid
        | NativeCloseCode::TokenExpired
        | NativeCloseCode::DisconnectedByServer
        | NativeCloseCode::ProtocolError => CloseCode::Unauthorized,
        NativeCloseCode::ConnectionLimit => CloseCode::OverConnectionQuota,
        NativeCloseCode::SlowConsumer | NativeCloseCode::TryAgainLater => CloseCode::OverCapacity,
        NativeCloseCode::ServerShutdown => CloseCode::ReconnectImmediately,
        NativeCloseCode::HeartbeatTimeout => CloseCode::PongNotReceived,
    };
    End::Close(code, reason)
}

/// How a session ended.
enum End {
    /// Close with this code, after a `pusher:error` frame.
    Close(CloseCode, String),
    /// The client closed the connection: answer it and send nothing else.
    ClosedByClient,
    /// The peer went away, or the node was killed.
    Gone,
}

/// What the reader knows of its session beyond the hub's connection.
struct Session {
    app: AppRow,
    socket_id: String,
    /// The user id of each presence channel the session joined.
    presence_user: HashMap<String, String>,
    /// Client events sent in the current second, and when that second started.
    client_events: (u32, Instant),
    /// The users it watches, once signed in with a watchlist; its writer reads it too.
    watchlist: Arc<Watchlist>,
}

/// A socket id: two runs of digits, unique in the cluster with overwhelming likelihood.
fn new_socket_id() -> String {
    let [a, b] = [random_bytes::<4>(), random_bytes::<4>()].map(u32::from_le_bytes);
    format!("{a}.{b}")
}

/// Runs one session of `app` over a transport, from `pusher:connection_established` to
/// its close; on the way out it leaves the hub and every presence it joined.
pub async fn run(service: Arc<Service>, app: AppRow, mut inlet: impl Inlet, mut outlet: impl Outlet) {
    let socket_id = new_socket_id();
    // Counted under its app's credential id, which deleting the app revokes.
    let mut connection =
        Connection::pusher(app.account_id.clone(), socket_id.clone(), service.config.gateway.outbound_queue);
    connection.jti = credential_id(app.app_id);
    let connection = Arc::new(connection);
    service.register(&connection);
    let established = ServerEvent::ConnectionEstablished {
        socket_id: socket_id.clone(),
        activity_timeout: service.config.pusher.activity_timeout_seconds,
    };
    tracing::info!(
        connection_id = connection.id,
        account_id = %app.account_id,
        app_id = app.app_id,
        %socket_id,
        protocol = "pusher",
        "connection opened"
    );
    let opened = Instant::now();
    let watchlist = Arc::new(Watchlist::default());
    let mut session = Session {
        app,
        socket_id,
        presence_user: HashMap::new(),
        client_events: (0, Instant::now()),
        watchlist: watchlist.clone(),
    };

    let greeted = async {
        outlet.feed(Utf8Bytes::from(established.to_json())).await?;
        outlet.flush().await
    };
    let end = if tokio::select! { greeted = greeted => greeted.is_err(), _ = service.kill.cancelled() => true } {
        End::Gone
    } else {
        let finish = StopReading::default();
        let mut writer = pin!(write(&mut outlet, &connection, &watchlist));
        let mut reader = pin!(read(&mut inlet, &service, &connection, &mut session, &finish));
        let (end, reader_ended) = tokio::select! {
            biased;
            end = &mut writer => (end, false),
            end = &mut reader => (end, true),
        };
        // The frame being handled (a client event being recorded, a presence join) is
        // finished first, as in the native gateway.
        if !reader_ended && !service.kill.is_cancelled() {
            finish.stop();
            reader.await;
        }
        end
    };

    service.hub.disconnect(&connection);
    leave_all(service.broker.as_ref(), &connection).await;
    let (code, reason) = match &end {
        End::Close(code, reason) => (code.code(), reason.as_str()),
        End::ClosedByClient => (1000, "closed by the client"),
        End::Gone => (1006, "the connection was lost"),
    };
    service.connection_closed(&connection, code, reason, opened.elapsed());
    match end {
        End::Close(code, reason) => outlet.close(Some((code, &reason))).await,
        End::ClosedByClient => outlet.close(None).await,
        End::Gone => {}
    }
}

/// The writing half: sends queued frames; ends when the session is asked to close (the
/// server shutting down and the node killed ask too) or the transport says the client is
/// gone. As in the native gateway, it waits on nothing every socket shares.
async fn write(outlet: &mut impl Outlet, connection: &Connection, watchlist: &Watchlist) -> End {
    loop {
        tokio::select! {
            biased;
            next = connection.next_frame() => {
                let frame = match next {
                    Ok(frame) => frame,
                    Err(closing) => return close_of(closing),
                };
                let write = async {
                    if let Some(frame) = watchlist.translate(frame) {
                        outlet.feed(frame).await?;
                    }
                    for _ in 0..WRITE_BATCH {
                        let Some(frame) = connection.queued_frame() else { break };
                        if let Some(frame) = watchlist.translate(frame) {
                            outlet.feed(frame).await?;
                        }
                    }
                    outlet.flush().await
                };
                tokio::select! {
                    biased;
                    sent = write => if sent.is_err() { return End::Gone },
                    closing = connection.writer_closed() => return close_of(closing),
                }
            }
            Gone = outlet.idle() => return End::Gone,
        }
    }
}

/// The reading half: handles frames one at a time, and pings a silent client.
async fn read(
    inlet: &mut impl Inlet,
    service: &Arc<Service>,
    connection: &Arc<Connection>,
    session: &mut Session,
    finish: &StopReading,
) -> End {
    let activity = Duration::from_secs(u64::from(service.config.pusher.activity_timeout_seconds));
    let pong_wait = Duration::from_secs(u64::from(service.config.pusher.pong_timeout_seconds));
    let finished = finish.stopped();
    tokio::pin!(finished);
    let silence = tokio::time::sleep(activity);
    tokio::pin!(silence);
    let mut pinged = false;
    loop {
        let incoming = tokio::select! {
            biased;
            _ = &mut finished => return End::Gone,
            incoming = inlet.next() => incoming,
            _ = &mut silence => {
                if pinged {
                    return End::Close(CloseCode::PongNotReceived, "no pong within the pong timeout".into());
                }
                send(connection, &ServerEvent::Ping);
                pinged = true;
                silence.as_mut().reset(Instant::now() + pong_wait);
                continue;
            }
        };
        pinged = false;
        silence.as_mut().reset(Instant::now() + activity);
        match incoming {
            // Boxed: handling a frame needs a large future for a moment, and an idle
            // session should not carry its space.
            Some(Incoming::Text(text)) => Box::pin(handle(service, connection, session, &text)).await,
            Some(Incoming::Heartbeat) => {}
            Some(Incoming::Closed) => return End::ClosedByClient,
            Some(Incoming::Unreadable(why)) => return End::Close(CloseCode::Unauthorized, why.into()),
            None => return End::Gone,
        }
    }
}

fn send(connection: &Connection, event: &ServerEvent) {
    connection.send(Utf8Bytes::from(event.to_json()));
}

fn error(message: impl Into<String>) -> ServerEvent {
    ServerEvent::Error { code: None, message: message.into() }
}

/// Handles one client frame. No frame ends the socket: a refusal is a `pusher:error` or
/// a `pusher:subscription_error`, and the socket stays.
async fn handle(service: &Arc<Service>, connection: &Arc<Connection>, session: &mut Session, text: &str) {
    let event = match ClientEvent::parse(text) {
        Ok(event) => event,
        Err(why) => return send(connection, &error(why)),
    };
    let reply = match event {
        ClientEvent::Ping => Some(ServerEvent::Pong),
        ClientEvent::Pong => None,
        ClientEvent::Subscribe { channel, auth, channel_data } => {
            subscribe(service, connection, session, channel, auth, channel_data).await
        }
        ClientEvent::Unsubscribe { channel } => {
            service.hub.unsubscribe(connection, &channel);
            leave(service.broker.as_ref(), connection, &channel).await;
            session.presence_user.remove(&channel);
            None
        }
        ClientEvent::Signin { auth, user_data } => match refresh_app(service, session).await {
            Ok(()) => signin(service, connection, session, &auth, &user_data).await,
            Err((_, why)) => Some(error(why)),
        },
        ClientEvent::Client { event, channel, data } => {
            client_event(service, session, connection, event, channel, data).await
        }
        ClientEvent::Unknown { event } => Some(error(format!("unsupported event {event:?}"))),
    };
    if let Some(reply) = reply {
        send(connection, &reply);
    }
}

/// `pusher:signin`: the socket becomes the user's (for `terminate_connections` and
/// send-to-user), counts as that user online in its app, and watches the users of the
/// user data's `watchlist`. `None` when the replies were sent.
async fn signin(
    service: &Service,
    connection: &Arc<Connection>,
    session: &Session,
    auth: &str,
    user_data: &str,
) -> Option<ServerEvent> {
    let app = &session.app;
    let refuse = |message: &str| {
        Some(ServerEvent::Error { code: Some(CloseCode::Unauthorized.code()), message: message.to_owned() })
    };
    if !verify_user_auth(&app.key, &app.secret, &session.socket_id, user_data, auth) {
        return refuse("invalid signin signature");
    }
    let data = serde_json::from_str::<Value>(user_data).unwrap_or(Value::Null);
    let Some(id) = data.get("id").and_then(Value::as_str).filter(|id| !id.is_empty()).map(str::to_owned) else {
        return refuse("user_data must hold a non-empty string id");
    };
    let (watched, more) = match watchlist::parse(&data) {
        Ok(watched) => watched,
        Err(why) => return refuse(why),
    };
    if let Protocol::Pusher(socket) = &connection.protocol {
        *socket.user.lock().expect("user lock") = Some(id.clone());
    }
    watchlist::go_online(service, connection, app.app_id, &id).await;
    send(connection, &ServerEvent::SigninSuccess { user_data: user_data.to_owned() });
    if !watched.is_empty() {
        watchlist::start(service, connection, &session.watchlist, app.app_id, watched).await;
    }
    more.then(|| ServerEvent::Error {
        code: Some(CloseCode::WatchlistLimit.code()),
        message: format!("a watchlist holds at most {WATCHLIST_MAX_IDS} user ids; the rest were dropped"),
    })
}

/// A `client-` event: for the other subscribers of a private or presence channel the
/// socket is subscribed to; `None` when it was published.
async fn client_event(
    service: &Arc<Service>,
    session: &mut Session,
    connection: &Connection,
    event: String,
    channel: String,
    data: Value,
) -> Option<ServerEvent> {
    match ChannelKind::of(&channel) {
        ChannelKind::Private | ChannelKind::Presence => {}
        ChannelKind::Public => return Some(error("client events are only for private- and presence- channels")),
        ChannelKind::Encrypted => return Some(error("client events are not supported on encrypted channels")),
    }
    if !connection.is_subscribed(&channel) {
        return Some(error(format!("subscribe to {channel} before sending client events to it")));
    }
    if event.len() > EVENT_NAME_MAX_LEN || !event.starts_with(CLIENT_EVENT_PREFIX) {
        return Some(error(format!(
            "client event names start with client- and are at most {EVENT_NAME_MAX_LEN} bytes"
        )));
    }
    if data_text(&data).len() > DATA_MAX_BYTES {
        return Some(error(format!("client event data is at most {DATA_MAX_BYTES} bytes")));
    }
    let (sent, since) = &mut session.client_events;
    if since.elapsed() >= Duration::from_secs(1) {
        (*sent, *since) = (0, Instant::now());
    }
    if *sent >= service.config.pusher.client_events_per_second {
        return Some(ServerEvent::Error {
            code: Some(CloseCode::ClientEventRateLimit.code()),
            message: format!("at most {} client events per second", service.config.pusher.client_events_per_second),
        });
    }
    *sent += 1;
    if let Err(error) = service.check_rate(&session.app.account_id) {
        return Some(ServerEvent::Error { code: None, message: error.problem().detail.clone().unwrap_or_default() });
    }
    let user_id = session.presence_user.get(&channel).cloned();
    let change = Lifecycle::ClientEvent {
        key: ChannelKey::new(&session.app.account_id, &channel),
        event: event.clone(),
        data: data_text(&data),
        socket_id: session.socket_id.clone(),
        user_id: user_id.clone(),
    };
    let message = Outgoing { user_id, channel, event, data, except: Some(session.socket_id.clone()) };
    match service.publish_messages(&session.app.account_id, vec![message]).await {
        Ok(_) => {
            service.hub.lifecycle.notify(change);
            None
        }
        Err(refused) => {
            Some(ServerEvent::Error { code: None, message: refused.problem().detail.clone().unwrap_or_default() })
        }
    }
}
