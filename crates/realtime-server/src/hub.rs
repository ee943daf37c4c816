//! [`Hub`]: this node's live connections and who is subscribed to what.
//!
//! Fan-out is the hot path: a frame is serialised once, and each subscriber gets a
//! clone of the same reference-counted buffer through a bounded queue with `try_send`,
//! so a publish never waits on a slow socket. It iterates a snapshot of the channel's
//! subscribers (rebuilt lazily after changes, so subscribing stays O(1)) without the hub
//! lock, holding only the channel's order lock so that racing publishes reach every
//! subscriber in the same order. A subscriber whose queue is full is cut as a slow
//! consumer instead of growing memory.
//!
//! The hub knows only this node. Presence across nodes and the routing of commands to
//! the node holding a socket belong to the broker, one layer up.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use axum::extract::ws::Utf8Bytes;
use realtime_types::ws::{CloseCode, ServerFrame, UnsubscribeReason};
use tokio::sync::{Notify, mpsc};

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

/// Serialises a frame once, for sharing between every recipient.
pub fn encode(frame: &ServerFrame) -> Utf8Bytes {
    Utf8Bytes::from(serde_json::to_string(frame).expect("frames serialise"))
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
    outbound: mpsc::Sender<Utf8Bytes>,
    subscriptions: Mutex<HashSet<String>>,
    present: Mutex<HashSet<String>>,
    close: Mutex<Option<(CloseCode, String)>>,
    close_signal: Notify,
}

impl Connection {
    /// A connection whose frames go to `outbound`.
    pub fn new(
        account_id: String,
        client_id: String,
        user_id: Option<String>,
        jti: String,
        outbound: mpsc::Sender<Utf8Bytes>,
    ) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Connection {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            account_id,
            client_id,
            user_id,
            jti,
            outbound,
            subscriptions: Mutex::new(HashSet::new()),
            present: Mutex::new(HashSet::new()),
            close: Mutex::new(None),
            close_signal: Notify::new(),
        }
    }

    /// Queues a frame; a full queue cuts the connection as a slow consumer.
    pub fn send(&self, frame: Utf8Bytes) -> bool {
        match self.outbound.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.close(CloseCode::SlowConsumer, "the client did not read its frames fast enough");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Asks the connection's task to close the socket with `code` (the first ask wins).
    pub fn close(&self, code: CloseCode, reason: &str) {
        let mut close = self.close.lock().expect("close lock");
        if close.is_none() {
            *close = Some((code, reason.to_owned()));
            self.close_signal.notify_one();
        }
    }

    /// Waits until someone asks this connection to close, and says why.
    pub async fn closed(&self) -> (CloseCode, String) {
        loop {
            if let Some(close) = self.close.lock().expect("close lock").clone() {
                return close;
            }
            self.close_signal.notified().await;
        }
    }

    /// Whether the connection is subscribed to `channel`.
    pub fn is_subscribed(&self, channel: &str) -> bool {
        self.subscriptions.lock().expect("subscriptions lock").contains(channel)
    }

    /// The presence member this connection stands for.
    pub fn member(&self) -> realtime_types::PresenceMember {
        realtime_types::PresenceMember { client_id: self.client_id.clone(), user_id: self.user_id.clone() }
    }

    /// Records that this connection counts in `channel`'s presence; false if it already did.
    pub fn mark_present(&self, channel: &str) -> bool {
        self.present.lock().expect("present lock").insert(channel.to_owned())
    }

    /// Stops counting this connection in `channel`'s presence; false if it did not.
    pub fn take_present(&self, channel: &str) -> bool {
        self.present.lock().expect("present lock").remove(channel)
    }

    /// The channels whose presence this connection counts in.
    pub fn present_channels(&self) -> Vec<String> {
        self.present.lock().expect("present lock").iter().cloned().collect()
    }

    /// The channels the connection is subscribed to.
    pub fn subscriptions(&self) -> Vec<String> {
        self.subscriptions.lock().expect("subscriptions lock").iter().cloned().collect()
    }
}

/// The subscribers fan-out iterates.
type Snapshot = Arc<[Arc<Connection>]>;

/// The subscribers of one channel on this node.
#[derive(Default)]
struct Subscribers {
    /// By connection id: subscribing and unsubscribing are O(1).
    members: HashMap<u64, Arc<Connection>>,
    /// What fan-out iterates, rebuilt on the first delivery after a change; so a burst of
    /// subscriptions costs one rebuild, not one copy each.
    snapshot: Option<Snapshot>,
    /// Held while a frame is handed out (never across an `.await`), so every subscriber
    /// sees a channel's frames in the same order even when publishes race.
    order: Arc<Mutex<()>>,
}

#[derive(Default)]
struct State {
    channels: HashMap<ChannelKey, Subscribers>,
    connections: HashMap<u64, Arc<Connection>>,
    /// Live connections per token id.
    per_token: HashMap<String, usize>,
}

/// This node's connections and subscriptions.
#[derive(Default)]
pub struct Hub {
    state: RwLock<State>,
}

impl Hub {
    /// Registers a new connection.
    pub fn connect(&self, connection: Arc<Connection>) {
        let mut state = self.state.write().expect("hub lock");
        *state.per_token.entry(connection.jti.clone()).or_default() += 1;
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
        for channel in &channels {
            remove_subscriber(&mut state, &ChannelKey::new(&connection.account_id, channel), connection.id);
        }
        channels
    }

