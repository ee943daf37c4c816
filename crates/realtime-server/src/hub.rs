//! [`Hub`]: this node's live connections and who is subscribed to what.
//!
//! Fan-out is the hot path: a frame is serialised once, and each subscriber gets a
//! clone of the same reference-counted buffer through a bounded queue with `try_send`,
//! so a publish never waits on a slow socket. It iterates a snapshot of the channel's
//! subscribers (rebuilt lazily after changes, so subscribing stays O(1)) without the hub
//! lock, holding only that channel's lock. Under it the channel's [`Sequence`] hands
//! messages out in offset order, subscriptions start at a known position, and a
//! subscriber catching up on missed messages has the channel's frames held for it. A
//! subscriber whose queue is full is cut as a slow consumer instead of growing memory.
//!
//! The hub knows only this node. Presence across nodes and the routing of commands to
//! the node holding a socket belong to the broker, one layer up.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use realtime_types::Position;
use realtime_types::ws::{CloseCode, ServerFrame, UnsubscribeReason};

use self::sequence::{Admit, Sequence};

mod connection;
pub mod lifecycle;
mod outbox;
mod sequence;
pub mod tap;

pub use self::connection::{Closing, Connection, Frames, Protocol, PusherSocket, StopReading};

/// A channel of one account: the unit of subscription.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelKey {
    /// The account.
    pub account_id: String,
    /// The channel name.
    pub channel: String,
}

impl ChannelKey {
    /// The key of `channel` in `account_id`.
    pub fn new(account_id: impl Into<String>, channel: impl Into<String>) -> Self {
        ChannelKey { account_id: account_id.into(), channel: channel.into() }
    }
}

/// A user of one account: every live connection whose token carries its `user_id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserKey {
    /// The account.
    pub account_id: String,
    /// The user.
    pub user_id: String,
}

impl UserKey {
    /// The key of `user_id` in `account_id`.
    pub fn new(account_id: impl Into<String>, user_id: impl Into<String>) -> Self {
        UserKey { account_id: account_id.into(), user_id: user_id.into() }
    }
}

/// Serialises a frame once, for sharing between every recipient.
pub fn encode(frame: &ServerFrame) -> Utf8Bytes {
    Utf8Bytes::from(serde_json::to_string(frame).expect("frames serialise"))
}

/// The subscribers fan-out iterates.
type Snapshot = Arc<[Arc<Connection>]>;

/// Most frames held for one subscriber while it catches up; past it, the subscriber is
/// cut as a slow consumer rather than growing memory.
const HELD_MAX: usize = 4096;

/// A frame held for a subscriber that catches up, with its offset when it is a message.
pub type Held = (Option<u64>, Frames);

/// One channel on this node: its subscribers and where its stream stands. Everything
/// here changes under the channel's own lock, so a subscription and a delivery never
/// interleave.
#[derive(Default)]
struct Channel {
    /// Live subscribers by connection id: subscribing and unsubscribing are O(1).
    members: HashMap<u64, Arc<Connection>>,
    /// What fan-out iterates, rebuilt on the first delivery after a change; so a burst of
    /// subscriptions costs one rebuild, not one copy each.
    snapshot: Option<Snapshot>,
    /// The stream's order on this node.
    sequence: Sequence,
    /// Subscribers catching up on missed messages, with what the channel delivered since
    /// they subscribed.
    recovering: HashMap<u64, (Arc<Connection>, Vec<Held>)>,
}

impl Channel {
    fn snapshot(&mut self) -> Snapshot {
        self.snapshot.get_or_insert_with(|| self.members.values().cloned().collect::<Vec<_>>().into()).clone()
    }

    /// Hands `frame` to every subscriber (and holds it for those catching up); returns
    /// how many live subscribers took it.
    fn hand_out(&mut self, offset: Option<u64>, frame: &Frames) -> u32 {
        for (connection, held) in self.recovering.values_mut() {
            if held.len() >= HELD_MAX {
                connection.close(CloseCode::SlowConsumer, "the client did not read its recovery fast enough");
                connection.note_dropped(1);
                continue;
            }
            held.push((offset, frame.clone()));
        }
        let mut delivered = 0;
        for subscriber in self.snapshot().iter() {
            if subscriber.deliver(frame) {
                delivered += 1;
            }
        }
        delivered
    }

