//! Which channels' frames this node hears.
//!
//! A channel's frames are published to its own pub/sub channel, `P:ch:<account>:<channel>`,
//! and a node subscribes to it while it holds a subscriber of the channel: Redis sends a
//! frame only to the nodes that deliver it, so a node's work grows with its own
//! subscribers' traffic, not with the cluster's. The hub knows nothing of this: when it
//! opens a channel (its first local subscriber), and every [`ROUTE_INTERVAL`], the node
//! compares the channels its hub holds with the routes it holds, subscribes to the new
//! ones in one command, and unsubscribes from those that have had no local subscriber
//! for [`ROUTE_LINGER`] (so a channel whose last subscriber reconnects at once keeps its
//! route).
//!
//! A route starts a moment after its channel's first local subscriber (a Redis round
//! trip after the hub opened the channel), and what was
//! published in between reached nobody here. Once Redis has confirmed the subscription
//! every later publish arrives, so the node then reads the messages stored after the
//! position its hub delivered through and hands them to the hub, which drops those that
//! also arrive live and hands out the rest in offset order: the same catch-up the gateway
//! does for the moment between reading a channel and subscribing to it. Frames without a
//! position (presence joins and leaves) are not stored; a presence channel's route is
//! opened before its member list is read ([`RedisBroker::members`]), which the gateway
//! does before it subscribes, so those are not missed either. When the subscriber
//! connection comes back after a cut, every route is caught up the same way.
//!
//! A node where someone watches an account (the debug console shows the account's
//! events of every node) hears all of that account's channels through one pattern
//! subscription, `P:ch:<account>:*`, while the viewer stays.
//!
//! A user's frames (user-addressed messages, commands) are routed the same way, on
//! `P:us:<account>:<user>`, to the nodes holding a connection of the user. A node opens a
//! user's route when a connection of the user arrives, before the connection reads the
//! messages waiting for the user and is told it is connected
//! ([`RedisBroker::route_user`]): a message sent meanwhile is either read there or
//! received. Its route ends [`ROUTE_LINGER`] after the user's last connection here. When
//! the subscriber connection comes back after a cut, the user's connections here get their
//! unacknowledged reliable messages again, as on a connect.
//!
//! With `redis_routing = "broadcast"` the node instead subscribes to every channel's and
//! every user's frames with two patterns, as every node did before routing.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fred::prelude::*;
use realtime_types::limits::{RECOVERY_MAX_MESSAGES, USER_REDELIVERY_MAX};
use realtime_types::{Direction, Position};
use tokio::sync::Mutex;

use super::{RedisBroker, unavailable};
use crate::broker::BrokerError;
use crate::hub::{ChannelKey, Frames, UserKey, encode};
use crate::store::Store;

/// How often the routes are brought in line with the hub's channels besides when it opens one
/// (for the routes to drop, and the accounts watched here).
pub(super) const ROUTE_INTERVAL: Duration = Duration::from_millis(250);
/// How long a route outlives its channel's last local subscriber.
const ROUTE_LINGER: Duration = Duration::from_secs(1);

/// The routes this node holds, and where it catches up from when one starts.
pub(super) struct Routes {
    /// What this node is subscribed to in Redis. Held across the Redis round trip of a
    /// change, so changes apply in order.
    held: Mutex<Held>,
    /// The node's store, where a late route catches up from.
    store: Arc<dyn Store>,
}

/// What a node is subscribed to.
#[derive(Default)]
struct Held {
    /// Channels, with when each was last seen without a local subscriber (`None`: it
    /// has some).
    channels: HashMap<ChannelKey, Option<Instant>>,
    /// Accounts whose every channel this node hears through one pattern, because
    /// someone watches them here (the debug console shows the whole cluster's events);
    /// their channels need no route of their own.
    accounts: HashSet<String>,
    /// Users, with when each was last seen without a local connection (`None`: it has
    /// some).
    users: HashMap<UserKey, Option<Instant>>,
}

impl Routes {
    pub(super) fn new(store: Arc<dyn Store>) -> Routes {
        Routes { held: Mutex::new(Held::default()), store }
    }
}

/// The patterns of every channel's and every user's route under `prefix`.
pub(super) fn every_route(prefix: &str) -> Vec<String> {
    vec![format!("{}:ch:*", escape_glob(prefix)), format!("{}:us:*", escape_glob(prefix))]
}

/// The pattern of every route of `account` under `prefix`.
fn every_route_of(prefix: &str, account: &str) -> String {
    format!("{}:ch:{}:*", escape_glob(prefix), escape_glob(account))
}

