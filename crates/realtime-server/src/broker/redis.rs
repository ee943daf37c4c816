//! The broker of several nodes: Redis pub/sub for events, Redis hashes for live state.
//!
//! Layout, under the configured prefix `P` (so deployments and test runs sharing one
//! Redis never meet):
//!
//! - `P:ch:<account>:<channel>`: the pub/sub channel of one channel's frames (messages,
//!   presence joins and leaves). A node subscribes to it while it holds a subscriber of
//!   the channel (see [`routes`]), so a frame reaches only the nodes that deliver it.
//! - `P:us:<account>:<user>`: the pub/sub channel of one user's frames (user-addressed
//!   messages, commands), which a node subscribes to while it holds a connection of the
//!   user (see [`routes`]).
//! - `P:events`: the pub/sub channel of what every node must see: revocations,
//!   disconnects, channel deletions.
//! - `P:to:<node>`: events for one node: the answer to a command it sent (when the
//!   answering node learned where the command came from; otherwise the answer goes on
//!   `P:events`).
//!
//!   A node sends everything on one connection and receives everything on one
//!   subscriber connection, and Redis handles publishes in the order they come, so the
//!   frames one node publishes for one channel, and its commands, reach every node in the
//!   order sent. A node applies its own events to its hub directly and ignores their echo.
//! - `P:reply:<node>`: counts sent back to a node that published a command (revocation,
//!   disconnect, channel delete) or a user's frame, so it can report how many sockets the
//!   cluster acted on.
//! - `P:node:<node>`: the node's heartbeat, a key that expires after
//!   `node_expiry_seconds` unless the node refreshes it (every third of that, at most
//!   every second). `P:nodes` lists the nodes to watch.
//! - `P:presence:<account>:<channel>`: a hash from client id to the member and the nodes
//!   holding its sockets. Reads count only nodes whose heartbeat is alive, so a dead
//!   node's members vanish when its heartbeat expires; then a surviving node reaps its
//!   entries and announces `presence.leave` for members no other node holds.
//! - `P:subs:<account>:<channel>`: a hash from node to its local subscriber count,
//!   written by each node at most 250 ms after it changes.
//! - `P:owned:<node>`: the hashes a node has entries in, for the reaper.
//!
//! Every multi-key step is one Lua script, so it is atomic across nodes. Every command is
//! sent "fail fast" with a 2 s timeout: while Redis is unreachable, calls return
//! [`BrokerError`] at once (the REST side answers 503) and the client reconnects in the
//! background every 500 ms. When Redis comes back (possibly empty), the node's next
//! heartbeat notices its missing key and writes its presence and counts again.
//!
//! Delivery is at-most-once: events published while a node's subscription is down are
//! lost for that node, as they are for a node that is down; stored messages are caught
//! up when it comes back ([`routes`]).

mod routes;
mod scripts;
mod wire;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use fred::clients::SubscriberClient;
use fred::prelude::*;
use fred::types::Message;
use realtime_types::PresenceMember;
use realtime_types::ws::ServerFrame;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use self::routes::{Routes, every_route, keep_routes};
use self::scripts::{
    HEARTBEAT, JOIN, LEAVE, MEMBERS, PUBLISH_FRAME, REAP, REMOTE_SUBSCRIBERS, RESYNC_PRESENCE, WRITE_COUNTS,
};
use self::wire::{Keys, decode_envelope, encode_envelope, own_echo};
use super::{Broker, BrokerError, ClusterEvent, announce, apply, last_leave};
use crate::config::{Config, RedisRouting};
use crate::hub::{ChannelKey, Frames, Hub, UserKey};

/// The longest a Redis command may take before the caller gets a [`BrokerError`].
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a disconnected client tries Redis again.
const RECONNECT_DELAY_MS: u32 = 500;
/// How often local subscriber counts are shared.
const COUNT_SYNC_INTERVAL: Duration = Duration::from_millis(250);
/// The longest a command's publisher waits for other nodes' counts.
const REPLY_WAIT: Duration = Duration::from_secs(1);
/// Events a node may fall behind by before it loses some (it logs how many).
const PUBSUB_BUFFER: usize = 16 * 1024;
/// How long a node remembers where a command it pushed came from (the longest a
/// command lives); its answer goes back to that node only.
const COMMAND_ORIGIN_TTL: Duration = Duration::from_secs(realtime_types::limits::COMMAND_MAX_TIMEOUT_SECONDS as u64);
/// Origins remembered before the expired ones are swept.
const COMMAND_ORIGINS_SWEEP: usize = 4096;