    /// Hands out the held messages whose gap has closed.
    fn hand_out_ready(&mut self) {
        while let Some((offset, frame)) = self.sequence.next_ready() {
            self.hand_out(Some(offset), &frame);
        }
    }

    fn is_empty(&self) -> bool {
        self.members.is_empty() && self.recovering.is_empty()
    }
}

type SharedChannel = Arc<Mutex<Channel>>;

#[derive(Default)]
struct State {
    channels: HashMap<ChannelKey, SharedChannel>,
    connections: HashMap<u64, Arc<Connection>>,
    /// Live connections per token id.
    per_token: HashMap<String, usize>,
    /// Live connections of each user, by connection id: a user's frame reaches them
    /// without a walk over every connection.
    users: HashMap<UserKey, HashMap<u64, Arc<Connection>>>,
}

/// This node's connections and subscriptions.
///
/// Locks are taken in one order: the hub's, then a channel's; fan-out takes only the
/// channel's.
#[derive(Default)]
pub struct Hub {
    state: RwLock<State>,
    /// Commands sent from this node, waiting for their response (from any node).
    commands: Mutex<HashMap<String, tokio::sync::oneshot::Sender<String>>>,
    /// Channels with messages waiting for a gap, for [`Hub::skip_gaps_older_than`].
    gaps: Mutex<HashSet<ChannelKey>>,
    /// Channels opened or dropped as deleted on this node, ever; see
    /// [`Hub::channel_turnover`]. Changed only under the hub's write lock, which every
    /// subscription takes, so a subscription that comes after a change sees it.
    turnover: AtomicU64,
    /// Where occupancy, presence and client-event changes go (webhooks watch them).
    pub lifecycle: lifecycle::Lifecycles,
    /// Where a watched account's events go (the debug console watches them).
    pub taps: tap::Taps,
    /// Woken when a channel gets its first subscriber on this node, or an account its
    /// first console viewer: a broker that routes a channel's events only to the nodes
    /// holding it starts routing it here.
    pub channel_opened: tokio::sync::Notify,
}

impl Hub {
    /// Registers a new connection.
    pub fn connect(&self, connection: Arc<Connection>) {
        let mut state = self.state.write().expect("hub lock");
        *state.per_token.entry(connection.jti.clone()).or_default() += 1;
        if let Some(user) = connection.user() {
            state.users.entry(user).or_default().insert(connection.id, connection.clone());
        }
        state.connections.insert(connection.id, connection);
    }

    /// Forgets a connection and all its subscriptions; returns the channels it was
    /// subscribed to.
    pub fn disconnect(&self, connection: &Connection) -> Vec<String> {
        let channels = connection.subscriptions();
        let mut state = self.state.write().expect("hub lock");
        if state.connections.remove(&connection.id).is_some()
            && let Some(count) = state.per_token.get_mut(&connection.jti)
        {
            *count -= 1;
            if *count == 0 {
                state.per_token.remove(&connection.jti);
            }
        }
        if let Some(user) = connection.user()
            && let Some(sockets) = state.users.get_mut(&user)
        {
            sockets.remove(&connection.id);
            if sockets.is_empty() {
                state.users.remove(&user);
            }
        }
        for channel in &channels {
            remove_subscriber(&mut state, &ChannelKey::new(&connection.account_id, channel), connection.id);
        }
        channels
    }

    /// How many channels this node has opened (given a first subscriber) or dropped as
    /// deleted so far. A subscription that read its channel from the store, then joined
    /// it, can trust that read when the count did not move in between: otherwise the
    /// opening may have been its own (the channel's messages until then reached nobody
    /// here) or the deletion of its channel, applied before the join and so missing it.
    /// A deletion applied after the join finds the subscriber and unsubscribes it.
    pub fn channel_turnover(&self) -> u64 {
        self.turnover.load(Ordering::SeqCst)
    }

