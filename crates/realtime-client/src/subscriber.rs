//! [`Subscriber`]: a WebSocket connection to the gateway that stays connected.
//!
//! It connects with a token from `realtime.token.issue`, subscribes to channels, and
//! yields the server's frames as a [`Stream`] of [`SubscriberEvent`]s. Behind the stream
//! it sends heartbeats at the interval the server announces, notices a silent server,
//! and reconnects with backoff, subscribing again to every channel it had. When the
//! server closes with a token close code (expired, revoked, invalid) it asks the token
//! provider, if there is one, for a fresh token; when the close code says not to
//! reconnect and no fresh token can help, it stops for good.
//!
//! ```no_run
//! # async fn demo(client: realtime_client::Client) -> Result<(), Box<dyn std::error::Error>> {
//! use futures_util::StreamExt;
//! use realtime_client::{Subscriber, SubscriberEvent};
//! use realtime_types::TokenIssueRequest;
//!
//! let request = TokenIssueRequest { client_id: Some("dashboard".into()), ..Default::default() };
//! let mut subscriber = Subscriber::builder().issue_tokens_with(client, request).channel("room-42").connect().await?;
//! while let Some(event) = subscriber.next().await {
//!     if let SubscriberEvent::Frame(frame) = event {
//!         println!("{}", serde_json::to_string(&frame)?);
//!     }
//! }
//! # Ok(()) }
//! ```

mod session;

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use realtime_types::ws::{ClientFrame, CloseCode, ServerFrame};
use realtime_types::{RealtimeToken, TokenIssueRequest};
use tokio::sync::mpsc;

use crate::client::Client;
use crate::error::ClientError;

/// What a token provider returns.
pub type TokenFuture = Pin<Box<dyn Future<Output = Result<RealtimeToken, ClientError>> + Send>>;

/// Produces a fresh token when the subscriber needs one.
pub type TokenProvider = Arc<dyn Fn() -> TokenFuture + Send + Sync>;

/// How the subscriber reconnects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// The delay before the first reconnection attempt (before jitter).
    pub initial_delay: Duration,
    /// The longest delay between attempts.
    pub max_delay: Duration,
    /// Failed attempts in a row after which the subscriber gives up; a successful
    /// connection resets the count.
    pub max_attempts: u32,
    /// The longest connecting, handshake and `connected` frame included, may take.
    pub connect_timeout: Duration,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            initial_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(15),
            max_attempts: 40,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Disconnect {
    /// The server closed the socket with a close code of the protocol.
    #[error("closed by the server with {} ({code:?}): {reason}", code.code())]
    Closed {
        /// The close code.
        code: CloseCode,
        /// The close reason.
        reason: String,
    },
    /// The socket closed without a code of the protocol (e.g. 1006 when the server vanished).
    #[error("connection closed (code {code:?}): {reason}")]
    Dropped {
        /// The close code, if a close frame arrived.
        code: Option<u16>,
        /// The close reason, or what failed.
        reason: String,
    },
    /// Nothing arrived from the server within its heartbeat timeout.
    #[error("the server sent nothing for {0:?}")]
    HeartbeatTimeout(Duration),
    /// The server refused the WebSocket handshake with this HTTP status.
    #[error("the gateway refused the connection with HTTP {status}")]
    Refused {
        /// The HTTP status of the refusal (401 for a bad token).
        status: u16,
    },
    /// Connecting failed before any answer (refused, reset, timed out).
    #[error("could not connect: {0}")]
    Unreachable(String),
    /// The token provider failed.
    #[error("could not get a fresh token: {0}")]
    TokenUnavailable(String),
    /// The subscriber was closed by its owner.
    #[error("closed by the client")]
    ClosedByClient,
}