fn escape_glob(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        if matches!(character, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

impl RedisBroker {
    /// Subscribes to the routes of the hub's new channels and drops those unused for
    /// [`ROUTE_LINGER`]; hears every channel of the accounts watched here through a
    /// pattern instead. A pattern starts before the routes it replaces end, and routes
    /// start before the pattern that covered them ends, so nothing falls between (a
    /// frame may arrive twice meanwhile; the hub hands a message out once).
    pub(super) async fn refresh_routes(&self) -> Result<(), BrokerError> {
        let mut held = self.routes.held.lock().await;
        let watched: HashSet<String> = self.hub.taps.watched_accounts().into_iter().collect();
        let newly_watched: Vec<String> = watched.difference(&held.accounts).cloned().collect();
        let unwatched: Vec<String> = held.accounts.difference(&watched).cloned().collect();
        let hub_channels: HashSet<ChannelKey> = self.hub.subscriber_counts().into_keys().collect();
        let mut caught_up = Vec::new();
        if !newly_watched.is_empty() {
            self.alive()?;
            let patterns: Vec<String> =
                newly_watched.iter().map(|account| every_route_of(&self.keys.prefix, account)).collect();
            self.subscriber.psubscribe(patterns).await.map_err(unavailable)?;
            held.accounts.extend(newly_watched);
            let unrouted = hub_channels.iter().filter(|key| !held.channels.contains_key(*key));
            caught_up.extend(unrouted.filter(|key| held.accounts.contains(&key.account_id)).cloned());
        }
        let local: HashSet<&ChannelKey> =
            hub_channels.iter().filter(|key| !watched.contains(&key.account_id)).collect();
        let now = Instant::now();
        // A watched account's pattern covers its channels now.
        let unused =
            to_end(&mut held.channels, |key| local.contains(key), |key| watched.contains(&key.account_id), now);
        let new: Vec<ChannelKey> = local.into_iter().filter(|key| !held.channels.contains_key(*key)).cloned().collect();
        if !unused.is_empty() {
            self.alive()?;
            let names: Vec<String> = unused.iter().map(|key| self.keys.route(key)).collect();
            self.subscriber.unsubscribe(names).await.map_err(unavailable)?;
            for key in &unused {
                held.channels.remove(key);
            }
        }
        self.refresh_user_routes(&mut held, now).await?;
        if !new.is_empty() {
            self.open_routes(&mut held, &new, None).await?;
            caught_up.extend(new);
        }
        if !unwatched.is_empty() {
            self.alive()?;
            let patterns: Vec<String> =
                unwatched.iter().map(|account| every_route_of(&self.keys.prefix, account)).collect();
            self.subscriber.punsubscribe(patterns).await.map_err(unavailable)?;
            for account in &unwatched {
                held.accounts.remove(account);
            }
        }
        drop(held);
        self.catch_up(&caught_up).await;
        Ok(())
    }

    /// Opens the route of `key` now, unless this node hears it already: its frames reach
    /// this node from the moment this returns.
    pub(super) async fn open_route(&self, key: &ChannelKey) -> Result<(), BrokerError> {
        let mut held = self.routes.held.lock().await;
        if held.accounts.contains(&key.account_id) {
            return Ok(());
        }
        if let Some(empty_since) = held.channels.get_mut(key) {
            // A subscriber is on its way: the route lingers a while longer for it.
            if empty_since.is_some() {
                *empty_since = Some(Instant::now());
            }
            return Ok(());
        }
        self.open_routes(&mut held, std::slice::from_ref(key), Some(Instant::now())).await?;
        drop(held);
        // A subscriber may have come first (a presence subscriber without the presence
        // capability, which does not join).
        self.catch_up(std::slice::from_ref(key)).await;
        Ok(())
    }

    /// Ends the routes of users without a local connection for [`ROUTE_LINGER`], and
    /// opens those of users whose connections arrived without one (their opening failed).
    async fn refresh_user_routes(&self, held: &mut Held, now: Instant) -> Result<(), BrokerError> {
        let local: HashSet<UserKey> = self.hub.users().into_iter().collect();
        let unused = to_end(&mut held.users, |user| local.contains(user), |_| false, now);
        if !unused.is_empty() {
            self.alive()?;
            let names: Vec<String> = unused.iter().map(|user| self.keys.user_route(user)).collect();
            self.subscriber.unsubscribe(names).await.map_err(unavailable)?;
            for user in &unused {
                held.users.remove(user);
            }
        }
        let new: Vec<UserKey> = local.into_iter().filter(|user| !held.users.contains_key(user)).collect();
        if !new.is_empty() {
            self.alive()?;
            let names: Vec<String> = new.iter().map(|user| self.keys.user_route(user)).collect();
            self.subscriber.subscribe(names).await.map_err(unavailable)?;
            held.users.extend(new.into_iter().map(|user| (user, None)));
        }
        Ok(())
    }

    /// Opens the route of `user` now, unless this node holds it already: the user's
    /// frames reach this node from the moment this returns.
    pub(super) async fn route_user(&self, user: &UserKey) -> Result<(), BrokerError> {
        let mut held = self.routes.held.lock().await;
        if let Some(empty_since) = held.users.get_mut(user) {
            *empty_since = None;
            return Ok(());
        }
        self.alive()?;
        // Answered once Redis has registered the subscription.
        self.subscriber.subscribe(self.keys.user_route(user)).await.map_err(unavailable)?;
        held.users.insert(user.clone(), None);
        Ok(())
    }

    async fn open_routes(
        &self,
        held: &mut Held,
        keys: &[ChannelKey],
        empty_since: Option<Instant>,
    ) -> Result<(), BrokerError> {
        self.alive()?;
        let names: Vec<String> = keys.iter().map(|key| self.keys.route(key)).collect();
        // Answered once Redis has registered the subscriptions: every publish it handles
        // after that reaches this node.
        self.subscriber.subscribe(names).await.map_err(unavailable)?;
        held.channels.extend(keys.iter().map(|key| (key.clone(), empty_since)));
        Ok(())
    }

    /// Hands the hub the messages of `keys` stored after the position it delivered
    /// through: those published before their route started.
    async fn catch_up(&self, keys: &[ChannelKey]) {
        let behind: Vec<(&ChannelKey, Position)> =
            keys.iter().filter_map(|key| Some((key, self.hub.position(key)?))).collect();
        if behind.is_empty() {
            return;
        }
        let store = &self.routes.store;
        for (key, position) in behind {
            let row = match store.channel(&key.account_id, &key.channel).await {
                Ok(Some(row)) if row.channel_id == position.epoch && row.last_offset > position.offset => row,
                Ok(_) => continue,
                Err(error) => {
                    tracing::warn!(%error, channel = %key.channel, "a new route did not catch up");
                    continue;
                }
            };
            let missing = (row.last_offset - position.offset).min(RECOVERY_MAX_MESSAGES);
            let limit = u32::try_from(missing).unwrap_or(u32::MAX);
            let stored =
                store.history(&key.account_id, &key.channel, Some(position.offset), limit, Direction::Forward).await;
            match stored {
                Ok(messages) => {
                    for message in messages {
                        let at = Position { epoch: row.channel_id.clone(), offset: message.offset };
                        self.hub.deliver(key, &Frames::of(&message.frame(&row), None, None), Some(&at));
                    }
                }
                Err(error) => tracing::warn!(%error, channel = %key.channel, "a new route did not catch up"),
            }
        }
    }
}

/// Notes which `routes` have no local holder any more (since when), and returns those
/// to end: the ones `covered` some other way, and the ones unused for [`ROUTE_LINGER`].
fn to_end<K: Clone>(
    routes: &mut HashMap<K, Option<Instant>>,
    is_local: impl Fn(&K) -> bool,
    covered: impl Fn(&K) -> bool,
    now: Instant,
) -> Vec<K> {
    let mut ended = Vec::new();
    for (key, empty_since) in routes.iter_mut() {
        match (is_local(key), *empty_since) {
            (true, _) => *empty_since = None,
            (false, _) if covered(key) => ended.push(key.clone()),
            (false, None) => *empty_since = Some(now),
            (false, Some(since)) if now.duration_since(since) >= ROUTE_LINGER => ended.push(key.clone()),
            (false, Some(_)) => {}
        }
    }
    ended
}

/// Keeps the routes in line with the hub until the node stops, and catches them up when
/// the subscriber connection comes back.
pub(super) async fn keep_routes(
    broker: std::sync::Weak<RedisBroker>,
    mut reconnects: tokio::sync::broadcast::Receiver<Server>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut ticker = tokio::time::interval(ROUTE_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let Some(opened) = broker.upgrade().map(|broker| broker.hub.clone()) else { return };
        let reconnected = tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => false,
            () = opened.channel_opened.notified() => false,
            _ = reconnects.recv() => true,
        };
        let Some(broker) = broker.upgrade() else { return };
        if reconnected {
            let result = broker.recover_routes().await;
            broker.note(result, "routes");
        }
        let result = broker.refresh_routes().await;
        broker.note(result, "routes");
    }
}

impl RedisBroker {
    /// After the subscriber connection came back: subscribes again (now, rather than
    /// whenever the client's own resubscription runs) and catches every route up, since
    /// what was published while it was down reached nobody here: channels from their
    /// stored messages, users with their unacknowledged reliable messages.
    async fn recover_routes(&self) -> Result<(), BrokerError> {
        let held: Vec<ChannelKey> = {
            let held = self.routes.held.lock().await;
            let watched =
                self.hub.subscriber_counts().into_keys().filter(|key| held.accounts.contains(&key.account_id));
            held.channels.keys().cloned().chain(watched).collect()
        };
        let users = self.hub.users();
        if held.is_empty() && users.is_empty() {
            return Ok(());
        }
        self.alive()?;
        self.subscriber.resubscribe_all().await.map_err(unavailable)?;
        self.catch_up(&held).await;
        self.redeliver(&users).await;
        Ok(())
    }

    /// Hands the connections here of `users` their unacknowledged reliable messages again,
    /// as a connect does. Some may have arrived before the cut: reliable delivery is at
    /// least once, and the client knows a repeat by its sequence.
    async fn redeliver(&self, users: &[UserKey]) {
        for user in users {
            match self.routes.store.redeliver(&user.account_id, &user.user_id, USER_REDELIVERY_MAX).await {
                Ok(messages) => {
                    for message in &messages {
                        self.hub.deliver_to_user(user, Some(&encode(&message.frame())));
                    }
                }
                Err(error) => tracing::warn!(%error, "reliable messages not redelivered after the broker came back"),
            }
        }
    }
}
