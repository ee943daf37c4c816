//! pusher-js's HTTP fallback transports, `xhr_streaming` and `xhr_polling`: protocol 7
//! over plain HTTP requests, for clients that cannot open a WebSocket. Each runs the same
//! session as a WebSocket ([`super::socket::run`]); only the carrying differs.
//!
//! pusher-js names a session in its paths, under its `httpPath` (`/pusher` unless set):
//! `POST /pusher/app/{key}/{server}/{session}/xhr_streaming?protocol=7…` opens a stream
//! that stays open, `…/xhr` a poll answered once, and `…/xhr_send` carries the client's
//! messages as a JSON array of strings (an empty one is a heartbeat). The server answers
//! in SockJS's frames, one per line: `o` (open), `a["…",…]` (protocol 7 messages),
//! `h` (heartbeat) and `c[code,"reason"]` (close). The first request of a session id
//! starts the session and is answered `o`; a stream then carries every frame as it comes,
//! while a poll is answered as soon as frames wait, or with `h` after a while. A stream
//! gets `h` every 25 seconds, which pusher-js answers with an empty `xhr_send`.
//!
//! A session lives in this node's memory, so all the requests of one session must reach
//! the node that started it (behind a load balancer: route by the session's path). It
//! ends like a socket: by its close, or when no request of the client has been reading
//! for [`EXPIRY`], and then leaves the hub and its presence channels as a closed socket
//! does.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ws::Utf8Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use realtime_types::pusher::{CloseCode, ServerEvent};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep_until};

use super::socket::{CLOSE_TIMEOUT, MAX_CLIENT_MESSAGE, run};
use super::{Admission, Gone, Incoming, Inlet, Outlet, admit};
use crate::service::Service;

/// How long a session lives without a request of its client reading it (SockJS waits 5 s
/// too): a poll's answer and the next poll are much closer than this.
pub const EXPIRY: Duration = Duration::from_secs(5);
/// How often a quiet stream gets a heartbeat, and the longest a poll waits for frames.
const HEARTBEAT: Duration = Duration::from_secs(25);
/// Chunks a stream holds for a client that reads slowly; beyond, the session's own queue
/// fills, and a full queue is a slow consumer.
const STREAM_CHUNKS: usize = 16;
/// Client messages waiting for the session's reader.
const INCOMING_QUEUE: usize = 16;

/// The transports' routes.
pub fn router(service: Arc<Service>) -> Router {
    let state = Arc::new(Sessions { service, open: Mutex::new(HashMap::new()) });
    Router::new()
        .route("/pusher/app/{key}/{server}/{session}/xhr_streaming", post(stream))
        .route("/pusher/app/{key}/{server}/{session}/xhr", post(poll))
        .route("/pusher/app/{key}/{server}/{session}/xhr_send", post(receive))
        .with_state(state)
}

/// This node's open HTTP sessions.
struct Sessions {
    service: Arc<Service>,
    /// By `{key}/{server}/{session}`. A session removes itself when it ends.
    open: Mutex<HashMap<String, Handle>>,
}

/// How requests reach a running session.
#[derive(Clone)]
struct Handle {
    /// The client's messages.
    incoming: mpsc::Sender<Incoming>,
    /// The requests that read its frames.
    readers: mpsc::Sender<Reader>,
}

/// A request waiting for the session's frames.
enum Reader {
    /// An `xhr_streaming` response: every chunk, as long as the client reads.
    Stream(mpsc::Sender<Bytes>),
    /// An `xhr` poll: one answer.
    Poll(oneshot::Sender<String>),
}

type SessionPath = Path<(String, String, String)>;

fn session_id((key, server, session): &(String, String, String)) -> String {
    format!("{key}/{server}/{session}")
}

/// The frames that close a session: `pusher:error` with the code, then `c`.
fn goodbye(code: CloseCode, reason: &str) -> String {
    let error = ServerEvent::Error { code: Some(code.code()), message: reason.to_owned() };
    let close = serde_json::json!([code.code(), reason]);
    format!("{}c{close}\n", messages(&[Utf8Bytes::from(error.to_json())]))
}

/// An `a` frame: protocol 7 messages, each a JSON string.
fn messages(frames: &[Utf8Bytes]) -> String {
    let texts: Vec<&str> = frames.iter().map(Utf8Bytes::as_str).collect();
    format!("a{}\n", serde_json::to_string(&texts).expect("strings serialise"))
}

fn answer(body: Body) -> Response {
    let headers = [
        (header::CONTENT_TYPE, "application/javascript; charset=UTF-8"),
        (header::CACHE_CONTROL, "no-store"),
        // Proxies that buffer responses would hold a stream's frames back.
        (header::HeaderName::from_static("x-accel-buffering"), "no"),
    ];
    (headers, body).into_response()
}

