//! The broker: how events and live state cross nodes.
//!
//! One node uses [`memory::MemoryBroker`], which loops every event straight back into
//! this node's [`Hub`]. Several nodes share a Redis broker. Either way the gateway and the
//! REST side only see the [`Broker`] trait, and every event is applied to a node's hub by
//! the one function [`apply`], which reports what it did; the broker that applied it then
//! announces the presence leaves that caused ([`announce`]). Presence itself (a member's
//! first socket joins, its last one leaves) is counted through the trait by [`join`] and
//! [`leave`], so both brokers share one implementation of it.

pub mod memory;
pub mod redis;
pub mod timed;

use std::sync::Arc;

use async_trait::async_trait;
use axum::extract::ws::Utf8Bytes;
use realtime_types::ws::{CloseCode, UnsubscribeReason};
use realtime_types::{Position, PresenceMember};

use realtime_types::ws::ServerFrame;

use crate::hub::lifecycle::Lifecycle;
use crate::hub::tap::{Activity, TapEvent};
use crate::hub::{ChannelKey, Connection, Frames, Hub, UserKey};

/// Something every node must act on.
#[derive(Debug, Clone, PartialEq)]
pub enum ClusterEvent {
    /// A serialised frame for every subscriber of a channel (messages, presence events).
    Frame {
        /// The channel.
        key: ChannelKey,
        /// The JSON text of the frame for each protocol, serialised once by the publisher.
        frame: Frames,
        /// For a message, its position: every node hands messages out in offset order.
        position: Option<Position>,
    },
    /// A channel was deleted: unsubscribe everyone, telling them why.
    ChannelDeleted {
        /// The channel.
        key: ChannelKey,
    },
    /// A token was revoked: close its sockets with 4003.
    TokenRevoked {
        /// The token id.
        jti: String,
    },
    /// A frame for every connection of a user (`None`: only count them).
    User {
        /// The user.
        user: UserKey,
        /// The frame, serialised once by the sender.
        frame: Option<Utf8Bytes>,
        /// When the frame is a command, its id: a broker that routes the command's answer
        /// to the node waiting for it learns here where that is.
        command_id: Option<String>,
    },
    /// A command was answered: the node waiting for it hands the response over.
    CommandAnswered {
        /// The command.
        command_id: String,
        /// The response, as JSON text.
        response: String,
    },
    /// `user.disconnect`: close the client's sockets with 4004, or only unsubscribe them
    /// from `channel`.
    ClientDisconnected {
        /// The account.
        account_id: String,
        /// The client.
        client_id: String,
        /// Only this channel, when set.
        channel: Option<String>,
    },
}

/// A broker failure; requests that need the broker answer 503 `UNAVAILABLE`.
#[derive(Debug, thiserror::Error)]
#[error("broker unavailable: {0}")]
pub struct BrokerError(pub String);

/// How events and presence cross nodes.
#[async_trait]
pub trait Broker: Send + Sync {
    /// Hands `event` to every node, this one included, and returns how many local and
    /// remote sockets it acted on (for remote nodes: as known when it was sent).
    /// Ordering: the events one node publishes for one channel reach every node in that
    /// order. Delivery is at-most-once: a node that is down misses them.
    async fn publish(&self, event: ClusterEvent) -> Result<u32, BrokerError>;
    /// Counts one more socket of `member` on the channel; true when it is the member's
    /// first socket on any node (a join).
    async fn join(&self, key: &ChannelKey, member: &PresenceMember) -> Result<bool, BrokerError>;
    /// Counts one socket of `member` less; true when it was the member's last (a leave).
    async fn leave(&self, key: &ChannelKey, member: &PresenceMember) -> Result<bool, BrokerError>;
    /// The members present on the channel on every live node, ordered by client id.
    async fn members(&self, key: &ChannelKey) -> Result<Vec<PresenceMember>, BrokerError>;
    /// Sockets subscribed to the channel on every live node.
    async fn subscriber_count(&self, key: &ChannelKey) -> Result<u32, BrokerError>;
    /// Whether the broker's engine answers.
    async fn ping(&self) -> Result<(), BrokerError>;
    /// Makes sure `user`'s frames reach this node from the moment this returns: called
    /// for a connection of the user, after the hub counts it and before the connection
    /// reads what waits for it or is told it is connected (a broker that routes a user's
    /// frames only to the nodes holding its connections starts routing them here).
    async fn open_user_route(&self, user: &UserKey) -> Result<(), BrokerError>;
    /// This node's hub, which the broker delivers into.
    fn hub(&self) -> &Hub;
    /// Whether a channel event of `key` could reach anyone: false only when the broker
    /// knows it would act on nothing. A publish then skips encoding its frames (6% of a
    /// REST publish's CPU on a channel nobody listens to). A broker of several nodes
    /// cannot know what the others hold without asking, so it says true.
    fn has_audience(&self, _key: &ChannelKey) -> bool {
        true
    }
}

