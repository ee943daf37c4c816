//! The background task of a [`Subscriber`](super::Subscriber): one connection at a time,
//! heartbeats, and the decision to reconnect or stop.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use realtime_types::ErrorCode;
use realtime_types::ws::{ClientFrame, CloseCode, ServerFrame, UnsubscribeReason};
use realtime_types::{Position, RealtimeToken};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as WsCloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{Command, Disconnect, ReconnectPolicy, SubscriberEvent, TokenProvider};
use crate::retry::backoff;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The heartbeat settings a `connected` frame announces.
#[derive(Debug, Clone, Copy)]
pub(super) struct Heartbeat {
    interval: Duration,
    timeout: Duration,
}

/// Connects with `token` and waits for the `connected` frame.
pub(super) async fn open(token: &RealtimeToken, timeout: Duration) -> Result<(Socket, ServerFrame), Disconnect> {
    let url = endpoint_url(&token.endpoint, &token.token)?;
    let attempt = async {
        let (mut socket, _response) = tokio_tungstenite::connect_async(url.as_str()).await.map_err(handshake_error)?;
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => {
                    let frame: ServerFrame = serde_json::from_str(text.as_str()).map_err(|error| {
                        Disconnect::Dropped { code: None, reason: format!("bad first frame: {error}") }
                    })?;
                    return match frame {
                        ServerFrame::Connected { .. } => Ok((socket, frame)),
                        other => Err(Disconnect::Dropped {
                            code: None,
                            reason: format!("expected a `connected` frame first, got `{}`", event_name(&other)),
                        }),
                    };
                }
                Some(Ok(Message::Close(frame))) => return Err(closed(frame, None)),
                Some(Ok(_)) => continue,
                Some(Err(error)) => return Err(Disconnect::Unreachable(error.to_string())),
                None => return Err(Disconnect::Dropped { code: None, reason: "closed before `connected`".into() }),
            }
        }
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| Err(Disconnect::Unreachable(format!("no `connected` frame within {timeout:?}"))))
}

/// `endpoint?token=…` (or `&token=` when the endpoint has a query already).
fn endpoint_url(endpoint: &str, token: &str) -> Result<String, Disconnect> {
    let mut url = reqwest::Url::parse(endpoint)
        .map_err(|error| Disconnect::Unreachable(format!("the token's endpoint `{endpoint}` is not a URL: {error}")))?;
    if !matches!(url.scheme(), "ws" | "wss") {
        return Err(Disconnect::Unreachable(format!("the token's endpoint `{endpoint}` is not a ws:// URL")));
    }
    url.query_pairs_mut().append_pair("token", token);
    Ok(url.into())
}

fn handshake_error(error: tungstenite::Error) -> Disconnect {
    match error {
        tungstenite::Error::Http(response) => Disconnect::Refused { status: response.status().as_u16() },
        other => Disconnect::Unreachable(other.to_string()),
    }
}

/// The reason of a close frame, with the code of a `disconnecting` frame as fallback.
fn closed(frame: Option<CloseFrame>, announced: Option<CloseCode>) -> Disconnect {
    let (raw, reason) = match frame {
        Some(frame) => (Some(u16::from(frame.code)), frame.reason.as_str().to_owned()),
        None => (None, String::new()),
    };
    let code = raw.and_then(|raw| CloseCode::try_from(raw).ok()).or(announced);
    match code {
        Some(code) => Disconnect::Closed { code, reason },
        None => Disconnect::Dropped { code: raw, reason },
    }
}

fn event_name(frame: &ServerFrame) -> String {
    serde_json::to_value(frame.event_type()).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// What to do after a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    /// Connect again with the same token, after a backoff (or at once).
    Reconnect { immediately: bool },
    /// Get a fresh token from the provider, then connect.
    RefreshToken,
    /// Stop for good.
    Stop,
}

/// The reconnection rule: token problems need a fresh token (stop when there is no
/// provider); close codes that say "do not reconnect" stop; everything else reconnects.
pub(super) fn next_step(reason: &Disconnect, has_provider: bool) -> Next {
    let refresh = if has_provider { Next::RefreshToken } else { Next::Stop };
    match reason {
        Disconnect::Closed { code, .. } => match code {
            CloseCode::TokenInvalid | CloseCode::TokenExpired | CloseCode::TokenRevoked => refresh,
            CloseCode::DisconnectedByServer | CloseCode::ProtocolError | CloseCode::ConnectionLimit => Next::Stop,
            CloseCode::SlowConsumer | CloseCode::TryAgainLater => Next::Reconnect { immediately: false },
            CloseCode::ServerShutdown | CloseCode::HeartbeatTimeout => Next::Reconnect { immediately: true },
        },
        Disconnect::Refused { status: 401 | 403 } => refresh,
        Disconnect::Refused { .. }
        | Disconnect::Dropped { .. }
        | Disconnect::HeartbeatTimeout(_)
        | Disconnect::Unreachable(_)
        | Disconnect::TokenUnavailable(_) => Next::Reconnect { immediately: false },
        Disconnect::ClosedByClient => Next::Stop,
    }
}