/// This node's own presence: sockets per member per channel. Only a member's first and
/// last socket on this node reach Redis.
#[derive(Default)]
struct LocalPresence {
    counts: HashMap<ChannelKey, BTreeMap<String, (PresenceMember, u32)>>,
    /// Channels whose Redis entries may disagree with `counts` (a leave failed).
    stale: HashSet<ChannelKey>,
}

/// The Redis broker of one node.
pub struct RedisBroker {
    node: String,
    keys: Keys,
    node_expiry: Duration,
    client: Client,
    subscriber: SubscriberClient,
    hub: Arc<Hub>,
    presence: tokio::sync::Mutex<LocalPresence>,
    written_counts: tokio::sync::Mutex<HashMap<ChannelKey, u32>>,
    routing: RedisRouting,
    routes: Routes,
    pending: Mutex<HashMap<u64, mpsc::UnboundedSender<u32>>>,
    /// The node each command pushed here came from, and when: where its answer goes.
    command_origins: Mutex<HashMap<String, (String, std::time::Instant)>>,
    next_request: AtomicU64,
    degraded: AtomicBool,
    /// Cancelled when the node is killed or this broker dropped: the background tasks
    /// end, the connections close, and every call fails.
    stop: CancellationToken,
}

impl std::fmt::Debug for RedisBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password; it is not kept here.
        f.debug_struct("RedisBroker").field("node", &self.node).field("prefix", &self.keys.prefix).finish()
    }
}

impl Drop for RedisBroker {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn options() -> Options {
    Options { fail_fast: true, timeout: Some(COMMAND_TIMEOUT), max_attempts: Some(1), ..Default::default() }
}

fn unavailable(error: Error) -> BrokerError {
    BrokerError(format!("redis: {error}"))
}

impl RedisBroker {
    /// Connects to the Redis at `config.broker` (failing when it is unreachable at
    /// start), subscribes, and starts the heartbeat; events from other nodes are applied
    /// to `hub`; a channel's route that starts late catches up from `store`, the node's.
    /// `kill` stops everything as a crash would: no goodbye, the heartbeat just stops.
    pub async fn connect(
        config: &Config,
        hub: Arc<Hub>,
        store: Arc<dyn crate::store::Store>,
        kill: &CancellationToken,
    ) -> anyhow::Result<Arc<Self>> {
        let url = crate::config::redact_url(&config.broker);
        let redis_config = fred::prelude::Config::from_url(&config.broker)
            .map_err(|error| anyhow::anyhow!("the broker URL {url} is not a Redis URL: {}", error.details()))?;
        let mut builder = Builder::from_config(redis_config);
        builder
            .with_connection_config(|connection| {
                connection.connection_timeout = COMMAND_TIMEOUT;
                connection.internal_command_timeout = COMMAND_TIMEOUT;
                connection.max_command_attempts = 1;
                connection.unresponsive.max_timeout = Some(COMMAND_TIMEOUT * 2);
                connection.unresponsive.interval = Duration::from_millis(500);
            })
            .with_performance_config(|performance| {
                performance.default_command_timeout = COMMAND_TIMEOUT;
                performance.broadcast_channel_capacity = PUBSUB_BUFFER;
            })
            .set_policy(ReconnectPolicy::new_constant(0, RECONNECT_DELAY_MS));
        let client = builder.build()?;
        let subscriber = builder.build_subscriber_client()?;
        client.init().await.map_err(|e| anyhow::anyhow!("the broker, Redis at {url}, is unreachable: {e}"))?;
        subscriber.init().await.map_err(|e| anyhow::anyhow!("the broker, Redis at {url}, is unreachable: {e}"))?;

        let node = ulid::Ulid::generate().to_string();
        let keys = Keys { prefix: config.redis_prefix.clone() };
        let node_expiry = Duration::from_secs(u64::from(config.node_expiry_seconds.max(1)));
        let stop = kill.child_token();
        let broker = Arc::new(RedisBroker {
            node,
            keys,
            node_expiry,
            client: client.clone(),
            subscriber: subscriber.clone(),
            hub,
            presence: tokio::sync::Mutex::new(LocalPresence::default()),
            written_counts: tokio::sync::Mutex::new(HashMap::new()),
            routing: config.redis_routing,
            routes: Routes::new(store),
            pending: Mutex::new(HashMap::new()),
            command_origins: Mutex::new(HashMap::new()),
            next_request: AtomicU64::new(1),
            degraded: AtomicBool::new(false),
            stop: stop.clone(),
        });

        // Take the receiver before subscribing so that nothing is missed.
        let messages = subscriber.message_rx();
        let _resubscriber = subscriber.manage_subscriptions();
        let own = vec![broker.keys.events(), broker.keys.replies(&broker.node), broker.keys.inbox(&broker.node)];
        subscriber.subscribe(own).await?;
        match broker.routing {
            RedisRouting::Channel => {
                tokio::spawn(keep_routes(Arc::downgrade(&broker), subscriber.reconnect_rx(), stop.clone()));
            }
            RedisRouting::Broadcast => subscriber.psubscribe(every_route(&broker.keys.prefix)).await?,
        }
        broker.heartbeat().await.map_err(|e| anyhow::anyhow!("{e}"))?;

        tokio::spawn(listen(Arc::downgrade(&broker), messages, stop.clone()));
        tokio::spawn(maintain(Arc::downgrade(&broker), client.reconnect_rx(), stop.clone()));
        tokio::spawn(async move {
            stop.cancelled().await;
            let _ = client.quit().await;
            let _ = subscriber.quit().await;
        });
        Ok(broker)
    }