/// The name under which a channel's occupancy is counted as a presence of nodes: each
/// node with a subscriber is a member, so the broker decides the first and the last
/// across the cluster as it does for users. No client can name it (`#` is not a channel
/// character; Pusher's `#server-to-user-` channels have another prefix).
pub fn occupancy_key(key: &ChannelKey) -> ChannelKey {
    ChannelKey::new(&key.account_id, format!("{OCCUPANCY_PREFIX}{}", key.channel))
}

/// The prefix of [`occupancy_key`]s.
pub const OCCUPANCY_PREFIX: &str = "#occupancy:";

/// The lifecycle change of a presence leave that no node holds any more: a member
/// removed, or for an [`occupancy_key`], the channel vacated.
pub fn last_leave(key: &ChannelKey, member: &PresenceMember) -> Lifecycle {
    match key.channel.strip_prefix(OCCUPANCY_PREFIX) {
        Some(channel) => Lifecycle::Vacated { key: ChannelKey::new(&key.account_id, channel) },
        None => Lifecycle::MemberRemoved { key: key.clone(), user_id: member.client_id.clone() },
    }
}

/// What applying an event did on this node.
#[derive(Debug, Default)]
pub struct Applied {
    /// Local sockets acted on (delivered to, closed or unsubscribed).
    pub acted: u32,
    /// Sockets that stopped being subscribed to a channel, whose presence must end.
    pub unsubscribed: Vec<(Arc<Connection>, String)>,
}

/// Applies an event to this node's hub and reports what it did. It never waits: the
/// presence leaves it causes are for the caller to [`announce`].
pub fn apply(hub: &Hub, event: ClusterEvent) -> Applied {
    tap(hub, &event);
    match event {
        ClusterEvent::Frame { key, frame, position } => {
            Applied { acted: hub.deliver(&key, &frame, position.as_ref()), unsubscribed: Vec::new() }
        }
        ClusterEvent::ChannelDeleted { key } => {
            let dropped = hub.drop_channel(&key);
            Applied {
                acted: dropped.len() as u32,
                unsubscribed: dropped.into_iter().map(|connection| (connection, key.channel.clone())).collect(),
            }
        }
        ClusterEvent::User { user, frame, .. } => {
            Applied { acted: hub.deliver_to_user(&user, frame.as_ref()), unsubscribed: Vec::new() }
        }
        ClusterEvent::CommandAnswered { command_id, response } => {
            Applied { acted: u32::from(hub.answer_command(&command_id, response)), unsubscribed: Vec::new() }
        }
        ClusterEvent::TokenRevoked { jti } => Applied {
            acted: hub.close_token(&jti, CloseCode::TokenRevoked, "the token was revoked"),
            unsubscribed: Vec::new(),
        },
        ClusterEvent::ClientDisconnected { account_id, client_id, channel: None } => Applied {
            acted: hub.close_client(
                &account_id,
                &client_id,
                CloseCode::DisconnectedByServer,
                "disconnected by the server",
            ),
            unsubscribed: Vec::new(),
        },
        ClusterEvent::ClientDisconnected { account_id, client_id, channel: Some(channel) } => {
            let key = ChannelKey::new(account_id, channel);
            let acted = hub.unsubscribe_client(&key, &client_id, UnsubscribeReason::DisconnectedByServer);
            Applied {
                acted: acted.len() as u32,
                unsubscribed: acted.into_iter().map(|connection| (connection, key.channel.clone())).collect(),
            }
        }
    }
}