/// One item of the subscriber's stream.
#[derive(Debug, Clone, PartialEq)]
pub enum SubscriberEvent {
    /// A frame from the server; each connection starts with `connected`. Heartbeat
    /// `pong`s are not passed on.
    Frame(ServerFrame),
    /// The connection ended; the subscriber connects again after `retry_in`.
    Reconnecting {
        /// Why the connection ended.
        reason: Disconnect,
        /// Failed attempts in a row so far (1 for the first).
        attempt: u32,
        /// The wait before the next attempt.
        retry_in: Duration,
    },
    /// The subscriber stopped for good; the stream ends after this event.
    Stopped {
        /// Why.
        reason: Disconnect,
    },
}

/// A failure to open the first connection.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    /// Neither a token nor a token provider was given.
    #[error("a token or a token provider is needed to connect")]
    NoToken,
    /// Getting the first token failed.
    #[error("could not issue a token")]
    Token(#[source] ClientError),
    /// The first connection failed.
    #[error("could not connect to the gateway: {0}")]
    Connect(Disconnect),
}

/// Settings of a [`Subscriber`]; start with [`Subscriber::builder`].
#[derive(Default)]
pub struct SubscriberBuilder {
    token: Option<RealtimeToken>,
    provider: Option<TokenProvider>,
    channels: BTreeSet<String>,
    reconnect: ReconnectPolicy,
    buffer: Option<usize>,
}

impl std::fmt::Debug for SubscriberBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscriberBuilder")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("provider", &self.provider.is_some())
            .field("channels", &self.channels)
            .field("reconnect", &self.reconnect)
            .finish()
    }
}

impl SubscriberBuilder {
    /// The token for the first connection (and later ones, until it is refused).
    pub fn token(mut self, token: RealtimeToken) -> Self {
        self.token = Some(token);
        self
    }

    /// Where fresh tokens come from: called for the first connection when no token was
    /// given, and whenever the server refuses the current token (expired, revoked).
    pub fn token_provider<F, Fut>(mut self, provider: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<RealtimeToken, ClientError>> + Send + 'static,
    {
        self.provider = Some(Arc::new(move || Box::pin(provider()) as TokenFuture));
        self
    }

    /// Fresh tokens from `realtime.token.issue` through `client`, with `request` (each
    /// issue gets its own idempotency key, so it is a new token, and is billed).
    pub fn issue_tokens_with(self, client: Client, mut request: TokenIssueRequest) -> Self {
        request.idempotency_key = None;
        self.token_provider(move || {
            let client = client.clone();
            let request = request.clone();
            async move { client.token_issue(request).await }
        })
    }

    /// A channel to subscribe to as soon as the connection is open.
    pub fn channel(mut self, channel: impl Into<String>) -> Self {
        self.channels.insert(channel.into());
        self
    }

    /// How to reconnect (default [`ReconnectPolicy::default`]).
    pub fn reconnect(mut self, policy: ReconnectPolicy) -> Self {
        self.reconnect = policy;
        self
    }

    /// How many events may wait for the reader (default 1024). When the reader falls
    /// behind, the subscriber stops reading the socket and the server eventually cuts
    /// it as a slow consumer (then it reconnects).
    pub fn buffer(mut self, events: usize) -> Self {
        self.buffer = Some(events.max(1));
        self
    }

    /// Opens the first connection (an error when that fails), then keeps it up in a
    /// background task until the [`Subscriber`] is closed or dropped.
    pub async fn connect(self) -> Result<Subscriber, SubscribeError> {
        let token = match (self.token, &self.provider) {
            (Some(token), _) => token,
            (None, Some(provider)) => provider().await.map_err(SubscribeError::Token)?,
            (None, None) => return Err(SubscribeError::NoToken),
        };
        let (socket, connected) =
            session::open(&token, self.reconnect.connect_timeout).await.map_err(SubscribeError::Connect)?;
        let (commands_tx, commands_rx) = mpsc::channel(64);
        let (events_tx, events_rx) = mpsc::channel(self.buffer.unwrap_or(1024));
        let task = session::Task {
            token,
            provider: self.provider,
            channels: session::Channels::new(self.channels),
            policy: self.reconnect,
            commands: commands_rx,
            events: events_tx,
        };
        tokio::spawn(task.run(socket, connected));
        Ok(Subscriber { commands: commands_tx, events: events_rx })
    }
}

/// What the owner asks the connection task to do.
#[derive(Debug)]
pub(crate) enum Command {
    Send(ClientFrame),
    Close,
}

/// A live, self-healing subscription to the gateway; read it as a [`Stream`].
///
/// Dropping it closes the connection.
#[derive(Debug)]
pub struct Subscriber {
    commands: mpsc::Sender<Command>,
    events: mpsc::Receiver<SubscriberEvent>,
}

/// The subscriber has stopped; nothing can be sent any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the subscriber has stopped")]
pub struct SubscriberStopped;

impl Subscriber {
    /// Starts building a subscriber.
    pub fn builder() -> SubscriberBuilder {
        SubscriberBuilder::default()
    }