/// The channels a subscriber wants, kept in step with what its owner asks for and what
/// the server says, so that a reconnection subscribes to exactly the right ones, each
/// from the position of the last message it received.
#[derive(Debug, Default)]
pub(super) struct Channels {
    /// Subscribed to after every (re)connection, with the last position seen.
    wanted: BTreeMap<String, Option<Position>>,
    /// Asked for on this connection and not yet confirmed.
    pending: BTreeSet<String>,
}

impl Channels {
    pub(super) fn new(wanted: BTreeSet<String>) -> Self {
        Channels { wanted: wanted.into_iter().map(|channel| (channel, None)).collect(), pending: BTreeSet::new() }
    }

    /// The owner sent a frame.
    fn asked(&mut self, frame: &ClientFrame) {
        match frame {
            ClientFrame::Subscribe { channel, since } => {
                self.wanted.insert(channel.clone(), since.clone());
                self.pending.insert(channel.clone());
            }
            ClientFrame::Unsubscribe { channel } => {
                self.wanted.remove(channel);
                self.pending.remove(channel);
            }
            ClientFrame::Publish { .. }
            | ClientFrame::Ping {}
            | ClientFrame::Ack { .. }
            | ClientFrame::SendUserMessage { .. }
            | ClientFrame::SendUserCommand { .. }
            | ClientFrame::CommandResponse { .. } => {}
        }
    }

    /// A new connection is open: every wanted channel is asked for again, from the last
    /// position seen on it.
    fn resubscribing(&mut self) -> Vec<ClientFrame> {
        self.pending = self.wanted.keys().cloned().collect();
        self.wanted
            .iter()
            .map(|(channel, since)| ClientFrame::Subscribe { channel: channel.clone(), since: since.clone() })
            .collect()
    }

    /// The server sent a frame: a deleted channel, a server-side unsubscribe, or a
    /// refused subscription is not subscribed to again.
    fn observed(&mut self, frame: &ServerFrame) {
        match frame {
            ServerFrame::Subscribed { channel, position, .. } => {
                self.pending.remove(channel);
                // Recovered or not, the subscription goes on from `position`.
                if let Some(since) = self.wanted.get_mut(channel) {
                    *since = Some(position.clone());
                }
            }
            ServerFrame::Message { channel, epoch, offset, .. } => {
                if let Some(since) = self.wanted.get_mut(channel) {
                    *since = Some(Position { epoch: epoch.clone(), offset: *offset });
                }
            }
            ServerFrame::Unsubscribed { channel, reason } => match reason {
                UnsubscribeReason::ChannelDeleted | UnsubscribeReason::DisconnectedByServer => {
                    self.wanted.remove(channel);
                }
                UnsubscribeReason::Requested => {}
            },
            ServerFrame::Error { code: ErrorCode::NotFound | ErrorCode::Forbidden, channel: Some(channel), .. }
                if self.pending.remove(channel) =>
            {
                self.wanted.remove(channel);
            }
            // Any other refusal (an unavailable store, say) is not final: the channel stays
            // wanted and is asked for again on the next connection.
            ServerFrame::Error { channel: Some(channel), .. } => {
                self.pending.remove(channel);
            }
            ServerFrame::Error { channel: None, .. }
            | ServerFrame::Connected { .. }
            | ServerFrame::PresenceJoin { .. }
            | ServerFrame::PresenceLeave { .. }
            | ServerFrame::Published { .. }
            | ServerFrame::Pong {}
            | ServerFrame::UserMessage { .. }
            | ServerFrame::UserCommand { .. }
            | ServerFrame::UserMessageSent { .. }
            | ServerFrame::UserCommandDone { .. }
            | ServerFrame::Disconnecting { .. } => {}
        }
    }
}

/// After this many failed connection attempts in a row the token is renewed before the
/// next one (when there is a provider): its `endpoint` may have moved.
const RENEW_AFTER_FAILURES: u32 = 3;