/// Hands a copy of `event` to the viewers of its account, if it has an account and
/// viewers: every node applies every event, so each node's viewers see the whole cluster's.
fn tap(hub: &Hub, event: &ClusterEvent) {
    match event {
        ClusterEvent::Frame { key, frame, .. } => {
            hub.taps.emit(&key.account_id, || TapEvent::Frame(frame.native.clone()));
        }
        ClusterEvent::ChannelDeleted { key } => {
            hub.taps.activity(&key.account_id, || Activity::ChannelDeleted { channel: key.channel.clone() });
        }
        ClusterEvent::ClientDisconnected { account_id, client_id, channel } => {
            hub.taps.activity(account_id, || Activity::ClientDisconnected {
                client_id: client_id.clone(),
                channel: channel.clone(),
            });
        }
        // A revocation names no account (the node that revoked it reports it), and user
        // messages and command answers are not a channel's events.
        ClusterEvent::TokenRevoked { .. } | ClusterEvent::User { .. } | ClusterEvent::CommandAnswered { .. } => {}
    }
}

/// Ends the presence of what [`apply`] unsubscribed, through `broker`; returns the count
/// of sockets acted on.
pub async fn announce(broker: &dyn Broker, applied: Applied) -> u32 {
    for (connection, channel) in &applied.unsubscribed {
        leave(broker, connection, channel).await;
    }
    applied.acted
}

/// Counts `connection` in `channel`'s presence; the member's first socket (on any node)
/// announces `presence.join` to the channel's subscribers.
pub async fn join(broker: &dyn Broker, connection: &Connection, channel: &str) -> Result<(), BrokerError> {
    join_as(broker, connection, channel, connection.member()).await
}

/// Like [`join`], as `member` (a Pusher socket is the member its `channel_data` names).
pub async fn join_as(
    broker: &dyn Broker,
    connection: &Connection,
    channel: &str,
    member: PresenceMember,
) -> Result<(), BrokerError> {
    if !connection.mark_present(channel, member.clone()) {
        return Ok(());
    }
    let key = ChannelKey::new(&connection.account_id, channel);
    let first = match broker.join(&key, &member).await {
        Ok(first) => first,
        Err(error) => {
            // Not counted: a later subscribe must try again.
            connection.take_present(channel);
            return Err(error);
        }
    };
    if first {
        broker.hub().lifecycle.notify(Lifecycle::MemberAdded { key: key.clone(), user_id: member.client_id.clone() });
        let frame = Frames::of(&ServerFrame::PresenceJoin { channel: channel.to_owned(), member }, None, None);
        broker.publish(ClusterEvent::Frame { key, frame, position: None }).await?;
    }
    Ok(())
}

/// Stops counting `connection` in `channel`'s presence; the member's last socket
/// announces `presence.leave`. Failures are logged: a leave must never fail a close.
pub async fn leave(broker: &dyn Broker, connection: &Connection, channel: &str) {
    let Some(member) = connection.take_present(channel) else {
        return;
    };
    let key = ChannelKey::new(&connection.account_id, channel);
    let result = async {
        if broker.leave(&key, &member).await? {
            broker.hub().lifecycle.notify(last_leave(&key, &member));
            let frame = Frames::of(&ServerFrame::PresenceLeave { channel: channel.to_owned(), member }, None, None);
            broker.publish(ClusterEvent::Frame { key, frame, position: None }).await?;
        }
        Ok::<_, BrokerError>(())
    }
    .await;
    if let Err(error) = result {
        tracing::warn!(%error, channel, "presence leave not recorded");
    }
}

/// Every way `connection` counts in presence ends (the socket closed).
pub async fn leave_all(broker: &dyn Broker, connection: &Connection) {
    for channel in connection.present_channels() {
        leave(broker, connection, &channel).await;
    }
}