async fn stream(
    State(sessions): State<Arc<Sessions>>,
    Path(path): SessionPath,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let (chunks, body) = mpsc::channel::<Bytes>(STREAM_CHUNKS);
    let body = futures_util::stream::unfold(body, |mut body| async move {
        body.recv().await.map(|chunk| (Ok::<_, Infallible>(chunk), body))
    });
    match sessions.attach(&path, &params, &headers, Reader::Stream(chunks.clone())).await {
        Attached::Running | Attached::Started => {}
        Attached::Refused(response) => return response,
        Attached::Closed(frames) => return answer(Body::from(format!("o\n{frames}"))),
    }
    drop(chunks);
    answer(Body::from_stream(body))
}

async fn poll(
    State(sessions): State<Arc<Sessions>>,
    Path(path): SessionPath,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let (reader, answered) = oneshot::channel();
    match sessions.attach(&path, &params, &headers, Reader::Poll(reader)).await {
        Attached::Running => {
            let frames = answered
                .await
                .unwrap_or_else(|_| goodbye(CloseCode::ReconnectImmediately, "the session ended; connect again"));
            answer(Body::from(frames))
        }
        Attached::Started => answer(Body::from("o\n")),
        Attached::Refused(response) => response,
        Attached::Closed(frames) => answer(Body::from(format!("o\n{frames}"))),
    }
}

/// `xhr_send`: the client's messages, in order, to its session's reader.
async fn receive(State(sessions): State<Arc<Sessions>>, Path(path): SessionPath, body: Bytes) -> Response {
    let handle = sessions.open.lock().expect("sessions lock").get(&session_id(&path)).cloned();
    let Some(handle) = handle else {
        return (StatusCode::NOT_FOUND, "no such session").into_response();
    };
    let Ok(texts) = serde_json::from_slice::<Vec<String>>(&body) else {
        return (StatusCode::BAD_REQUEST, "the body must be a JSON array of strings").into_response();
    };
    let mut incoming: Vec<Incoming> = texts
        .into_iter()
        .map(|text| match text.len() {
            ..=MAX_CLIENT_MESSAGE => Incoming::Text(Utf8Bytes::from(text)),
            _ => Incoming::Unreadable("the message is too large"),
        })
        .collect();
    if incoming.is_empty() {
        incoming.push(Incoming::Heartbeat);
    }
    for message in incoming {
        if handle.incoming.send(message).await.is_err() {
            return (StatusCode::NOT_FOUND, "the session ended").into_response();
        }
    }
    StatusCode::NO_CONTENT.into_response()
}

/// What became of a reading request.
enum Attached {
    /// It reads a running session.
    Running,
    /// It started a session (and reads it, when it is a stream).
    Started,
    /// No session: not allowed here (the page's origin).
    Refused(Response),
    /// No session: the frames that say why (an unknown key, a wrong version).
    Closed(String),
}

impl Sessions {
    /// Hands `reader` to the session at `path`, starting it when there is none.
    async fn attach(
        self: &Arc<Self>,
        path: &(String, String, String),
        params: &HashMap<String, String>,
        headers: &HeaderMap,
        reader: Reader,
    ) -> Attached {
        let id = session_id(path);
        let running = self.open.lock().expect("sessions lock").get(&id).cloned();
        // A session that just ended refuses the reader; the client gets a new one, and
        // pusher-js, seeing `o` again, reconnects cleanly.
        let reader = match running {
            Some(handle) => match handle.readers.send(reader).await {
                Ok(()) => return Attached::Running,
                Err(refused) => refused.0,
            },
            None => reader,
        };
        let app = match admit(&self.service, &path.0, params, headers).await {
            Admission::Admitted(app) => app,
            Admission::Forbidden(response) => return Attached::Refused(response),
            Admission::Refused(code, reason) => return Attached::Closed(goodbye(code, reason)),
        };
        let (incoming, inlet) = mpsc::channel(INCOMING_QUEUE);
        let (readers, waiting) = mpsc::channel(1);
        let first = match reader {
            Reader::Stream(chunks) => {
                // Before the session starts writing; a fresh channel has room for it.
                let _ = chunks.try_send(Bytes::from_static(b"o\n"));
                Some(Reader::Stream(chunks))
            }
            // The poll that started the session is answered `o` at once.
            Reader::Poll(_) => None,
        };
        let handle = Handle { incoming, readers };
        self.open.lock().expect("sessions lock").insert(id.clone(), handle.clone());
        let outlet = HttpOutlet::new(waiting, first, &self.service);
        let sessions = self.clone();
        tokio::spawn(async move {
            run(sessions.service.clone(), app, inlet, outlet).await;
            let mut open = sessions.open.lock().expect("sessions lock");
            if open.get(&id).is_some_and(|current| current.incoming.same_channel(&handle.incoming)) {
                open.remove(&id);
            }
        });
        Attached::Started
    }
}

impl Inlet for mpsc::Receiver<Incoming> {
    async fn next(&mut self) -> Option<Incoming> {
        self.recv().await
    }
}