    /// This node's id in Redis.
    pub fn node_id(&self) -> &str {
        &self.node
    }

    fn alive(&self) -> Result<(), BrokerError> {
        match self.stop.is_cancelled() {
            true => Err(BrokerError("the node is stopping".into())),
            false => Ok(()),
        }
    }

    async fn script<R: FromValue>(&self, lua: &str, keys: Vec<String>, args: Vec<String>) -> Result<R, BrokerError> {
        self.alive()?;
        self.client.with_options(&options()).eval(lua, keys, args).await.map_err(unavailable)
    }

    /// Logs the first failure of a background step and the recovery, not every retry.
    fn note(&self, result: Result<(), BrokerError>, what: &str) {
        match result {
            Ok(()) => {
                if self.degraded.swap(false, Ordering::Relaxed) {
                    tracing::info!(node = %self.node, "redis is reachable again");
                }
            }
            Err(error) => {
                if !self.degraded.swap(true, Ordering::Relaxed) {
                    tracing::warn!(node = %self.node, %error, what, "redis unreachable; retrying");
                }
            }
        }
    }

    /// Refreshes the heartbeat; writes this node's state again when Redis had lost it.
    async fn heartbeat(&self) -> Result<(), BrokerError> {
        let keys = vec![format!("{}{}", self.keys.alive(), self.node), self.keys.nodes()];
        let ttl = self.node_expiry.as_millis().to_string();
        let existed: i64 = self.script(HEARTBEAT, keys, vec![self.node.clone(), ttl]).await?;
        let lost = existed == 0;
        let mut presence = self.presence.lock().await;
        let channels: Vec<ChannelKey> = match lost {
            true => presence.counts.keys().chain(presence.stale.iter()).cloned().collect(),
            false => presence.stale.iter().cloned().collect(),
        };
        for key in channels {
            let mut args = vec![self.node.clone()];
            for (client_id, (member, _)) in presence.counts.get(&key).into_iter().flatten() {
                args.push(client_id.clone());
                args.push(serde_json::to_string(member).expect("members serialise"));
            }
            let keys = vec![self.keys.presence(&key), self.keys.owned(&self.node)];
            let _: i64 = self.script(RESYNC_PRESENCE, keys, args).await?;
            presence.stale.remove(&key);
        }
        drop(presence);
        if lost {
            self.written_counts.lock().await.clear();
        }
        Ok(())
    }

