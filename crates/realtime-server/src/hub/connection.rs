//! [`Connection`]: one live socket as the hub sees it, of either protocol, with its
//! bounded outbound queue, its subscriptions, its presence and how it is asked to close;
//! and [`Frames`], a frame encoded once per protocol.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use std::future::Future;
use std::task::Poll;

use axum::extract::ws::Utf8Bytes;
use realtime_types::ws::{CloseCode, ServerFrame};

use super::encode;
use super::outbox::{Outbox, Refused};

/// The protocol a connection speaks, which decides the encoding of what it is sent.
#[derive(Debug)]
pub enum Protocol {
    /// This server's own protocol (`/v1/realtime/ws`).
    Native,
    /// Pusher's protocol 7 (`/app/{key}`); boxed, so that a native connection does not
    /// carry its space.
    Pusher(Box<PusherSocket>),
}

/// What a Pusher socket is beyond a connection.
#[derive(Debug)]
pub struct PusherSocket {
    /// The socket id the client was given, `N.N`, unique in the cluster.
    pub socket_id: String,
    /// The user the socket signed in as (`pusher:signin`), if it did.
    pub user: Mutex<Option<String>>,
}

/// Tells a connection's reader, which runs in the same task as its writer, to stop
/// before it reads again. A flag, not a cancellation token: the task polls the reader
/// right after setting it, so nothing needs waking. And the reader is polled on every
/// wake of the task, each frame the writer sends included: a token's wait takes a lock
/// on each poll, this one load.
#[derive(Debug, Default)]
pub struct StopReading(AtomicBool);

impl StopReading {
    /// Asks the reader to stop.
    pub fn stop(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Ready once [`StopReading::stop`] was called; polled, never woken.
    pub fn stopped(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(|_| match self.0.load(Ordering::Acquire) {
            true => Poll::Ready(()),
            false => Poll::Pending,
        })
    }
}

/// Why a connection's task must end.
#[derive(Debug, Clone, PartialEq)]
pub enum Closing {
    /// Close the socket with this code and reason.
    With(CloseCode, String),
    /// Drop the socket without a word, as a crash would: the node was killed.
    Vanish,
}

/// A frame of the fan-out, serialised once per protocol (not once per subscriber), and
/// who must not receive it.
#[derive(Debug, Clone, PartialEq)]
pub struct Frames {
    /// For sockets of this server's own protocol.
    pub native: Utf8Bytes,
    /// For Pusher sockets; `None` when the frame means nothing to them.
    pub pusher: Option<Utf8Bytes>,
    /// The Pusher socket id that must not receive it: a trigger's `socket_id`, or the
    /// sender of a client event.
    pub except: Option<Arc<str>>,
}

impl Frames {
    /// A frame for sockets of this server's own protocol only.
    pub fn native(frame: Utf8Bytes) -> Frames {
        Frames { native: frame, pusher: None, except: None }
    }

    /// `frame` for every protocol; `user_id` names the sender of a client event for
    /// Pusher sockets, and `except` the socket that must not receive it.
    pub fn of(frame: &ServerFrame, user_id: Option<&str>, except: Option<&str>) -> Frames {
        Frames {
            native: encode(frame),
            pusher: realtime_types::pusher::event_of(frame, user_id).map(|event| Utf8Bytes::from(event.to_json())),
            except: except.map(Arc::from),
        }
    }
}

/// One live WebSocket connection, as the rest of the server sees it.
#[derive(Debug)]
pub struct Connection {
    /// Unique on this node.
    pub id: u64,
    /// The token's account.
    pub account_id: String,
    /// The token's client id.
    pub client_id: String,
    /// The token's user id.
    pub user_id: Option<String>,
    /// The token's id.
    pub jti: String,
    /// The protocol it speaks.
    pub protocol: Protocol,
    /// Its frames on their way to the socket, and how it must end once asked.
    outbox: Outbox,
    pub(super) subscriptions: Mutex<HashSet<String>>,
    /// The channels whose presence it counts in, as which member.
    present: Mutex<HashMap<String, realtime_types::PresenceMember>>,
    /// Frames meant for it that it will never get (see [`Connection::retire`]).
    dropped: AtomicU64,
}

impl Connection {
    /// A connection that queues at most `queue` frames for its socket.
    pub fn new(account_id: String, client_id: String, user_id: Option<String>, jti: String, queue: usize) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Connection {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            account_id,
            client_id,
            user_id,
            jti,
            protocol: Protocol::Native,
            outbox: Outbox::new(queue),
            subscriptions: Mutex::new(HashSet::new()),
            present: Mutex::new(HashMap::new()),
            dropped: AtomicU64::new(0),
        }
    }

    /// A Pusher socket of `account_id` that queues at most `queue` frames. It has no
    /// token: its client id is its socket id, and so is its "token id" here; the Pusher
    /// session gives it its app's credential id instead (`pusher::apps::credential_id`),
    /// which deleting the app revokes.
    pub fn pusher(account_id: String, socket_id: String, queue: usize) -> Self {
        let mut connection = Connection::new(account_id, socket_id.clone(), None, socket_id.clone(), queue);
        connection.protocol = Protocol::Pusher(Box::new(PusherSocket { socket_id, user: Mutex::new(None) }));
        connection
    }

    /// Queues the encoding of `frames` for this connection's protocol, unless it is the
    /// excluded socket or the frame means nothing to its protocol; false when not queued.
    pub fn deliver(&self, frames: &Frames) -> bool {
        self.encoding(frames).is_some_and(|frame| self.send(frame))
    }