/// Everything the background task owns.
pub(super) struct Task {
    pub(super) token: RealtimeToken,
    pub(super) provider: Option<TokenProvider>,
    /// The channels to be subscribed to after every (re)connection.
    pub(super) channels: Channels,
    pub(super) policy: ReconnectPolicy,
    pub(super) commands: mpsc::Receiver<Command>,
    pub(super) events: mpsc::Sender<SubscriberEvent>,
}

/// How a connection ended, from the task's point of view.
enum Ended {
    /// The owner closed or dropped the subscriber.
    ByOwner,
    /// The connection ended; decide whether to reconnect.
    Lost(Disconnect),
}

impl Task {
    /// Runs connections until the owner closes, a close code says stop, or the attempts
    /// run out. The loop is bounded by `policy.max_attempts` failures in a row.
    pub(super) async fn run(mut self, socket: Socket, connected: ServerFrame) {
        let mut current = Some((socket, connected));
        let mut failures: u32 = 0;
        let mut renew = false;
        let reason = loop {
            let reason = match current.take() {
                Some((socket, connected)) => {
                    failures = 0;
                    match self.session(socket, connected).await {
                        Ended::ByOwner => break Disconnect::ClosedByClient,
                        Ended::Lost(reason) => reason,
                    }
                }
                None => match self.reconnect(renew).await {
                    Ok(open) => {
                        current = Some(open);
                        renew = false;
                        continue;
                    }
                    Err(reason) => {
                        failures += 1;
                        reason
                    }
                },
            };
            tracing::debug!(%reason, failures, "subscriber connection ended");
            let (immediately, fresh_token) = match next_step(&reason, self.provider.is_some()) {
                Next::Stop => break reason,
                Next::Reconnect { immediately } => (immediately && failures == 0, false),
                Next::RefreshToken => (failures == 0, true),
            };
            renew = fresh_token || (self.provider.is_some() && failures >= RENEW_AFTER_FAILURES);
            if failures >= self.policy.max_attempts {
                break reason;
            }
            let retry_in = if immediately {
                Duration::ZERO
            } else {
                backoff(self.policy.initial_delay, self.policy.max_delay, failures)
            };
            let event = SubscriberEvent::Reconnecting { reason, attempt: failures + 1, retry_in };
            if self.events.send(event).await.is_err() || !self.wait(retry_in).await {
                break Disconnect::ClosedByClient;
            }
        };
        // The owner may be gone already; then nobody needs to know.
        let _ = self.events.send(SubscriberEvent::Stopped { reason }).await;
    }

    /// One reconnection attempt, renewing the token first when asked to or when it
    /// has expired.
    async fn reconnect(&mut self, renew: bool) -> Result<(Socket, ServerFrame), Disconnect> {
        let expired = self.token.expires_at <= chrono::Utc::now() + chrono::Duration::seconds(5);
        if let Some(provider) = &self.provider
            && (renew || expired)
        {
            self.token = provider().await.map_err(|error| Disconnect::TokenUnavailable(error.to_string()))?;
        }
        open(&self.token, self.policy.connect_timeout).await
    }