    /// Shares the local subscriber counts that changed since the last call.
    async fn write_counts(&self) -> Result<(), BrokerError> {
        let now = self.hub.subscriber_counts();
        let mut written = self.written_counts.lock().await;
        let mut args = vec![self.node.clone()];
        for (key, count) in &now {
            if written.get(key) != Some(count) {
                args.push(self.keys.subs(key));
                args.push(count.to_string());
            }
        }
        for key in written.keys().filter(|key| !now.contains_key(*key)) {
            args.push(self.keys.subs(key));
            args.push("0".to_owned());
        }
        if args.len() == 1 {
            return Ok(());
        }
        let _: i64 = self.script(WRITE_COUNTS, vec![self.keys.owned(&self.node)], args).await?;
        *written = now;
        Ok(())
    }

    /// Removes dead nodes' entries and announces the leaves of their members.
    async fn reap(&self) -> Result<(), BrokerError> {
        let leaves: Vec<String> = self.script(REAP, vec![self.keys.nodes()], vec![self.keys.prefix.clone()]).await?;
        for pair in leaves.chunks_exact(2) {
            let (Some(key), Ok(member)) =
                (self.keys.channel_of_presence(&pair[0]), serde_json::from_str::<PresenceMember>(&pair[1]))
            else {
                continue;
            };
            tracing::info!(channel = %key.channel, client_id = %member.client_id, "member of a dead node left");
            self.hub.lifecycle.notify(last_leave(&key, &member));
            let frame = Frames::of(&ServerFrame::PresenceLeave { channel: key.channel.clone(), member }, None, None);
            self.publish(ClusterEvent::Frame { key, frame, position: None }).await?;
        }
        Ok(())
    }

    /// Handles one message of the subscription.
    async fn receive(&self, message: Message) {
        let Some(payload) = message.value.as_str() else { return };
        if *message.channel == *self.keys.replies(&self.node) {
            let Some((id, count)) = payload.split_once(' ') else { return };
            let (Ok(id), Ok(count)) = (id.parse::<u64>(), count.parse::<u32>()) else { return };
            self.counted(id, count);
            return;
        }
        // This node's own events come back on the channels it holds: skipped unread, but
        // counted as a reply (of nothing more: it applied them directly) when it waits for
        // one from each receiver.
        if let Some(reply) = own_echo(&payload, &self.node) {
            if let Some(id) = reply {
                self.counted(id, 0);
            }
            return;
        }
        let Some((envelope, event)) = decode_envelope(&payload) else {
            tracing::warn!("an event from another node could not be read; ignored");
            return;
        };
        if let ClusterEvent::User { command_id: Some(command_id), .. } = &event {
            self.remember_origin(command_id, &envelope.from);
        }
        let acted = announce(self, apply(&self.hub, event)).await;
        if let Some(id) = envelope.reply {
            let client = self.client.clone();
            let channel = self.keys.replies(&envelope.from);
            tokio::spawn(async move {
                let sent: Result<i64, Error> =
                    client.with_options(&options()).publish(channel, format!("{id} {acted}")).await;
                if let Err(error) = sent {
                    tracing::debug!(%error, "count of a command not sent back");
                }
            });
        }
    }

    /// Hands a node's count for the event it published under `id` to its waiting
    /// publisher.
    fn counted(&self, id: u64, count: u32) {
        if let Some(waiting) = self.pending.lock().expect("pending lock").get(&id) {
            let _ = waiting.send(count);
        }
    }

    /// Notes that the command `command_id` was pushed from `node`, forgetting the
    /// origins of commands that can no longer be answered once there are many.
    fn remember_origin(&self, command_id: &str, node: &str) {
        let mut origins = self.command_origins.lock().expect("origins lock");
        if origins.len() >= COMMAND_ORIGINS_SWEEP {
            origins.retain(|_, (_, noted)| noted.elapsed() < COMMAND_ORIGIN_TTL);
        }
        origins.insert(command_id.to_owned(), (node.to_owned(), std::time::Instant::now()));
    }