    /// Live connections on this node.
    pub fn connection_count(&self) -> usize {
        self.state.read().expect("hub lock").connections.len()
    }

    /// Live connections of a token.
    pub fn connections_of_token(&self, jti: &str) -> usize {
        self.state.read().expect("hub lock").per_token.get(jti).copied().unwrap_or(0)
    }

    /// Subscribes a connection to a channel whose newest stored position is `latest`, and
    /// queues `reply(position)` to it before any of the channel's frames: it receives
    /// every message after `position`, in offset order. `None` when it already was
    /// subscribed.
    pub fn subscribe(
        &self,
        connection: &Arc<Connection>,
        channel: &str,
        latest: &Position,
        reply: impl FnOnce(&Position) -> Utf8Bytes,
    ) -> Option<Position> {
        self.join(connection, channel, |channel| {
            let position = channel.sequence.start(latest);
            connection.send(reply(&position));
            channel.members.insert(connection.id, connection.clone());
            channel.snapshot = None;
            position
        })
    }

    /// Subscribes a connection that first catches up on missed messages: what the channel
    /// delivers from now on is held for it until [`finish_recovery`](Self::finish_recovery).
    /// Returns the position through which this node delivered the channel (`None` when it
    /// already was subscribed); the held frames are the messages after it.
    pub fn subscribe_recovering(
        &self,
        connection: &Arc<Connection>,
        channel: &str,
        latest: &Position,
    ) -> Option<Position> {
        self.join(connection, channel, |channel| {
            let position = channel.sequence.start(latest);
            channel.recovering.insert(connection.id, (connection.clone(), Vec::new()));
            position
        })
    }

    /// The position through which this node delivered a channel's messages, if anyone
    /// here is subscribed to it.
    pub fn position(&self, key: &ChannelKey) -> Option<Position> {
        let shared = self.state.read().expect("hub lock").channels.get(key).cloned()?;
        Some(shared.lock().expect("channel lock").sequence.position())
    }

    /// Takes the frames held so far for a recovering connection (to be sent with
    /// backpressure); `None` when the subscription ended.
    pub fn take_held(&self, connection: &Connection, channel: &str) -> Option<Vec<Held>> {
        let key = ChannelKey::new(&connection.account_id, channel);
        let shared = self.state.read().expect("hub lock").channels.get(&key).cloned()?;
        let mut channel = shared.lock().expect("channel lock");
        let (_, held) = channel.recovering.get_mut(&connection.id)?;
        Some(std::mem::take(held))
    }

    /// Ends a recovery whose connection has been sent the messages through offset
    /// `caught_up`: queues those of `missed` this node has delivered meanwhile, then the
    /// frames held for it after them, and makes it a live subscriber. Messages this node
    /// has not delivered yet reach it live, so none arrives twice. False when the
    /// subscription ended meanwhile.
    pub fn finish_recovery(
        &self,
        connection: &Arc<Connection>,
        channel: &str,
        missed: Vec<(u64, Utf8Bytes)>,
        mut caught_up: u64,
    ) -> bool {
        let key = ChannelKey::new(&connection.account_id, channel);
        let Some(shared) = self.state.read().expect("hub lock").channels.get(&key).cloned() else { return false };
        let mut channel = shared.lock().expect("channel lock");
        let Some((_, held)) = channel.recovering.remove(&connection.id) else { return false };
        let through = channel.sequence.position().offset;
        for (offset, frame) in missed {
            if offset > caught_up && offset <= through {
                connection.send(frame);
                caught_up = offset;
            }
        }
        for (offset, frame) in held {
            if offset.is_none_or(|offset| offset > caught_up) {
                connection.deliver(&frame);
            }
        }
        channel.members.insert(connection.id, connection.clone());
        channel.snapshot = None;
        true
    }