    /// Subscribes to a channel now and after every reconnection; the server answers
    /// with `subscribed` (or an `error` frame naming the channel). After a reconnection
    /// the subscription resumes from the last message received: the server replays what
    /// was missed, or says `recovered: false` (the frame is passed on; reload the
    /// channel's state then).
    pub async fn subscribe(&self, channel: impl Into<String>) -> Result<(), SubscriberStopped> {
        self.send(ClientFrame::Subscribe { channel: channel.into(), since: None }).await
    }

    /// Subscribes to a channel from `since`, the position of the last message the caller
    /// has seen (kept from an earlier session, say): the server first replays what came
    /// after it.
    pub async fn subscribe_since(
        &self,
        channel: impl Into<String>,
        since: realtime_types::Position,
    ) -> Result<(), SubscriberStopped> {
        self.send(ClientFrame::Subscribe { channel: channel.into(), since: Some(since) }).await
    }

    /// Stops receiving a channel, now and after reconnections.
    pub async fn unsubscribe(&self, channel: impl Into<String>) -> Result<(), SubscriberStopped> {
        self.send(ClientFrame::Unsubscribe { channel: channel.into() }).await
    }

    /// Publishes over the socket (the token needs `publish`); the server answers with
    /// `published` or `error`, echoing `request_id`. Not retried across reconnections.
    pub async fn publish(
        &self,
        channel: impl Into<String>,
        event: impl Into<String>,
        data: serde_json::Value,
        request_id: Option<String>,
    ) -> Result<(), SubscriberStopped> {
        self.send(ClientFrame::Publish { channel: channel.into(), event: event.into(), data, request_id }).await
    }

    /// Acknowledges a reliable `user.message` (and every earlier one of the user): it is
    /// not delivered again, to any of the user's connections.
    pub async fn ack(&self, message_id: impl Into<String>) -> Result<(), SubscriberStopped> {
        self.send(ClientFrame::Ack { message_id: message_id.into() }).await
    }

    /// Answers a `user.command`; the first response of any of the user's connections wins.
    pub async fn respond(
        &self,
        command_id: impl Into<String>,
        data: serde_json::Value,
    ) -> Result<(), SubscriberStopped> {
        self.send(ClientFrame::CommandResponse { command_id: command_id.into(), data }).await
    }

    async fn send(&self, frame: ClientFrame) -> Result<(), SubscriberStopped> {
        self.commands.send(Command::Send(frame)).await.map_err(|_| SubscriberStopped)
    }

    /// Closes the connection normally; the stream then ends with
    /// [`SubscriberEvent::Stopped`].
    pub async fn close(&self) {
        // An error means the task has already stopped, which is what was asked.
        let _ = self.commands.send(Command::Close).await;
    }

    /// The next event; `None` once the subscriber has stopped and every event was read.
    pub async fn next_event(&mut self) -> Option<SubscriberEvent> {
        self.events.recv().await
    }
}

impl Stream for Subscriber {
    type Item = SubscriberEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<SubscriberEvent>> {
        self.events.poll_recv(cx)
    }
}