    /// Where a command's answer goes: this node, when it waits for it here; the node the
    /// command came from, when known; every node otherwise (the answering connection
    /// learned of the command some other way, or this node restarted).
    fn answer_route(&self, command_id: &str) -> Option<String> {
        if self.hub.awaits_command(command_id) {
            return None;
        }
        let origin = self.command_origins.lock().expect("origins lock").remove(command_id);
        Some(match origin {
            Some((node, _)) => self.keys.inbox(&node),
            None => self.keys.events(),
        })
    }

    /// Publishes an event on the pub/sub channel `route` and sums the sockets every node
    /// acted on: this one directly, every receiver through its reply (this node's own
    /// echo, when it hears the route, counts as one), waiting at most [`REPLY_WAIT`].
    async fn publish_counted(&self, route: String, event: ClusterEvent) -> Result<u32, BrokerError> {
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (sender, mut replies) = mpsc::unbounded_channel();
        self.pending.lock().expect("pending lock").insert(id, sender);
        let _forget = Forget { pending: &self.pending, id };
        let payload = encode_envelope(&self.node, Some(id), &event);
        self.alive()?;
        let receivers: i64 = self.client.with_options(&options()).publish(route, payload).await.map_err(unavailable)?;
        let mut acted = announce(self, apply(&self.hub, event)).await;
        let deadline = tokio::time::Instant::now() + REPLY_WAIT;
        for _ in 0..receivers.max(0) {
            match tokio::time::timeout_at(deadline, replies.recv()).await {
                Ok(Some(count)) => acted += count,
                Ok(None) | Err(_) => {
                    tracing::debug!(id, "not every node reported its count in time");
                    break;
                }
            }
        }
        Ok(acted)
    }
}

/// Forgets a pending command when its publisher is done (or gave up).
struct Forget<'a> {
    pending: &'a Mutex<HashMap<u64, mpsc::UnboundedSender<u32>>>,
    id: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.pending.lock().expect("pending lock").remove(&self.id);
    }
}