    /// Records the subscription on the connection and runs `subscribe` on its channel
    /// (created when new) under the hub's lock, so that the channel cannot be dropped as
    /// empty in between; `None` when it already was subscribed.
    fn join<R>(
        &self,
        connection: &Arc<Connection>,
        channel: &str,
        subscribe: impl FnOnce(&mut Channel) -> R,
    ) -> Option<R> {
        if !connection.subscriptions.lock().expect("subscriptions lock").insert(channel.to_owned()) {
            return None;
        }
        let key = ChannelKey::new(&connection.account_id, channel);
        let mut state = self.state.write().expect("hub lock");
        let opened = !state.channels.contains_key(&key);
        if opened {
            self.turnover.fetch_add(1, Ordering::SeqCst);
        }
        let shared = state.channels.entry(key).or_default().clone();
        let mut locked = shared.lock().expect("channel lock");
        let subscribed = subscribe(&mut locked);
        drop(locked);
        drop(state);
        if opened {
            self.channel_opened.notify_one();
        }
        self.taps.activity(&connection.account_id, || tap::Activity::Subscribed {
            channel: channel.to_owned(),
            client_id: connection.client_id.clone(),
            connection_id: connection.id,
        });
        Some(subscribed)
    }

    /// Unsubscribes a connection; false when it was not subscribed.
    pub fn unsubscribe(&self, connection: &Connection, channel: &str) -> bool {
        if !connection.subscriptions.lock().expect("subscriptions lock").remove(channel) {
            return false;
        }
        let mut state = self.state.write().expect("hub lock");
        remove_subscriber(&mut state, &ChannelKey::new(&connection.account_id, channel), connection.id);
        drop(state);
        self.taps.activity(&connection.account_id, || tap::Activity::Unsubscribed {
            channel: channel.to_owned(),
            client_id: connection.client_id.clone(),
            connection_id: connection.id,
        });
        true
    }

    /// Whether this node holds `key`'s channel: it has a subscriber, or had one lately.
    pub fn has_channel(&self, key: &ChannelKey) -> bool {
        self.state.read().expect("hub lock").channels.contains_key(key)
    }

    /// Hands `frame` to every local subscriber of `key`; returns how many took it. A
    /// message (`position` given) goes out in offset order: after the messages before
    /// it, and never twice.
    pub fn deliver(&self, key: &ChannelKey, frame: &Frames, position: Option<&Position>) -> u32 {
        let Some(shared) = self.state.read().expect("hub lock").channels.get(key).cloned() else { return 0 };
        let mut channel = shared.lock().expect("channel lock");
        let Some(position) = position else { return channel.hand_out(None, frame) };
        match channel.sequence.admit(position, frame) {
            Admit::Now => {
                let delivered = channel.hand_out(Some(position.offset), frame);
                channel.hand_out_ready();
                delivered
            }
            Admit::Held => {
                self.gaps.lock().expect("gaps lock").insert(key.clone());
                0
            }
            Admit::Stale => 0,
        }
    }

    /// Gives up on gaps waited for longer than `wait`: the messages held behind them go
    /// out. Called periodically; a gap is a message lost on its way. Returns the frames
    /// the lost messages would have been: one per message and subscriber.
    pub fn skip_gaps_older_than(&self, wait: Duration) -> u64 {
        let mut lost = 0;
        let waiting: Vec<ChannelKey> = self.gaps.lock().expect("gaps lock").iter().cloned().collect();
        for key in waiting {
            let shared = self.state.read().expect("hub lock").channels.get(&key).cloned();
            match shared {
                Some(shared) => {
                    let mut channel = shared.lock().expect("channel lock");
                    let skipped = channel.sequence.skip_gap_older_than(wait);
                    if skipped > 0 {
                        let subscribers = channel.members.len() + channel.recovering.len();
                        lost += skipped * subscribers as u64;
                        channel.hand_out_ready();
                    }
                    // Under the channel's lock, as `deliver` adds it: a gap that opens in
                    // between is not forgotten.
                    if !channel.sequence.has_gap() {
                        self.gaps.lock().expect("gaps lock").remove(&key);
                    }
                }
                None => {
                    self.gaps.lock().expect("gaps lock").remove(&key);
                }
            }
        }
        lost
    }