    /// Live connections on this node.
    pub fn connection_count(&self) -> usize {
        self.state.read().expect("hub lock").connections.len()
    }

    /// Live connections of a token.
    pub fn connections_of_token(&self, jti: &str) -> usize {
        self.state.read().expect("hub lock").per_token.get(jti).copied().unwrap_or(0)
    }

    /// Subscribes a connection; false when it already was.
    pub fn subscribe(&self, connection: &Arc<Connection>, channel: &str) -> bool {
        if !connection.subscriptions.lock().expect("subscriptions lock").insert(channel.to_owned()) {
            return false;
        }
        let key = ChannelKey::new(&connection.account_id, channel);
        let mut state = self.state.write().expect("hub lock");
        let subscribers = state.channels.entry(key).or_default();
        subscribers.members.insert(connection.id, connection.clone());
        subscribers.snapshot = None;
        true
    }

    /// Unsubscribes a connection; false when it was not subscribed.
    pub fn unsubscribe(&self, connection: &Connection, channel: &str) -> bool {
        if !connection.subscriptions.lock().expect("subscriptions lock").remove(channel) {
            return false;
        }
        let mut state = self.state.write().expect("hub lock");
        remove_subscriber(&mut state, &ChannelKey::new(&connection.account_id, channel), connection.id);
        true
    }

    /// Hands `frame` to every local subscriber of `key`; returns how many took it.
    pub fn deliver(&self, key: &ChannelKey, frame: &Utf8Bytes) -> u32 {
        let Some((subscribers, order)) = self.snapshot(key) else { return 0 };
        let _in_order = order.lock().expect("order lock");
        let mut delivered = 0;
        for subscriber in subscribers.iter() {
            if subscriber.send(frame.clone()) {
                delivered += 1;
            }
        }
        delivered
    }

    /// The subscribers of `key` to hand a frame to, and the channel's order lock.
    fn snapshot(&self, key: &ChannelKey) -> Option<(Snapshot, Arc<Mutex<()>>)> {
        {
            let state = self.state.read().expect("hub lock");
            let subscribers = state.channels.get(key)?;
            if let Some(snapshot) = &subscribers.snapshot {
                return Some((snapshot.clone(), subscribers.order.clone()));
            }
        }
        let mut state = self.state.write().expect("hub lock");
        let subscribers = state.channels.get_mut(key)?;
        let snapshot = subscribers
            .snapshot
            .get_or_insert_with(|| subscribers.members.values().cloned().collect::<Vec<_>>().into())
            .clone();
        Some((snapshot, subscribers.order.clone()))
    }

    /// Local subscribers of `key`.
    pub fn subscriber_count(&self, key: &ChannelKey) -> u32 {
        self.state.read().expect("hub lock").channels.get(key).map_or(0, |s| s.members.len() as u32)
    }

    /// Local subscribers of every channel that has any (a broker shares them with other
    /// nodes).
    pub fn subscriber_counts(&self) -> HashMap<ChannelKey, u32> {
        let state = self.state.read().expect("hub lock");
        state.channels.iter().map(|(key, subscribers)| (key.clone(), subscribers.members.len() as u32)).collect()
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
        let frame = encode(&ServerFrame::Unsubscribed { channel: key.channel.clone(), reason });
        let mut acted = Vec::new();
        for connection in matching {
            if self.unsubscribe(&connection, &key.channel) {
                connection.send(frame.clone());
                acted.push(connection);
            }
        }
        acted
    }

    /// Unsubscribes every local subscriber of a deleted channel, telling each; returns
    /// them.
    pub fn drop_channel(&self, key: &ChannelKey) -> Vec<Arc<Connection>> {
        let subscribers = self.state.write().expect("hub lock").channels.remove(key);
        let Some(subscribers) = subscribers else { return Vec::new() };
        let subscribers: Vec<Arc<Connection>> = subscribers.members.into_values().collect();
        let frame = encode(&ServerFrame::Unsubscribed {
            channel: key.channel.clone(),
            reason: UnsubscribeReason::ChannelDeleted,
        });
        for subscriber in subscribers.iter() {
            subscriber.subscriptions.lock().expect("subscriptions lock").remove(&key.channel);
            subscriber.send(frame.clone());
        }
        subscribers
    }

    /// Closes every connection (shutdown).
    pub fn close_all(&self, code: CloseCode, reason: &str) {
        let all: Vec<_> = self.state.read().expect("hub lock").connections.values().cloned().collect();
        for connection in all {
            connection.close(code, reason);
        }
    }

    fn connections_of_client(&self, account_id: &str, client_id: &str) -> Vec<Arc<Connection>> {
        self.state
            .read()
            .expect("hub lock")
            .connections
            .values()
            .filter(|c| c.account_id == account_id && c.client_id == client_id)
            .cloned()
            .collect()
    }
}

fn remove_subscriber(state: &mut State, key: &ChannelKey, connection_id: u64) {
    let Some(subscribers) = state.channels.get_mut(key) else { return };
    if subscribers.members.remove(&connection_id).is_some() {
        subscribers.snapshot = None;
    }
    if subscribers.members.is_empty() {
        state.channels.remove(key);
    }
}