/// Applies other nodes' events, one at a time, in the order Redis delivers them.
async fn listen(broker: Weak<RedisBroker>, mut messages: broadcast::Receiver<Message>, stop: CancellationToken) {
    loop {
        let message = tokio::select! {
            () = stop.cancelled() => return,
            message = messages.recv() => message,
        };
        match message {
            Ok(message) => {
                let Some(broker) = broker.upgrade() else { return };
                broker.receive(message).await;
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "this node fell behind the cluster's events; those were not delivered here");
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Shares subscriber counts, heartbeats and reaps dead nodes, until the node stops.
async fn maintain(broker: Weak<RedisBroker>, mut reconnects: broadcast::Receiver<Server>, stop: CancellationToken) {
    let mut ticker = tokio::time::interval(COUNT_SYNC_INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut tick: u64 = 0;
    loop {
        let reconnected = tokio::select! {
            () = stop.cancelled() => return,
            _ = ticker.tick() => false,
            _ = reconnects.recv() => true,
        };
        let Some(broker) = broker.upgrade() else { return };
        let heartbeat_every = (broker.node_expiry / 3).clamp(COUNT_SYNC_INTERVAL, Duration::from_secs(1));
        let ticks_per_heartbeat = (heartbeat_every.as_millis() / COUNT_SYNC_INTERVAL.as_millis()).max(1) as u64;
        if reconnected || tick.is_multiple_of(ticks_per_heartbeat) {
            let result = async {
                broker.heartbeat().await?;
                broker.reap().await
            }
            .await;
            broker.note(result, "heartbeat");
        }
        let result = broker.write_counts().await;
        broker.note(result, "subscriber counts");
        tick += 1;
    }
}

#[async_trait]
impl Broker for RedisBroker {
    fn hub(&self) -> &Hub {
        &self.hub
    }

    async fn publish(&self, event: ClusterEvent) -> Result<u32, BrokerError> {
        let key = match &event {
            ClusterEvent::Frame { key, .. } => key.clone(),
            ClusterEvent::User { user, .. } => return self.publish_counted(self.keys.user_route(user), event).await,
            ClusterEvent::CommandAnswered { command_id, .. } => match self.answer_route(command_id) {
                Some(route) => return self.publish_counted(route, event).await,
                None => return Ok(announce(self, apply(&self.hub, event)).await),
            },
            ClusterEvent::ChannelDeleted { .. }
            | ClusterEvent::TokenRevoked { .. }
            | ClusterEvent::ClientDisconnected { .. } => return self.publish_counted(self.keys.events(), event).await,
        };
        let payload = encode_envelope(&self.node, None, &event);
        let args = vec![self.keys.alive(), self.node.clone(), self.keys.route(&key), payload];
        let remote: i64 = self.script(PUBLISH_FRAME, vec![self.keys.subs(&key)], args).await?;
        let local = announce(self, apply(&self.hub, event)).await;
        Ok(local + u32::try_from(remote).unwrap_or(0))
    }

    async fn join(&self, key: &ChannelKey, member: &PresenceMember) -> Result<bool, BrokerError> {
        let mut presence = self.presence.lock().await;
        if let Some((_, sockets)) = presence.counts.get_mut(key).and_then(|m| m.get_mut(&member.client_id)) {
            *sockets += 1;
            return Ok(false);
        }
        let keys = vec![self.keys.presence(key), self.keys.owned(&self.node)];
        let args = vec![
            self.keys.alive(),
            self.node.clone(),
            member.client_id.clone(),
            serde_json::to_string(member).expect("members serialise"),
        ];
        let first: i64 = self.script(JOIN, keys, args).await?;
        presence.counts.entry(key.clone()).or_default().insert(member.client_id.clone(), (member.clone(), 1));
        Ok(first == 1)
    }

    async fn leave(&self, key: &ChannelKey, member: &PresenceMember) -> Result<bool, BrokerError> {
        let mut presence = self.presence.lock().await;
        let Some(members) = presence.counts.get_mut(key) else { return Ok(false) };
        let Some((_, sockets)) = members.get_mut(&member.client_id) else { return Ok(false) };
        *sockets -= 1;
        if *sockets > 0 {
            return Ok(false);
        }
        members.remove(&member.client_id);
        if members.is_empty() {
            presence.counts.remove(key);
        }
        let args = vec![self.keys.alive(), self.node.clone(), member.client_id.clone()];
        match self.script::<i64>(LEAVE, vec![self.keys.presence(key)], args).await {
            Ok(last) => Ok(last == 1),
            Err(error) => {
                // The socket is gone either way; the next heartbeat removes the entry.
                presence.stale.insert(key.clone());
                Err(error)
            }
        }
    }

    async fn members(&self, key: &ChannelKey) -> Result<Vec<PresenceMember>, BrokerError> {
        // A subscriber reads the member list before it subscribes: from then on it must
        // hear every join and leave, which are not stored for a catch-up.
        if self.routing == RedisRouting::Channel {
            self.open_route(key).await?;
        }
        let texts: Vec<String> = self.script(MEMBERS, vec![self.keys.presence(key)], vec![self.keys.alive()]).await?;
        let mut members = BTreeMap::new();
        for text in texts {
            match serde_json::from_str::<PresenceMember>(&text) {
                Ok(member) => {
                    members.insert(member.client_id.clone(), member);
                }
                Err(error) => tracing::warn!(%error, "a presence entry could not be read; ignored"),
            }
        }
        Ok(members.into_values().collect())
    }

    async fn subscriber_count(&self, key: &ChannelKey) -> Result<u32, BrokerError> {
        let args = vec![self.keys.alive(), self.node.clone()];
        let remote: i64 = self.script(REMOTE_SUBSCRIBERS, vec![self.keys.subs(key)], args).await?;
        Ok(self.hub.subscriber_count(key) + u32::try_from(remote).unwrap_or(0))
    }

    async fn ping(&self) -> Result<(), BrokerError> {
        self.alive()?;
        self.client.with_options(&options()).ping::<()>(None).await.map_err(unavailable)
    }

    async fn open_user_route(&self, user: &UserKey) -> Result<(), BrokerError> {
        match self.routing {
            RedisRouting::Channel => self.route_user(user).await,
            // Every user's route is heard here already.
            RedisRouting::Broadcast => Ok(()),
        }
    }
}