    /// Local subscribers of `key`.
    pub fn subscriber_count(&self, key: &ChannelKey) -> u32 {
        let shared = self.state.read().expect("hub lock").channels.get(key).cloned();
        shared.map_or(0, |channel| channel.lock().expect("channel lock").members.len() as u32)
    }

    /// Local subscribers of every channel that has any (a broker shares them with other
    /// nodes).
    pub fn subscriber_counts(&self) -> HashMap<ChannelKey, u32> {
        let channels: Vec<(ChannelKey, SharedChannel)> =
            self.state.read().expect("hub lock").channels.iter().map(|(k, c)| (k.clone(), c.clone())).collect();
        channels
            .into_iter()
            .map(|(key, channel)| (key, channel.lock().expect("channel lock").members.len() as u32))
            .collect()
    }

    /// Hands `frame` to the local Pusher subscribers of a channel only (a frame of that
    /// protocol alone, such as `pusher_internal:subscription_count`); returns how many
    /// took it.
    pub fn deliver_to_pusher(&self, key: &ChannelKey, frame: &Utf8Bytes) -> u32 {
        let Some(shared) = self.state.read().expect("hub lock").channels.get(key).cloned() else { return 0 };
        let subscribers = shared.lock().expect("channel lock").snapshot();
        let pusher = subscribers.iter().filter(|connection| matches!(connection.protocol, Protocol::Pusher(_)));
        pusher.filter(|connection| connection.send(frame.clone())).count() as u32
    }

    /// Hands `frame` to every local connection of a user; returns how many took it
    /// (without a frame: how many there are).
    pub fn deliver_to_user(&self, user: &UserKey, frame: Option<&Utf8Bytes>) -> u32 {
        let state = self.state.read().expect("hub lock");
        let Some(sockets) = state.users.get(user) else { return 0 };
        let Some(frame) = frame else { return sockets.len() as u32 };
        sockets.values().filter(|connection| connection.send(frame.clone())).count() as u32
    }

    /// The users with a live connection on this node.
    pub fn users(&self) -> Vec<UserKey> {
        self.state.read().expect("hub lock").users.keys().cloned().collect()
    }

    /// Whether a command's response is awaited on this node.
    pub fn awaits_command(&self, command_id: &str) -> bool {
        self.commands.lock().expect("commands lock").contains_key(command_id)
    }

    /// Waits on this node for the response to a command; the receiver gets it as JSON text.
    pub fn await_command(&self, command_id: &str) -> tokio::sync::oneshot::Receiver<String> {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        self.commands.lock().expect("commands lock").insert(command_id.to_owned(), sender);
        receiver
    }

    /// Stops waiting for a command's response.
    pub fn forget_command(&self, command_id: &str) {
        self.commands.lock().expect("commands lock").remove(command_id);
    }

    /// Hands a command's response to its waiter on this node; false when none waits here.
    pub fn answer_command(&self, command_id: &str, response: String) -> bool {
        let waiter = self.commands.lock().expect("commands lock").remove(command_id);
        waiter.is_some_and(|waiter| waiter.send(response).is_ok())
    }

    /// Closes every local connection using token `jti`; returns how many.
    pub fn close_token(&self, jti: &str, code: CloseCode, reason: &str) -> u32 {
        let matching: Vec<_> =
            self.state.read().expect("hub lock").connections.values().filter(|c| c.jti == jti).cloned().collect();
        for connection in &matching {
            connection.close(code, reason);
        }
        matching.len() as u32
    }

    /// Closes every local connection of a client; returns how many.
    pub fn close_client(&self, account_id: &str, client_id: &str, code: CloseCode, reason: &str) -> u32 {
        let matching = self.connections_of_client(account_id, client_id);
        for connection in &matching {
            connection.close(code, reason);
        }
        matching.len() as u32
    }

    /// Unsubscribes every local connection of a client from `channel`, telling each why;
    /// returns the connections that were subscribed.
    pub fn unsubscribe_client(
        &self,
        key: &ChannelKey,
        client_id: &str,
        reason: UnsubscribeReason,
    ) -> Vec<Arc<Connection>> {
        let matching = self.connections_of_client(&key.account_id, client_id);
        let frame = Frames::native(encode(&ServerFrame::Unsubscribed { channel: key.channel.clone(), reason }));
        let mut acted = Vec::new();
        for connection in matching {
            if self.unsubscribe(&connection, &key.channel) {
                connection.deliver(&frame);
                acted.push(connection);
            }
        }
        acted
    }