    /// Waits `delay` while still taking commands: subscriptions asked for meanwhile are
    /// remembered. False when the owner closed the subscriber.
    async fn wait(&mut self, delay: Duration) -> bool {
        let deadline = tokio::time::sleep(delay);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                () = &mut deadline => return true,
                command = self.commands.recv() => match command {
                    Some(Command::Send(frame)) => self.channels.asked(&frame),
                    Some(Command::Close) | None => return false,
                },
            }
        }
    }

    /// One live connection: subscribe to every wanted channel, then relay frames both
    /// ways and send heartbeats until it ends.
    async fn session(&mut self, socket: Socket, connected: ServerFrame) -> Ended {
        let heartbeat = match &connected {
            ServerFrame::Connected { heartbeat_interval_seconds, heartbeat_timeout_seconds, .. } => Heartbeat {
                interval: Duration::from_secs(u64::from((*heartbeat_interval_seconds).max(1))),
                timeout: Duration::from_secs(u64::from((*heartbeat_timeout_seconds).max(2))),
            },
            ServerFrame::Subscribed { .. }
            | ServerFrame::Unsubscribed { .. }
            | ServerFrame::Message { .. }
            | ServerFrame::PresenceJoin { .. }
            | ServerFrame::PresenceLeave { .. }
            | ServerFrame::Published { .. }
            | ServerFrame::Error { .. }
            | ServerFrame::Pong {}
            | ServerFrame::UserMessage { .. }
            | ServerFrame::UserCommand { .. }
            | ServerFrame::UserMessageSent { .. }
            | ServerFrame::UserCommandDone { .. }
            | ServerFrame::Disconnecting { .. } => {
                Heartbeat { interval: Duration::from_secs(25), timeout: Duration::from_secs(60) }
            }
        };
        if self.events.send(SubscriberEvent::Frame(connected)).await.is_err() {
            return Ended::ByOwner;
        }
        let (mut sink, mut stream) = socket.split();
        for subscribe in self.channels.resubscribing() {
            if let Err(error) = sink.send(text(&subscribe)).await {
                return Ended::Lost(Disconnect::Unreachable(error.to_string()));
            }
        }
        // Pinging a little more often than asked leaves room for a slow network.
        let mut ping = tokio::time::interval(heartbeat.interval.mul_f64(0.75).max(Duration::from_millis(500)));
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.reset();
        let mut last_heard = Instant::now();
        let mut announced: Option<CloseCode> = None;
        loop {
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(Command::Send(frame)) => {
                        self.channels.asked(&frame);
                        if let Err(error) = sink.send(text(&frame)).await {
                            return Ended::Lost(Disconnect::Unreachable(error.to_string()));
                        }
                    }
                    Some(Command::Close) | None => {
                        let close = CloseFrame { code: WsCloseCode::Normal, reason: "client closed".into() };
                        // A failure here means the socket is gone already, which is the goal.
                        let _ = sink.send(Message::Close(Some(close))).await;
                        return Ended::ByOwner;
                    }
                },
                message = stream.next() => {
                    last_heard = Instant::now();
                    match message {
                        Some(Ok(Message::Text(text))) => {
                            let frame = match serde_json::from_str::<ServerFrame>(text.as_str()) {
                                Ok(frame) => frame,
                                Err(error) => {
                                    tracing::warn!(%error, "ignoring a frame this client does not understand");
                                    continue;
                                }
                            };
                            self.channels.observed(&frame);
                            match frame {
                                ServerFrame::Pong {} => continue,
                                ServerFrame::Disconnecting { code, .. } => announced = Some(code),
                                ServerFrame::Connected { .. }
                                | ServerFrame::Subscribed { .. }
                                | ServerFrame::Unsubscribed { .. }
                                | ServerFrame::Message { .. }
                                | ServerFrame::PresenceJoin { .. }
                                | ServerFrame::PresenceLeave { .. }
                                | ServerFrame::Published { .. }
                                | ServerFrame::UserMessage { .. }
                                | ServerFrame::UserCommand { .. }
                                | ServerFrame::UserMessageSent { .. }
                                | ServerFrame::UserCommandDone { .. }
                                | ServerFrame::Error { .. } => {}
                            }
                            if self.events.send(SubscriberEvent::Frame(frame)).await.is_err() {
                                return Ended::ByOwner;
                            }
                        }
                        Some(Ok(Message::Close(frame))) => return Ended::Lost(closed(frame, announced)),
                        Some(Ok(_)) => {}
                        Some(Err(error)) => {
                            return Ended::Lost(match announced {
                                Some(code) => Disconnect::Closed { code, reason: error.to_string() },
                                None => Disconnect::Dropped { code: None, reason: error.to_string() },
                            });
                        }
                        None => return Ended::Lost(closed(None, announced)),
                    }
                }
                _ = ping.tick() => {
                    if last_heard.elapsed() > heartbeat.timeout {
                        return Ended::Lost(Disconnect::HeartbeatTimeout(heartbeat.timeout));
                    }
                    if let Err(error) = sink.send(text(&ClientFrame::Ping {})).await {
                        return Ended::Lost(Disconnect::Unreachable(error.to_string()));
                    }
                }
            }
        }
    }
}