/// A session's frames, written to whichever request of its client reads them.
struct HttpOutlet {
    readers: mpsc::Receiver<Reader>,
    /// The request reading now, if any.
    reader: Option<Reader>,
    /// When the reader came (what its heartbeat or poll answer is timed from), or, with
    /// none, when the last one left (what the expiry is timed from).
    since: Instant,
    /// When the reader is due a heartbeat (a poll: its answer).
    due: Instant,
    /// The longest a poll waits: a heartbeat, within the request timeout.
    poll_wait: Duration,
    fed: Vec<Utf8Bytes>,
}

/// What happened while the outlet waited.
enum Waited {
    Came(Reader),
    Left,
    Due,
    Expired,
}

impl HttpOutlet {
    fn new(readers: mpsc::Receiver<Reader>, reader: Option<Reader>, service: &Service) -> HttpOutlet {
        let poll_wait = HEARTBEAT.min(Duration::from_secs(service.config.request_timeout_seconds) / 2);
        let now = Instant::now();
        HttpOutlet { readers, reader, since: now, due: now + HEARTBEAT, poll_wait, fed: Vec::new() }
    }

    /// A new reader replaces the old one; a poll waiting still is answered empty.
    fn came(&mut self, reader: Reader) {
        if let Some(Reader::Poll(waiting)) = self.reader.take() {
            let _ = waiting.send("h\n".into());
        }
        self.since = Instant::now();
        self.due = self.since
            + match reader {
                Reader::Stream(_) => HEARTBEAT,
                Reader::Poll(_) => self.poll_wait,
            };
        self.reader = Some(reader);
    }

    fn left(&mut self) {
        self.reader = None;
        self.since = Instant::now();
    }

    /// Waits for a reader to come or go, a heartbeat to be due, or the expiry. Cancel-safe.
    async fn wait(&mut self) -> Waited {
        let expiry = self.since + EXPIRY;
        match &mut self.reader {
            None => tokio::select! {
                came = self.readers.recv() => came.map_or(Waited::Expired, Waited::Came),
                () = sleep_until(expiry) => Waited::Expired,
            },
            Some(Reader::Stream(chunks)) => tokio::select! {
                came = self.readers.recv() => came.map_or(Waited::Expired, Waited::Came),
                () = chunks.closed() => Waited::Left,
                () = sleep_until(self.due) => Waited::Due,
            },
            Some(Reader::Poll(answer)) => tokio::select! {
                came = self.readers.recv() => came.map_or(Waited::Expired, Waited::Came),
                () = answer.closed() => Waited::Left,
                () = sleep_until(self.due) => Waited::Due,
            },
        }
    }

    /// Writes `chunk` to the reader, if there is one; false when it was not written.
    async fn write(&mut self, chunk: &str) -> bool {
        match self.reader.take() {
            Some(Reader::Stream(chunks)) => {
                if chunks.send(Bytes::copy_from_slice(chunk.as_bytes())).await.is_ok() {
                    self.reader = Some(Reader::Stream(chunks));
                    return true;
                }
                self.left();
                false
            }
            Some(Reader::Poll(answer)) => {
                let written = answer.send(chunk.to_owned()).is_ok();
                self.left();
                written
            }
            None => false,
        }
    }

    /// Writes `chunk` to the first reader that takes it; `Gone` when none comes in time.
    async fn deliver(&mut self, chunk: &str) -> Result<(), Gone> {
        loop {
            if self.reader.is_some() && self.write(chunk).await {
                return Ok(());
            }
            if self.reader.is_none() {
                match self.wait().await {
                    Waited::Came(reader) => self.came(reader),
                    Waited::Expired => return Err(Gone),
                    // With no reader, nothing leaves and nothing is due.
                    Waited::Left | Waited::Due => {}
                }
            }
        }
    }
}

impl Outlet for HttpOutlet {
    async fn feed(&mut self, frame: Utf8Bytes) -> Result<(), Gone> {
        self.fed.push(frame);
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), Gone> {
        let chunk = messages(&self.fed);
        self.fed.clear();
        self.deliver(&chunk).await
    }

    async fn idle(&mut self) -> Gone {
        loop {
            match self.wait().await {
                Waited::Came(reader) => self.came(reader),
                Waited::Left => self.left(),
                Waited::Expired => return Gone,
                Waited::Due => match &self.reader {
                    // A full stream has frames coming anyway.
                    Some(Reader::Stream(chunks)) => {
                        if let Err(mpsc::error::TrySendError::Closed(_)) = chunks.try_send(Bytes::from_static(b"h\n")) {
                            self.left();
                        }
                        self.due = Instant::now() + HEARTBEAT;
                    }
                    Some(Reader::Poll(_)) => {
                        self.write("h\n").await;
                    }
                    None => {}
                },
            }
        }
    }

    async fn close(&mut self, code: Option<(CloseCode, &str)>) {
        let chunk = match code {
            Some((code, reason)) => goodbye(code, reason),
            None => "c[1000,\"closed\"]\n".to_owned(),
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.deliver(&chunk)).await;
        self.reader = None;
    }
}