    /// Unsubscribes every local subscriber of a deleted channel, telling each; returns
    /// them.
    pub fn drop_channel(&self, key: &ChannelKey) -> Vec<Arc<Connection>> {
        let removed = {
            let mut state = self.state.write().expect("hub lock");
            // Counted whether or not anyone here is subscribed: a subscription between
            // its read of the channel and its join must still learn of it.
            self.turnover.fetch_add(1, Ordering::SeqCst);
            state.channels.remove(key)
        };
        let Some(shared) = removed else { return Vec::new() };
        let mut guard = shared.lock().expect("channel lock");
        let channel = &mut *guard;
        let recovering = channel.recovering.drain().map(|(_, (connection, _))| connection);
        let subscribers: Vec<Arc<Connection>> = channel.members.drain().map(|(_, c)| c).chain(recovering).collect();
        channel.snapshot = None;
        let frame = Frames::native(encode(&ServerFrame::Unsubscribed {
            channel: key.channel.clone(),
            reason: UnsubscribeReason::ChannelDeleted,
        }));
        for subscriber in subscribers.iter() {
            subscriber.subscriptions.lock().expect("subscriptions lock").remove(&key.channel);
            subscriber.deliver(&frame);
        }
        subscribers
    }

    /// Closes every connection (shutdown).
    pub fn close_all(&self, code: CloseCode, reason: &str) {
        self.end_all(Closing::With(code, reason.to_owned()));
    }

    /// Asks every connection to end as `closing` says (the node stops, or was killed).
    pub fn end_all(&self, closing: Closing) {
        let all: Vec<_> = self.state.read().expect("hub lock").connections.values().cloned().collect();
        for connection in all {
            connection.end(closing.clone());
        }
    }

    fn connections_of_client(&self, account_id: &str, client_id: &str) -> Vec<Arc<Connection>> {
        self.state
            .read()
            .expect("hub lock")
            .connections
            .values()
            .filter(|c| c.account_id == account_id && (c.client_id == client_id || c.is_signed_in_as(client_id)))
            .cloned()
            .collect()
    }
}

fn remove_subscriber(state: &mut State, key: &ChannelKey, connection_id: u64) {
    let Some(shared) = state.channels.get(key) else { return };
    let mut channel = shared.lock().expect("channel lock");
    if channel.members.remove(&connection_id).is_some() {
        channel.snapshot = None;
    }
    if let Some((connection, held)) = channel.recovering.remove(&connection_id) {
        connection.note_dropped(held.len());
    }
    let empty = channel.is_empty();
    drop(channel);
    if empty {
        state.channels.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn socket(hub: &Hub, client_id: &str) -> Arc<Connection> {
        let connection = Arc::new(Connection::new("acct".into(), client_id.into(), None, "jti".into(), 8));
        hub.connect(connection.clone());
        connection
    }

    #[test]
    fn a_new_channel_or_a_deletion_moves_the_turnover_and_a_held_channel_does_not() {
        let hub = Hub::default();
        let latest = Position { epoch: "ch_1".into(), offset: 0 };
        let reply = |_: &Position| Utf8Bytes::from_static("{}");
        let first = socket(&hub, "first");
        let second = socket(&hub, "second");

        let before = hub.channel_turnover();
        hub.subscribe(&first, "room", &latest, reply);
        let opened = hub.channel_turnover();
        assert_ne!(opened, before, "the channel is new on this node");

        hub.subscribe(&second, "room", &latest, reply);
        assert_eq!(hub.channel_turnover(), opened, "the channel was held here already");

        hub.drop_channel(&ChannelKey::new("acct", "elsewhere"));
        assert_ne!(hub.channel_turnover(), opened, "a deletion counts where nobody is subscribed too");
    }
}