    /// What this connection receives of `frames`, if anything: its protocol's encoding,
    /// unless it is the excluded socket.
    pub fn encoding(&self, frames: &Frames) -> Option<Utf8Bytes> {
        match &self.protocol {
            Protocol::Native => Some(frames.native.clone()),
            Protocol::Pusher(socket) => match &frames.pusher {
                Some(_) if frames.except.as_deref() == Some(socket.socket_id.as_str()) => None,
                Some(frame) => Some(frame.clone()),
                None => None,
            },
        }
    }

    /// Whether this is a Pusher socket signed in as `user_id`.
    pub fn is_signed_in_as(&self, user_id: &str) -> bool {
        match &self.protocol {
            Protocol::Native => false,
            Protocol::Pusher(socket) => socket.user.lock().expect("user lock").as_deref() == Some(user_id),
        }
    }

    /// Queues a frame, waiting while the queue is full (for frames a client asked for in
    /// bulk, such as a recovery); false when the connection closes first.
    pub async fn send_waiting(&self, frame: Utf8Bytes) -> bool {
        self.outbox.push_waiting(frame).await
    }

    /// Queues a frame; a full queue cuts the connection as a slow consumer.
    pub fn send(&self, frame: Utf8Bytes) -> bool {
        match self.outbox.push(frame) {
            Ok(()) => true,
            Err(refused) => {
                if refused == Refused::Full {
                    self.close(CloseCode::SlowConsumer, "the client did not read its frames fast enough");
                }
                self.note_dropped(1);
                false
            }
        }
    }

    pub(super) fn note_dropped(&self, frames: usize) {
        self.dropped.fetch_add(frames as u64, Ordering::Relaxed);
    }

    /// The writer's wait: the next frame to send, or how the connection must end (a close
    /// request wins over queued frames). Only the connection's writer may wait this way.
    pub fn next_frame(&self) -> impl Future<Output = Result<Utf8Bytes, Closing>> + '_ {
        std::future::poll_fn(|context| self.outbox.poll_next(context))
    }

    /// A frame queued already, if any: the rest of a burst goes out in the same write.
    pub fn queued_frame(&self) -> Option<Utf8Bytes> {
        self.outbox.try_next()
    }

    /// The writer's wait for a close request while it writes (a client that stops reading
    /// blocks the write, and a slow consumer's cut or a revocation must still win).
    pub fn writer_closed(&self) -> impl Future<Output = Closing> + '_ {
        std::future::poll_fn(|context| self.outbox.poll_close(context))
    }

    /// Refuses frames from now on, its socket being closed, and says how many frames meant
    /// for it it never got, and why: those its queue refused or that were held for its
    /// recovery, and those left queued.
    pub fn retire(&self) -> (&'static str, u64) {
        let (close, queued) = self.outbox.shut();
        let reason = match close {
            Some(Closing::With(CloseCode::SlowConsumer, _)) => "slow_consumer",
            _ => "closed",
        };
        (reason, self.dropped.load(Ordering::Relaxed) + queued as u64)
    }

    /// Asks the connection's task to close the socket with `code` (the first ask wins).
    pub fn close(&self, code: CloseCode, reason: &str) {
        self.end(Closing::With(code, reason.to_owned()));
    }

    /// Asks the connection's task to end as `closing` says (the first ask wins).
    pub fn end(&self, closing: Closing) {
        self.outbox.close(closing);
    }

    /// Waits until someone asks this connection to end, and says how.
    pub async fn closed(&self) -> Closing {
        self.outbox.closed().await
    }

    /// Whether the connection is subscribed to `channel`.
    pub fn is_subscribed(&self, channel: &str) -> bool {
        self.subscriptions.lock().expect("subscriptions lock").contains(channel)
    }

    /// The user this connection stands for, when its token names one.
    pub fn user(&self) -> Option<super::UserKey> {
        self.user_id.as_ref().map(|user_id| super::UserKey::new(&self.account_id, user_id))
    }

    /// The presence member this connection stands for (a Pusher socket's depends on the
    /// channel: it is the one its `channel_data` named).
    pub fn member(&self) -> realtime_types::PresenceMember {
        realtime_types::PresenceMember {
            client_id: self.client_id.clone(),
            user_id: self.user_id.clone(),
            user_info: None,
        }
    }

    /// Records that this connection counts in `channel`'s presence as `member`; false if
    /// it already did.
    pub fn mark_present(&self, channel: &str, member: realtime_types::PresenceMember) -> bool {
        let mut present = self.present.lock().expect("present lock");
        if present.contains_key(channel) {
            return false;
        }
        present.insert(channel.to_owned(), member);
        true
    }

    /// Stops counting this connection in `channel`'s presence; the member it counted as,
    /// if it did.
    pub fn take_present(&self, channel: &str) -> Option<realtime_types::PresenceMember> {
        self.present.lock().expect("present lock").remove(channel)
    }

    /// The channels whose presence this connection counts in.
    pub fn present_channels(&self) -> Vec<String> {
        self.present.lock().expect("present lock").keys().cloned().collect()
    }

    /// The channels the connection is subscribed to.
    pub fn subscriptions(&self) -> Vec<String> {
        self.subscriptions.lock().expect("subscriptions lock").iter().cloned().collect()
    }
}