fn text(frame: &ClientFrame) -> Message {
    Message::text(serde_json::to_string(frame).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn closed_with(code: CloseCode) -> Disconnect {
        Disconnect::Closed { code, reason: String::new() }
    }

    #[test]
    fn token_close_codes_renew_the_token_when_a_provider_is_set() {
        for code in [CloseCode::TokenInvalid, CloseCode::TokenExpired, CloseCode::TokenRevoked] {
            assert_eq!(next_step(&closed_with(code), true), Next::RefreshToken);
            assert_eq!(next_step(&closed_with(code), false), Next::Stop);
        }
        assert_eq!(next_step(&Disconnect::Refused { status: 401 }, true), Next::RefreshToken);
    }

    #[test]
    fn close_codes_that_forbid_reconnecting_stop_even_with_a_provider() {
        for code in [CloseCode::DisconnectedByServer, CloseCode::ProtocolError, CloseCode::ConnectionLimit] {
            assert!(!code.may_reconnect());
            assert_eq!(next_step(&closed_with(code), true), Next::Stop);
        }
    }

    #[test]
    fn every_close_code_that_allows_reconnecting_reconnects() {
        for code in CloseCode::ALL.into_iter().filter(|code| code.may_reconnect()) {
            assert!(matches!(next_step(&closed_with(code), false), Next::Reconnect { .. }), "{code:?}");
        }
        assert_eq!(next_step(&closed_with(CloseCode::ServerShutdown), false), Next::Reconnect { immediately: true });
    }

    #[test]
    fn lost_connections_reconnect_after_a_backoff() {
        let lost = Disconnect::Dropped { code: Some(1006), reason: String::new() };
        assert_eq!(next_step(&lost, false), Next::Reconnect { immediately: false });
        assert_eq!(
            next_step(&Disconnect::Unreachable("refused".into()), false),
            Next::Reconnect { immediately: false }
        );
    }

    fn channels(names: &[&str]) -> Channels {
        Channels::new(names.iter().map(|name| (*name).to_owned()).collect())
    }

    #[test]
    fn every_wanted_channel_is_subscribed_again_after_a_reconnection() {
        let mut wanted = channels(&["a"]);
        wanted.asked(&ClientFrame::Subscribe { channel: "b".into(), since: None });
        wanted.asked(&ClientFrame::Subscribe { channel: "c".into(), since: None });
        wanted.asked(&ClientFrame::Unsubscribe { channel: "c".into() });
        let at = |offset| Some(Position { epoch: "e".into(), offset });
        wanted.observed(&ServerFrame::Subscribed {
            channel: "b".into(),
            members: vec![],
            position: at(4).unwrap(),
            recovered: None,
            recovery_failure: None,
        });
        wanted.observed(&ServerFrame::Message {
            channel: "b".into(),
            message_id: "m".into(),
            epoch: "e".into(),
            offset: 5,
            event: "e".into(),
            data: serde_json::Value::Null,
            published_at: chrono::Utc::now(),
        });
        let again = wanted.resubscribing();
        assert_eq!(
            again,
            [
                ClientFrame::Subscribe { channel: "a".into(), since: None },
                ClientFrame::Subscribe { channel: "b".into(), since: at(5) }
            ],
            "each from the last message it received"
        );
    }

    #[test]
    fn channels_the_server_ended_or_refused_are_not_subscribed_again() {
        let mut wanted = channels(&["deleted", "kicked", "missing", "fine", "erred-later"]);
        wanted.resubscribing();
        for channel in ["fine", "erred-later"] {
            wanted.observed(&ServerFrame::Subscribed {
                channel: channel.into(),
                members: vec![],
                position: Position { epoch: "e".into(), offset: 0 },
                recovered: None,
                recovery_failure: None,
            });
        }
        wanted.observed(&ServerFrame::Unsubscribed {
            channel: "deleted".into(),
            reason: UnsubscribeReason::ChannelDeleted,
        });
        wanted.observed(&ServerFrame::Unsubscribed {
            channel: "kicked".into(),
            reason: UnsubscribeReason::DisconnectedByServer,
        });
        let refusal = |channel: &str| ServerFrame::Error {
            code: ErrorCode::NotFound,
            message: String::new(),
            channel: Some(channel.into()),
            request_id: None,
        };
        wanted.observed(&refusal("missing"));
        // An error about a channel that is already subscribed (say, a failed publish)
        // does not drop the subscription.
        wanted.observed(&refusal("erred-later"));
        let again: Vec<String> = wanted
            .resubscribing()
            .into_iter()
            .map(|frame| match frame {
                ClientFrame::Subscribe { channel, .. } => channel,
                ClientFrame::Unsubscribe { .. }
                | ClientFrame::Publish { .. }
                | ClientFrame::Ping {}
                | ClientFrame::Ack { .. }
                | ClientFrame::SendUserMessage { .. }
                | ClientFrame::SendUserCommand { .. }
                | ClientFrame::CommandResponse { .. } => String::new(),
            })
            .collect();
        assert_eq!(again, ["erred-later", "fine"]);
    }

    #[test]
    fn the_token_goes_in_the_query_of_the_endpoint() {
        assert_eq!(
            endpoint_url("ws://127.0.0.1:1/v1/realtime/ws", "a.b+c").unwrap(),
            "ws://127.0.0.1:1/v1/realtime/ws?token=a.b%2Bc"
        );
        assert_eq!(endpoint_url("ws://h/ws?x=1", "t").unwrap(), "ws://h/ws?x=1&token=t");
        assert!(endpoint_url("http://h/ws", "t").is_err());
    }
}
